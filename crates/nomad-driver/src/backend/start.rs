//! What a task start runs, built from the job's `config {}` and Nomad's task configuration as
//! stage0's typed specs: each job value lands in a field of its own, never in an argument
//! list, so no value can be taken for a flag or for part of another value's syntax. The
//! original driver's order and bugs fixed: relative volume paths are resolved beneath the
//! allocation directory (symlinks included, never outside it), CPU is passed as shares
//! rather than as whole cores, volume names are valid appc names for any task name, and
//! what the plugin does not allow (run-time `insecure_options`, a larger `pids_limit`) is
//! refused with the field named.

use super::{invalid, InvalidTask};
use stage0::spec::{
    AppSpec, EnvVar, HostSource, MountSpec, PidsLimit, PodSpec, PortSpec, RuntimeSpec, Volume,
    VolumeKind,
};
use stage0::InsecureOptions;
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
    /// The most processes the task may have: 0 for the plugin's limit (or rkt's default of
    /// 2048), -1 for no limit.
    pub pids_limit: i64,
    // The options of Nomad's Docker driver (podman's where Docker has none), same names and
    // meanings; README's table says which spec field and rkt flag each one is.
    pub auth: Option<Auth>,
    pub auth_soft_fail: bool,
    pub force_pull: bool,
    /// A Go duration; empty: 5m.
    pub image_pull_timeout: String,
    pub entrypoint: Vec<String>,
    pub work_dir: String,
    pub hostname: String,
    /// `NAME:IP`.
    pub extra_hosts: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Vec<String>,
    pub ipc_mode: String,
    pub pid_mode: String,
    pub oom_score_adj: i64,
    pub group_add: Vec<String>,
    pub devices: Vec<Device>,
    pub sysctl: BTreeMap<String, String>,
    pub ulimit: BTreeMap<String, String>,
    /// Bytes; 0: the default (64 MiB).
    pub shm_size: i64,
    pub mount: Vec<MountOption>,
    /// Labels of the group's (or task's) ports to forward, each to its `to`.
    pub ports: Vec<String>,
    /// MiB; the Docker driver's memory_hard_limit (Nomad's memory_max does the same).
    pub memory_hard_limit: i64,
    pub cpu_hard_limit: bool,
    /// Microseconds; 0: 100000.
    pub cpu_cfs_period: i64,
}

/// `auth { username password server_address }`: credentials for this task's image only.
#[derive(Clone, Default, PartialEq)]
pub struct Auth {
    pub username: String,
    pub password: String,
    pub server_address: String,
}

/// Never shows the password (task events and logs print errors and options).
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("server_address", &self.server_address)
            .finish()
    }
}

/// `devices = [{ host_path container_path cgroup_permissions }]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Device {
    pub host_path: String,
    pub container_path: String,
    pub cgroup_permissions: String,
}

/// `mount { type source target readonly tmpfs_options { size mode } }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountOption {
    /// `bind` (the default) or `tmpfs`.
    pub kind: String,
    pub source: String,
    pub target: String,
    pub readonly: bool,
    /// tmpfs_options.size in bytes (0: the kernel's default).
    pub tmpfs_size: i64,
    /// tmpfs_options.mode (0: 1777).
    pub tmpfs_mode: u32,
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
    /// The task's memory (`resources { memory }`): its limit, or with a higher limit from
    /// `memory_max` or `memory_hard_limit`, what it keeps when the node runs short.
    pub memory_bytes: i64,
    /// `resources { memory_max }` (Nomad 1.1 and later; 0: none).
    pub memory_max_bytes: i64,
    pub cpu_shares: i64,
    /// The CPUs reserved for the task (`resources { cores }`, Nomad 1.1 and later; empty: none).
    pub cpuset_cpus: String,
    /// Ports of the task's own network (reserved, then dynamic): label and host port.
    /// None when the task has no network.
    pub task_ports: Option<Vec<(String, u16)>>,
    /// The group's ports (`network` at group level): label and host port.
    pub group_ports: Vec<(String, u16)>,
    /// The group's ports with where they go in the task (`to`; 0: the same number), for
    /// the `ports` option.
    pub port_targets: Vec<(String, u16, u16)>,
    /// The task's share of the node's CPU (Nomad's PercentTicks), for `cpu_hard_limit`.
    pub percent_ticks: f64,
    /// What `extra_labels` can name, with Nomad's label keys' last part: job_name,
    /// task_group_name, task_name, namespace, node_name, job_id.
    pub nomad_labels: BTreeMap<String, String>,
    pub mounts: Vec<HostPath>,
    /// Devices from Nomad's device plugins, with their cgroup permissions.
    pub devices: Vec<Device>,
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

