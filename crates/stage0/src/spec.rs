//! The typed specs every pod starts from: [`PodSpec`] (the whole pod), [`AppSpec`] (one app)
//! and [`RuntimeSpec`] (what is decided when the pod runs). `rkt`'s argument grammar fills
//! them from the command line (the `rkt` crate's `grammar`), and the Nomad driver fills them
//! from a job: each value lands in a field of its own, so no value is ever read as a flag or
//! as a part of another value's syntax.
//!
//! The value parsers here (quantities, durations, booleans) say what text a field accepts
//! where its value comes as text, in rkt's spelling.

use crate::error::{bail, invalid, Result};
use image::fetch::PullPolicy;
use std::collections::BTreeMap;
use std::net::IpAddr;
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
#[derive(Debug, Default, Clone, PartialEq)]
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
    /// Lines for the pod's /etc/hosts.
    pub hosts_entries: Vec<HostsEntry>,
    /// Join this existing network namespace instead of making one (not an rkt 1.30 flag:
    /// nomad-driver-rkt uses it for Nomad's group networks).
    pub net_namespace: Option<PathBuf>,
    /// Give the (single) app the caller's stdin.
    pub interactive: bool,
    /// The IPC namespace.
    pub ipc: Ipc,
    /// The PID namespace.
    pub pid: Pid,
    pub mds_register: bool,
    /// `--sysctl`: kernel parameters of the pod's own namespaces, as (key, value): `net.*`
    /// with a network namespace of its own, `kernel.shm*`, `kernel.msg*`, `kernel.sem` and
    /// `fs.mqueue.*` with an IPC namespace of its own.
    pub sysctls: Vec<(String, String)>,
    /// `--shm-size`: the size of /dev/shm in bytes (64 MiB when None).
    pub shm_size: Option<u64>,
    /// `--cgroup-parent`: the cgroup the pod's cgroup goes below, relative to the hierarchy's
    /// root (`machine.slice/rkt`); None: [`layout::cgroup::DEFAULT_PARENT`]. Not an rkt 1.30
    /// flag: podman's name for the same thing.
    pub cgroup_parent: Option<String>,
}

/// `--hosts-entry`: a name for an address, or the host's whole /etc/hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostsEntry {
    /// `host`: the host's /etc/hosts instead of the pod's own.
    Host,
    /// `IP=HOSTNAME`.
    Name { ip: IpAddr, hostname: String },
}

/// `--ipc`: the pod's IPC namespace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Ipc {
    /// Its own (rkt's `auto` and `private`).
    #[default]
    Private,
    /// The host's (`parent`).
    Parent,
}

/// `--pid`: the pod's PID namespace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// Its own, with the pod's init as PID 1.
    #[default]
    Private,
    /// The host's: the apps see (and are seen by) every process of the host.
    Host,
}

/// Flags of the whole pod.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PodSpec {
    /// What `run` decides when the pod runs (`run-prepared` takes these as its own flags).
    pub runtime: RuntimeSpec,
    pub volumes: Vec<Volume>,
    /// `--mount` before any image: applies to every app.
    pub mounts: Vec<MountSpec>,
    pub ports: Vec<PortSpec>,
    /// `--set-env`, for every app.
    pub set_env: Vec<EnvVar>,
    pub set_env_file: Vec<PathBuf>,
    pub inherit_env: bool,
    pub no_overlay: bool,
    pub uuid_file_save: Option<PathBuf>,
    pub pull_policy: PullPolicy,
    /// No progress on stderr while images download.
    pub quiet: bool,
    /// `--user-annotation`: the pod's annotations, kept in its manifest.
    pub user_annotations: BTreeMap<String, String>,
    /// `--user-label`: the pod's labels, kept in its manifest.
    pub user_labels: BTreeMap<String, String>,
    /// `--pod-manifest`: the whole pod from an appc pod manifest instead of images and flags
    /// (see `crate::pod_manifest`).
    pub pod_manifest: Option<PathBuf>,
    /// `--stage1-name` and the like: which of the built-in stage1 flavours runs the pod;
    /// None: the one `stage1.d` names (see [`crate::stage1_conf`]), else the default.
    pub stage1: Option<Stage1>,
    /// `--private-users`: the apps in a user namespace of the pod's own (see `crate::userns`).
    pub private_users: bool,
}

