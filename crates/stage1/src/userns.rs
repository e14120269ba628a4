//! `--private-users`: the pod's apps run in a user namespace whose IDs 0..COUNT are the
//! host's SHIFT..SHIFT+COUNT (stage0 chose the range and moved the apps' roots into it).
//!
//! The pod init stays the host's root, as in every pod: it builds the pod's root, and each
//! app confines itself to its own root (a mount namespace of its own), with the host root's
//! rights, before it enters the user namespace; mounts made inside a user namespace from
//! copied ones are locked and could not be pivoted into. The namespace itself is made once
//! per pod by a holder, a child of the init that unshares it and then only waits for the
//! init to end; the init writes its maps (a full range needs a writer in the parent
//! namespace). Every app, and every command `rkt enter` starts, joins it and becomes its
//! root before taking the app's own IDs and capabilities.
//!
//! The pod's other namespaces stay the host root's, so whatever capabilities an app keeps
//! are its namespace's alone and reach none of them: it cannot mount, make device nodes or
//! change the network, and its root is an unprivileged stranger to the host and to every
//! other pod.

use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

/// The namespace this process's apps join (set in the init, or in `rkt enter`).
static NAMESPACE: OnceLock<OwnedFd> = OnceLock::new();

/// The holder of the pod's user namespace; it goes when this is dropped or the init ends.
pub struct Holder {
    pid: libc::pid_t,
    /// The init's end of the pipe the holder waits on: closed, the holder exits.
    _alive: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::last("pipe"));
    }
    // SAFETY: both are new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Holder {
    /// Starts the holder, maps its namespace to `shift`..`shift+count`, and makes it the one
    /// the apps join. `proc` is where the init sees the pod's /proc (an app's, in a pod of
    /// several apps, whose own root has none).
    pub fn start(shift: u32, count: u32, proc: &str) -> Result<Holder> {
        let (wait_end, alive) = pipe()?;
        let (ready_read, ready_write) = pipe()?;
        // SAFETY: stage1 is single-threaded.
        let pid = unsafe { sys::fork() }?;
        if pid == 0 {
            drop(alive);
            drop(ready_read);
            hold(wait_end, ready_write);
        }
        drop(wait_end);
        drop(ready_write);
        let mut b = [0u8; 1];
        if rustix::io::read(&ready_read, &mut b) != Ok(1) {
            return Err(Error::msg("the pod's user namespace could not be made"));
        }
        let line = format!("0 {shift} {count}\n");
        for map in ["uid_map", "gid_map"] {
            let path = format!("{proc}/{pid}/{map}");
            std::fs::write(&path, &line).map_err(|e| Error::at("writing", &path, e))?;
        }
        set(sys::open_path(Path::new(&format!("{proc}/{pid}/ns/user")))?);
        Ok(Holder { pid, _alive: alive })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        sys::kill(self.pid, libc::SIGKILL);
    }
}

/// The holder: unshares the namespace, says so, and waits for the init's end of `wait` to
/// close. It keeps nothing of the pod's: not the pod lock.
fn hold(wait: OwnedFd, ready: OwnedFd) -> ! {
    if let Some(fd) = std::env::var("RKT_LOCK_FD")
        .ok()
        .and_then(|f| f.parse::<i32>().ok())
    {
        // SAFETY: closing the inherited lock descriptor; nothing here uses it.
        unsafe { libc::close(fd) };
    }
    // SAFETY: unshare(CLONE_NEWUSER) in a single-threaded process changes only its creds.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        std::process::exit(1);
    }
    let _ = rustix::io::write(&ready, b"x");
    let mut b = [0u8; 1];
    let _ = rustix::io::read(&wait, &mut b);
    std::process::exit(0);
}

fn set(fd: OwnedFd) {
    let _ = NAMESPACE.set(fd);
}

/// In `rkt enter`: the pod's user namespace, from a child of the pod's init (the holder or
/// an app) in a user namespace other than the init's.
pub fn find(init: libc::pid_t) -> Result<()> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    let own = ns(&init.to_string());
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
        .map_err(|e| Error::os("the pod init's processes", e))?;
    let pid = children
        .split_whitespace()
        .find(|c| ns(c).is_some_and(|n| Some(n) != own))
        .ok_or_else(|| Error::msg("the pod has no user namespace left (its apps have exited)"))?;
    set(sys::open_path(Path::new(&format!("/proc/{pid}/ns/user")))?);
    Ok(())
}

/// Joins the pod's user namespace, if this process has one to join, and becomes its root.
pub fn join() -> Result<()> {
    let Some(fd) = NAMESPACE.get() else {
        return Ok(());
    };
    sys::setns(fd.as_fd(), rustix::thread::LinkNameSpaceType::User)
        .map_err(|e| e.context("joining the pod's user namespace"))?;
    // SAFETY: plain credential calls; in the namespace this process may make them.
    let ok = unsafe {
        libc::setresgid(0, 0, 0) == 0
            && libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresuid(0, 0, 0) == 0
    };
    if !ok {
        return Err(Error::last("becoming root of the pod's user namespace"));
    }
    Ok(())
}
