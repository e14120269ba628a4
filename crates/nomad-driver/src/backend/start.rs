//! What a task start runs: the `rkt prepare` and `rkt run-prepared` command lines built from the
//! job's `config {}` and Nomad's task configuration, in the original driver's order, with its
//! bugs fixed: relative volume paths are resolved inside the allocation directory (and `..`
//! refused), CPU is passed as shares rather than as whole cores, volume names are valid appc
//! names for any task name, and the environment goes in a stable order.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The job's `config {}` block, as the task config schema declares it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub image: String,
    pub command: String,
    pub args: Vec<String>,
    pub trust_prefix: String,
    pub dns_servers: Vec<String>,
    pub dns_search_domains: Vec<String>,
    pub net: Vec<String>,
    pub port_map: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    pub insecure_options: Vec<String>,
    pub no_overlay: bool,
    pub debug: bool,
    pub group: String,
    /// The most processes the task may have: 0 for rkt's default (2048), -1 for no limit.
    pub pids_limit: i64,
}

/// A host path Nomad asks to be mounted (host volumes, CSI) or a device.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPath {
    pub host_path: String,
    pub task_path: String,
    pub read_only: bool,
}

/// What Nomad tells the driver about the task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spec {
    pub id: String,
    pub name: String,
    pub alloc_id: String,
    pub alloc_dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub user: String,
    pub memory_bytes: i64,
    pub cpu_shares: i64,
    /// Ports of the task's own network (reserved, then dynamic): label and host port.
    /// None when the task has no network.
    pub task_ports: Option<Vec<(String, u16)>>,
    /// The group's ports (`network` at group level): label and host port.
    pub group_ports: Vec<(String, u16)>,
    pub mounts: Vec<HostPath>,
    pub devices: Vec<HostPath>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// The group's network namespace, when Nomad made one (`network { mode = "bridge" }`).
    pub group_netns: Option<PathBuf>,
    /// The group network's `dns {}`: servers, searches, options.
    pub group_dns: Option<(Vec<String>, Vec<String>, Vec<String>)>,
}

impl Spec {
    /// `<alloc_dir>/<task>`, where Nomad puts `local/` and `secrets/`.
    pub fn task_dir(&self) -> PathBuf {
        self.alloc_dir.join(&self.name)
    }
}

/// The commands of one task start.
#[derive(Debug, Clone, PartialEq)]
pub struct Commands {
    /// `rkt trust …`, when the job names a trust prefix.
    pub trust: Option<Vec<String>>,
    /// Global flags, then `prepare …`.
    pub prepare: Vec<String>,
    /// Global flags, then `run-prepared …` without the UUID.
    pub run_prepared: Vec<String>,
    /// Whether the pod gets a network of its own (not host or none).
    pub contained: bool,
}

const INSECURE_OPTIONS: &[&str] = &[
    "none",
    "image",
    "tls",
    "ondisk",
    "http",
    "pubkey",
    "capabilities",
    "paths",
    "seccomp",
    "run",
    "all-fetch",
    "all-run",
    "all",
];

