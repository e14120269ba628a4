//! The plan stage0 writes for stage1: `key=value` records separated by NUL bytes, so that
//! arguments and environment values may hold any byte but NUL. Keys that repeat (`exec`,
//! `env`, `supplementary_gid`, `mount`) build lists in order; an `app=NAME` record starts an
//! app, and the records after it are that app's.
//!
//! `rkt prepare` writes the apps' records alone ([`crate::pod_dir::PodDir::prepared`]);
//! `rkt run-prepared` adds the pod's (hostname, network, cgroup) and writes the whole plan
//! ([`crate::pod_dir::PodDir::plan`]), which the supervisor and `rkt enter` read.

use std::fmt;
use std::path::{Path, PathBuf};

/// The pod: what all its apps share, and the apps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub hostname: String,
    pub net: Net,
    /// The network namespace to join ([`Net::Contained`]).
    pub netns: Option<String>,
    /// The `rkt` binary, run as `rkt net-teardown POD_DIR` once the pod has exited.
    pub net_teardown: Option<String>,
    /// Where the pod's cgroups are, relative to each controller's root
    /// (`<parent>/rkt-<uuid>`; see [`crate::cgroup::pod_rel`]), recorded when the pod runs so
    /// that `enter`, `rm`, `gc` and the Nomad driver's statistics find them whatever
    /// `--cgroup-parent` was. Pods that ran before it was configurable recorded `rkt/<uuid>`.
    /// Empty: no cgroups.
    pub cgroup: String,
    /// `--interactive`: the app keeps the caller's stdin (its terminal); otherwise the apps'
    /// stdin is /dev/null, as rkt's were.
    pub interactive: bool,
    /// `--ipc=parent`: the pod shares the host's IPC namespace instead of getting its own.
    pub host_ipc: bool,
    /// `--pid=host`: the pod shares the host's PID namespace instead of getting its own.
    pub host_pid: bool,
    /// `--sysctl`: kernel parameters of the pod's own namespaces (`net.*`, `kernel.shm*`, …),
    /// as (key, value), written by the pod's init before its apps start.
    pub sysctls: Vec<(String, String)>,
    /// `--shm-size`: the size of the pod's /dev/shm in bytes (64 MiB when None).
    pub shm_size: Option<u64>,
    /// rkt's fly stage1: its one app runs in the host's namespaces (a mount namespace of its
    /// own aside, so that the pod's mounts stay off the host), in its root, with the host's
    /// /dev, /proc and /sys and no cgroups; stage0 leaves its capabilities and seccomp open.
    pub fly: bool,
    /// `--private-users`: the apps run in a user namespace whose root is host UID (and GID)
    /// `.0`, mapping `.1` IDs from there; their roots are copies owned accordingly.
    pub private_users: Option<(u32, u32)>,
    pub apps: Vec<AppPlan>,
}

/// The pod's network namespace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The host's own.
    #[default]
    Host,
    /// A new one with only loopback.
    None,
    /// The namespace at [`Plan::netns`], which stage0 attached to the pod's networks.
    Contained,
}

impl Net {
    fn as_str(self) -> &'static str {
        match self {
            Net::Host => "host",
            Net::None => "none",
            Net::Contained => "contained",
        }
    }
}

