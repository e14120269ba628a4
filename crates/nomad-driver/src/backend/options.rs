//! The task options operators write for Nomad's Docker driver (podman's where Docker has
//! none), with their names and meanings, as fields of stage0's specs. Each is checked here
//! against what the plugin allows; a bad or forbidden value fails the task with the field
//! named.

use super::start::{Device, Launch, MountOption, Options, Plugin, Spec};
use super::{invalid, InvalidTask};
use stage0::spec::{
    DeviceSpec, HostSource, HostsEntry, Ipc, MountSpec, PortSpec, Volume, VolumeKind,
};
use std::path::{Component, Path, PathBuf};

/// Applies every Docker-style option of `o` to `launch`.
pub(super) fn apply(
    o: &Options,
    s: &Spec,
    plugin: &Plugin,
    launch: &mut Launch,
) -> Result<(), InvalidTask> {
    images(o, launch)?;
    process(o, launch)?;
    security(o, plugin, launch)?;
    kernel(o, launch)?;
    mounts(o, s, plugin, launch)?;
    devices(o, s, launch)?;
    resources(o, s, launch)?;
    ports(o, s, launch)?;
    labels(o, s, plugin, launch);
    Ok(())
}

fn images(o: &Options, l: &mut Launch) -> Result<(), InvalidTask> {
    if o.force_pull {
        l.pod.pull_policy = image::fetch::PullPolicy::Update;
    }
    if !o.image_pull_timeout.is_empty() {
        l.pull_timeout = stage0::spec::parse_duration(&o.image_pull_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                invalid!(
                    "image_pull_timeout = {:?}: give a duration such as \"5m\" or \"90s\"",
                    o.image_pull_timeout
                )
            })?;
    }
    if let Some(auth) = &o.auth {
        if auth.username.is_empty() {
            return Err(
                "auth: username is empty; give username and password (or leave auth out)".into(),
            );
        }
        l.auth = Some(auth.clone());
    }
    l.auth_soft_fail = o.auth_soft_fail;
    Ok(())
}

/// The app and its process: entrypoint, working directory, hostname, hosts, groups, OOM
/// score, resource limits.
fn process(o: &Options, l: &mut Launch) -> Result<(), InvalidTask> {
    if !o.entrypoint.is_empty() {
        l.app.entrypoint = Some(o.entrypoint.clone());
    }
    if !o.work_dir.is_empty() {
        if !o.work_dir.starts_with('/') {
            return Err(invalid!(
                "work_dir = {:?}: give an absolute path inside the task",
                o.work_dir
            ));
        }
        l.app.working_dir = Some(o.work_dir.clone());
    }
    if !o.hostname.is_empty() {
        let valid = o.hostname.len() <= 64
            && o.hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !valid {
            return Err(invalid!(
                "hostname = {:?}: use letters, digits, '-' and '.', at most 64 characters",
                o.hostname
            ));
        }
        l.runtime.hostname = Some(o.hostname.clone());
    }
    for h in &o.extra_hosts {
        l.runtime.hosts_entries.push(extra_host(h)?);
    }
    l.app.supplementary_groups = o.group_add.clone();
    if o.oom_score_adj < 0 || o.oom_score_adj > 1000 {
        return Err(invalid!(
            "oom_score_adj = {}: give 0 to 1000 (a negative score would shield the task from the OOM killer at other tasks' expense)",
            o.oom_score_adj
        ));
    }
    if o.oom_score_adj > 0 {
        l.app.oom_score_adj = Some(o.oom_score_adj as i32);
    }
    for (name, value) in &o.ulimit {
        let r = stage0::spec::rlimit(name, value).map_err(|e| invalid!("ulimit {name}: {e}"))?;
        l.app.rlimits.push(r);
    }
    Ok(())
}

/// `extra_hosts` entry `NAME:IP` (IPv4 or IPv6).
fn extra_host(h: &str) -> Result<HostsEntry, InvalidTask> {
    let bad =
        || invalid!("extra_hosts {h:?}: write NAME:IP, such as \"db:10.0.0.5\" or \"db6:fd00::5\"");
    let (name, ip) = h.split_once(':').ok_or_else(bad)?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip.parse().map_err(|_| bad())?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(HostsEntry::Name {
        ip,
        hostname: name.to_string(),
    })
}