/// What the plugin's configuration allows a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// `volumes_enabled`: absolute host paths in `volumes`.
    pub volumes: bool,
    /// `allow_privileged`: `insecure_options` that weaken the pod at run time
    /// (capabilities, paths, seccomp).
    pub privileged: bool,
    /// `pids_limit`: the most processes a task may ask for; None for no cap.
    pub pids_limit: Option<u64>,
}

/// What the plugin's configuration allows jobs, and adds to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    pub allowed: Allowed,
    /// `allow_caps`: the capabilities a task may have, lower case without `cap_`.
    pub allow_caps: Vec<String>,
    /// `extra_labels`: Nomad's labels each pod gets (names, `*` wildcards).
    pub extra_labels: Vec<String>,
}

impl Default for Plugin {
    fn default() -> Plugin {
        Plugin {
            allowed: Allowed::default(),
            allow_caps: default_allow_caps(),
            extra_labels: Vec::new(),
        }
    }
}

/// appc's default capabilities (Docker's classic default set), as `allow_caps` names them.
pub fn default_allow_caps() -> Vec<String> {
    pod::caps::DEFAULT
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect()
}

impl Default for Allowed {
    fn default() -> Allowed {
        Allowed {
            volumes: true,
            privileged: false,
            pids_limit: None,
        }
    }
}

/// Everything one task start does, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// `rkt trust --prefix`, when the job names a trust prefix.
    pub trust_prefix: Option<String>,
    /// What `--insecure-options` the pod is prepared and run with.
    pub insecure: InsecureOptions,
    pub debug: bool,
    /// `rkt prepare`'s pod flags ...
    pub pod: PodSpec,
    /// ... and its one app.
    pub app: AppSpec,
    /// `rkt run-prepared`'s flags.
    pub runtime: RuntimeSpec,
    /// Whether the pod gets a network of its own (not host or none).
    pub contained: bool,
    /// Credentials for this task's image (`auth {}`), and whether a refusal of them falls
    /// back to fetching anonymously.
    pub auth: Option<Auth>,
    pub auth_soft_fail: bool,
    /// `image_pull_timeout`: the longest a fetch may take.
    pub pull_timeout: std::time::Duration,
}

/// `image_pull_timeout`'s default, as the Docker driver's.
pub const DEFAULT_PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// `insecure_options` values rkt 1.30 knew, and which of them weaken the pod at run time.
const INSECURE_OPTIONS: &[(&str, bool)] = &[
    ("none", false),
    ("image", false),
    ("tls", false),
    ("ondisk", false),
    ("http", false),
    ("pubkey", false),
    ("all-fetch", false),
    ("capabilities", true),
    ("paths", true),
    ("seccomp", true),
    ("run", true),
    ("all-run", true),
    ("all", true),
];

