//! `rkt-stage1`: the per-pod supervisor.
//!
//! `rkt run` and `rkt run-prepared` prepare a pod directory and then `exec` this program with
//! the pod directory as its argument and the pod lock as file descriptor `RKT_LOCK_FD`; exec
//! keeps the PID, so the process that started the pod becomes its supervisor and holds the
//! lock for the pod's life (a free lock means the pod exited).
//!
//! Process tree:
//!
//! ```text
//! supervisor (host namespaces; holds the lock, owns the cgroup, forwards signals, exits with
//!  |          the app's status)
//!  └─ pod init (PID 1 of new mount/PID/UTS/IPC[/net] namespaces; pivot_root into the app's
//!      |         root, forwards signals, reaps, records the exit status)
//!      └─ app
//! ```
//!
//! The plan comes from `<pod>/stage1/plan`, written by stage0: `key=value` records separated
//! by NUL bytes, so that arguments may hold any byte but NUL. No JSON and no allocation-heavy
//! dependencies here: this process stays resident for the pod's life.

mod caps;
mod cgroup;
mod devices;
mod enter;
mod error;
mod fly;
mod inroot;
mod mounts;
mod sys;
mod tty;
mod userns;

use error::{Error, Result};
use layout::plan::{AppPlan, Net, Plan};
use layout::pod_dir::{Marker, PodDir};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Signals forwarded from the supervisor to the pod, and from the pod init to the app.
pub(crate) const FORWARDED: [libc::c_int; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        // rkt enter: rkt-stage1 enter POD_DIR APP CMD [ARGS…]
        Some("enter") if args.len() >= 5 => enter::run(Path::new(&args[2]), &args[3], &args[4..]),
        Some(pod) if args.len() == 2 => supervise(&PathBuf::from(pod)),
        _ => Err(Error::msg(
            "usage: rkt-stage1 POD_DIR | rkt-stage1 enter POD_DIR APP CMD [ARGS…]",
        )),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("stage1: {e}");
            std::process::exit(254);
        }
    }
}

fn supervise(pod: &Path) -> Result<i32> {
    let dir = PodDir::new(pod);
    let plan = Plan::load(&dir.plan())?;
    let status_dir = dir.status_dir();
    std::fs::create_dir_all(&status_dir).map_err(|e| Error::at("creating", &status_dir, e))?;
    write_file(&dir.ppid(), &std::process::id().to_string())?;
    if plan.fly {
        return fly::supervise(pod, &plan, &status_dir);
    }
    let mut cgroups = cgroup::Cgroups::create(&plan)?;
    shield_from_oom_killer();
    // Block the signals we forward, so that they queue for sigwaitinfo instead of killing us.
    let mask = sys::block_signals(&FORWARDED)?;

    // A contained pod joins the namespace stage0 attached to its networks; opened here,
    // while the host's /run is in view.
    let netns = plan
        .netns
        .as_deref()
        .map(|p| sys::open_path(Path::new(p)))
        .transpose()?;
    // On v1 the init moves itself in (see cgroup::join_self); on v2 it is born in its leaf.
    let cgroup_files = cgroups.init_member_fds()?;
    let flags = libc::CLONE_NEWNS
        | if plan.host_pid { 0 } else { libc::CLONE_NEWPID }
        | libc::CLONE_NEWUTS
        | if plan.host_ipc { 0 } else { libc::CLONE_NEWIPC }
        | if plan.net == Net::None {
            libc::CLONE_NEWNET
        } else {
            0
        };
    // SAFETY: stage1 is single-threaded (it never starts a thread).
    let child = unsafe { sys::clone_process(flags) }?;
    if child == 0 {
        // Pod init: into the pod's cgroups and network first, so that all it starts is
        // limited and networked.
        let code = match cgroup::join_self(cgroup_files)
            .and_then(|()| join_network(&plan, netns))
            .and_then(|()| pod_init(pod, &plan, &status_dir, &mask, &cgroups))
        {
            Ok(code) => code,
            Err(e) => {
                eprintln!("stage1: {e}");
                254
            }
        };
        std::process::exit(code);
    }
    drop(cgroup_files);
    write_file(&dir.pid(), &child.to_string())?;
    sys::drop_startup_pages();
    let code = forward_until_exit(child, &mask);
    if plan.host_pid {
        cgroups.kill_members();
    }
    mark_oom_killed(&dir, &plan, &cgroups);
    cgroups.leave();
    if let Some(rkt) = &plan.net_teardown {
        // CNI DEL and the forwarded ports belong to the host side: undone before the pod
        // lock is released, so that whoever takes it next finds the network gone.
        let done = std::process::Command::new(rkt)
            .arg("net-teardown")
            .arg(pod)
            .status();
        if !done.is_ok_and(|s| s.success()) {
            eprintln!("stage1: undoing the pod's network failed; rkt rm or rkt gc will retry");
        }
    }
    drop(cgroups);
    Ok(code)
}