/// The built-in stage1 flavours (rkt's stage1 images are not used: see `crate::fly`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Stage1 {
    /// rkt's default (`coreos.com/rkt/stage1-coreos`): namespaces, cgroups, confinement.
    #[default]
    Default,
    /// rkt's fly (`coreos.com/rkt/stage1-fly`): one app in the host's namespaces.
    Fly,
}

/// An environment variable: its name and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A volume of the pod (appc's `volumes`), which mounts refer to by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// An appc name (`[a-z0-9]+(-[a-z0-9]+)*`).
    pub name: String,
    pub kind: VolumeKind,
    /// Mounted read-only; None: read-write.
    pub read_only: Option<bool>,
    /// A host volume's submounts come with it; None: rkt's default (yes).
    pub recursive: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeKind {
    /// A host directory or file, bound into the apps.
    Host(HostSource),
    /// A new empty directory in the pod, owned and moded as given.
    Empty { mode: u32, uid: u32, gid: u32 },
}

/// Where on the host a host volume comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSource {
    /// An absolute host path, as `rkt run --volume` and an operator's configuration name it.
    Absolute(PathBuf),
    /// A relative path resolved beneath `root` and never outside it: symlinks on the way
    /// are followed only while they stay inside, `..` may not climb out. Nomad's
    /// allocation directories, where any task of the allocation can make symlinks.
    Beneath { root: PathBuf, path: PathBuf },
}

/// `--mount`: a volume at a path inside the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub volume: String,
    /// Absolute, inside the app.
    pub target: String,
}

/// `--port`: a port of an app, forwarded from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The image's name of the port (`80-tcp`).
    pub name: String,
    /// The host address it is forwarded from (IPv4, as rkt's); None: all of them.
    pub host_ip: Option<std::net::Ipv4Addr>,
    pub host_port: u16,
}

/// One app: its image and the flags that followed it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AppSpec {
    pub image: String,
    /// `--entrypoint`: replaces the image's entrypoint and drops its command, as Docker's
    /// does; `exec` and `args`, when given, follow it.
    pub entrypoint: Option<Vec<String>>,
    /// `--signature`: the image's detached signature, as a local file (ACIs only).
    pub signature: Option<PathBuf>,
    /// `--exec`: replaces the image's command.
    pub exec: Option<String>,
    /// The app's arguments: replace the image's (after `--exec`, or the image's command).
    pub args: Vec<String>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Supplementary groups: group IDs, or names from the image's /etc/group.
    pub supplementary_groups: Vec<String>,
    pub working_dir: Option<String>,
    pub readonly_rootfs: bool,
    /// Memory limit in bytes (`--memory`): the app is OOM-killed beyond it.
    pub memory: Option<u64>,
    /// Memory the app keeps when the host runs short, in bytes (`--memory-reservation`;
    /// v2 `memory.low`, v1 `memory.soft_limit_in_bytes`): a soft floor, where
    /// [`AppSpec::memory`] is the hard ceiling. At most `memory` when both are given. Nomad's
    /// `memory` (with `memory_max`) maps here.
    pub memory_reservation: Option<u64>,
    /// Memory and swap together (`--memory-swap`, as Docker and podman spell it); needs
    /// [`AppSpec::memory`] and is at least that. v2 limits swap alone (`memory.swap.max`
    /// gets this less `memory`), v1 both (`memory.memsw.limit_in_bytes`).
    pub memory_swap: Option<MemorySwap>,
    /// CPU limit in millicores (`--cpu`): a CFS quota per period.
    pub cpu_millicores: Option<u64>,
    /// The CFS period of [`AppSpec::cpu_millicores`]'s quota in microseconds (`--cpu-period`,
    /// 1000 to 1000000; default 100000): shorter periods throttle a bursty app sooner and
    /// for less time. Needs `cpu_millicores`. Nomad's `cpu_cfs_period` maps here.
    pub cpu_period_us: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// The CPUs the app may run on (`--cpuset-cpus`; Nomad's `cores`).
    pub cpuset_cpus: Option<CpuSet>,
    /// Host devices the app gets (`--device`; Nomad's `devices`): each node bound into the
    /// app, and allowed in the pod's device cgroup, which otherwise allows only the standard
    /// devices (null, zero, full, random, urandom, tty, the pod's terminals).
    pub devices: Vec<DeviceSpec>,
    pub oom_score_adj: Option<i32>,
    /// `--pids-limit`: not one of rkt's flags (appc has no pids isolator).
    pub pids_limit: PidsLimit,
    /// `--environment`, for this app.
    pub environment: Vec<EnvVar>,
    pub mounts: Vec<MountSpec>,
    /// `--caps-retain`: only these capabilities (names such as CAP_NET_ADMIN or net_admin).
    pub caps_retain: Option<Vec<String>>,
    /// `--caps-remove`: appc's default set without these.
    pub caps_remove: Option<Vec<String>>,
    /// `--seccomp`.
    pub seccomp: Option<pod::seccomp::Spec>,
    /// no_new_privs: on for every app whose capabilities are limited; Some(true) turns it on
    /// for the others too (an image's `os/linux/no-new-privileges`). An app whose
    /// capabilities are limited cannot turn it off.
    pub no_new_privs: Option<bool>,
    /// `--ulimit`: resource limits the app starts with.
    pub rlimits: Vec<layout::plan::Rlimit>,
    /// `--tmpfs`: file systems in memory at paths of the app.
    pub tmpfs: Vec<layout::plan::Tmpfs>,
    /// `--privileged`: the host's devices and a writable /sys; needs
    /// `--insecure-options=all-run` (every capability, no seccomp filter, nothing masked).
    pub privileged: bool,
    /// The app given whole (by a pod manifest): it replaces the image's app, and the fields
    /// above only add to it.
    pub app: Option<image::appc::App>,
}