/// Capabilities, privileged, security_opt, readonly_rootfs, IPC and PID namespaces.
fn security(o: &Options, plugin: &Plugin, l: &mut Launch) -> Result<(), InvalidTask> {
    let allowed = &plugin.allowed;
    let privileged_only = |field: &str| {
        invalid!(
            "{field} would give the task the node's own namespace or isolation, which this node does not allow; remove it, or have the operator set allow_privileged = true in the plugin's configuration"
        )
    };
    if o.privileged {
        if !allowed.privileged {
            return Err(privileged_only("privileged = true"));
        }
        l.insecure.capabilities = true;
        l.insecure.paths = true;
        l.insecure.seccomp = true;
        l.app.privileged = true;
    }
    if !o.cap_add.is_empty() || !o.cap_drop.is_empty() {
        l.app.caps_retain = Some(capabilities(o, plugin)?);
    }
    for opt in &o.security_opt {
        match opt.as_str() {
            // Every task has no_new_privs already.
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                l.app.no_new_privs = Some(true)
            }
            "seccomp=unconfined" | "seccomp:unconfined" => {
                if !allowed.privileged {
                    return Err(privileged_only("security_opt = [\"seccomp=unconfined\"]"));
                }
                l.insecure.seccomp = true;
            }
            other => {
                return Err(invalid!(
                    "security_opt {other:?} is not supported here; the options are \"no-new-privileges\" (always on) and \"seccomp=unconfined\""
                ))
            }
        }
    }
    l.app.readonly_rootfs = o.readonly_rootfs;
    match o.ipc_mode.as_str() {
        "" | "private" | "shareable" => {}
        "host" if allowed.privileged => l.runtime.ipc = Ipc::Parent,
        "host" => return Err(privileged_only("ipc_mode = \"host\"")),
        other => {
            return Err(invalid!(
                "ipc_mode = {other:?}: use \"private\" (the default) or \"host\""
            ))
        }
    }
    match o.pid_mode.as_str() {
        "" | "private" => {}
        "host" if allowed.privileged => l.runtime.pid = stage0::spec::Pid::Host,
        "host" => return Err(privileged_only("pid_mode = \"host\"")),
        other => {
            return Err(invalid!(
                "pid_mode = {other:?}: use \"private\" (the default) or \"host\""
            ))
        }
    }
    Ok(())
}

/// The task's capabilities as Docker computes them: the default set with `cap_add`, less
/// `cap_drop` (`ALL` drops every one first), all within the plugin's `allow_caps` unless the
/// task is privileged.
fn capabilities(o: &Options, plugin: &Plugin) -> Result<Vec<String>, InvalidTask> {
    let number = |field: &str, c: &str| {
        pod::caps::number(c).map_err(|_| {
            invalid!(
                "{field}: unknown capability {c:?}; use names such as net_admin or CAP_NET_ADMIN"
            )
        })
    };
    let all: Vec<u32> = (0..pod::caps::NAMES.len() as u32).collect();
    let mut set: Vec<u32> = if o.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("all")) {
        Vec::new()
    } else {
        pod::caps::DEFAULT
            .iter()
            .map(|c| number("default", c))
            .collect::<Result<_, _>>()?
    };
    for c in &o.cap_add {
        if c.eq_ignore_ascii_case("all") {
            set.extend(&all);
        } else {
            set.push(number("cap_add", c)?);
        }
    }
    for c in o.cap_drop.iter().filter(|c| !c.eq_ignore_ascii_case("all")) {
        let n = number("cap_drop", c)?;
        set.retain(|x| *x != n);
    }
    set.sort_unstable();
    set.dedup();
    if !o.privileged {
        let allowed: Vec<u32> = plugin
            .allow_caps
            .iter()
            .map(|c| {
                if c.eq_ignore_ascii_case("all") {
                    Ok(all.clone())
                } else {
                    number("allow_caps", c).map(|n| vec![n])
                }
            })
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        let refused: Vec<String> = set
            .iter()
            .filter(|c| !allowed.contains(c))
            .map(|c| {
                pod::caps::name(*c)
                    .trim_start_matches("CAP_")
                    .to_ascii_lowercase()
            })
            .collect();
        if !refused.is_empty() {
            return Err(invalid!(
                "cap_add: this node does not allow the capabilities {refused:?} (the plugin's allow_caps); remove them, or have the operator add them to allow_caps"
            ));
        }
    }
    Ok(set
        .iter()
        .map(|c| pod::caps::name(*c).to_string())
        .collect())
}