/// The `oom_score_adj` stage1 was started with, which the apps get back unless their own
/// isolator says otherwise (set before the pod's init is cloned, so the init and the apps it
/// forks see it).
static CALLERS_OOM_SCORE_ADJ: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// The supervisor and the pod's init live inside the pod's memory limit (on v2 the init has a
/// leaf of the pod's cgroup). When an app outgrows it, the kernel may pick either of them next,
/// and then the pod is gone and the OOM kill goes unreported (seen under TCG on a v2 guest).
/// They are tiny and the kernel must never choose them; the apps get the caller's value back
/// in exec_as_app. Best effort: without CAP_SYS_RESOURCE nothing changes.
fn shield_from_oom_killer() {
    let Some(caller) = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    if std::fs::write("/proc/self/oom_score_adj", "-1000").is_ok() {
        let _ = CALLERS_OOM_SCORE_ADJ.set(caller);
    }
}

/// For status: the apps the kernel's OOM killer killed for outgrowing a memory limit. Where
/// each app has a cgroup of its own (v2) its own count says; elsewhere, with the pod's count
/// above zero, a single app, or those of several that died of SIGKILL.
fn mark_oom_killed(dir: &PodDir, plan: &Plan, cgroups: &cgroup::Cgroups) {
    let pod_oom = cgroups.oom_killed();
    for (i, app) in plan.apps.iter().enumerate() {
        let killed = cgroups.app_oom_killed(i).unwrap_or_else(|| {
            let sigkill =
                std::fs::read_to_string(dir.app_status(&app.name)).is_ok_and(|c| c.trim() == "137");
            pod_oom && (plan.apps.len() == 1 || sigkill)
        });
        if killed {
            let _ = std::fs::write(dir.app_marker(&app.name, Marker::OomKilled), b"");
        }
    }
}

/// Puts the pod init into its network namespace (when contained) and brings up loopback
/// (unless the pod shares the host's network).
fn join_network(plan: &Plan, netns: Option<OwnedFd>) -> Result<()> {
    if let Some(fd) = netns {
        sys::setns(fd, rustix::thread::LinkNameSpaceType::Network)
            .map_err(|e| e.context("joining the pod's network namespace"))?;
    }
    if plan.net != Net::Host {
        sys::loopback_up()?;
    }
    Ok(())
}

/// Forwards queued signals to `child` until it exits; returns its exit code the way a shell
/// reports it (128 + signal when killed).
pub(crate) fn forward_until_exit(child: libc::pid_t, mask: &libc::sigset_t) -> i32 {
    loop {
        if let Some(code) = sys::try_wait(child) {
            return code;
        }
        if let Some(sig) = sys::wait_signal(mask, 100) {
            sys::kill(child, sig);
        }
    }
}