/// Builds the start, or says which part of the job is wrong (or not allowed here).
pub fn launch(o: &Options, s: &Spec, plugin: &Plugin) -> Result<Launch, InvalidTask> {
    let allowed = &plugin.allowed;
    if o.image.is_empty() {
        return Err("Missing required attribute \"image\"; set config { image = \"…\" }".into());
    }
    let insecure = insecure_options(o, allowed)?;
    let mut pod = PodSpec::default();
    let mut app = AppSpec {
        image: o.image.clone(),
        ..Default::default()
    };
    pod.no_overlay = o.no_overlay;
    let base = format!("{}-{}", acname(&s.alloc_id), acname(&s.name));
    // Nomad's own directories, beneath the allocation directory like the job's relative
    // volumes: a task of the allocation could have swapped one for a symlink.
    let task = PathBuf::from(&s.name);
    let nomad_dirs = [
        ("alloc", PathBuf::from("alloc"), "/alloc"),
        ("local", task.join("local"), "/local"),
        ("secrets", task.join("secrets"), "/secrets"),
    ];
    for (name, path, target) in nomad_dirs {
        let source = HostSource::Beneath {
            root: s.alloc_dir.clone(),
            path,
        };
        volume(&mut pod, format!("{base}-{name}"), source, None, target);
    }
    for (i, (source, target, read_only)) in user_volumes(&o.volumes, &s.alloc_dir, allowed.volumes)?
        .into_iter()
        .enumerate()
    {
        volume(
            &mut pod,
            format!("{base}-{i}"),
            source,
            Some(read_only),
            &target,
        );
    }
    // Host volumes are the operator's, named in the client's configuration.
    for (i, m) in s.mounts.iter().enumerate() {
        let source = HostSource::Absolute(PathBuf::from(&m.host_path));
        volume(
            &mut pod,
            format!("{base}-taskmounts-{i}"),
            source,
            Some(m.read_only),
            &m.task_path,
        );
    }
    pod.set_env = s.env.iter().map(|(k, v)| EnvVar::new(k, v)).collect();
    if !o.command.is_empty() {
        app.exec = Some(o.command.clone());
    }
    app.memory = u64::try_from(s.memory_bytes).ok().filter(|m| *m > 0);
    app.cpu_shares = u64::try_from(s.cpu_shares).ok().filter(|c| *c > 0);
    app.pids_limit = pids_limit(o.pids_limit, allowed.pids_limit)?;
    if s.group_netns.is_some() && !o.net.is_empty() {
        return Err(invalid!(
            "net = {:?} cannot be used in a group with its own network (network mode bridge or cni): the task joins the group's network",
            o.net
        ));
    }
    let host_net = o.net.len() == 1 && o.net[0] == "host";
    // In a group network Nomad forwards the group's ports itself.
    if !host_net && s.group_netns.is_none() {
        for (name, host_port) in ports(o, s)? {
            pod.ports.push(PortSpec {
                name,
                host_ip: None,
                host_port,
            });
        }
    }
    if !s.user.is_empty() {
        app.user = Some(s.user.clone());
    }
    if !o.group.is_empty() {
        app.group = Some(o.group.clone());
    }
    app.args = o.args.clone();
    let runtime = runtime(o, s)?;
    let none_net = o.net.len() == 1 && o.net[0] == "none";
    let mut launch = Launch {
        trust_prefix: (!o.trust_prefix.is_empty()).then(|| o.trust_prefix.clone()),
        insecure,
        debug: o.debug,
        pod,
        app,
        runtime,
        // Nomad knows a group network's address itself.
        contained: s.group_netns.is_none() && !host_net && !none_net,
        auth: None,
        auth_soft_fail: false,
        pull_timeout: DEFAULT_PULL_TIMEOUT,
    };
    super::options::apply(o, s, plugin, &mut launch)?;
    Ok(launch)
}

/// `rkt run-prepared`'s flags: DNS (the job's, else the group network's), the network.
fn runtime(o: &Options, s: &Spec) -> Result<RuntimeSpec, InvalidTask> {
    let mut rt = RuntimeSpec::default();
    let (group_servers, group_searches, group_options) = s.group_dns.clone().unwrap_or_default();
    let (servers, searches) = if o.dns_servers.is_empty() && o.dns_search_domains.is_empty() {
        rt.dns_opt = group_options;
        (group_servers, group_searches)
    } else {
        (o.dns_servers.clone(), o.dns_search_domains.clone())
    };
    match servers.as_slice() {
        [one] if one == "host" || one == "none" => rt.dns.push(one.clone()),
        servers => {
            for ip in servers {
                ip.parse::<std::net::IpAddr>()
                    .map_err(|_| invalid!("invalid ip address for container dns server {ip:?}"))?;
                rt.dns.push(ip.clone());
            }
        }
    }
    rt.dns_search = searches;
    if let Some(ns) = &s.group_netns {
        rt.net_namespace = Some(ns.clone());
    } else {
        rt.net = o.net.clone();
    }
    Ok(rt)
}