/// One app of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPlan {
    pub name: String,
    /// The image as the user named it, for messages.
    pub image: Option<String>,
    /// The image's rendered tree (overlay lower layer, or the copy with --no-overlay).
    pub image_rootfs: String,
    pub overlay: bool,
    pub exec: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    pub readonly_rootfs: bool,
    pub mounts: Vec<Mount>,
    pub memory_limit: Option<u64>,
    /// Memory the app keeps when the host runs short (v2 `memory.low`, v1
    /// `memory.soft_limit_in_bytes`), in bytes.
    pub memory_reservation: Option<u64>,
    /// Memory and swap together, in bytes (v2 `memory.swap.max` gets this less
    /// `memory_limit`; v1 `memory.memsw.limit_in_bytes` this); [`UNLIMITED`] for no swap limit.
    pub memory_swap: Option<u64>,
    /// CFS quota in microseconds per period ([`AppPlan::cpu_period_us`]).
    pub cpu_quota_us: Option<u64>,
    /// The CFS period of the quota, in microseconds; None: the kernel's 100 ms.
    pub cpu_period_us: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// The CPUs the app may run on, in the kernel's list format (`0-2,4`).
    pub cpuset_cpus: Option<String>,
    /// Devices the app may use beyond the standard ones, for the pod's device cgroup.
    pub devices: Vec<DeviceRule>,
    pub oom_score_adj: Option<i32>,
    /// The most processes (and threads) the app may have; the pod's cgroup gets the sum of
    /// its apps' (no limit if any app has none). None: no limit.
    pub pids_limit: Option<u64>,
    /// Capabilities the app keeps (bounding, effective, permitted, inheritable); None keeps
    /// them all (`--insecure-options=capabilities`).
    pub caps: Option<Vec<u32>>,
    pub no_new_privs: bool,
    /// No filter at all when None (`--insecure-options=seccomp`).
    pub seccomp: Option<Seccomp>,
    /// Mask and make read-only the kernel paths an app has no business with.
    pub mask_paths: bool,
    /// `--ulimit`: resource limits the app starts with.
    pub rlimits: Vec<Rlimit>,
    /// `--tmpfs`: file systems in memory at paths of the app.
    pub tmpfs: Vec<Tmpfs>,
    /// `--privileged`: the host's devices in /dev and a writable /sys (with the capabilities,
    /// seccomp and masking lifted separately).
    pub privileged: bool,
}

/// A resource limit (setrlimit(2)): its name as `ulimit` spells it (`nofile`, `nproc`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// The resource limits an app may set, as `ulimit` and Docker name them, and setrlimit's
/// numbers for them.
pub const RLIMITS: [(&str, u32); 15] = [
    ("core", 4),
    ("cpu", 0),
    ("data", 2),
    ("fsize", 1),
    ("locks", 10),
    ("memlock", 8),
    ("msgqueue", 12),
    ("nice", 13),
    ("nofile", 7),
    ("nproc", 6),
    ("rss", 5),
    ("rtprio", 14),
    ("rttime", 15),
    ("sigpending", 11),
    ("stack", 3),
];

/// A tmpfs mounted in an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    /// The path inside the app.
    pub target: String,
    /// Its size in bytes; None: the kernel's default (half of the memory).
    pub size: Option<u64>,
    /// The mode of its root directory (such as 0o1777).
    pub mode: u32,
    pub read_only: bool,
}

impl Default for AppPlan {
    fn default() -> AppPlan {
        AppPlan {
            name: String::new(),
            image: None,
            image_rootfs: String::new(),
            overlay: true,
            exec: Vec::new(),
            env: Vec::new(),
            workdir: "/".into(),
            uid: 0,
            gid: 0,
            supplementary_gids: Vec::new(),
            readonly_rootfs: false,
            mounts: Vec::new(),
            memory_limit: None,
            memory_reservation: None,
            memory_swap: None,
            cpu_quota_us: None,
            cpu_period_us: None,
            cpu_shares: None,
            cpuset_cpus: None,
            devices: Vec::new(),
            oom_score_adj: None,
            pids_limit: None,
            caps: None,
            no_new_privs: false,
            seccomp: None,
            mask_paths: false,
            rlimits: Vec::new(),
            tmpfs: Vec::new(),
            privileged: false,
        }
    }
}

impl AppPlan {
    /// Whether the app has cgroup limits of its own (in a pod of several apps, a cgroup of its
    /// own on v1).
    pub fn has_limits(&self) -> bool {
        self.memory_limit.is_some()
            || self.memory_reservation.is_some()
            || self.memory_swap.is_some()
            || self.cpu_quota_us.is_some()
            || self.cpu_shares.is_some()
            || self.cpuset_cpus.is_some()
    }
}