/// PID 1 of the pod: builds the root filesystem, starts the apps, forwards signals to them,
/// reaps everything, and records each app's exit status. When an app fails, the others are
/// stopped and the pod exits with the failed app's status, as rkt's pods did.
fn pod_init(
    pod: &Path,
    plan: &Plan,
    status_dir: &Path,
    mask: &libc::sigset_t,
    cgroups: &cgroup::Cgroups,
) -> Result<i32> {
    let status = sys::open_dir(status_dir)?;
    if plan.host_pid {
        // Not PID 1 of a namespace: orphans of the apps would go to the host's init.
        // They come here instead, to be reaped, and `stop` kills the pod's cgroups whole.
        sys::become_subreaper()?;
    }
    // The pod lock stays with the supervisor and this init, never with the apps.
    if let Some(fd) = std::env::var("RKT_LOCK_FD")
        .ok()
        .and_then(|f| f.parse().ok())
    {
        sys::set_cloexec(fd);
    }
    // Each app's own cgroups, opened while the host's /sys/fs/cgroup is still in view.
    let mut app_cgroups: Vec<Vec<OwnedFd>> = (0..plan.apps.len())
        .map(|i| {
            cgroups
                .app_procs(i)
                .iter()
                .map(|p| sys::open_write(p))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    sys::sethostname(&plan.hostname)?;
    set_sysctls(&plan.sysctls)?;
    let root = mounts::build_root(pod, plan)?;
    mounts::enter_root(&root)?;
    // --private-users: the apps' user namespace, held by a process of the init's own.
    let _holder = match plan.private_users {
        Some((shift, count)) => {
            let proc = match plan.apps.as_slice() {
                [_] => "/proc".to_string(),
                apps => format!("{}/proc", layout::pod_dir::app_root_in_pod(&apps[0].name)),
            };
            Some(userns::Holder::start(shift, count, &proc)?)
        }
        None => None,
    };
    let chroot = plan.apps.len() > 1;
    let mut running: Vec<(usize, libc::pid_t)> = Vec::new();
    for (i, app) in plan.apps.iter().enumerate() {
        sys::reserve_status_at(status.as_fd(), &app.name)?;
        sys::touch_at(status.as_fd(), &Marker::Created.file_name(&app.name))?;
        // SAFETY: stage1 is single-threaded.
        let pid = unsafe { sys::fork() }?;
        if pid == 0 {
            if let Err(e) = cgroup::join_self(std::mem::take(&mut app_cgroups[i])) {
                eprintln!("stage1: app {:?}: {e}", app.name);
                std::process::exit(254);
            }
            let err = match sys::unblock_signals(mask)
                .and_then(|()| stdin_unless_interactive(plan.interactive, app, chroot))
            {
                Ok(()) => exec_as_app(app, &app.exec, chroot),
                Err(e) => e,
            };
            eprintln!("stage1: app {:?}: {err}", app.name);
            std::process::exit(254);
        }
        sys::touch_at(status.as_fd(), &Marker::Started.file_name(&app.name))?;
        running.push((i, pid));
    }
    sys::drop_startup_pages();
    let mut failed: Option<i32> = None;
    let mut kill_at: Option<std::time::Instant> = None;
    while !running.is_empty() {
        if let Some((pid, code)) = sys::wait_any() {
            if let Some(pos) = running.iter().position(|(_, p)| *p == pid) {
                let (i, _) = running.remove(pos);
                sys::commit_status_at(status.as_fd(), &plan.apps[i].name, &code.to_string())?;
                if code != 0 && failed.is_none() {
                    failed = Some(code);
                    for (_, p) in &running {
                        sys::kill(*p, libc::SIGTERM);
                    }
                    kill_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(10));
                }
            }
            continue;
        }
        if kill_at.is_some_and(|t| std::time::Instant::now() >= t) {
            for (_, p) in &running {
                sys::kill(*p, libc::SIGKILL);
            }
        }
        if let Some(sig) = sys::wait_signal(mask, 100) {
            for (_, p) in &running {
                sys::kill(*p, sig);
            }
        }
    }
    // Reap whatever else is left (orphans re-parented to us) without blocking.
    while sys::reap_any() {}
    Ok(failed.unwrap_or(0))
}

/// `--sysctl`s, written from the pod's init: it is in the pod's network and IPC namespaces
/// already, and the kernel applies a write to those parameters to the writer's namespaces
/// (stage0 let through only parameters of namespaces the pod has of its own).
fn set_sysctls(sysctls: &[(String, String)]) -> Result<()> {
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| Error::os(format!("sysctl {key}={value}"), e))?;
    }
    Ok(())
}