/// The job's `insecure_options` (each one rkt knew), or without a trust prefix what fetching
/// unsigned images needs (`all-fetch`). Options that weaken the pod at run time need the
/// plugin's `allow_privileged`: the Docker and Podman drivers never let a job take its
/// container's isolation away without the operator saying so.
fn insecure_options(o: &Options, allowed: &Allowed) -> Result<InsecureOptions, InvalidTask> {
    for opt in &o.insecure_options {
        match INSECURE_OPTIONS.iter().find(|(name, _)| name == opt) {
            None => {
                let valid: Vec<&str> = INSECURE_OPTIONS.iter().map(|(n, _)| *n).collect();
                return Err(invalid!(
                    "unknown insecure option {opt:?} in insecure_options; valid options: {}",
                    valid.join(", ")
                ));
            }
            Some((_, true)) if !allowed.privileged => {
                return Err(invalid!(
                    "insecure_options = [{opt:?}] would take away the pod's run-time isolation (capabilities, masked paths, seccomp), which this node does not allow; remove it, or have the operator set allow_privileged = true in the plugin's configuration"
                ));
            }
            Some(_) => {}
        }
    }
    let options = if !o.insecure_options.is_empty() {
        o.insecure_options.join(",")
    } else if o.trust_prefix.is_empty() {
        // Docker images carry no signature, and the page's examples use plain-HTTP
        // registries: what fetching needs, and nothing that loosens the running pod.
        "all-fetch".into()
    } else {
        String::new()
    };
    InsecureOptions::parse(&options).map_err(InvalidTask::new)
}

/// The task's pids limit: its own (within the plugin's), or the plugin's, or rkt's default.
fn pids_limit(asked: i64, cap: Option<u64>) -> Result<PidsLimit, InvalidTask> {
    let too_many = |what: String| {
        invalid!(
            "pids_limit = {asked}: {what}, more than this node allows (the plugin's pids_limit is {}); ask for {} or fewer",
            cap.unwrap_or_default(),
            cap.unwrap_or_default()
        )
    };
    match (asked, cap) {
        (0, None) => Ok(PidsLimit::Default),
        (0, Some(c)) => Ok(PidsLimit::Max(c)),
        (-1, Some(_)) => Err(too_many("no limit".into())),
        (-1, None) => Ok(PidsLimit::Unlimited),
        (n, Some(c)) if n > 0 && n as u64 > c => Err(too_many(format!("{n} processes"))),
        (n, _) if n > 0 => Ok(PidsLimit::Max(n as u64)),
        (n, _) => Err(invalid!(
            "pids_limit = {n}: use a number of processes, or -1 for no limit (0 or none: the plugin's limit, else rkt's default of 2048)"
        )),
    }
}

/// A host volume mounted at `target`.
fn volume(
    pod: &mut PodSpec,
    name: String,
    source: HostSource,
    read_only: Option<bool>,
    target: &str,
) {
    pod.mounts.push(MountSpec {
        volume: name.clone(),
        target: target.to_string(),
    });
    pod.volumes.push(Volume {
        name,
        kind: VolumeKind::Host(source),
        read_only,
        recursive: None,
    });
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

/// `host:container[:readOnly]`: (source, target, read-only). Relative host paths live in
/// the allocation directory and are resolved beneath it; absolute ones need the plugin's
/// `volumes_enabled`.
fn user_volumes(
    raw: &[String],
    alloc_dir: &Path,
    enabled: bool,
) -> Result<Vec<(HostSource, String, bool)>, InvalidTask> {
    let absolute: Vec<&String> = raw
        .iter()
        .filter(|v| v.split(':').next().is_some_and(|h| h.starts_with('/')))
        .collect();
    if !enabled && !absolute.is_empty() {
        return Err(invalid!(
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
                    return Err(invalid!(
                        "invalid rkt volume: {v:?}: the third part may only be readOnly, not {other:?}"
                    ))
                }
                _ => return Err(invalid!("invalid rkt volume: {v:?}; use host_path:container_path[:readOnly]")),
            };
            if host.is_empty() || !target.starts_with('/') {
                return Err(invalid!(
                    "invalid rkt volume: {v:?}; the container path must be absolute"
                ));
            }
            let source = if host.starts_with('/') {
                HostSource::Absolute(PathBuf::from(host))
            } else {
                // Said early and plainly; the resolution beneath the directory is what
                // keeps symlinks from leading out too.
                if Path::new(host).components().any(|c| matches!(c, Component::ParentDir)) {
                    return Err(invalid!(
                        "invalid rkt volume: {v:?}: a relative host path may not use \"..\" to leave the allocation directory"
                    ));
                }
                HostSource::Beneath {
                    root: alloc_dir.to_path_buf(),
                    path: PathBuf::from(host),
                }
            };
            Ok((source, target.to_string(), read_only))
        })
        .collect()
}