/// [`AppPlan::memory_swap`]'s value for "no swap limit".
pub const UNLIMITED: u64 = u64::MAX;

/// A device the pod's device cgroup lets its processes use, as the kernel's v1
/// `devices.allow` spells it (`c 10:229 rw`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// `c` (character) or `b` (block).
    pub kind: char,
    pub major: u32,
    /// None: every minor number of `major` (`136:*`, the terminals of /dev/pts).
    pub minor: Option<u32>,
    /// Some of `r` (read), `w` (write), `m` (mknod), in that order.
    pub access: String,
}

impl DeviceRule {
    /// `c 10:229 rw`.
    pub fn to_line(&self) -> String {
        let minor = self.minor.map_or("*".to_string(), |m| m.to_string());
        format!("{} {}:{minor} {}", self.kind, self.major, self.access)
    }

    /// What [`DeviceRule::to_line`] writes.
    pub fn parse(line: &str) -> Result<DeviceRule, PlanError> {
        let err = || bad(format!("bad device rule {line:?}"));
        let mut f = line.split(' ');
        let (Some(kind), Some(num), Some(access), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(err());
        };
        let kind = match kind {
            "c" => 'c',
            "b" => 'b',
            _ => return Err(err()),
        };
        let (major, minor) = num.split_once(':').ok_or_else(err)?;
        let minor = match minor {
            "*" => None,
            m => Some(m.parse().map_err(|_| err())?),
        };
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(err());
        }
        Ok(DeviceRule {
            kind,
            major: major.parse().map_err(|_| err())?,
            minor,
            access: access.to_string(),
        })
    }
}

/// A bind mount into an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// An absolute host path, or one relative to the pod directory (its empty volumes).
    pub source: String,
    /// The path inside the app.
    pub target: String,
    pub read_only: bool,
    pub recursive: bool,
}

/// The system calls an app may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seccomp {
    pub allowed: Vec<i64>,
    /// The errno the others fail with; None kills the app with SIGSYS.
    pub errno: Option<i32>,
}

/// A plan that cannot be written, read or parsed, and why.
#[derive(Debug)]
pub enum PlanError {
    /// A value the plan's encoding cannot carry (a NUL byte, a tab in a path, `=` in a sysctl
    /// key): what was asked for cannot be run.
    Unencodable(String),
    /// A plan that does not parse: damaged, or written by another version.
    Malformed { path: Option<PathBuf>, why: String },
    /// The plan file could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Unencodable(why) => f.write_str(why),
            PlanError::Malformed { path: None, why } => write!(f, "bad plan: {why}"),
            PlanError::Malformed { path: Some(p), why } => {
                write!(f, "{}: bad plan: {why}", p.display())
            }
            PlanError::Read { path, .. } => write!(f, "reading {}", path.display()),
        }
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlanError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn bad(why: impl Into<String>) -> PlanError {
    PlanError::Malformed {
        path: None,
        why: why.into(),
    }
}

fn unencodable(why: impl Into<String>) -> PlanError {
    PlanError::Unencodable(why.into())
}

/// Writes records; refuses values the encoding cannot carry.
struct Writer(Vec<u8>);

impl Writer {
    fn rec(&mut self, key: &str, value: &str) -> Result<(), PlanError> {
        if value.contains('\0') {
            return Err(unencodable(format!("{key}: {value:?} holds a NUL byte")));
        }
        self.0.extend_from_slice(key.as_bytes());
        self.0.push(b'=');
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(0);
        Ok(())
    }

    fn flag(&mut self, key: &str, b: bool) -> Result<(), PlanError> {
        self.rec(key, if b { "1" } else { "0" })
    }