/// sysctl and shm_size.
fn kernel(o: &Options, l: &mut Launch) -> Result<(), InvalidTask> {
    l.runtime.sysctls = o
        .sysctl
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match o.shm_size {
        0 => {}
        n if n > 0 => l.runtime.shm_size = Some(n as u64),
        n => return Err(invalid!("shm_size = {n}: give a size in bytes")),
    }
    Ok(())
}

/// `mount {}` blocks: binds (confined like `volumes`) and tmpfs.
fn mounts(o: &Options, s: &Spec, plugin: &Plugin, l: &mut Launch) -> Result<(), InvalidTask> {
    for (i, m) in o.mount.iter().enumerate() {
        if !m.target.starts_with('/') {
            return Err(invalid!(
                "mount[{i}]: target {:?} must be an absolute path inside the task",
                m.target
            ));
        }
        match m.kind.as_str() {
            "" | "bind" => bind(i, m, s, plugin, l)?,
            "tmpfs" => {
                if !m.source.is_empty() {
                    return Err(invalid!("mount[{i}]: a tmpfs has no source; leave it out"));
                }
                let t = layout::plan::Tmpfs {
                    target: m.target.clone(),
                    size: match m.tmpfs_size {
                        0 => None,
                        n if n > 0 => Some(n as u64),
                        n => return Err(invalid!("mount[{i}]: tmpfs_options.size = {n}: give a size in bytes")),
                    },
                    mode: if m.tmpfs_mode == 0 { 0o1777 } else { m.tmpfs_mode },
                    read_only: m.readonly,
                };
                l.app.tmpfs.push(t);
            }
            "volume" => {
                return Err(invalid!(
                    "mount[{i}]: type \"volume\" (Docker volumes) does not exist here; use \"bind\" with a host path, \"tmpfs\", or a Nomad host volume"
                ))
            }
            other => {
                return Err(invalid!(
                    "mount[{i}]: unknown type {other:?}; use \"bind\" or \"tmpfs\""
                ))
            }
        }
    }
    Ok(())
}

/// A bind mount: an absolute source needs `volumes_enabled`; a relative one is in the task's
/// directory, as the Docker driver has it (`local/conf`), and is resolved beneath the
/// allocation directory, as `volumes` are.
fn bind(
    i: usize,
    m: &MountOption,
    s: &Spec,
    plugin: &Plugin,
    l: &mut Launch,
) -> Result<(), InvalidTask> {
    let source = if m.source.starts_with('/') {
        if !plugin.allowed.volumes {
            return Err(invalid!(
                "mount[{i}]: volumes_enabled is false; cannot bind the host path {:?} (relative sources, inside the allocation directory, are allowed)",
                m.source
            ));
        }
        HostSource::Absolute(PathBuf::from(&m.source))
    } else {
        if m.source.is_empty()
            || Path::new(&m.source)
                .components()
                .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(invalid!(
                "mount[{i}]: source {:?}: give a path (a relative one may not use \"..\" to leave the allocation directory)",
                m.source
            ));
        }
        HostSource::Beneath {
            root: s.alloc_dir.clone(),
            path: Path::new(&s.name).join(&m.source),
        }
    };
    let name = format!("{}-mount-{i}", volume_prefix(l));
    l.pod.mounts.push(MountSpec {
        volume: name.clone(),
        target: m.target.clone(),
    });
    l.pod.volumes.push(Volume {
        name,
        kind: VolumeKind::Host(source),
        read_only: Some(m.readonly),
        recursive: None,
    });
    Ok(())
}

/// `devices` (the task's option) and the devices of Nomad's device plugins: host device
/// nodes at a path of the task, allowed in the pod's device cgroup with the access they give
/// (`cgroup_permissions`, `rwm` by default; without `w` the node is bound read-only).
fn devices(o: &Options, s: &Spec, l: &mut Launch) -> Result<(), InvalidTask> {
    let lists = [("devices", &o.devices), ("Nomad's devices", &s.devices)];
    for (what, list) in lists {
        for (i, dev) in list.iter().enumerate() {
            l.app.devices.push(device(what, i, dev)?);
        }
    }
    Ok(())
}

