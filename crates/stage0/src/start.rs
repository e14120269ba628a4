//! Starting pods: `run` (prepare, then run at once), `prepare` and `run-prepared`.
//!
//! Contained networks are built by the `net` crate before the pod moves to `run/`; the
//! supervisor tears them down when the pod exits (by running `rkt net-teardown`). Running
//! ends in `exec` of `rkt-stage1`, which keeps the PID and the pod lock and becomes the pod's
//! supervisor, so the functions that run a pod return only on failure.

use crate::error::{bail, invalid, Context, Error, Result};
use crate::prepare::{discard, prepare_pod, save_uuid};
use crate::spec::{AppSpec, HostsEntry, Ipc, Pid, PodSpec, RuntimeSpec};
use crate::Config;
use layout::plan::{Net, Plan};
use layout::pod_dir::PodDir;
use pod::{PodLock, Pods, State};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// `rkt run`: prepares the pod and runs it in this process, which becomes its supervisor.
/// Returns only on failure, having removed what it made.
pub fn run(config: &Config, pod_spec: &PodSpec, apps: &[AppSpec]) -> Error {
    match run_inner(config, pod_spec, apps) {
        Ok(e) | Err(e) => e,
    }
}

fn run_inner(config: &Config, pod_spec: &PodSpec, apps: &[AppSpec]) -> Result<Error> {
    let stage1 = stage1_path(config)?;
    let pods = Pods::open(&config.dir)?;
    let (mut pod, lock) = pods.create()?;
    let result = prepare_pod(config, &pod.path, pod_spec, apps)
        .and_then(|()| write_runtime(config, &pod.path, &pod.uuid, &pod_spec.runtime));
    if let Err(e) = result {
        discard(&pod.path);
        return Err(e);
    }
    let started = save_uuid(pod_spec, &pod.uuid)
        .and_then(|()| Ok(pods.transition(&mut pod, State::Running)?));
    let err = match started {
        Ok(()) => {
            let ready = Ready {
                uuid: pod.uuid.clone(),
                dir: pod.path.clone(),
                stage1,
                lock,
            };
            let err = ready.command().exec();
            Error::failed(format!(
                "starting the stage1 supervisor {}: {err}",
                ready.stage1.display()
            ))
        }
        Err(e) => e,
    };
    let _ = net::teardown(&pod.uuid, &pod.path);
    discard(&pod.path);
    Ok(err)
}

/// `rkt prepare`: fetches the images and prepares the pod; returns its UUID.
pub fn prepare(config: &Config, pod_spec: &PodSpec, apps: &[AppSpec]) -> Result<String> {
    let rt = &pod_spec.runtime;
    if !rt.net.is_empty()
        || !rt.dns.is_empty()
        || rt.hostname.is_some()
        || rt.interactive
        || rt.ipc != Ipc::Private
        || rt.pid != Pid::Private
        || !rt.sysctls.is_empty()
        || rt.shm_size.is_some()
        || rt.mds_register
        || rt.cgroup_parent.is_some()
    {
        bail!("--net, --dns, --hostname, --interactive, --ipc, --pid, --sysctl, --shm-size, --mds-register and --cgroup-parent are flags of run-prepared, not of prepare");
    }
    let pods = Pods::open(&config.dir)?;
    let (mut pod, lock) = pods.create()?;
    if let Err(e) = prepare_pod(config, &pod.path, pod_spec, apps) {
        discard(&pod.path);
        return Err(e);
    }
    save_uuid(pod_spec, &pod.uuid)?;
    pods.transition(&mut pod, State::Prepared)?;
    drop(lock);
    Ok(pod.uuid)
}

/// `rkt run-prepared`: runs a prepared pod in this process, which becomes its supervisor.
/// Returns only on failure; refused runtime flags leave the pod prepared.
pub fn run_prepared(config: &Config, uuid: &str, runtime: &RuntimeSpec) -> Error {
    let ready = match ready_prepared(config, uuid, runtime) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let err = ready.command().exec();
    let err = Error::failed(format!(
        "starting the stage1 supervisor {}: {err}",
        ready.stage1.display()
    ));
    ready.abandon();
    err
}