    fn opt(&mut self, key: &str, v: Option<impl ToString>) -> Result<(), PlanError> {
        match v {
            Some(v) => self.rec(key, &v.to_string()),
            None => Ok(()),
        }
    }
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

impl Plan {
    /// The pod's pids limit: the sum of its apps' limits, or None (no limit) when any app
    /// has none.
    pub fn pids_limit(&self) -> Option<u64> {
        self.apps
            .iter()
            .try_fold(0u64, |sum, a| a.pids_limit.map(|n| sum.saturating_add(n)))
    }

    /// The plan's records: the pod's, then each app's.
    pub fn encode(&self) -> Result<Vec<u8>, PlanError> {
        let mut w = Writer(Vec::new());
        w.rec("hostname", &self.hostname)?;
        w.rec("net", self.net.as_str())?;
        w.opt("netns", self.netns.as_ref())?;
        w.opt("net_teardown", self.net_teardown.as_ref())?;
        w.rec("cgroup", &self.cgroup)?;
        w.flag("interactive", self.interactive)?;
        w.flag("host_ipc", self.host_ipc)?;
        w.flag("host_pid", self.host_pid)?;
        for (k, v) in &self.sysctls {
            if k.contains('=') {
                return Err(unencodable(format!("sysctl key {k:?} holds '='")));
            }
            w.rec("sysctl", &format!("{k}={v}"))?;
        }
        w.opt("shm_size", self.shm_size)?;
        w.flag("fly", self.fly)?;
        if let Some((shift, count)) = self.private_users {
            w.rec("userns", &format!("{shift}:{count}"))?;
        }
        for app in &self.apps {
            encode_app(app, &mut w)?;
        }
        Ok(w.0)
    }

