//! rkt's fly stage1: one app in the host's PID, network, UTS and IPC namespaces, with the
//! host's privileges (stage0 left its capabilities, seccomp and cgroups open), in its own
//! root with the host's /dev, /proc and /sys bound in (recursively, as rkt's fly did) and a
//! tmpfs on /tmp.
//!
//! rkt's fly made these mounts in the host's mount namespace, where they stayed until `rkt
//! gc`. Here the app gets a mount namespace of its own, a slave of the host's (mounts the
//! host makes later, under /dev or a volume, still appear inside), so the pod's mounts go
//! with the app. The supervisor stays in the host's namespaces to hold the pod lock, record
//! the app's exit status and forward signals, as for the default flavour.

use crate::error::{Error, Result};
use crate::inroot::{self, Root};
use crate::{mounts, sys, FORWARDED};
use layout::plan::{AppPlan, Plan};
use layout::pod_dir::{Marker, PodDir};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The host's file systems the app sees as they are, recursively.
const HOST_BINDS: [&str; 3] = ["/dev", "/proc", "/sys"];

/// Runs the pod's one app and waits for it; returns its exit status.
pub fn supervise(pod: &Path, plan: &Plan, status_dir: &Path) -> Result<i32> {
    let [app] = plan.apps.as_slice() else {
        return Err(Error::msg("the fly stage1 runs one app"));
    };
    let dir = PodDir::new(pod);
    let status = sys::open_dir(status_dir)?;
    let mask = sys::block_signals(&FORWARDED)?;
    sys::reserve_status_at(status.as_fd(), &app.name)?;
    sys::touch_at(status.as_fd(), &Marker::Created.file_name(&app.name))?;
    // SAFETY: stage1 is single-threaded.
    let child = unsafe { sys::fork() }?;
    if child == 0 {
        let err = run_app(pod, plan, app, &mask).unwrap_err();
        eprintln!("stage1: app {:?}: {err}", app.name);
        std::process::exit(254);
    }
    // The app is the pod's process: `rkt stop` signals it, `rkt enter` joins its namespaces.
    std::fs::write(dir.pid(), child.to_string()).map_err(|e| Error::at("writing", dir.pid(), e))?;
    sys::touch_at(status.as_fd(), &Marker::Started.file_name(&app.name))?;
    sys::drop_startup_pages();
    let code = crate::forward_until_exit(child, &mask);
    sys::commit_status_at(status.as_fd(), &app.name, &code.to_string())?;
    Ok(code)
}

/// In the forked child: the app's mount namespace and root, then the app itself. Returns only
/// on failure.
fn run_app(pod: &Path, plan: &Plan, app: &AppPlan, mask: &libc::sigset_t) -> Result<()> {
    // The pod lock stays with the supervisor.
    if let Some(fd) = std::env::var("RKT_LOCK_FD")
        .ok()
        .and_then(|f| f.parse().ok())
    {
        sys::set_cloexec(fd);
    }
    // SAFETY: unshare(CLONE_NEWNS) changes only this process's mount namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(Error::last("a mount namespace for the app"));
    }
    // Host mounts propagate in; ours never propagate out.
    sys::mount("", Path::new("/"), "", libc::MS_REC | libc::MS_SLAVE, "")?;
    let root = build_root(pod, app)?;
    sys::pivot_into(&root)?;
    sys::unblock_signals(mask)?;
    crate::stdin_unless_interactive(plan.interactive, app, false)?;
    Err(crate::exec_as_app(app, &app.exec, false))
}

/// The app's root with the host's /dev, /proc and /sys, a tmpfs /tmp, stage0's hosts and
/// resolv.conf, and the app's volumes. Every path in it is resolved beneath it.
fn build_root(pod: &Path, app: &AppPlan) -> Result<PathBuf> {
    let dir = PodDir::new(pod);
    let root_path = mounts::mount_app_root(&dir, app)?;
    let root = Root::open(&root_path, &mounts::app_what(app))?;
    for host in HOST_BINDS {
        let target = root.mkdir_all(host)?;
        let src = inroot::open_source(Path::new(host))?;
        sys::mount(
            &inroot::fd_path(&src).display().to_string(),
            &inroot::fd_path(&target),
            "",
            libc::MS_BIND | libc::MS_REC,
            "",
        )
        .map_err(|e| e.context(host))?;
    }
    let tmp = root.mkdir_all("/tmp")?;
    sys::mount(
        "tmpfs",
        &inroot::fd_path(&tmp),
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777",
    )
    .map_err(|e| e.context("/tmp"))?;
    // The host's UTS namespace keeps its hostname: no /etc/hostname of the pod's.
    mounts::bind_etc(&root, &dir, &["hosts", "resolv.conf"])?;
    mounts::bind_volumes(&root, pod, app)?;
    if app.readonly_rootfs {
        sys::mount(
            "",
            &root_path,
            "",
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NODEV,
            "",
        )?;
    }
    Ok(root_path)
}