/// Without `--interactive` an app reads nothing from whoever started the pod: its stdin is
/// the pod's /dev/null, as rkt's apps' was. With it, the app keeps the caller's stdin (and
/// terminal).
fn stdin_unless_interactive(interactive: bool, app: &AppPlan, chroot: bool) -> Result<()> {
    if interactive {
        return Ok(());
    }
    // Before the app is confined to its own root (in a pod of several apps), its /dev is below.
    let null = if chroot {
        format!("{}/dev/null", layout::pod_dir::app_root_in_pod(&app.name))
    } else {
        "/dev/null".to_string()
    };
    let null = std::fs::File::open(&null).map_err(|e| Error::at("opening", &null, e))?;
    rustix::stdio::dup2_stdin(&null).map_err(|e| Error::os("stdin from /dev/null", e))
}

/// Applies the app's capability bound and set, user, groups, no_new_privs and working
/// directory, then execs `argv` with the app's environment. Used for the app itself and for
/// `rkt enter`, so that an entered process is confined exactly like the app.
fn exec_as_app(plan: &AppPlan, argv: &[String], chroot: bool) -> Error {
    if chroot {
        if let Err(e) = sys::confine_to(&layout::pod_dir::app_root_in_pod(&plan.name)) {
            return e;
        }
    }
    if let Some(adj) = plan.oom_score_adj.or(CALLERS_OOM_SCORE_ADJ.get().copied()) {
        // Before capabilities go: lowering it needs CAP_SYS_RESOURCE.
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
            return Error::os("oom_score_adj", e);
        }
    }
    // Also before capabilities go: raising a hard limit needs CAP_SYS_RESOURCE.
    for r in &plan.rlimits {
        if let Err(e) = sys::setrlimit(&r.name, r.soft, r.hard) {
            return e;
        }
    }
    // Into the pod's user namespace (--private-users), after what only the host's root may
    // do and before the app's own IDs and capabilities are set.
    if let Err(e) = userns::join() {
        return e;
    }
    if let Some(keep) = &plan.caps {
        if let Err(e) = caps::limit_bounding_set(keep) {
            return e;
        }
    }
    if let Err(e) = sys::set_ids(plan.uid, plan.gid, &plan.supplementary_gids) {
        return e;
    }
    if let (Some(keep), 0) = (&plan.caps, plan.uid) {
        if let Err(e) = caps::set_process_caps(keep) {
            return e;
        }
    }
    // As rkt did: a non-root app under seccomp always gets no_new_privs (the kernel needs it
    // to accept the filter from an unprivileged process).
    if plan.no_new_privs || (plan.seccomp.is_some() && plan.uid != 0) {
        if let Err(e) = caps::set_no_new_privs() {
            return e;
        }
    }
    if let Err(e) = std::env::set_current_dir(&plan.workdir) {
        return Error::os(format!("working directory {:?}", plan.workdir), e);
    }
    let Some(prog) = resolve(&argv[0], &plan.env) else {
        return Error::msg(format!("executable {:?} not found in the image", argv[0]));
    };
    let argv: Vec<CString> = argv.iter().map(|a| cstr(a)).collect();
    let envp: Vec<CString> = plan.env.iter().map(|a| cstr(a)).collect();
    if let Err(e) = sys::cloexec_all_but_stdio() {
        return e;
    }
    // Last, so that nothing stage1 still does is filtered; execve itself is on every list.
    if let Some(s) = &plan.seccomp {
        // Namespaces stay closed to an app without CAP_SYS_ADMIN (see install_seccomp).
        let no_namespaces = plan
            .caps
            .as_ref()
            .is_some_and(|c| !c.contains(&caps::CAP_SYS_ADMIN));
        if let Err(e) = caps::install_seccomp(&s.allowed, s.errno, no_namespaces) {
            return e;
        }
    }
    sys::execve(&cstr(&prog), &argv, &envp)
}

/// Looks `name` up in the app's PATH unless it already names a path.
fn resolve(name: &str, env: &[String]) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|d| format!("{d}/{name}"))
        .find(|p| sys::is_executable(p))
}

fn cstr(s: &str) -> CString {
    CString::new(s.as_bytes()).unwrap_or_else(|_| CString::new("?").unwrap())
}

fn write_file(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content).map_err(|e| Error::at("writing", path, e))
}