/// `--memory-swap`: memory and swap together, or no swap limit (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemorySwap {
    /// At most this many bytes of memory and swap together.
    Limit(u64),
    /// Swap without limit (`-1`, as Docker and podman spell it).
    Unlimited,
}

/// `--memory-swap=BYTES`, or `-1` for no swap limit.
pub fn parse_memory_swap(v: &str) -> Result<MemorySwap> {
    match v {
        "-1" => Ok(MemorySwap::Unlimited),
        n => parse_bytes(n)
            .map(MemorySwap::Limit)
            .map_err(|_| invalid!("--memory-swap: {n:?} is not a quantity; use bytes (512Mi, 1G) for memory and swap together, or -1 for no swap limit")),
    }
}

/// A set of CPUs in the kernel's list format (`0-3,6`), checked when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(String);

impl CpuSet {
    /// `0-3,6`: CPU numbers and ascending ranges, separated by commas.
    pub fn parse(v: &str) -> Result<CpuSet> {
        let bad = || {
            invalid!(
                "--cpuset-cpus: {v:?} is not a list of CPUs; use numbers and ranges such as 0-3,6"
            )
        };
        if v.is_empty() {
            return Err(bad());
        }
        for part in v.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > b {
                return Err(bad());
            }
        }
        Ok(CpuSet(v.to_string()))
    }

    /// The CPU numbers.
    pub fn cpus(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for part in self.0.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                out.extend(a..=b);
            }
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `--device`: a host device node the app gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The node on the host (absolute; a symlink to one is followed, as podman does).
    pub host: PathBuf,
    /// Where the app sees it (absolute); None: the host's path.
    pub target: Option<String>,
    /// What the app may do with it: some of `r`, `w`, `m` (mknod), as Docker and podman
    /// spell them; `rwm` when not given.
    pub access: String,
}

/// `--device=HOSTPATH[:CONTAINERPATH[:PERMS]]`, as Docker and podman take it.
pub fn parse_device(v: &str) -> Result<DeviceSpec> {
    let bad = |why: &str| {
        invalid!("--device {v:?}: {why}; use HOSTPATH[:CONTAINERPATH[:PERMS]] with absolute paths and PERMS of r, w and m, such as /dev/fuse:/dev/fuse:rw")
    };
    let parts: Vec<&str> = v.split(':').collect();
    let (host, target, access) = match parts.as_slice() {
        [h] => (*h, None, "rwm"),
        // The second field is a path when absolute, else the permissions.
        [h, x] if !x.starts_with('/') => (*h, None, *x),
        [h, t] => (*h, Some(*t), "rwm"),
        [h, t, a] => (*h, Some(*t), *a),
        _ => return Err(bad("too many fields")),
    };
    if !host.starts_with('/') {
        return Err(bad("the host path must be absolute"));
    }
    if target.is_some_and(|t| !t.starts_with('/')) {
        return Err(bad("the path in the app must be absolute"));
    }
    let ordered: String = "rwm".chars().filter(|c| access.contains(*c)).collect();
    if access.is_empty()
        || ordered.len() != access.len()
        || !access.chars().all(|c| "rwm".contains(c))
    {
        return Err(bad(&format!("{access:?} are not permissions")));
    }
    Ok(DeviceSpec {
        host: PathBuf::from(host),
        target: target.map(str::to_string),
        access: ordered,
    })
}