/// Port forwards (image port name, host port). From the task's network as the original
/// driver did (every port needs a `port_map` entry); from the group's ports for group
/// networks. Every `port_map` label must name one of those ports.
fn ports(o: &Options, s: &Spec) -> Result<Vec<(String, u16)>, InvalidTask> {
    let available: Vec<(String, u16)> = match &s.task_ports {
        Some(p) => p.clone(),
        None if !s.group_ports.is_empty() => s.group_ports.clone(),
        None if o.port_map.is_empty() => return Ok(Vec::new()),
        None => return Err("Trying to map ports but no network interface is available".into()),
    };
    for label in o.port_map.keys() {
        if !available.iter().any(|(l, _)| l == label) {
            let known: Vec<&str> = available.iter().map(|(l, _)| l.as_str()).collect();
            return Err(invalid!(
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
                return Err(invalid!(
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

    fn with(allowed: Allowed) -> Plugin {
        Plugin {
            allowed,
            ..Plugin::default()
        }
    }

    fn launch_of(o: &Options) -> Result<Launch, InvalidTask> {
        launch(o, &spec(), &Plugin::default())
    }

    fn beneath(path: &str) -> VolumeKind {
        VolumeKind::Host(HostSource::Beneath {
            root: "/var/nomad/alloc/a1b2".into(),
            path: path.into(),
        })
    }

    #[test]
    fn the_original_drivers_start_as_typed_specs() {
        let l = launch_of(&opts()).unwrap();
        let names: Vec<(&str, &VolumeKind)> = l
            .pod
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), &v.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("a1b2-web-server-alloc", &beneath("alloc")),
                ("a1b2-web-server-local", &beneath("web_Server/local")),
                ("a1b2-web-server-secrets", &beneath("web_Server/secrets")),
            ]
        );
        let targets: Vec<&str> = l.pod.mounts.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["/alloc", "/local", "/secrets"]);
        assert_eq!(
            l.pod.set_env,
            [
                EnvVar::new("A", "1"),
                EnvVar::new("NOMAD_TASK_DIR", "/local")
            ]
        );
        assert_eq!(l.app.image, "docker://redis:3.2");
        assert_eq!(l.app.exec.as_deref(), Some("/bin/redis"));
        assert_eq!(l.app.args, ["-p", "1"]);
        assert_eq!(l.app.memory, Some(134217728));
        assert_eq!(l.app.cpu_shares, Some(500));
        assert_eq!(l.app.user.as_deref(), Some("nobody"));
        assert_eq!(
            l.pod.ports,
            [PortSpec {
                name: "6379-tcp".into(),
                host_ip: None,
                host_port: 8080
            }]
        );
        assert_eq!(l.runtime, RuntimeSpec::default());
        assert!(l.contained && l.trust_prefix.is_none());
    }

    /// No value of the job is read as a flag or as part of another value's syntax: each
    /// lands, as it is, in the one field it sets.
    #[test]
    fn values_that_look_like_flags_stay_values() {
        let flag = "--volume=h,kind=host,source=/etc";
        let mut o = opts();
        o.image = flag.into();
        o.command = "--net=host".into();
        o.args = vec!["--insecure-options=all".into(), "---".into(), "x".into()];
        o.group = "--caps-retain=CAP_SYS_ADMIN".into();
        o.trust_prefix = "--root".into();
        o.dns_search_domains = vec!["--dns=host".into()];
        o.net = vec!["--net-namespace=/proc/1/ns/net".into()];
        o.insecure_options = vec!["image".into()];
        o.port_map = [("http".to_string(), "--port=x:1".to_string())].into();
        let l = launch_of(&o).unwrap();
        assert_eq!(l.app.image, flag);
        assert_eq!(l.app.exec.as_deref(), Some("--net=host"));
        assert_eq!(l.app.args, o.args);
        assert_eq!(l.app.group.as_deref(), Some("--caps-retain=CAP_SYS_ADMIN"));
        assert_eq!(l.app.caps_retain, None);
        assert_eq!(l.trust_prefix.as_deref(), Some("--root"));
        assert_eq!(l.runtime.dns_search, ["--dns=host"]);
        assert!(l.runtime.dns.is_empty() && l.runtime.net_namespace.is_none());
        assert_eq!(l.runtime.net, ["--net-namespace=/proc/1/ns/net"]);
        assert_eq!(l.pod.ports[0].name, "--port=x:1");
        assert_eq!(l.pod.volumes.len(), 3, "only Nomad's own directories");
        assert!(!l.insecure.capabilities && !l.insecure.seccomp);
        // A relative volume whose path holds rkt's volume syntax is a path, beneath the
        // allocation directory, not a second source.
        let mut o = opts();
        o.volumes = vec!["data,kind=host,source=/etc:/h1".into()];
        let off = Allowed {
            volumes: false,
            ..Allowed::default()
        };
        let l = launch(&o, &spec(), &with(off)).unwrap();
        assert_eq!(l.pod.volumes[3].kind, beneath("data,kind=host,source=/etc"));
    }

    #[test]
    fn without_a_trust_prefix_only_fetching_is_relaxed() {
        let l = launch_of(&opts()).unwrap();
        let fetch = InsecureOptions::parse("all-fetch").unwrap();
        assert_eq!(l.insecure, fetch);
        assert!(!l.insecure.capabilities && !l.insecure.paths && !l.insecure.seccomp);
        let mut o = opts();
        o.trust_prefix = "example.com/app".into();
        assert_eq!(launch_of(&o).unwrap().insecure, InsecureOptions::default());
        o.insecure_options = vec!["image".into(), "http".into()];
        let l = launch_of(&o).unwrap();
        assert!(l.insecure.image && l.insecure.http && !l.insecure.seccomp);
    }

    #[test]
    fn run_time_insecure_options_need_allow_privileged() {
        for opt in ["capabilities", "paths", "seccomp", "run", "all-run", "all"] {
            let mut o = opts();
            o.insecure_options = vec!["image".into(), opt.into()];
            let e = launch_of(&o).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("insecure_options = [{opt:?}]"))
                    && e.to_string().contains("allow_privileged = true"),
                "{opt}: {e}"
            );
            let allowed = Allowed {
                privileged: true,
                ..Allowed::default()
            };
            let l = launch(&o, &spec(), &with(allowed)).unwrap();
            let i = l.insecure;
            assert!(i.capabilities || i.paths || i.seccomp, "{opt}");
        }
        let mut o = opts();
        o.insecure_options = vec!["bogus".into()];
        assert!(launch_of(&o)
            .unwrap_err()
            .to_string()
            .contains("unknown insecure option \"bogus\""));
    }

    #[test]
    fn dns_and_net() {
        let mut o = opts();
        o.dns_servers = vec!["8.8.8.8".into()];
        o.dns_search_domains = vec!["svc".into()];
        o.net = vec!["default".into(), "other".into()];
        let rt = launch_of(&o).unwrap().runtime;
        assert_eq!(
            (rt.dns, rt.dns_search, rt.net),
            (
                vec!["8.8.8.8".to_string()],
                vec!["svc".to_string()],
                vec!["default".to_string(), "other".to_string()]
            )
        );
        o.dns_servers = vec!["host".into()];
        assert_eq!(launch_of(&o).unwrap().runtime.dns, ["host"]);
        o.dns_servers = vec!["8.8.8.8".into(), "nope".into()];
        assert_eq!(
            launch_of(&o).unwrap_err(),
            "invalid ip address for container dns server \"nope\"".into()
        );
    }

    #[test]
    fn pids_limit_within_the_plugins() {
        let limit = |n: i64, cap: Option<u64>| {
            let mut o = opts();
            o.pids_limit = n;
            let allowed = Allowed {
                pids_limit: cap,
                ..Allowed::default()
            };
            launch(&o, &spec(), &with(allowed)).map(|l| l.app.pids_limit)
        };
        assert_eq!(limit(0, None).unwrap(), PidsLimit::Default, "rkt's default");
        assert_eq!(limit(100, None).unwrap(), PidsLimit::Max(100));
        assert_eq!(limit(-1, None).unwrap(), PidsLimit::Unlimited);
        assert!(limit(-5, None)
            .unwrap_err()
            .to_string()
            .contains("pids_limit = -5"));
        // The plugin's cap: the default when the task says nothing, and the most it may ask.
        assert_eq!(limit(0, Some(500)).unwrap(), PidsLimit::Max(500));
        assert_eq!(limit(400, Some(500)).unwrap(), PidsLimit::Max(400));
        let e = limit(600, Some(500)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("pids_limit = 600: 600 processes, more than this node allows"),
            "{e}"
        );
        let e = limit(-1, Some(500)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("pids_limit = -1: no limit, more than"),
            "{e}"
        );
    }

    #[test]
    fn host_network_skips_ports_and_reports_no_network() {
        let mut o = opts();
        o.net = vec!["host".into()];
        let l = launch_of(&o).unwrap();
        assert!(l.pod.ports.is_empty());
        assert!(!l.contained);
    }

    #[test]
    fn volumes() {
        let mut o = opts();
        o.volumes = vec!["data:/data".into(), "/etc/ssl:/etc/ssl:readOnly".into()];
        let l = launch_of(&o).unwrap();
        let v = &l.pod.volumes;
        assert_eq!(
            (v[3].name.as_str(), &v[3].kind, v[3].read_only),
            ("a1b2-web-server-0", &beneath("data"), Some(false))
        );
        assert_eq!(
            (&v[4].kind, v[4].read_only),
            (
                &VolumeKind::Host(HostSource::Absolute("/etc/ssl".into())),
                Some(true)
            )
        );
        assert_eq!(
            l.pod.mounts[4],
            MountSpec {
                volume: "a1b2-web-server-1".into(),
                target: "/etc/ssl".into()
            }
        );
        // Disabled: relative paths stay allowed, absolute ones are refused.
        let off = Allowed {
            volumes: false,
            ..Allowed::default()
        };
        let e = launch(&o, &spec(), &with(off)).unwrap_err();
        assert!(e.to_string().starts_with("volumes_enabled is false; cannot use rkt volumes: [\"/etc/ssl:/etc/ssl:readOnly\"]"), "{e}");
        o.volumes = vec!["data:/data".into()];
        assert!(launch(&o, &spec(), &with(off)).is_ok());
        for bad in [
            "../../etc:/x",
            "a/../../b:/x",
            "a:b:c:d",
            "a",
            "a:/x:ro",
            "a:rel",
        ] {
            o.volumes = vec![bad.into()];
            let e = launch_of(&o).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid rkt volume:"),
                "{bad}: {e}"
            );
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
        let l = launch(&opts(), &s, &Plugin::default()).unwrap();
        assert!(l.pod.ports.is_empty(), "Nomad maps group ports");
        let rt = &l.runtime;
        assert_eq!(rt.dns_opt, ["ndots:2"]);
        assert_eq!(rt.dns, ["10.0.0.2"]);
        assert_eq!(rt.dns_search, ["svc"]);
        assert_eq!(
            rt.net_namespace.as_deref(),
            Some(Path::new("/var/run/netns/alloc1"))
        );
        assert!(!l.contained);
        let mut o = opts();
        o.net = vec!["default".into()];
        assert!(launch(&o, &s, &Plugin::default())
            .unwrap_err()
            .to_string()
            .contains("cannot be used in a group with its own network"));
        o.net.clear();
        o.dns_servers = vec!["1.1.1.1".into()];
        let rt = launch(&o, &s, &Plugin::default()).unwrap().runtime;
        assert_eq!(rt.dns, ["1.1.1.1"]);
    }

    #[test]
    fn port_map_errors() {
        let mut s = spec();
        let mut o = opts();
        let allowed = Allowed::default();
        o.port_map.insert("metrics".into(), "9100-tcp".into());
        let e = launch(&o, &s, &with(allowed)).unwrap_err();
        assert!(
            e.to_string()
                .contains("port_map label \"metrics\" is not a port of the task's network"),
            "{e}"
        );
        let o = opts();
        s.task_ports = Some(vec![("http".into(), 8080), ("admin".into(), 9000)]);
        let e = launch(&o, &s, &with(allowed)).unwrap_err();
        assert!(e.to_string().starts_with("port_map is not set."), "{e}");
        s.task_ports = None;
        assert_eq!(
            launch(&o, &s, &with(allowed)).unwrap_err(),
            "Trying to map ports but no network interface is available".into()
        );
        s.group_ports = vec![("http".into(), 25000), ("other".into(), 25001)];
        let l = launch(&o, &s, &with(allowed)).unwrap();
        assert_eq!(l.pod.ports[0].host_port, 25000);
    }
}