/// Builds the commands, or says which part of the job is wrong. `rkt_globals` are the global
/// flags the plugin was given for rkt ([`super::rkt::Rkt::global_args`]).
pub fn commands(
    o: &Options,
    s: &Spec,
    volumes_enabled: bool,
    rkt_globals: &[String],
) -> Result<Commands, String> {
    let global = global_args(o, rkt_globals)?;
    let joined_net = o.net.join(",");
    let mut prepare = global.clone();
    prepare.push("prepare".into());
    if o.no_overlay {
        prepare.push("--no-overlay=true".into());
    }
    let base = format!("{}-{}", acname(&s.alloc_id), acname(&s.name));
    let task_dir = s.task_dir();
    let nomad_dirs = [
        ("alloc", s.alloc_dir.join("alloc"), "/alloc"),
        ("local", task_dir.join("local"), "/local"),
        ("secrets", task_dir.join("secrets"), "/secrets"),
    ];
    for (name, src, target) in nomad_dirs {
        volume(
            &mut prepare,
            &format!("{base}-{name}"),
            &src.display().to_string(),
            None,
            target,
        );
    }
    for (i, v) in user_volumes(&o.volumes, &s.alloc_dir, volumes_enabled)?
        .iter()
        .enumerate()
    {
        volume(
            &mut prepare,
            &format!("{base}-{i}"),
            &v.host_path,
            Some(v.read_only),
            &v.task_path,
        );
    }
    for (i, m) in s.mounts.iter().enumerate() {
        volume(
            &mut prepare,
            &format!("{base}-taskmounts-{i}"),
            &m.host_path,
            Some(m.read_only),
            &m.task_path,
        );
    }
    for (i, d) in s.devices.iter().enumerate() {
        volume(
            &mut prepare,
            &format!("{base}-taskdevices-{i}"),
            &d.host_path,
            Some(d.read_only),
            &d.task_path,
        );
    }
    for (k, v) in &s.env {
        prepare.push(format!("--set-env={k}={v}"));
    }
    if o.image.is_empty() {
        return Err("Missing required attribute \"image\"; set config { image = \"…\" }".into());
    }
    prepare.push(o.image.clone());
    if !o.command.is_empty() {
        prepare.push(format!("--exec={}", o.command));
    }
    if s.memory_bytes > 0 {
        prepare.push(format!("--memory={}", s.memory_bytes));
    }
    if s.cpu_shares > 0 {
        prepare.push(format!("--cpu-shares={}", s.cpu_shares));
    }
    match o.pids_limit {
        0 => {}
        -1 => prepare.push("--pids-limit=max".into()),
        n if n > 0 => prepare.push(format!("--pids-limit={n}")),
        n => {
            return Err(format!(
                "pids_limit = {n}: use a number of processes, or -1 for no limit (0 or none: rkt's default of 2048)"
            ))
        }
    }
    if s.group_netns.is_some() && !o.net.is_empty() {
        return Err(format!(
            "net = {:?} cannot be used in a group with its own network (network mode bridge or cni): the task joins the group's network",
            o.net
        ));
    }
    // In a group network Nomad forwards the group's ports itself.
    if joined_net != "host" && s.group_netns.is_none() {
        for (name, host_port) in ports(o, s)? {
            prepare.push(format!("--port={name}:{host_port}"));
        }
    }
    if !s.user.is_empty() {
        prepare.push(format!("--user={}", s.user));
    }
    if !o.group.is_empty() {
        prepare.push(format!("--group={}", o.group));
    }
    if !o.args.is_empty() {
        prepare.push("--".into());
        prepare.extend(o.args.iter().cloned());
    }

    let mut run_prepared = global.clone();
    run_prepared.push("run-prepared".into());
    let (group_servers, group_searches, group_options) = s.group_dns.clone().unwrap_or_default();
    let (servers, searches) = if o.dns_servers.is_empty() && o.dns_search_domains.is_empty() {
        for opt in &group_options {
            run_prepared.push(format!("--dns-opt={opt}"));
        }
        (group_servers, group_searches)
    } else {
        (o.dns_servers.clone(), o.dns_search_domains.clone())
    };
    match servers.as_slice() {
        [one] if one == "host" || one == "none" => run_prepared.push(format!("--dns={one}")),
        servers => {
            for ip in servers {
                ip.parse::<std::net::IpAddr>()
                    .map_err(|_| format!("invalid ip address for container dns server {ip:?}"))?;
                run_prepared.push(format!("--dns={ip}"));
            }
        }
    }
    for d in &searches {
        run_prepared.push(format!("--dns-search={d}"));
    }
    if let Some(ns) = &s.group_netns {
        run_prepared.push(format!("--net-namespace={}", ns.display()));
    } else if !o.net.is_empty() {
        run_prepared.push(format!("--net={joined_net}"));
    }
    let trust = (!o.trust_prefix.is_empty()).then(|| {
        let mut t = rkt_globals.to_vec();
        t.extend([
            "trust".into(),
            "--skip-fingerprint-review=true".into(),
            format!("--prefix={}", o.trust_prefix),
            format!("--debug={}", o.debug),
        ]);
        t
    });
    Ok(Commands {
        trust,
        prepare,
        run_prepared,
        // Nomad knows a group network's address itself.
        contained: s.group_netns.is_none() && joined_net != "host" && joined_net != "none",
    })
}