/// How many processes and threads an app may have when `--pids-limit` is not given: podman's
/// default (containers.conf `pids_limit`), enough for any ordinary service and small enough
/// that a fork bomb stops long before it hurts the node.
pub const DEFAULT_PIDS_LIMIT: u64 = 2048;

/// The most processes (and threads) an app may have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum PidsLimit {
    /// [`DEFAULT_PIDS_LIMIT`].
    #[default]
    Default,
    /// No limit.
    Unlimited,
    /// At most this many (1 or more).
    Max(u64),
}

impl PidsLimit {
    /// The limit, None for none.
    pub fn value(self) -> Result<Option<u64>> {
        match self {
            PidsLimit::Default => Ok(Some(DEFAULT_PIDS_LIMIT)),
            PidsLimit::Unlimited => Ok(None),
            PidsLimit::Max(0) => Err(invalid!(
                "a pids limit of 0 processes would not let the app start; use 1 or more, or no limit"
            )),
            PidsLimit::Max(n) => Ok(Some(n)),
        }
    }
}

/// `--pids-limit=N` (N >= 1), or `max` / `-1` (Docker's word for it) for no limit.
pub fn parse_pids_limit(v: &str) -> Result<PidsLimit> {
    match v {
        "max" | "-1" => Ok(PidsLimit::Unlimited),
        n => match n.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(PidsLimit::Max(n)),
            _ => Err(invalid!(
                "--pids-limit: {n:?} is not a number of processes; use a number of 1 or more, or \"max\" for no limit"
            )),
        },
    }
}

/// A Kubernetes quantity in bytes: `16Mi`, `50M`, `1G`, `1048576`.
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

/// `NAME=SOFT[:HARD]` as Docker's `--ulimit` takes it (`nofile=4096:8192`, `nproc=512`); a
/// value may be `unlimited` (or -1).
pub fn parse_rlimit(s: &str) -> Result<layout::plan::Rlimit> {
    let bad = |why: String| {
        invalid!("ulimit {s:?}: {why}; use NAME=SOFT[:HARD] such as nofile=4096:8192")
    };
    let (name, limits) = s.split_once('=').ok_or_else(|| bad("no value".into()))?;
    rlimit(name, limits).map_err(bad)
}

/// A limit `SOFT[:HARD]` for resource `name` (a name of [`layout::plan::RLIMITS`]).
pub fn rlimit(name: &str, limits: &str) -> std::result::Result<layout::plan::Rlimit, String> {
    if !layout::plan::RLIMITS.iter().any(|(n, _)| *n == name) {
        let known: Vec<&str> = layout::plan::RLIMITS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown resource {name:?} (known: {})",
            known.join(", ")
        ));
    }
    let number = |v: &str| match v {
        "unlimited" | "-1" => Ok(u64::MAX),
        v => v
            .parse::<u64>()
            .map_err(|_| format!("{v:?} is not a number (or unlimited)")),
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => (number(limits)?, number(limits)?),
    };
    if soft > hard {
        return Err(format!(
            "the soft limit {soft} is above the hard limit {hard}"
        ));
    }
    Ok(layout::plan::Rlimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `PATH[:OPTIONS]` as podman's `--tmpfs` takes it, options `size=BYTES` (a quantity such as
/// `64Mi` or `64m`), `mode=OCTAL`, `ro`/`rw`.
pub fn parse_tmpfs(s: &str) -> Result<layout::plan::Tmpfs> {
    let (target, options) = s.split_once(':').unwrap_or((s, ""));
    let mut t = layout::plan::Tmpfs {
        target: target.to_string(),
        size: None,
        mode: 0o1777,
        read_only: false,
    };
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => t.size = Some(parse_size(v)?),
            Some(("mode", v)) => {
                t.mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        invalid!("tmpfs {target:?}: mode {v:?} is not an octal mode such as 1777")
                    })?
            }
            None if o == "ro" => t.read_only = true,
            None if o == "rw" => t.read_only = false,
            _ => bail!("tmpfs {target:?}: unknown option {o:?}; use size=, mode=, ro or rw"),
        }
    }
    check_tmpfs(&t)?;
    Ok(t)
}

/// A tmpfs needs an absolute target.
pub fn check_tmpfs(t: &layout::plan::Tmpfs) -> Result<()> {
    if !t.target.starts_with('/') || t.target == "/" {
        bail!(
            "tmpfs target {:?} must be an absolute path inside the app, other than /",
            t.target
        );
    }
    Ok(())
}