/// A pod that is ready for its supervisor: its network, /etc files and plan are in place and
/// it is in `run/`, its lock held here until [`Ready::command`]'s process takes it over (drop
/// the `Ready` once that process has started: the supervisor's copy of the lock stays).
pub struct Ready {
    pub uuid: String,
    pub dir: PathBuf,
    stage1: PathBuf,
    lock: PodLock,
}

impl Ready {
    /// `rkt-stage1 POD_DIR`, which inherits the pod lock (as `RKT_LOCK_FD`) and holds it for
    /// the pod's life. Exec it (as `rkt run-prepared` does) or spawn it (as the Nomad driver
    /// does): only that process gets the lock, never a process another thread starts
    /// meanwhile, since the descriptor stays close-on-exec everywhere else.
    pub fn command(&self) -> std::process::Command {
        let fd = self.lock.raw_fd();
        let mut c = std::process::Command::new(&self.stage1);
        c.arg(&self.dir).env("RKT_LOCK_FD", fd.to_string());
        // SAFETY: fcntl is async-signal-safe, and the descriptor is open in the child (it is
        // ours, and close-on-exec only until this clears it in the child's own table).
        unsafe {
            c.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    /// The supervisor could not be started: the pod stays in `run/` with no supervisor, so
    /// it shows as exited; its network is undone now.
    pub fn abandon(self) {
        let _ = net::teardown(&self.uuid, &self.dir);
    }
}

/// Everything `run-prepared` does before the supervisor starts: the runtime flags checked
/// and written (network, /etc files, plan) and the pod moved to `run/`. Refused runtime
/// flags leave the pod prepared.
pub fn ready_prepared(config: &Config, uuid: &str, runtime: &RuntimeSpec) -> Result<Ready> {
    let pods = Pods::open(&config.dir)?;
    let mut pod = pods.find(uuid)?;
    if pod.state != State::Prepared {
        return Err(Error::conflict(format!(
            "pod {} is not prepared (it is {})",
            pod.uuid,
            pod.state.as_str()
        )));
    }
    let lock = lock_prepared(&pod)?;
    let stage1 = stage1_path(config)?;
    // Refused runtime flags leave the pod prepared, as it was.
    write_runtime(config, &pod.path, &pod.uuid, runtime)?;
    if let Err(e) = pods.transition(&mut pod, State::Running) {
        let _ = net::teardown(&pod.uuid, &pod.path);
        return Err(e.into());
    }
    Ok(Ready {
        uuid: pod.uuid,
        dir: pod.path,
        stage1,
        lock,
    })
}

/// Writes the runtime parts (the network, hostname, DNS, hosts, the plan for stage1).
/// Everything that can be refused is refused here, before the pod moves to `run/`; on failure
/// the pod's network is undone.
fn write_runtime(config: &Config, dir: &Path, uuid: &str, rt: &RuntimeSpec) -> Result<()> {
    stage1_path(config)?;
    let pod_dir = PodDir::new(dir);
    let mut plan = Plan::load(&pod_dir.prepared()).context("reading the prepared pod")?;
    if rt.interactive && plan.apps.len() > 1 {
        bail!(
            "--interactive gives one app your terminal, and this pod has {} apps; run one image",
            plan.apps.len()
        );
    }
    let ports: Vec<net::Forward> = serde_json::from_slice(
        &std::fs::read(pod_dir.ports()).context("reading the prepared pod's ports")?,
    )?;
    let fly = crate::fly::is_fly(&pod_dir);
    if fly {
        crate::fly::check_runtime(rt, ports.len())?;
    }
    let mode = match &rt.net_namespace {
        _ if fly => net::NetMode::Host,
        Some(ns) => joined_namespace(ns, rt)?,
        None => net::conf::parse_mode(&rt.net)?,
    };
    if rt.mds_register && matches!(mode, net::NetMode::None | net::NetMode::Joined(_)) {
        bail!("--mds-register needs the pod to reach the host's metadata service: use --net=host, default, default-restricted or another network of net.d (not --net=none or --net-namespace)");
    }
    let hostname = rt.hostname.clone().unwrap_or_else(|| format!("rkt-{uuid}"));
    // Flags are checked before any network is made.
    let cgroup_parent = layout::cgroup::check_parent(
        rt.cgroup_parent
            .as_deref()
            .unwrap_or(layout::cgroup::DEFAULT_PARENT),
    )
    .map_err(Error::invalid)?;
    let hosts = hosts_file(&rt.hosts_entries, &hostname)?;
    let dns = dns_flags(rt)?;
    let networked = match &mode {
        net::NetMode::Contained(requests) => {
            let confs = net::conf::load(&config.config_dirs(), requests)?;
            Some(net::setup(uuid, dir, &confs, &ports)?)
        }
        _ if !ports.is_empty() => bail!(
            "--port needs a contained network (--net=default or a network from net.d); with --net=host, --net=none or --net-namespace there is nothing for rkt to forward to"
        ),
        _ => None,
    };
    plan.hostname = hostname;
    // Fly's app has no cgroups and the host's IPC namespace, as in rkt. Otherwise the path
    // is recorded in the plan: enter, rm, gc and the Nomad driver read it back from there.
    plan.cgroup = if fly {
        String::new()
    } else {
        layout::cgroup::pod_rel(&cgroup_parent, uuid)
    };
    plan.interactive = rt.interactive;
    plan.host_ipc = fly || rt.ipc == Ipc::Parent;
    plan.host_pid = rt.pid == Pid::Host;
    plan.sysctls = sysctls(rt, &mode)?;
    plan.shm_size = rt.shm_size;
    plan.fly = fly;
    plan.private_users = crate::userns::read(&pod_dir);
    let written = set_network(config, &mut plan, uuid, &mode)
        .and_then(|()| metadata(config, &mut plan, dir, uuid, rt, networked.as_ref()))
        .and_then(|()| write_pod_files(&pod_dir, &plan, &hosts, dns, &mode, networked.as_ref()));
    if written.is_err() {
        let _ = net::teardown(uuid, dir);
        crate::mds::unregister(dir, uuid);
    }
    written
}

/// `--mds-register`: the pod registered with the metadata service, and its apps told where
/// it is (`AC_METADATA_URL`): on the host's loopback with the host's network, at the
/// network's gateway otherwise.
fn metadata(
    config: &Config,
    plan: &mut Plan,
    dir: &Path,
    uuid: &str,
    rt: &RuntimeSpec,
    networked: Option<&net::Networked>,
) -> Result<()> {
    if !rt.mds_register {
        return Ok(());
    }
    let host = match (plan.net, networked) {
        (layout::plan::Net::Host, _) => std::net::Ipv4Addr::LOCALHOST,
        (_, Some(n)) => n.host_ip.ok_or_else(|| {
            invalid!("--mds-register: the pod's network has no gateway through which the pod reaches the host's metadata service; use a network with one (such as default)")
        })?,
        _ => bail!("--mds-register: the pod has no network to reach the metadata service"),
    };
    let url = crate::mds::register(config, dir, uuid, host)?;
    for app in &mut plan.apps {
        app.env.retain(|e| !e.starts_with("AC_METADATA_URL="));
        app.env.push(format!("AC_METADATA_URL={url}"));
    }
    Ok(())
}

/// The lock of a prepared pod, waiting a moment for a holder that is about to let go: the
/// `prepare` that made it may have just finished in another thread of the same process (the
/// Nomad plugin prepares on threads), and a child that process forked meanwhile holds a
/// copy of the lock's descriptor until it execs. A pod still locked after that is busy.
fn lock_prepared(pod: &pod::Pod) -> Result<PodLock> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if let Some(lock) = pod::try_lock_dir(&pod.path)? {
            return Ok(lock);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::conflict(format!(
                "pod {} is locked by another rkt",
                pod.uuid
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `--sysctl`s, each a parameter of a namespace the pod has of its own: `net.*` needs a
/// network namespace that is not the host's, the IPC ones an IPC namespace that is not.
/// Anything else would change the host for everyone, and is refused by name.
fn sysctls(rt: &RuntimeSpec, mode: &net::NetMode) -> Result<Vec<(String, String)>> {
    for (key, value) in &rt.sysctls {
        let ipc = key == "kernel.sem"
            || key.starts_with("kernel.shm")
            || key.starts_with("kernel.msg")
            || key.starts_with("fs.mqueue.");
        let net = key.starts_with("net.");
        if !ipc && !net {
            bail!("sysctl {key}: not a parameter of the pod's own namespaces, so it would change the host; only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* may be set");
        }
        if net && matches!(mode, net::NetMode::Host) {
            bail!("sysctl {key}: the pod shares the host's network (--net=host), so it would change the host's; give the pod a network of its own");
        }
        if ipc && rt.ipc == Ipc::Parent {
            bail!("sysctl {key}: the pod shares the host's IPC namespace (--ipc=parent), so it would change the host's");
        }
        let bad_path = key
            .split('.')
            .any(|c| c.is_empty() || c == ".." || c.contains('/'));
        if bad_path || value.contains('\n') {
            bail!("sysctl {key}={value:?}: not a parameter name and a one-line value");
        }
    }
    Ok(rt.sysctls.clone())
}

/// The plan's network: which namespace the pod init joins, and who undoes it.
fn set_network(config: &Config, plan: &mut Plan, uuid: &str, mode: &net::NetMode) -> Result<()> {
    (plan.net, plan.netns, plan.net_teardown) = match mode {
        net::NetMode::Host => (Net::Host, None, None),
        net::NetMode::None => (Net::None, None, None),
        net::NetMode::Joined(ns) => (Net::Contained, Some(ns.display().to_string()), None),
        net::NetMode::Contained(_) => {
            let rkt = config.rkt_binary()?;
            (
                Net::Contained,
                Some(net::netns::path_for(uuid).display().to_string()),
                Some(rkt.display().to_string()),
            )
        }
    };
    Ok(())
}

/// The pod's /etc files and the plan stage1 runs.
fn write_pod_files(
    pod: &PodDir,
    plan: &Plan,
    hosts: &str,
    dns: DnsFlags,
    mode: &net::NetMode,
    networked: Option<&net::Networked>,
) -> Result<()> {
    let etc = pod.etc();
    std::fs::create_dir_all(&etc)?;
    std::fs::write(etc.join("hostname"), format!("{}\n", plan.hostname))?;
    std::fs::write(etc.join("hosts"), hosts)?;
    if let Some(resolv) = resolv_conf(dns, mode, networked.map(|n| &n.dns)) {
        std::fs::write(etc.join("resolv.conf"), resolv)?;
    }
    std::fs::write(pod.plan(), plan.encode()?)?;
    Ok(())
}

/// `--net-namespace=PATH`: an existing network namespace, alone.
fn joined_namespace(ns: &Path, rt: &RuntimeSpec) -> Result<net::NetMode> {
    if !rt.net.is_empty() {
        bail!(
            "--net-namespace joins an existing network namespace; it cannot be combined with --net"
        );
    }
    if !ns.exists() {
        bail!("network namespace {} does not exist", ns.display());
    }
    Ok(net::NetMode::Joined(ns.to_path_buf()))
}

/// `rkt-stage1` beside the `rkt` binary.
pub fn stage1_path(config: &Config) -> Result<PathBuf> {
    let p = config.rkt_binary()?.with_file_name("rkt-stage1");
    if !p.exists() {
        return Err(Error::not_found(format!(
            "stage1 supervisor not found at {}; install rkt-stage1 beside rkt",
            p.display()
        )));
    }
    Ok(p)
}

fn hosts_file(entries: &[HostsEntry], hostname: &str) -> Result<String> {
    if entries.contains(&HostsEntry::Host) {
        return std::fs::read_to_string("/etc/hosts").context("reading the host's /etc/hosts");
    }
    let mut out = format!("127.0.0.1\tlocalhost localhost.localdomain {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for e in entries {
        if let HostsEntry::Name { ip, hostname } = e {
            if hostname.is_empty() || hostname.contains(|c: char| c.is_whitespace() || c == '#') {
                bail!("hosts entry {hostname:?} for {ip}: a host name may not be empty or hold spaces or '#'");
            }
            out.push_str(&format!("{ip}\t{hostname}\n"));
        }
    }
    Ok(out)
}

/// What the DNS flags ask for.
enum DnsFlags {
    /// No DNS flag: the network's DNS (the host's with --net=host), else the image's file.
    Unset,
    /// --dns=host: the host's resolv.conf.
    Host,
    /// --dns=none: the image's own file stays.
    None,
    /// The resolv.conf the flags spell out.
    Given(String),
}

/// Checks --dns, --dns-search, --dns-opt and --dns-domain.
fn dns_flags(rt: &RuntimeSpec) -> Result<DnsFlags> {
    let special = rt.dns.iter().any(|d| d == "host" || d == "none");
    if special && rt.dns.len() > 1 {
        bail!("--dns=host and --dns=none must be used alone");
    }
    match rt.dns.first().map(String::as_str) {
        Some("host") => return Ok(DnsFlags::Host),
        Some("none") => return Ok(DnsFlags::None),
        None if rt.dns_search.is_empty() && rt.dns_opt.is_empty() && rt.dns_domain.is_none() => {
            return Ok(DnsFlags::Unset);
        }
        _ => {}
    }
    let mut out = String::new();
    for ip in &rt.dns {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| invalid!("invalid --dns {ip:?}: not an IP address (or host, none)"))?;
        out.push_str(&format!("nameserver {ip}\n"));
    }
    if let Some(d) = &rt.dns_domain {
        out.push_str(&format!("domain {d}\n"));
    }
    if !rt.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", rt.dns_search.join(" ")));
    }
    if !rt.dns_opt.is_empty() {
        out.push_str(&format!("options {}\n", rt.dns_opt.join(" ")));
    }
    Ok(DnsFlags::Given(out))
}

/// The pod's resolv.conf by rkt's precedence: the flags, then the DNS a CNI plugin returned,
/// then (with --net=host) the host's; None keeps the image's own file.
fn resolv_conf(flags: DnsFlags, mode: &net::NetMode, cni: Option<&net::Dns>) -> Option<String> {
    let host = || std::fs::read_to_string("/etc/resolv.conf").ok();
    match flags {
        DnsFlags::Given(text) => Some(text),
        DnsFlags::Host => host(),
        DnsFlags::None => None,
        DnsFlags::Unset => match (mode, cni) {
            // A namespace someone else made comes without DNS of its own: the host's.
            (net::NetMode::Host | net::NetMode::Joined(_), _) => host(),
            (_, Some(d)) if !d.is_empty() => Some(cni_resolv_conf(d)),
            _ => None,
        },
    }
}

fn cni_resolv_conf(d: &net::Dns) -> String {
    let mut out = String::new();
    for ns in &d.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !d.domain.is_empty() {
        out.push_str(&format!("domain {}\n", d.domain));
    }
    if !d.search.is_empty() {
        out.push_str(&format!("search {}\n", d.search.join(" ")));
    }
    if !d.options.is_empty() {
        out.push_str(&format!("options {}\n", d.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_and_hosts() {
        let rt = RuntimeSpec {
            dns: vec!["8.8.8.8".into()],
            dns_search: vec!["a.b".into()],
            ..Default::default()
        };
        let none = net::NetMode::None;
        let resolv = |rt: &RuntimeSpec, cni: Option<&net::Dns>| {
            resolv_conf(dns_flags(rt).unwrap(), &none, cni)
        };
        assert_eq!(
            resolv(&rt, None).unwrap(),
            "nameserver 8.8.8.8\nsearch a.b\n"
        );
        let cni = net::Dns {
            nameservers: vec!["10.0.0.53".into()],
            search: vec!["svc.local".into()],
            ..Default::default()
        };
        // Flags win over what the network suggests; with no flag the network's DNS is used.
        assert_eq!(
            resolv(&rt, Some(&cni)).unwrap(),
            "nameserver 8.8.8.8\nsearch a.b\n"
        );
        let unset = RuntimeSpec::default();
        assert_eq!(
            resolv(&unset, Some(&cni)).unwrap(),
            "nameserver 10.0.0.53\nsearch svc.local\n"
        );
        let dns_none = RuntimeSpec {
            dns: vec!["none".into()],
            ..Default::default()
        };
        assert_eq!(resolv(&dns_none, Some(&cni)), None);
        let rt = RuntimeSpec {
            dns: vec!["nope".into()],
            ..Default::default()
        };
        assert!(dns_flags(&rt).is_err());
        let entry = |ip: &str, name: &str| HostsEntry::Name {
            ip: ip.parse().unwrap(),
            hostname: name.into(),
        };
        let h = hosts_file(&[entry("10.0.0.1", "db")], "rkt-x").unwrap();
        assert!(h.contains("10.0.0.1\tdb\n") && h.contains("rkt-x"));
        assert!(hosts_file(&[entry("10.0.0.1", "a b")], "h").is_err());
    }
}
