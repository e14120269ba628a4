//! Persistent network namespaces, bind-mounted at `/run/netns/rkt-<uuid>` (where `ip netns`
//! finds them), so that CNI plugins, the pod and the teardown all name the same namespace
//! whether or not a process is inside it.

use crate::{host_err, Result};
use std::path::{Path, PathBuf};

pub const NETNS_DIR: &str = "/run/netns";

/// Where a pod's namespace is mounted.
pub fn path_for(uuid: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(format!("rkt-{uuid}"))
}

/// Creates a new network namespace and pins it at `path`. The namespace is made on a thread
/// of its own: unshare(CLONE_NEWNET) affects only the calling thread, so the rest of the
/// process stays in the host's namespace.
pub fn create(path: &Path) -> Result<()> {
    std::fs::create_dir_all(NETNS_DIR)
        .map_err(|e| host_err(format!("creating {NETNS_DIR}: {e}")))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| host_err(format!("creating {}: {e}", path.display())))?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> std::result::Result<(), String> {
        // SAFETY: CLONE_NEWNET moves only this thread, a thread of our own that does
        // nothing else and ends right after.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
            .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        rustix::mount::mount_bind("/proc/thread-self/ns/net", &target)
            .map_err(|e| format!("bind-mounting the namespace: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the namespace thread panicked".into()));
    made.map_err(|e| {
        let _ = std::fs::remove_file(path);
        host_err(format!(
            "creating network namespace {}: {e}",
            path.display()
        ))
    })
}

/// Unpins and removes a namespace; a missing one is not an error.
pub fn remove(path: &Path) -> Result<()> {
    // EINVAL means it was not mounted (already unpinned).
    match rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(host_err(format!("unmounting {}: {e}", path.display()))),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(host_err(format!("removing {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}