/// A size in bytes as Docker and podman write them: a number with an optional unit `b`,
/// `k`, `m`, `g` (powers of 1024, either case), or a quantity such as `64Mi`.
pub fn parse_size(v: &str) -> Result<u64> {
    let lower = v.to_ascii_lowercase();
    let units = [("b", 1u64), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)];
    for (unit, mult) in units {
        if let Some(n) = lower.strip_suffix(unit) {
            if let Ok(n) = n.parse::<u64>() {
                return n
                    .checked_mul(mult)
                    .ok_or_else(|| invalid!("size {v:?} is too large"));
            }
        }
    }
    parse_bytes(v)
}

/// `KEY=VALUE` as `--sysctl` takes it.
pub fn parse_sysctl(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("sysctl {s:?} is not KEY=VALUE"),
    }
}

fn split_suffix<'a>(s: &'a str, table: &[(&str, u64)]) -> (&'a str, u64) {
    for (suffix, mult) in table {
        if let Some(n) = s.strip_suffix(suffix) {
            return (n, *mult);
        }
    }
    (s, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_limits() {
        assert_eq!(
            PidsLimit::Default.value().unwrap(),
            Some(DEFAULT_PIDS_LIMIT)
        );
        assert_eq!(parse_pids_limit("100").unwrap(), PidsLimit::Max(100));
        assert_eq!(parse_pids_limit("max").unwrap(), PidsLimit::Unlimited);
        assert_eq!(parse_pids_limit("-1").unwrap(), PidsLimit::Unlimited);
        assert_eq!(PidsLimit::Unlimited.value().unwrap(), None);
        assert!(PidsLimit::Max(0).value().is_err());
        for bad in ["0", "-2", "1k", ""] {
            let e = parse_pids_limit(bad).unwrap_err().to_string();
            assert!(e.contains("--pids-limit"), "{e}");
        }
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
    fn ulimits_tmpfs_and_sizes() {
        let r = parse_rlimit("nofile=4096:8192").unwrap();
        assert_eq!((r.name.as_str(), r.soft, r.hard), ("nofile", 4096, 8192));
        let r = parse_rlimit("nproc=512").unwrap();
        assert_eq!((r.soft, r.hard), (512, 512));
        assert_eq!(parse_rlimit("core=unlimited").unwrap().hard, u64::MAX);
        for bad in ["nofile", "files=1", "nofile=9:8", "nofile=x"] {
            assert!(parse_rlimit(bad).is_err(), "{bad}");
        }
        let t = parse_tmpfs("/run:size=64m,mode=755,ro").unwrap();
        assert_eq!(
            (t.target.as_str(), t.size, t.mode, t.read_only),
            ("/run", Some(64 << 20), 0o755, true)
        );
        assert_eq!(parse_tmpfs("/tmp").unwrap().mode, 0o1777);
        for bad in ["rel", "/", "/x:size=lots", "/x:mode=9", "/x:nosuid"] {
            assert!(parse_tmpfs(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("16Mi").unwrap(), 16 << 20);
        assert!(parse_sysctl("net.core.somaxconn=1024").is_ok());
        assert!(parse_sysctl("=1").is_err());
    }

    #[test]
    fn devices_cpusets_and_swap() {
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!((d.target, d.access.as_str()), (None, "rwm"));
        let d = parse_device("/dev/sda:/dev/xvda:r").unwrap();
        assert_eq!(
            (d.target.as_deref(), d.access.as_str()),
            (Some("/dev/xvda"), "r")
        );
        assert_eq!(parse_device("/dev/fuse:wr").unwrap().access, "rw");
        for bad in [
            "fuse",
            "/dev/fuse:dev",
            "/dev/fuse:/x:rx",
            "/a:/b:r:w",
            "/dev/fuse:/x:rr",
        ] {
            let e = parse_device(bad).unwrap_err().to_string();
            assert!(e.contains("--device"), "{bad}: {e}");
        }
        assert_eq!(CpuSet::parse("0-2,5").unwrap().cpus(), [0, 1, 2, 5]);
        for bad in ["", "a", "3-1", "1,,2", "-1"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_memory_swap("-1").unwrap(), MemorySwap::Unlimited);
        assert_eq!(
            parse_memory_swap("1Gi").unwrap(),
            MemorySwap::Limit(1 << 30)
        );
        assert!(parse_memory_swap("lots").is_err());
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
