//! Persistent network namespaces, bind-mounted at `/run/netns/rkt-<uuid>` (where `ip netns`
//! finds them), so that CNI plugins, the pod and the teardown all name the same namespace
//! whether or not a process is inside it.

use crate::{host_err, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
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
    let target = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a netns path");
    let made = std::thread::spawn(move || -> std::result::Result<(), String> {
        // SAFETY: plain syscalls on this thread; the strings outlive the calls.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {}",
                    std::io::Error::last_os_error()
                ));
            }
            let src = c"/proc/thread-self/ns/net";
            if libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(format!(
                    "bind-mounting the namespace: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
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
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a netns path");
    // SAFETY: umount2 on a path we own. EINVAL means it was not mounted (already unpinned).
    let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(host_err(format!("unmounting {}: {e}", path.display())));
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(host_err(format!("removing {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}