fn device(what: &str, i: usize, dev: &Device) -> Result<DeviceSpec, InvalidTask> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(&dev.host_path)
        .map_err(|e| invalid!("{what}[{i}]: host_path {:?}: {e}", dev.host_path))?;
    let kind = meta.file_type();
    if !kind.is_char_device() && !kind.is_block_device() {
        return Err(invalid!(
            "{what}[{i}]: host_path {:?} is not a device node",
            dev.host_path
        ));
    }
    let target = if dev.container_path.is_empty() {
        dev.host_path.clone()
    } else {
        dev.container_path.clone()
    };
    if !target.starts_with('/') {
        return Err(invalid!(
            "{what}[{i}]: container_path {target:?} must be an absolute path"
        ));
    }
    let perms = match dev.cgroup_permissions.as_str() {
        "" => "rwm",
        p => p,
    };
    if !perms.chars().all(|c| "rwm".contains(c)) {
        return Err(invalid!(
            "{what}[{i}]: cgroup_permissions {perms:?}: use a combination of r, w and m"
        ));
    }
    Ok(DeviceSpec {
        host: PathBuf::from(&dev.host_path),
        target: Some(target),
        // In the order the device cgroup spells them, each once.
        access: "rwm".chars().filter(|c| perms.contains(*c)).collect(),
    })
}

/// The CFS period the Docker driver's `cpu_cfs_period` may name, in microseconds.
const CFS_PERIODS: std::ops::RangeInclusive<i64> = 1000..=1_000_000;

/// The task's CPU and memory: `cpu_hard_limit` (a CFS quota of the task's share of the
/// node's CPU, as the Docker driver computes it) with `cpu_cfs_period`, the CPUs of
/// `resources { cores }`, and the memory limit and reservation (see [`memory_limits`]).
fn resources(o: &Options, s: &Spec, l: &mut Launch) -> Result<(), InvalidTask> {
    match o.cpu_cfs_period {
        0 => {}
        p if !CFS_PERIODS.contains(&p) => {
            return Err(invalid!(
                "cpu_cfs_period = {p}: give microseconds from 1000 to 1000000 (the default is 100000)"
            ))
        }
        _ if !o.cpu_hard_limit => {
            return Err(
                "cpu_cfs_period is the period of cpu_hard_limit's quota: set cpu_hard_limit = true, or remove cpu_cfs_period".into(),
            )
        }
        p => l.app.cpu_period_us = Some(p as u64),
    }
    if o.cpu_hard_limit {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let millicores = (s.percent_ticks * cores * 1000.0).round() as u64;
        if millicores == 0 {
            return Err("cpu_hard_limit: Nomad gave this task no share of the node's CPU (resources { cpu }) to limit it to".into());
        }
        l.app.cpu_millicores = Some(millicores);
    }
    if !s.cpuset_cpus.is_empty() {
        let set = stage0::spec::CpuSet::parse(&s.cpuset_cpus)
            .map_err(|e| invalid!("the CPUs Nomad reserved (resources {{ cores }}): {e}"))?;
        l.app.cpuset_cpus = Some(set);
    }
    let (limit, reservation) = memory_limits(o.memory_hard_limit, s)?;
    l.app.memory = limit;
    l.app.memory_reservation = reservation;
    Ok(())
}

/// The memory limit and reservation in bytes, as the Docker driver sets them: the task's
/// memory is its limit, unless `memory_hard_limit` (MiB) or Nomad's `memory_max` is higher;
/// then the higher is the limit, and the task's memory what it keeps when the node runs short.
fn memory_limits(hard_limit_mb: i64, s: &Spec) -> Result<(Option<u64>, Option<u64>), InvalidTask> {
    if hard_limit_mb < 0 {
        return Err(invalid!("memory_hard_limit = {hard_limit_mb}: give MiB"));
    }
    let memory = u64::try_from(s.memory_bytes).ok().filter(|m| *m > 0);
    let hard = (hard_limit_mb as u64) << 20;
    let hard = hard.max(u64::try_from(s.memory_max_bytes).unwrap_or(0));
    match memory {
        _ if hard == 0 => Ok((memory, None)),
        Some(m) if m > hard => Err(invalid!(
            "memory_hard_limit = {hard_limit_mb}: less than the task's memory ({} MiB, resources {{ memory }}); give at least that",
            m >> 20
        )),
        _ => Ok((Some(hard), memory)),
    }
}

/// The prefix of the task's volume names (`<alloc>-<task>`), from its first volume.
fn volume_prefix(l: &Launch) -> String {
    l.pod
        .volumes
        .first()
        .and_then(|v| v.name.strip_suffix("-alloc"))
        .unwrap_or("task")
        .to_string()
}