/// rkt's global flags, then `--insecure-options` (the job's, or `all` without a trust
/// prefix) and `--debug`.
fn global_args(o: &Options, rkt_globals: &[String]) -> Result<Vec<String>, String> {
    let mut g = rkt_globals.to_vec();
    for opt in &o.insecure_options {
        if !INSECURE_OPTIONS.contains(&opt.as_str()) {
            return Err(format!(
                "unknown insecure option {opt:?} in insecure_options; valid options: {}",
                INSECURE_OPTIONS.join(", ")
            ));
        }
    }
    if !o.insecure_options.is_empty() {
        g.push(format!(
            "--insecure-options={}",
            o.insecure_options.join(",")
        ));
    } else if o.trust_prefix.is_empty() {
        g.push("--insecure-options=all".into());
    }
    g.push(format!("--debug={}", o.debug));
    Ok(g)
}

fn volume(args: &mut Vec<String>, name: &str, source: &str, read_only: Option<bool>, target: &str) {
    let ro = read_only
        .map(|r| format!(",readOnly={r}"))
        .unwrap_or_default();
    args.push(format!("--volume={name},kind=host,source={source}{ro}"));
    args.push(format!("--mount=volume={name},target={target}"));
}

/// A name appc accepts (`^[a-z0-9]+([-][a-z0-9]+)*$`): lower case, anything else a dash.
fn acname(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// `host:container[:readOnly]`. Relative host paths live in the allocation directory and may
/// not leave it; absolute ones need the plugin's `volumes_enabled`.
fn user_volumes(raw: &[String], alloc_dir: &Path, enabled: bool) -> Result<Vec<HostPath>, String> {
    let absolute: Vec<&String> = raw
        .iter()
        .filter(|v| v.split(':').next().is_some_and(|h| h.starts_with('/')))
        .collect();
    if !enabled && !absolute.is_empty() {
        return Err(format!(
            "volumes_enabled is false; cannot use rkt volumes: {absolute:?} (relative host paths, inside the allocation directory, are allowed)"
        ));
    }
    raw.iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            let (host, target, read_only) = match parts.as_slice() {
                [h, t] => (*h, *t, false),
                [h, t, "readOnly"] => (*h, *t, true),
                [_, _, other] => {
                    return Err(format!(
                        "invalid rkt volume: {v:?}: the third part may only be readOnly, not {other:?}"
                    ))
                }
                _ => return Err(format!("invalid rkt volume: {v:?}; use host_path:container_path[:readOnly]")),
            };
            if host.is_empty() || !target.starts_with('/') {
                return Err(format!(
                    "invalid rkt volume: {v:?}; the container path must be absolute"
                ));
            }
            let host_path = if host.starts_with('/') {
                PathBuf::from(host)
            } else {
                if Path::new(host).components().any(|c| matches!(c, Component::ParentDir)) {
                    return Err(format!(
                        "invalid rkt volume: {v:?}: a relative host path may not use \"..\" to leave the allocation directory"
                    ));
                }
                alloc_dir.join(host)
            };
            Ok(HostPath {
                host_path: host_path.display().to_string(),
                task_path: target.to_string(),
                read_only,
            })
        })
        .collect()
}

