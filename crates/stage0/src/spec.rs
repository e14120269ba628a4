//! rkt's argument grammar for `run` and `prepare`: pod flags, then images, each followed by
//! the flags that apply to it alone; `--` ends rkt's parsing for an app (the rest are the
//! app's arguments) and `---` resumes it for the next image. Flags take `--f=v` or `--f v`;
//! booleans take only `--f` or `--f=bool`, as Go's pflag did.

use crate::error::{bail, invalid, Error, Result};
use std::path::PathBuf;

/// Go's strconv.ParseBool, which rkt's boolean flags accept.
pub fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}; use true or false")),
    }
}

/// Go's time.ParseDuration for the common forms rkt users write (`24h0m0s`, `90s`, `1h30m`).
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let err = || format!("invalid duration {s:?}; use a Go duration such as 24h0m0s or 90s");
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    // Go's durations are int64 nanoseconds; a longer one is an error there, and
    // Duration::from_secs_f64 would panic on it (found by the rkt_args fuzz target).
    const MAX_SECS: f64 = i64::MAX as f64 / 1e9;
    if total.is_nan() || total > MAX_SECS {
        return Err(format!(
            "invalid duration {s:?}: longer than the longest Go duration, 2562047h47m16.854775807s"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// What `run-prepared` decides when the pod runs (and `run` takes from its pod flags).
#[derive(Debug, Default, Clone)]
pub struct RuntimeSpec {
    /// Networks: default, default-restricted, host, none, all, or names from net.d
    /// (`NAME:K=V;K=V` passes CNI_ARGS).
    pub net: Vec<String>,
    /// DNS server IPs, or "host" or "none".
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opt: Vec<String>,
    pub dns_domain: Option<String>,
    /// The pod's hostname (default rkt-<uuid>).
    pub hostname: Option<String>,
    /// `IP=HOST` entries for /etc/hosts, or "host".
    pub hosts_entries: Vec<String>,
    /// Join this existing network namespace instead of making one (not an rkt 1.30 flag:
    /// nomad-driver-rkt uses it for Nomad's group networks).
    pub net_namespace: Option<PathBuf>,
    /// Give the (single) app the caller's stdin.
    pub interactive: bool,
    /// The IPC namespace: auto or private (its own), or parent (the host's).
    pub ipc: Option<String>,
    pub mds_register: bool,
}

/// Flags of the whole pod.
#[derive(Debug, Default)]
pub struct PodSpec {
    /// What `run` decides when the pod runs (`run-prepared` takes these as its own flags).
    pub runtime: RuntimeSpec,
    pub volumes: Vec<String>,
    /// `--mount` before any image: applies to every app.
    pub mounts: Vec<String>,
    pub ports: Vec<String>,
    pub set_env: Vec<String>,
    pub set_env_file: Vec<String>,
    pub inherit_env: bool,
    pub no_overlay: bool,
    pub uuid_file_save: Option<String>,
    pub pull_policy: Option<String>,
    pub quiet: bool,
}

/// One app: its image and the flags that followed it.
#[derive(Debug, Default, Clone)]
pub struct AppSpec {
    pub image: String,
    pub exec: Option<String>,
    pub args: Vec<String>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_gids: Vec<u32>,
    pub working_dir: Option<String>,
    pub readonly_rootfs: bool,
    pub memory: Option<String>,
    pub cpu: Option<String>,
    pub cpu_shares: Option<u64>,
    pub oom_score_adj: Option<i32>,
    /// `--pids-limit`: not one of rkt's flags (appc has no pids isolator); see
    /// [`parse_pids_limit`].
    pub pids_limit: Option<String>,
    pub environment: Vec<String>,
    pub mounts: Vec<String>,
    pub caps_retain: Option<String>,
    pub caps_remove: Option<String>,
    pub seccomp: Option<String>,
}

const POD_VALUE_FLAGS: &[&str] = &[
    "net",
    "dns",
    "dns-search",
    "dns-opt",
    "dns-domain",
    "hostname",
    "hosts-entry",
    "volume",
    "port",
    "set-env",
    "set-env-file",
    "uuid-file-save",
    "pull-policy",
    "stage1-url",
    "stage1-path",
    "stage1-name",
    "stage1-hash",
    "stage1-from-dir",
    "pod-manifest",
    "ipc",
    "private-users",
    "signature",
    "user-annotation",
    "user-label",
    "stdin",
    "stdout",
    "stderr",
];
const BOOL_FLAGS: &[&str] = &[
    "inherit-env",
    "no-overlay",
    "quiet",
    "interactive",
    "readonly-rootfs",
    "mds-register",
    "store-only",
    "no-store",
];
const GLOBAL_FLAGS: &[&str] = &[
    "dir",
    "debug",
    "insecure-options",
    "local-config",
    "system-config",
    "user-config",
    "trust-keys-from-https",
];
const APP_VALUE_FLAGS: &[&str] = &[
    "exec",
    "name",
    "user",
    "group",
    "supplementary-gids",
    "working-dir",
    "memory",
    "cpu",
    "cpu-shares",
    "oom-score-adj",
    "pids-limit",
    "environment",
    "mount",
    "caps-retain",
    "caps-remove",
    "cap-retain",
    "cap-remove",
    "seccomp",
];

pub fn parse(raw: &[String]) -> Result<(PodSpec, Vec<AppSpec>)> {
    let mut pod = PodSpec::default();
    let mut apps: Vec<AppSpec> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let tok = &raw[i];
        i += 1;
        if tok == "---" {
            continue;
        }
        if tok == "--" {
            let Some(app) = apps.last_mut() else {
                bail!("\"--\" must follow an image: it starts that image's arguments");
            };
            while i < raw.len() && raw[i] != "---" {
                app.args.push(raw[i].clone());
                i += 1;
            }
            continue;
        }
        let Some(flag) = tok.strip_prefix("--") else {
            if tok.starts_with('-') && tok.len() > 1 {
                bail!("unknown shorthand flag {tok:?}");
            }
            apps.push(AppSpec {
                image: tok.clone(),
                ..Default::default()
            });
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if BOOL_FLAGS.contains(&name.as_str()) {
            let v = match inline {
                Some(v) => parse_bool(&v).map_err(Error::invalid)?,
                None => true,
            };
            set_bool(&mut pod, apps.last_mut(), &name, v)?;
            continue;
        }
        if GLOBAL_FLAGS.contains(&name.as_str()) {
            bail!("--{name} is a global flag: put it before the subcommand (rkt --{name}=… run …)");
        }
        let is_app = APP_VALUE_FLAGS.contains(&name.as_str());
        if !is_app && !POD_VALUE_FLAGS.contains(&name.as_str()) {
            bail!("unknown flag: --{name}");
        }
        let value = match inline {
            Some(v) => v,
            // rkt's --net has a value for its bare form (Go's NoOptDefVal): the default
            // network; the next word stays an image.
            None if name == "net" => "default".to_string(),
            None if i < raw.len() => {
                i += 1;
                raw[i - 1].clone()
            }
            None => bail!("flag needs an argument: --{name}"),
        };
        if is_app {
            set_app_flag(&mut pod, apps.last_mut(), &name, value)?;
        } else {
            set_pod_flag(&mut pod, &name, value)?;
        }
    }
    if apps.is_empty() {
        bail!("must provide at least one image");
    }
    Ok((pod, apps))
}

fn set_bool(pod: &mut PodSpec, app: Option<&mut AppSpec>, name: &str, v: bool) -> Result<()> {
    match name {
        "inherit-env" => pod.inherit_env = v,
        "no-overlay" => pod.no_overlay = v,
        "quiet" => pod.quiet = v,
        "interactive" => pod.runtime.interactive = v,
        "readonly-rootfs" => match app {
            Some(a) => a.readonly_rootfs = v,
            None => bail!("--readonly-rootfs must follow the image it applies to"),
        },
        // rkt's deprecated spellings of --pull-policy.
        "store-only" if v => pod.pull_policy = Some("never".into()),
        "no-store" if v => pod.pull_policy = Some("update".into()),
        "store-only" | "no-store" => {}
        "mds-register" if v => {
            bail!("--mds-register: this rkt has no metadata service; leave it false")
        }
        "mds-register" => {}
        _ => unreachable!("--{name} is in BOOL_FLAGS"),
    }
    Ok(())
}

fn set_pod_flag(pod: &mut PodSpec, name: &str, v: String) -> Result<()> {
    match name {
        "net" => pod.runtime.net.extend(v.split(',').map(str::to_string)),
        "dns" => pod.runtime.dns.push(v),
        "dns-search" => pod.runtime.dns_search.push(v),
        "dns-opt" => pod.runtime.dns_opt.push(v),
        "dns-domain" => pod.runtime.dns_domain = Some(v),
        "hostname" => pod.runtime.hostname = Some(v),
        "hosts-entry" => pod.runtime.hosts_entries.push(v),
        "volume" => pod.volumes.push(v),
        "port" => pod.ports.push(v),
        "set-env" => pod.set_env.push(v),
        "set-env-file" => pod.set_env_file.push(v),
        "uuid-file-save" => pod.uuid_file_save = Some(v),
        "pull-policy" => pod.pull_policy = Some(v),
        "ipc" => pod.runtime.ipc = Some(v),
        "private-users" | "pod-manifest" | "user-annotation" | "user-label" => {
            bail!("--{name} is not supported by this rkt yet")
        }
        "stage1-url" | "stage1-path" | "stage1-name" | "stage1-hash" | "stage1-from-dir" => {
            bail!("--{name}: this rkt's stage1 is built in (rkt-stage1 beside rkt); other stage1 images cannot be used")
        }
        "signature" => bail!(
            "--signature: signatures are checked for ACI images, which this rkt cannot fetch yet; Docker images need none (--insecure-options=image)"
        ),
        "stdin" | "stdout" | "stderr" => bail!(
            "--{name}: app stream modes (rkt's experimental attach) are not supported; --interactive gives the app your terminal"
        ),
        _ => unreachable!("--{name} is in POD_VALUE_FLAGS"),
    }
    Ok(())
}

fn set_app_flag(pod: &mut PodSpec, app: Option<&mut AppSpec>, name: &str, v: String) -> Result<()> {
    let Some(app) = app else {
        if name == "mount" {
            pod.mounts.push(v);
            return Ok(());
        }
        bail!("--{name} must follow the image it applies to");
    };
    match name {
        "exec" => app.exec = Some(v),
        "name" => app.name = Some(v),
        "user" => app.user = Some(v),
        "group" => app.group = Some(v),
        "supplementary-gids" => {
            for g in v.split(',').filter(|g| !g.is_empty()) {
                app.supplementary_gids.push(
                    g.parse()
                        .map_err(|_| invalid!("--supplementary-gids: {g:?} is not a group ID"))?,
                );
            }
        }
        "working-dir" => app.working_dir = Some(v),
        "memory" => app.memory = Some(v),
        "cpu" => app.cpu = Some(v),
        "cpu-shares" => {
            app.cpu_shares = Some(
                v.parse()
                    .map_err(|_| invalid!("--cpu-shares: {v:?} is not a number"))?,
            )
        }
        "oom-score-adj" => {
            app.oom_score_adj = Some(
                v.parse()
                    .map_err(|_| invalid!("--oom-score-adj: {v:?} is not a number"))?,
            )
        }
        "pids-limit" => app.pids_limit = Some(v),
        "environment" => app.environment.push(v),
        "caps-retain" | "cap-retain" => app.caps_retain = Some(v),
        "caps-remove" | "cap-remove" => app.caps_remove = Some(v),
        "seccomp" => app.seccomp = Some(v),
        "mount" => app.mounts.push(v),
        _ => unreachable!("listed in APP_VALUE_FLAGS"),
    }
    Ok(())
}

/// A Kubernetes quantity in bytes: `16Mi`, `50M`, `1G`, `1048576`.
/// How many processes and threads an app may have when `--pids-limit` is not given: podman's
/// default (containers.conf `pids_limit`), enough for any ordinary service and small enough
/// that a fork bomb stops long before it hurts the node.
pub const DEFAULT_PIDS_LIMIT: u64 = 2048;

/// `--pids-limit=N` (N >= 1), or `max` / `-1` (Docker's word for it) for no limit; the
/// default when not given is [`DEFAULT_PIDS_LIMIT`]. None: no limit.
pub fn parse_pids_limit(v: Option<&str>) -> Result<Option<u64>> {
    match v {
        None => Ok(Some(DEFAULT_PIDS_LIMIT)),
        Some("max" | "-1") => Ok(None),
        Some(n) => match n.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(invalid!(
                "--pids-limit: {n:?} is not a number of processes; use a number of 1 or more, or \"max\" for no limit"
            )),
        },
    }
}

pub fn parse_bytes(s: &str) -> Result<u64> {
    let (num, mult) = split_suffix(
        s,
        &[
            ("Ki", 1 << 10),
            ("Mi", 1 << 20),
            ("Gi", 1 << 30),
            ("Ti", 1 << 40),
            ("Pi", 1 << 50),
            ("Ei", 1 << 60),
            ("k", 1_000),
            ("K", 1_000),
            ("M", 1_000_000),
            ("G", 1_000_000_000),
            ("T", 1_000_000_000_000),
            ("P", 1_000_000_000_000_000),
            ("E", 1_000_000_000_000_000_000),
        ],
    );
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| *n >= 0.0 && n.is_finite())
        .ok_or_else(|| {
            invalid!("invalid quantity {s:?}; use bytes or a quantity such as 512Mi or 1G")
        })?;
    Ok((n * mult as f64) as u64)
}

/// A CPU quantity in millicores: `500m`, `2`, `1.5`.
pub fn parse_millicores(s: &str) -> Result<u64> {
    let err = || invalid!("invalid CPU quantity {s:?}; use cores or millicores such as 500m or 2");
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<u64>().map_err(|_| err()).and_then(|v| {
            if v == 0 {
                Err(err())
            } else {
                Ok(v)
            }
        });
    }
    let cores: f64 = s.parse().map_err(|_| err())?;
    if cores <= 0.0 || !cores.is_finite() {
        return Err(err());
    }
    Ok((cores * 1000.0).round() as u64)
}