    /// The apps' records alone (what `rkt prepare` writes).
    pub fn encode_apps(apps: &[AppPlan]) -> Result<Vec<u8>, PlanError> {
        let mut w = Writer(Vec::new());
        for app in apps {
            encode_app(app, &mut w)?;
        }
        Ok(w.0)
    }

    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let bytes = std::fs::read(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Plan::parse(&bytes).map_err(|e| match e {
            PlanError::Malformed { path: None, why } => PlanError::Malformed {
                path: Some(path.to_path_buf()),
                why,
            },
            other => other,
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Plan, PlanError> {
        let mut pod = Plan::default();
        for rec in bytes.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let rec = std::str::from_utf8(rec).map_err(|_| bad("record is not UTF-8"))?;
            let (k, v) = rec
                .split_once('=')
                .ok_or_else(|| bad(format!("bad record {rec:?}")))?;
            match k {
                "hostname" => pod.hostname = v.into(),
                "net" => {
                    pod.net = match v {
                        "host" => Net::Host,
                        "none" => Net::None,
                        "contained" => Net::Contained,
                        _ => return Err(bad(format!("unknown net {v:?}"))),
                    }
                }
                "cgroup" => pod.cgroup = v.into(),
                "interactive" => pod.interactive = v == "1",
                "host_ipc" => pod.host_ipc = v == "1",
                "host_pid" => pod.host_pid = v == "1",
                "sysctl" => {
                    let (key, value) = v
                        .split_once('=')
                        .ok_or_else(|| bad(format!("bad sysctl record {v:?}")))?;
                    pod.sysctls.push((key.into(), value.into()));
                }
                "shm_size" => {
                    pod.shm_size = Some(
                        v.parse()
                            .map_err(|_| bad(format!("shm_size: not a number: {v:?}")))?,
                    )
                }
                "fly" => pod.fly = v == "1",
                "userns" => {
                    let (shift, count) = v
                        .split_once(':')
                        .and_then(|(s, c)| Some((s.parse().ok()?, c.parse().ok()?)))
                        .ok_or_else(|| bad(format!("bad userns record {v:?}")))?;
                    pod.private_users = Some((shift, count));
                }
                "netns" => pod.netns = Some(v.into()),
                "net_teardown" => pod.net_teardown = Some(v.into()),
                "app" => pod.apps.push(AppPlan {
                    name: v.into(),
                    ..Default::default()
                }),
                _ => {
                    let app = pod
                        .apps
                        .last_mut()
                        .ok_or_else(|| bad(format!("record {k:?} before any app")))?;
                    parse_app_record(app, k, v)?;
                }
            }
        }
        if pod.apps.is_empty() {
            return Err(bad("plan has no app"));
        }
        for a in &pod.apps {
            if a.exec.is_empty() || a.image_rootfs.is_empty() {
                return Err(bad(format!("app {:?} lacks exec or image_rootfs", a.name)));
            }
        }
        Ok(pod)
    }
}

/// One app's records, starting with its `app=NAME`.
fn encode_app(app: &AppPlan, w: &mut Writer) -> Result<(), PlanError> {
    if app.name.is_empty() {
        return Err(unencodable("an app without a name"));
    }
    w.rec("app", &app.name)?;
    w.opt("image", app.image.as_ref())?;
    w.rec("image_rootfs", &app.image_rootfs)?;
    w.flag("overlay", app.overlay)?;
    for a in &app.exec {
        w.rec("exec", a)?;
    }
    for e in &app.env {
        w.rec("env", e)?;
    }
    w.rec("workdir", &app.workdir)?;
    w.rec("uid", &app.uid.to_string())?;
    w.rec("gid", &app.gid.to_string())?;
    for g in &app.supplementary_gids {
        w.rec("supplementary_gid", &g.to_string())?;
    }
    w.flag("readonly_rootfs", app.readonly_rootfs)?;
    for m in &app.mounts {
        if m.source.contains('\t') || m.target.contains('\t') {
            return Err(unencodable(format!(
                "mount {:?} -> {:?}: a tab in a path",
                m.source, m.target
            )));
        }
        let ro = if m.read_only { "1" } else { "0" };
        let rec = if m.recursive { "rec" } else { "norec" };
        w.rec("mount", &format!("{}\t{}\t{ro}\t{rec}", m.source, m.target))?;
    }
    w.opt("memory", app.memory_limit)?;
    w.opt("memory_reservation", app.memory_reservation)?;
    w.opt("memory_swap", app.memory_swap)?;
    w.opt("cpu_quota_us", app.cpu_quota_us)?;
    w.opt("cpu_period_us", app.cpu_period_us)?;
    w.opt("cpu_shares", app.cpu_shares)?;
    w.opt("cpuset_cpus", app.cpuset_cpus.as_ref())?;
    for d in &app.devices {
        w.rec("device", &d.to_line())?;
    }
    w.opt("oom_score_adj", app.oom_score_adj)?;
    w.opt("pids", app.pids_limit)?;
    if let Some(caps) = &app.caps {
        w.rec("caps", &join(caps))?;
    }
    w.flag("no_new_privs", app.no_new_privs)?;
    w.flag("mask_paths", app.mask_paths)?;
    if let Some(s) = &app.seccomp {
        let action = s.errno.map_or("kill".to_string(), |e| format!("errno={e}"));
        w.rec("seccomp", &format!("{action}:{}", join(&s.allowed)))?;
    }
    for r in &app.rlimits {
        w.rec("rlimit", &format!("{}={}:{}", r.name, r.soft, r.hard))?;
    }
    for t in &app.tmpfs {
        if t.target.contains('\t') {
            return Err(unencodable(format!(
                "tmpfs {:?}: a tab in a path",
                t.target
            )));
        }
        let size = t.size.map(|s| s.to_string()).unwrap_or_default();
        let ro = if t.read_only { "1" } else { "0" };
        w.rec(
            "tmpfs",
            &format!("{}\t{size}\t{:o}\t{ro}", t.target, t.mode),
        )?;
    }
    w.flag("privileged", app.privileged)?;
    Ok(())
}

fn parse_app_record(p: &mut AppPlan, k: &str, v: &str) -> Result<(), PlanError> {
    fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, PlanError> {
        v.parse()
            .map_err(|_| bad(format!("{k}: not a number: {v:?}")))
    }
    fn list<T: std::str::FromStr>(k: &str, v: &str) -> Result<Vec<T>, PlanError> {
        v.split(',')
            .filter(|n| !n.is_empty())
            .map(|n| num(k, n))
            .collect()
    }
    match k {
        "image" => p.image = Some(v.into()),
        "image_rootfs" => p.image_rootfs = v.into(),
        "overlay" => p.overlay = v == "1",
        "exec" => p.exec.push(v.into()),
        "env" => p.env.push(v.into()),
        "workdir" => p.workdir = v.into(),
        "uid" => p.uid = num(k, v)?,
        "gid" => p.gid = num(k, v)?,
        "supplementary_gid" => p.supplementary_gids.push(num(k, v)?),
        "readonly_rootfs" => p.readonly_rootfs = v == "1",
        "mount" => {
            // SOURCE \t TARGET \t 1|0 (read-only) [\t rec|norec]
            let f: Vec<&str> = v.split('\t').collect();
            let (source, target, ro, rec) = match f.as_slice() {
                [s, d, ro] => (s, d, ro, "rec"),
                [s, d, ro, rec] => (s, d, ro, *rec),
                _ => return Err(bad(format!("bad mount record {v:?}"))),
            };
            p.mounts.push(Mount {
                source: source.to_string(),
                target: target.to_string(),
                read_only: *ro == "1",
                recursive: rec != "norec",
            });
        }
        "caps" => p.caps = Some(list(k, v)?),
        "no_new_privs" => p.no_new_privs = v == "1",
        "seccomp" => {
            // `kill:N,N,…` or `errno=E:N,N,…`
            let (action, nums) = v
                .split_once(':')
                .ok_or_else(|| bad(format!("bad seccomp record {v:?}")))?;
            let errno = match action {
                "kill" => None,
                a => Some(
                    a.strip_prefix("errno=")
                        .and_then(|e| e.parse().ok())
                        .ok_or_else(|| bad(format!("bad seccomp action {a:?}")))?,
                ),
            };
            p.seccomp = Some(Seccomp {
                allowed: list(k, nums)?,
                errno,
            });
        }
        "mask_paths" => p.mask_paths = v == "1",
        "memory" => p.memory_limit = Some(num(k, v)?),
        "memory_reservation" => p.memory_reservation = Some(num(k, v)?),
        "memory_swap" => p.memory_swap = Some(num(k, v)?),
        "cpu_quota_us" => p.cpu_quota_us = Some(num(k, v)?),
        "cpu_period_us" => p.cpu_period_us = Some(num(k, v)?),
        "cpu_shares" => p.cpu_shares = Some(num(k, v)?),
        "cpuset_cpus" => p.cpuset_cpus = Some(v.into()),
        "device" => p.devices.push(DeviceRule::parse(v)?),
        "oom_score_adj" => p.oom_score_adj = Some(num(k, v)?),
        "pids" => p.pids_limit = Some(num(k, v)?),
        "rlimit" => {
            // NAME=SOFT:HARD
            let parsed = v.split_once('=').and_then(|(name, limits)| {
                let (soft, hard) = limits.split_once(':')?;
                Some(Rlimit {
                    name: name.into(),
                    soft: soft.parse().ok()?,
                    hard: hard.parse().ok()?,
                })
            });
            p.rlimits
                .push(parsed.ok_or_else(|| bad(format!("bad rlimit record {v:?}")))?);
        }
        "tmpfs" => {
            // TARGET \t SIZE (empty: none) \t MODE (octal) \t 1|0 (read-only)
            let f: Vec<&str> = v.split('\t').collect();
            let [target, size, mode, ro] = f.as_slice() else {
                return Err(bad(format!("bad tmpfs record {v:?}")));
            };
            p.tmpfs.push(Tmpfs {
                target: target.to_string(),
                size: match *size {
                    "" => None,
                    s => Some(num(k, s)?),
                },
                mode: u32::from_str_radix(mode, 8)
                    .map_err(|_| bad(format!("bad tmpfs mode {mode:?}")))?,
                read_only: *ro == "1",
            });
        }
        "privileged" => p.privileged = v == "1",
        _ => return Err(bad(format!("unknown key {k:?}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_pods_pids_limit_is_the_sum_of_its_apps() {
        let app = |n| AppPlan {
            pids_limit: n,
            ..Default::default()
        };
        let mut p = Plan {
            apps: vec![app(Some(10)), app(Some(20))],
            ..Default::default()
        };
        assert_eq!(p.pids_limit(), Some(30));
        p.apps.push(app(None));
        assert_eq!(
            p.pids_limit(),
            None,
            "one app without a limit lifts the pod's"
        );
    }

    #[test]
    fn parses_lists_in_order() {
        let p = Plan::parse(
            b"app=a\0image_rootfs=/r\0exec=/bin/sh\0exec=-c\0exec=echo\nhi\0env=A=1\0mount=/h\t/c\t1\0memory=1024\0",
        )
        .unwrap();
        let p = &p.apps[0];
        assert_eq!(p.exec, ["/bin/sh", "-c", "echo\nhi"]);
        assert_eq!(p.env, ["A=1"]);
        assert_eq!(
            p.mounts,
            [Mount {
                source: "/h".into(),
                target: "/c".into(),
                read_only: true,
                recursive: true
            }]
        );
        assert_eq!(p.memory_limit, Some(1024));
        assert!(Plan::parse(b"app=a\0bogus=1\0").is_err());
        assert!(
            Plan::parse(b"exec=/x\0").is_err(),
            "app records before any app"
        );
    }

    #[test]
    fn several_apps_and_pod_records() {
        let p = Plan::parse(
            b"hostname=h\0netns=/run/netns/x\0net_teardown=/bin/rkt\0app=a\0image_rootfs=/r\0exec=/a\0net=none\0app=b\0image_rootfs=/s\0exec=/b\0uid=5\0",
        )
        .unwrap();
        assert_eq!((p.hostname.as_str(), p.net), ("h", Net::None));
        assert_eq!(p.netns.as_deref(), Some("/run/netns/x"));
        assert_eq!(p.net_teardown.as_deref(), Some("/bin/rkt"));
        assert_eq!(p.apps.len(), 2);
        assert_eq!((p.apps[0].exec[0].as_str(), p.apps[0].uid), ("/a", 0));
        assert_eq!((p.apps[1].exec[0].as_str(), p.apps[1].uid), ("/b", 5));
    }

    #[test]
    fn values_the_encoding_cannot_carry_are_refused() {
        let mut app = AppPlan {
            name: "a".into(),
            image_rootfs: "/r".into(),
            exec: vec!["/bin/x\0y".into()],
            ..Default::default()
        };
        assert!(Plan::encode_apps(std::slice::from_ref(&app)).is_err());
        app.exec = vec!["/bin/x".into()];
        app.mounts.push(Mount {
            source: "/a\tb".into(),
            target: "/c".into(),
            read_only: false,
            recursive: true,
        });
        assert!(Plan::encode_apps(&[app]).is_err());
    }

    /// Text the encoding carries: anything but NUL (and tabs, in mount paths).
    fn text() -> impl Strategy<Value = String> {
        "[^\u{0}]{0,12}"
    }
    fn path() -> impl Strategy<Value = String> {
        "[^\u{0}\t]{0,12}"
    }

    prop_compose! {
        fn mount()(source in path(), target in path(), read_only: bool, recursive: bool) -> Mount {
            Mount { source, target, read_only, recursive }
        }
    }

    prop_compose! {
        fn seccomp()(allowed in prop::collection::vec(0i64..500, 0..8), errno in prop::option::of(1i32..200)) -> Seccomp {
            Seccomp { allowed, errno }
        }
    }

    prop_compose! {
        fn rlimit()(name in "[a-z]{1,8}", soft: u64, hard: u64) -> Rlimit {
            Rlimit { name, soft, hard }
        }
    }

    prop_compose! {
        fn tmpfs()(target in path(), size in prop::option::of(any::<u64>()), mode in 0u32..0o7777, read_only: bool) -> Tmpfs {
            Tmpfs { target, size, mode, read_only }
        }
    }

    prop_compose! {
        fn device()(kind in prop_oneof![Just('c'), Just('b')], major: u32, minor in prop::option::of(any::<u32>()), access in "r?w?m?") -> DeviceRule {
            let access = if access.is_empty() { "r".to_string() } else { access };
            DeviceRule { kind, major, minor, access }
        }
    }

    prop_compose! {
        fn app()(
            name in "[a-z][a-z0-9-]{0,8}",
            image in prop::option::of(text()),
            image_rootfs in "/[^\u{0}]{0,12}",
            overlay: bool,
            exec in prop::collection::vec(text(), 1..4),
            env in prop::collection::vec(text(), 0..4),
            workdir in text(),
            ids in (any::<u32>(), any::<u32>(), prop::collection::vec(any::<u32>(), 0..3)),
            readonly_rootfs: bool,
            mounts in prop::collection::vec(mount(), 0..3),
            limits in (prop::option::of(any::<u64>()), prop::option::of(any::<u64>()), prop::option::of(any::<u64>()), prop::option::of(any::<i32>())),
            caps in prop::option::of(prop::collection::vec(0u32..41, 0..6)),
            no_new_privs: bool,
            seccomp in prop::option::of(seccomp()),
            mask_paths: bool,
            pids_limit in prop::option::of(any::<u64>()),
            rlimits in prop::collection::vec(rlimit(), 0..3),
            tmpfs in prop::collection::vec(tmpfs(), 0..3),
            privileged: bool,
            more in (prop::option::of(any::<u64>()), prop::option::of(any::<u64>()), prop::option::of(any::<u64>()), prop::option::of("[0-9,-]{1,8}")),
            devices in prop::collection::vec(device(), 0..3),
        ) -> AppPlan {
            AppPlan {
                name, image, image_rootfs, overlay, exec, env, workdir,
                uid: ids.0, gid: ids.1, supplementary_gids: ids.2, readonly_rootfs, mounts,
                memory_limit: limits.0, cpu_quota_us: limits.1, cpu_shares: limits.2,
                oom_score_adj: limits.3, pids_limit, caps, no_new_privs, seccomp, mask_paths,
                rlimits, tmpfs, privileged,
                memory_reservation: more.0, memory_swap: more.1, cpu_period_us: more.2,
                cpuset_cpus: more.3, devices,
            }
        }
    }

    prop_compose! {
        fn plan()(
            hostname in text(),
            net in prop_oneof![Just(Net::Host), Just(Net::None), Just(Net::Contained)],
            netns in prop::option::of(text()),
            net_teardown in prop::option::of(text()),
            cgroup in text(),
            flags in (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            sysctls in prop::collection::vec(("[a-z.]{1,12}", "[^\u{0}]{0,8}"), 0..3),
            shm_size in prop::option::of(any::<u64>()),
            private_users in prop::option::of((any::<u32>(), any::<u32>())),
            apps in prop::collection::vec(app(), 1..4),
        ) -> Plan {
            Plan { hostname, net, netns, net_teardown, cgroup, interactive: flags.0, host_ipc: flags.1, host_pid: flags.2, sysctls, shm_size, fly: flags.3, private_users, apps }
        }
    }

    proptest! {
        #[test]
        fn plans_round_trip(p in plan()) {
            let bytes = p.encode().unwrap();
            prop_assert_eq!(Plan::parse(&bytes).unwrap(), p);
        }

        #[test]
        fn prepared_apps_round_trip(apps in prop::collection::vec(app(), 1..4)) {
            let bytes = Plan::encode_apps(&apps).unwrap();
            prop_assert_eq!(Plan::parse(&bytes).unwrap().apps, apps);
        }
    }
}