/// `ports = ["http"]`: the group's port of that label, forwarded from its host port to its
/// `to` (or the same number) in the pod, TCP and UDP, on rkt's own networks. In a group
/// network Nomad forwards them itself.
fn ports(o: &Options, s: &Spec, l: &mut Launch) -> Result<(), InvalidTask> {
    if o.ports.is_empty() || s.group_netns.is_some() {
        return Ok(());
    }
    if !l.contained {
        return Err(invalid!(
            "ports = {:?}: the task has no network of its own to forward them to (net = {:?}); leave net out for rkt's default network",
            o.ports, o.net
        ));
    }
    for label in &o.ports {
        let Some((_, value, to)) = s.port_targets.iter().find(|(l, _, _)| l == label) else {
            let known: Vec<&str> = s.port_targets.iter().map(|(l, _, _)| l.as_str()).collect();
            return Err(invalid!(
                "ports: {label:?} is not a port of the group's network (its ports: {}); add port \"{label}\" to the group's network block",
                known.join(", ")
            ));
        };
        let to = if *to == 0 { *value } else { *to };
        for protocol in ["tcp", "udp"] {
            l.pod.ports.push(PortSpec {
                name: format!("{to}-{protocol}"),
                host_ip: None,
                host_port: *value,
            });
        }
    }
    Ok(())
}

/// `labels`, with the `extra_labels` the plugin adds (Nomad's label keys, as the Docker
/// driver's: `com.hashicorp.nomad.<name>`).
fn labels(o: &Options, s: &Spec, plugin: &Plugin, l: &mut Launch) {
    l.pod.user_labels = o.labels.clone();
    l.pod
        .user_labels
        .insert("com.hashicorp.nomad.alloc_id".into(), s.alloc_id.clone());
    for (name, value) in &s.nomad_labels {
        if plugin.extra_labels.iter().any(|p| wildcard(p, name)) {
            l.pod
                .user_labels
                .insert(format!("com.hashicorp.nomad.{name}"), value.clone());
        }
    }
}

/// `pattern` with `*` standing for any run of characters.
fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| wildcard(tail, &name[head.len() + i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("job_name", "job_name"));
        assert!(wildcard("job*", "job_name") && wildcard("job*", "job_id"));
        assert!(wildcard("*name", "node_name") && wildcard("*", "anything"));
        assert!(wildcard("task_*_name", "task_group_name"));
        assert!(!wildcard("job*", "task_name") && !wildcard("job_name", "job_names"));
    }

    #[test]
    fn extra_hosts_take_both_families() {
        assert_eq!(
            extra_host("db:10.0.0.5").unwrap(),
            HostsEntry::Name {
                ip: "10.0.0.5".parse().unwrap(),
                hostname: "db".into()
            }
        );
        assert!(
            matches!(extra_host("db6:fd00::5").unwrap(), HostsEntry::Name { ip, .. } if ip.is_ipv6())
        );
        for bad in ["db", "db:nope", ":10.0.0.1"] {
            assert!(extra_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_limits_as_the_docker_driver_sets_them() {
        let spec = |memory_mb: i64, max_mb: i64| Spec {
            memory_bytes: memory_mb << 20,
            memory_max_bytes: max_mb << 20,
            ..Default::default()
        };
        const MIB: u64 = 1 << 20;
        // The task's memory alone is its limit.
        assert_eq!(memory_limits(0, &spec(64, 0)), Ok((Some(64 * MIB), None)));
        // A higher memory_max or memory_hard_limit is the limit, the memory a reservation.
        assert_eq!(
            memory_limits(0, &spec(64, 256)),
            Ok((Some(256 * MIB), Some(64 * MIB)))
        );
        assert_eq!(
            memory_limits(128, &spec(64, 0)),
            Ok((Some(128 * MIB), Some(64 * MIB)))
        );
        // The higher of the two wins.
        assert_eq!(
            memory_limits(512, &spec(64, 256)),
            Ok((Some(512 * MIB), Some(64 * MIB)))
        );
        assert_eq!(memory_limits(0, &spec(0, 0)), Ok((None, None)));
        for (hard, memory) in [(-1, 64), (32, 64)] {
            let e = memory_limits(hard, &spec(memory, 0)).unwrap_err();
            assert!(e.to_string().contains("memory_hard_limit"), "{e}");
        }
    }
}