/// `--port` pairs (image port name, host port). From the task's network as the original
/// driver did (every port needs a `port_map` entry); from the group's ports for group
/// networks. Every `port_map` label must name one of those ports.
fn ports(o: &Options, s: &Spec) -> Result<Vec<(String, u16)>, String> {
    let available: Vec<(String, u16)> = match &s.task_ports {
        Some(p) => p.clone(),
        None if !s.group_ports.is_empty() => s.group_ports.clone(),
        None if o.port_map.is_empty() => return Ok(Vec::new()),
        None => return Err("Trying to map ports but no network interface is available".into()),
    };
    for label in o.port_map.keys() {
        if !available.iter().any(|(l, _)| l == label) {
            let known: Vec<&str> = available.iter().map(|(l, _)| l.as_str()).collect();
            return Err(format!(
                "port_map label {label:?} is not a port of the task's network (its ports: {}); add it to the network block or remove it from port_map",
                known.join(", ")
            ));
        }
    }
    let mut out = Vec::new();
    for (label, host_port) in available {
        match o.port_map.get(&label) {
            Some(name) => out.push((name.clone(), host_port)),
            // Group ports are shared by all the group's tasks: each maps the ones it serves.
            None if s.task_ports.is_none() => {}
            None => {
                return Err(format!(
                    "port_map is not set. When you defined port in the resources, you need to configure port_map. (port {label:?} has no entry)"
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            id: "a1b2/web/1234".into(),
            name: "web_Server".into(),
            alloc_id: "a1b2".into(),
            alloc_dir: "/var/nomad/alloc/a1b2".into(),
            env: [
                ("NOMAD_TASK_DIR".to_string(), "/local".to_string()),
                ("A".into(), "1".into()),
            ]
            .into(),
            user: "nobody".into(),
            memory_bytes: 134217728,
            cpu_shares: 500,
            task_ports: Some(vec![("http".into(), 8080)]),
            ..Default::default()
        }
    }

    fn opts() -> Options {
        Options {
            image: "docker://redis:3.2".into(),
            command: "/bin/redis".into(),
            args: vec!["-p".into(), "1".into()],
            port_map: [("http".to_string(), "6379-tcp".to_string())].into(),
            ..Default::default()
        }
    }

    /// Every field of the task config table reaches the rkt command its `rkt` column names,
    /// as that flag: a field added to the table without its argument (or an argument moved
    /// to another command) fails here.
    #[test]
    fn every_task_config_field_becomes_the_rkt_argument_the_table_says() {
        use crate::config::{Rkt, TASK_FIELDS};
        let o = Options {
            image: "docker://x/y:1".into(),
            command: "/bin/cmd".into(),
            args: vec!["arg-one".into()],
            trust_prefix: "example.com/app".into(),
            dns_servers: vec!["10.9.8.7".into()],
            dns_search_domains: vec!["svc.example".into()],
            net: vec!["default".into()],
            port_map: [("http".to_string(), "8080-tcp".to_string())].into(),
            volumes: vec!["/srv/data:/data".into()],
            insecure_options: vec!["image".into()],
            no_overlay: true,
            debug: true,
            group: "www".into(),
            pids_limit: 77,
        };
        let c = commands(&o, &spec(), true, &[]).unwrap();
        let trust = c.trust.clone().unwrap_or_default();
        let image_at = c.prepare.iter().position(|a| a == &o.image);
        let dashdash = c.prepare.iter().position(|a| a == "--");
        let has =
            |argv: &[String], flag: &str| argv.iter().any(|a| a.starts_with(&format!("{flag}=")));
        for f in TASK_FIELDS {
            let ok = match f.rkt {
                Rkt::Global(flag) => has(&c.prepare, flag) && has(&c.run_prepared, flag),
                Rkt::Image => image_at.is_some(),
                Rkt::Prepare(flag) => has(&c.prepare, flag),
                Rkt::AppArgs => dashdash.is_some_and(|i| c.prepare[i + 1..] == o.args[..]),
                Rkt::RunPrepared(flag) => has(&c.run_prepared, flag),
                Rkt::Trust => trust.contains(&format!("--prefix={}", o.trust_prefix)),
            };
            assert!(ok, "field {} ({:?}) not found in {c:#?}", f.name, f.rkt);
        }
        // The literal above names every field of Options (no `..Default`), so a new field
        // does not compile until it is set there; and each needs a row of the table.
        assert_eq!(TASK_FIELDS.len(), 14);
    }

    #[test]
    fn prepare_and_run_prepared_in_the_original_order() {
        let c = commands(&opts(), &spec(), true, &[]).unwrap();
        let want = [
            "--insecure-options=all",
            "--debug=false",
            "prepare",
            "--volume=a1b2-web-server-alloc,kind=host,source=/var/nomad/alloc/a1b2/alloc",
            "--mount=volume=a1b2-web-server-alloc,target=/alloc",
            "--volume=a1b2-web-server-local,kind=host,source=/var/nomad/alloc/a1b2/web_Server/local",
            "--mount=volume=a1b2-web-server-local,target=/local",
            "--volume=a1b2-web-server-secrets,kind=host,source=/var/nomad/alloc/a1b2/web_Server/secrets",
            "--mount=volume=a1b2-web-server-secrets,target=/secrets",
            "--set-env=A=1",
            "--set-env=NOMAD_TASK_DIR=/local",
            "docker://redis:3.2",
            "--exec=/bin/redis",
            "--memory=134217728",
            "--cpu-shares=500",
            "--port=6379-tcp:8080",
            "--user=nobody",
            "--",
            "-p",
            "1",
        ];
        assert_eq!(c.prepare, want);
        assert_eq!(
            c.run_prepared,
            ["--insecure-options=all", "--debug=false", "run-prepared"]
        );
        assert!(c.contained && c.trust.is_none());
    }

    #[test]
    fn trust_insecure_dns_and_net() {
        let mut o = opts();
        o.trust_prefix = "example.com/app".into();
        o.dns_servers = vec!["8.8.8.8".into()];
        o.dns_search_domains = vec!["svc".into()];
        o.net = vec!["default".into(), "other".into()];
        let globals = ["--dir=/d".to_string(), "--local-config=/c".to_string()];
        let c = commands(&o, &spec(), true, &globals).unwrap();
        assert_eq!(
            c.prepare[..3],
            ["--dir=/d", "--local-config=/c", "--debug=false"]
        );
        assert_eq!(
            c.trust.unwrap(),
            [
                "--dir=/d",
                "--local-config=/c",
                "trust",
                "--skip-fingerprint-review=true",
                "--prefix=example.com/app",
                "--debug=false"
            ]
        );
        assert_eq!(
            c.run_prepared[3..],
            [
                "run-prepared",
                "--dns=8.8.8.8",
                "--dns-search=svc",
                "--net=default,other"
            ]
        );
        o.insecure_options = vec!["none".into()];
        assert_eq!(
            commands(&o, &spec(), true, &[]).unwrap().prepare[0],
            "--insecure-options=none"
        );
        o.insecure_options = vec!["bogus".into()];
        assert!(commands(&o, &spec(), true, &[])
            .unwrap_err()
            .contains("unknown insecure option \"bogus\""));
        let mut o = opts();
        o.dns_servers = vec!["host".into()];
        assert!(commands(&o, &spec(), true, &[])
            .unwrap()
            .run_prepared
            .contains(&"--dns=host".to_string()));
        o.dns_servers = vec!["8.8.8.8".into(), "nope".into()];
        assert_eq!(
            commands(&o, &spec(), true, &[]).unwrap_err(),
            "invalid ip address for container dns server \"nope\""
        );
    }

    #[test]
    fn pids_limit_becomes_rkts_flag() {
        let has = |n: i64| {
            let mut o = opts();
            o.pids_limit = n;
            commands(&o, &spec(), true, &[]).map(|c| {
                c.prepare
                    .into_iter()
                    .filter(|a| a.starts_with("--pids-limit"))
                    .collect::<Vec<_>>()
            })
        };
        assert!(has(0).unwrap().is_empty(), "rkt's default");
        assert_eq!(has(100).unwrap(), ["--pids-limit=100"]);
        assert_eq!(has(-1).unwrap(), ["--pids-limit=max"]);
        assert!(has(-5).unwrap_err().contains("pids_limit = -5"));
    }

    #[test]
    fn host_network_skips_ports_and_reports_no_network() {
        let mut o = opts();
        o.net = vec!["host".into()];
        let c = commands(&o, &spec(), true, &[]).unwrap();
        assert!(!c.prepare.iter().any(|a| a.starts_with("--port")));
        assert!(!c.contained);
    }

    #[test]
    fn volumes() {
        let mut o = opts();
        o.volumes = vec!["data:/data".into(), "/etc/ssl:/etc/ssl:readOnly".into()];
        let c = commands(&o, &spec(), true, &[]).unwrap();
        assert!(c.prepare.contains(&"--volume=a1b2-web-server-0,kind=host,source=/var/nomad/alloc/a1b2/data,readOnly=false".to_string()));
        assert!(c.prepare.contains(
            &"--volume=a1b2-web-server-1,kind=host,source=/etc/ssl,readOnly=true".to_string()
        ));
        assert!(c
            .prepare
            .contains(&"--mount=volume=a1b2-web-server-1,target=/etc/ssl".to_string()));
        // Disabled: relative paths stay allowed, absolute ones are refused.
        let e = commands(&o, &spec(), false, &[]).unwrap_err();
        assert!(e.starts_with("volumes_enabled is false; cannot use rkt volumes: [\"/etc/ssl:/etc/ssl:readOnly\"]"), "{e}");
        o.volumes = vec!["data:/data".into()];
        assert!(commands(&o, &spec(), false, &[]).is_ok());
        for bad in [
            "../../etc:/x",
            "a/../../b:/x",
            "a:b:c:d",
            "a",
            "a:/x:ro",
            "a:rel",
        ] {
            o.volumes = vec![bad.into()];
            let e = commands(&o, &spec(), true, &[]).unwrap_err();
            assert!(e.starts_with("invalid rkt volume:"), "{bad}: {e}");
        }
    }

    #[test]
    fn group_network_is_joined() {
        let mut s = spec();
        s.group_netns = Some("/var/run/netns/alloc1".into());
        s.group_dns = Some((
            vec!["10.0.0.2".into()],
            vec!["svc".into()],
            vec!["ndots:2".into()],
        ));
        let c = commands(&opts(), &s, true, &[]).unwrap();
        assert!(
            !c.prepare.iter().any(|a| a.starts_with("--port")),
            "Nomad maps group ports"
        );
        assert_eq!(
            c.run_prepared[2..],
            [
                "run-prepared",
                "--dns-opt=ndots:2",
                "--dns=10.0.0.2",
                "--dns-search=svc",
                "--net-namespace=/var/run/netns/alloc1"
            ]
        );
        assert!(!c.contained);
        let mut o = opts();
        o.net = vec!["default".into()];
        assert!(commands(&o, &s, true, &[])
            .unwrap_err()
            .contains("cannot be used in a group with its own network"));
        o.net.clear();
        o.dns_servers = vec!["1.1.1.1".into()];
        let c = commands(&o, &s, true, &[]).unwrap();
        assert!(
            c.run_prepared.contains(&"--dns=1.1.1.1".to_string())
                && !c.run_prepared.iter().any(|a| a.contains("10.0.0.2"))
        );
    }

    #[test]
    fn port_map_errors() {
        let mut s = spec();
        let mut o = opts();
        o.port_map.insert("metrics".into(), "9100-tcp".into());
        let e = commands(&o, &s, true, &[]).unwrap_err();
        assert!(
            e.contains("port_map label \"metrics\" is not a port of the task's network"),
            "{e}"
        );
        let o = opts();
        s.task_ports = Some(vec![("http".into(), 8080), ("admin".into(), 9000)]);
        let e = commands(&o, &s, true, &[]).unwrap_err();
        assert!(e.starts_with("port_map is not set."), "{e}");
        s.task_ports = None;
        assert_eq!(
            commands(&o, &s, true, &[]).unwrap_err(),
            "Trying to map ports but no network interface is available"
        );
        s.group_ports = vec![("http".into(), 25000), ("other".into(), 25001)];
        let c = commands(&o, &s, true, &[]).unwrap();
        assert!(c.prepare.contains(&"--port=6379-tcp:25000".to_string()));
    }
}