fn split_suffix<'a>(s: &'a str, table: &[(&str, u64)]) -> (&'a str, u64) {
    for (suffix, mult) in table {
        if let Some(n) = s.strip_suffix(suffix) {
            return (n, *mult);
        }
    }
    (s, 1)
}

/// Entry point for the fuzz target (`fuzz/`): the words after `rkt run` or `rkt prepare`, and
/// the flag values that are parsed only when the pod is prepared (volumes, ports, networks,
/// limits). Errors are fine; panics are not. Not an API.
#[doc(hidden)]
pub fn fuzz_words(raw: &[String]) {
    let Ok((pod, apps)) = parse(raw) else { return };
    for v in &pod.volumes {
        let _ = crate::volumes::parse_volume(v);
    }
    for p in &pod.ports {
        let _ = crate::prepare::forward(p, &[]);
    }
    let _ = net::conf::parse_mode(&pod.runtime.net);
    for a in &apps {
        if let Some(m) = &a.memory {
            let _ = parse_bytes(m);
        }
        if let Some(c) = &a.cpu {
            let _ = parse_millicores(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn pids_limits() {
        assert_eq!(parse_pids_limit(None).unwrap(), Some(DEFAULT_PIDS_LIMIT));
        assert_eq!(parse_pids_limit(Some("100")).unwrap(), Some(100));
        assert_eq!(parse_pids_limit(Some("max")).unwrap(), None);
        assert_eq!(parse_pids_limit(Some("-1")).unwrap(), None);
        for bad in ["0", "-2", "1k", ""] {
            let e = parse_pids_limit(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("--pids-limit"), "{e}");
        }
    }

    #[test]
    fn grammar() {
        let (pod, apps) = parse(&args(
            "--net=host --set-env=A=1 img1 --exec /bin/ov --memory 64Mi -- --loglevel v --- img2 --port=p:80 -- --interval 30s",
        ))
        .unwrap();
        assert_eq!(pod.runtime.net, ["host"]);
        assert_eq!(pod.set_env, ["A=1"]);
        assert_eq!(pod.ports, ["p:80"]);
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[0].exec.as_deref(), Some("/bin/ov"));
        assert_eq!(apps[0].memory.as_deref(), Some("64Mi"));
        assert_eq!(apps[0].args, ["--loglevel", "v"]);
        assert_eq!(apps[1].image, "img2");
        assert_eq!(apps[1].args, ["--interval", "30s"]);
    }

    #[test]
    fn durations_beyond_gos_are_errors_not_panics() {
        assert_eq!(
            parse_duration("1m30s").unwrap(),
            std::time::Duration::from_secs(90)
        );
        assert!(parse_duration("2562047h").is_ok());
        // From the rkt_args fuzz target: a panic in Duration::from_secs_f64 before.
        let e = parse_duration(&format!("{}5s", "2".repeat(37))).unwrap_err();
        assert!(e.contains("longer than the longest Go duration"), "{e}");
        assert!(parse_duration("2562048h").is_err());
    }

    #[test]
    fn errors() {
        assert!(parse(&args("--bogus img")).is_err());
        assert!(parse(&args("--exec /x img")).is_err());
        assert!(parse(&args("--net=host")).is_err());
        assert!(parse(&args("img --memory")).is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_bytes("16Mi").unwrap(), 16 << 20);
        assert_eq!(parse_bytes("50M").unwrap(), 50_000_000);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_millicores("500m").unwrap(), 500);
        assert_eq!(parse_millicores("2").unwrap(), 2000);
        assert!(parse_millicores("0m").is_err());
        assert!(parse_millicores("x").is_err());
    }
}
