//! `rkt enter`: runs a command inside a running pod, confined exactly like its app: the pod's
//! namespaces (mount, PID, UTS, IPC, network), its cgroups, the app's capability bound and
//! set, user, groups, no_new_privs and seccomp filter. rkt's own `enter` gave entered processes every
//! capability, no seccomp filter and the host's cgroups (CVE-2019-10144, -10145, -10147).

use crate::error::{Error, Result};
use crate::{sys, tty, FORWARDED};
use layout::cgroup::{self, Hierarchy};
use layout::plan::{AppPlan, Plan};
use layout::pod_dir::PodDir;
use rustix::thread::LinkNameSpaceType as Ns;
use std::path::Path;

/// Namespaces joined, in this order; `mnt` last, since joining it changes what paths mean.
const NAMESPACES: [(&str, Ns); 5] = [
    ("ipc", Ns::InterProcessCommunication),
    ("uts", Ns::HostNameAndNISDomainName),
    ("net", Ns::Network),
    ("pid", Ns::ProcessID),
    ("mnt", Ns::Mount),
];

pub fn run(pod: &Path, app: &str, argv: &[String]) -> Result<i32> {
    // First of all, so that the caller's terminal echoes as little as possible itself.
    let caller = tty::stdin_is_terminal().then(tty::CallerTerminal::take);
    let plan = Plan::load(&PodDir::new(pod).plan())?;
    let app_plan = plan
        .apps
        .iter()
        .find(|a| a.name == app)
        .ok_or_else(|| Error::msg(format!("the pod has no app {app:?}")))?;
    // With several apps, the pod's root is stage1's and each app is confined below it
    // (a mount namespace of its own pivoted into its root: see sys::confine_to).
    let chroot = plan.apps.len() > 1;
    let pid = layout::pod_dir::read_pid(&PodDir::new(pod).pid())
        .ok_or_else(|| Error::msg("the pod has no running init (no pid file)"))?;
    join_cgroups(&plan, app_plan)?;
    // Open every namespace first: after joining the mount namespace, /proc is the pod's.
    let mut fds = Vec::new();
    for (name, flag) in NAMESPACES {
        let p = format!("/proc/{pid}/ns/{name}");
        let fd = sys::open_path(Path::new(&p))?;
        fds.push((name, flag, fd));
    }
    // --private-users: the apps' user namespace, joined by the command itself (see
    // userns::join), after the others: they are the host root's.
    if plan.private_users.is_some() {
        crate::userns::find(pid)?;
    }
    for (name, kind, fd) in fds {
        sys::setns(fd, kind)
            .map_err(|e| e.context(format!("joining the pod's {name} namespace")))?;
    }
    // On a terminal, the command gets one of the pod's own (see tty.rs).
    let terminal = match caller {
        Some(caller) => {
            let ptmx = if chroot {
                format!("{}/dev/pts/ptmx", layout::pod_dir::app_root_in_pod(app))
            } else {
                "/dev/pts/ptmx".to_string()
            };
            Some(tty::PodTerminal::open(&ptmx, caller)?)
        }
        None => None,
    };
    let mut signals = FORWARDED.to_vec();
    if terminal.is_some() {
        signals.push(libc::SIGWINCH);
    }
    let mask = sys::block_signals(&signals)?;
    let mut plan = app_plan.clone();
    if terminal.is_some() && !plan.env.iter().any(|e| e.starts_with("TERM=")) {
        // What a terminal program needs to know of it, as Nomad's own exec gives it.
        plan.env.push("TERM=xterm".into());
    }
    // The PID namespace applies to children: the command runs in a fork.
    // SAFETY: stage1 is single-threaded.
    let child = unsafe { sys::fork() }?;
    if child == 0 {
        let attached = match terminal {
            Some(t) => t.attach_child(),
            None => Ok(()),
        };
        let err = match attached.and_then(|()| sys::unblock_signals(&mask)) {
            Ok(()) => crate::exec_as_app(&plan, argv, chroot),
            Err(e) => e,
        };
        eprintln!("enter: {err}");
        std::process::exit(254);
    }
    Ok(match terminal {
        Some(t) => t.relay(child, &mask),
        None => crate::forward_until_exit(child, &mask),
    })
}

/// Moves this process into the app's cgroups, so that what it starts counts against its
/// limits and meets the pod's device filter: on v2 the app's leaf (pods from before the
/// leaves: the pod's cgroup); on v1 the app's own cgroup in a pod of several apps where it has
/// limits of its own, else the pod's. The path is the one the pod recorded in its plan.
fn join_cgroups(plan: &Plan, app: &AppPlan) -> Result<()> {
    if plan.cgroup.is_empty() {
        return Ok(());
    }
    let root = Path::new(cgroup::ROOT);
    let hierarchy = Hierarchy::detect(root);
    let own = cgroup::app_rel(&plan.cgroup, &app.name);
    let rel = match hierarchy {
        Hierarchy::V2 if root.join(&own).is_dir() => own,
        Hierarchy::V1 if plan.apps.len() > 1 && app.has_limits() => own,
        _ => plan.cgroup.clone(),
    };
    let member = hierarchy.member_file();
    for d in cgroup::dirs(root, &rel).iter().filter(|d| d.is_dir()) {
        // "0": this process (see cgroup::join_self).
        std::fs::write(d.join(member), "0").map_err(|e| Error::at("joining cgroup", d, e))?;
    }
    Ok(())
}
