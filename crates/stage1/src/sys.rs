//! Thin, checked wrappers over the system calls stage1 needs. Each error names the call.

use std::ffi::{CStr, CString};
use std::io::Error;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn err(what: &str) -> String {
    format!("{what}: {}", Error::last_os_error())
}

fn path_c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::new("/nonexistent").unwrap())
}

pub fn close(fd: i32) {
    // SAFETY: closing a descriptor we own.
    unsafe { libc::close(fd) };
}

pub fn write(fd: i32, buf: &[u8]) {
    // SAFETY: buf is valid for buf.len() bytes.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

/// clone(2) without a new stack: like fork, into new namespaces. Single-threaded callers only.
pub fn clone_process(flags: libc::c_int) -> Result<libc::pid_t, String> {
    // SAFETY: raw clone with a null stack duplicates the calling (single-threaded) process like
    // fork does; the child continues on its copy of the stack.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(err("clone (new namespaces)"));
    }
    Ok(pid as libc::pid_t)
}

pub fn fork() -> Result<libc::pid_t, String> {
    // SAFETY: the process is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork"));
    }
    Ok(pid)
}

/// Blocks `signals` and SIGCHLD; returns the mask, for sigtimedwait.
pub fn block_signals(signals: &[libc::c_int]) -> Result<libc::sigset_t, String> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals.iter().chain([libc::SIGCHLD].iter()) {
            libc::sigaddset(&mut set, *s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(err("sigprocmask"));
        }
        Ok(set)
    }
}

pub fn unblock_signals(set: &libc::sigset_t) -> Result<(), String> {
    // SAFETY: set is a valid sigset.
    if unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, set, std::ptr::null_mut()) } != 0 {
        return Err(err("sigprocmask"));
    }
    Ok(())
}

/// Waits up to `ms` for a blocked signal. Returns a signal to forward (not SIGCHLD).
pub fn wait_signal(set: &libc::sigset_t, ms: i64) -> Option<libc::c_int> {
    let ts = libc::timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    // SAFETY: set and ts are valid; info may be null.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0 && sig != libc::SIGCHLD).then_some(sig)
}

/// Non-blocking wait for `pid`; its exit code (128 + signal if killed) once it has exited.
pub fn try_wait(pid: libc::pid_t) -> Option<i32> {
    let mut status = 0;
    // SAFETY: status is a valid int.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r != pid {
        return if r < 0 { Some(254) } else { None };
    }
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

/// Reaps one exited child, if any; false when there is none left to reap now.
pub fn reap_any() -> bool {
    let mut status = 0;
    // SAFETY: status is a valid int.
    unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) > 0 }
}

pub fn open_dir(p: &Path) -> Result<i32, String> {
    let c = path_c(p);
    // SAFETY: c is a valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(err(&format!("open {}", p.display())));
    }
    Ok(fd)
}

pub fn write_at(dir: i32, name: &str, content: &str) -> Result<(), String> {
    let c = CString::new(name).map_err(|_| "bad file name".to_string())?;
    // SAFETY: c is a valid C string, dir an open directory.
    let fd = unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o644,
        )
    };
    if fd < 0 {
        return Err(err(&format!("writing status {name}")));
    }
    write(fd, content.as_bytes());
    close(fd);
    Ok(())
}

pub fn touch_at(dir: i32, name: &str) -> Result<(), String> {
    write_at(dir, name, "")
}

pub fn sethostname(name: &str) -> Result<(), String> {
    // SAFETY: name is valid for name.len() bytes.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(err("sethostname"));
    }
    Ok(())
}

pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> Result<(), String> {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: groups is valid for its length.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(err("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(err(&format!("setgid {gid}")));
        }
        if libc::setuid(uid) != 0 {
            return Err(err(&format!("setuid {uid}")));
        }
    }
    Ok(())
}

pub fn execve(prog: &CStr, argv: &[CString], envp: &[CString]) -> String {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: null-terminated arrays of valid C strings.
    unsafe { libc::execve(prog.as_ptr(), a.as_ptr(), e.as_ptr()) };
    err(&format!("exec {prog:?}"))
}

pub fn is_executable(p: &str) -> bool {
    let Ok(c) = CString::new(p) else { return false };
    // SAFETY: c is a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

pub fn mount(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let s = CString::new(src).unwrap_or_default();
    let t = path_c(target);
    let f = CString::new(fstype).unwrap_or_default();
    let d = CString::new(data).unwrap_or_default();
    // SAFETY: valid C strings; null pointers where the kernel accepts them.
    let r = unsafe {
        libc::mount(
            if src.is_empty() {
                std::ptr::null()
            } else {
                s.as_ptr()
            },
            t.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                f.as_ptr()
            },
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr().cast()
            },
        )
    };
    if r != 0 {
        return Err(err(&format!(
            "mount {fstype} {src:?} on {}",
            target.display()
        )));
    }
    Ok(())
}

/// A character device `name` in `dir` with exactly `mode` (mknod's own mode is masked by
/// the umask, so it is set again).
pub fn mknod_at(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
    mode: u32,
    major: u32,
    minor: u32,
) -> Result<(), String> {
    use rustix::fs::{FileType, Mode};
    let mode = Mode::from_raw_mode(mode);
    let dev = rustix::fs::makedev(major, minor);
    rustix::fs::mknodat(dir, name, FileType::CharacterDevice, mode, dev)
        .and_then(|()| rustix::fs::chmodat(dir, name, mode, rustix::fs::AtFlags::empty()))
        .map_err(|e| format!("mknod /dev/{name}: {e}"))
}

pub fn pivot_into(root: &Path) -> Result<(), String> {
    let c = path_c(root);
    let dot = CString::new(".").unwrap();
    // SAFETY: valid C strings. pivot_root(".", ".") stacks the old root under the new one,
    // and the detach right after removes it.
    unsafe {
        if libc::chdir(c.as_ptr()) != 0 {
            return Err(err("chdir to the new root"));
        }
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            return Err(err("pivot_root"));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(err("detaching the old root"));
        }
        let slash = CString::new("/").unwrap();
        if libc::chdir(slash.as_ptr()) != 0 {
            return Err(err("chdir /"));
        }
    }
    Ok(())
}

pub fn set_cloexec(fd: i32) {
    // SAFETY: fcntl on a descriptor number; harmless if it is not open.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

pub fn open_path(p: &Path) -> Result<i32, String> {
    let c = path_c(p);
    // SAFETY: c is a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(err(&format!("open {}", p.display())));
    }
    Ok(fd)
}

pub fn setns(fd: i32, nstype: libc::c_int) -> Result<(), String> {
    // SAFETY: setns on a namespace descriptor we opened.
    if unsafe { libc::setns(fd, nstype) } != 0 {
        return Err(err("setns"));
    }
    Ok(())
}

pub fn open_write(p: &Path) -> Result<i32, String> {
    let c = path_c(p);
    // SAFETY: c is a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(err(&format!("open {}", p.display())));
    }
    Ok(fd)
}

pub fn chroot(dir: &str) -> Result<(), String> {
    let c = CString::new(dir).map_err(|_| "bad chroot path".to_string())?;
    let slash = CString::new("/").unwrap();
    // SAFETY: valid C strings.
    unsafe {
        if libc::chroot(c.as_ptr()) != 0 {
            return Err(err(&format!("chroot {dir}")));
        }
        if libc::chdir(slash.as_ptr()) != 0 {
            return Err(err("chdir /"));
        }
    }
    Ok(())
}

/// Waits up to a moment for any child to exit; its PID and exit code (128 + signal if killed).
pub fn wait_any() -> Option<(libc::pid_t, i32)> {
    let mut status = 0;
    // SAFETY: status is a valid int.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    if libc::WIFEXITED(status) {
        Some((pid, libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some((pid, 128 + libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// Brings up `lo` in the current network namespace: a new namespace starts with it down.
pub fn loopback_up() -> Result<(), String> {
    // SAFETY: a socket only used for interface ioctls, closed below; ifreq is plain data.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(err("socket for lo"));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let e = err("bringing up lo");
        libc::close(sock);
        if r != 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Unmaps the read-only file pages (code and constants of this binary and its libraries)
/// that start-up faulted in, fault-around included. They stay in the page cache; the
/// long-running loop that follows faults back only the few it uses, so a running pod's
/// resident set is what it needs in steady state. Only mappings without private copies are
/// touched: writable ones, and read-only ones holding relocated pages (RELRO), are left alone,
/// since dropping their pages would lose what was written to them.
pub fn drop_startup_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(range) = mapping_header(line) {
            current = range;
            continue;
        }
        // Each mapping's "Anonymous:" line says whether it holds private copies.
        if let (Some((a, b)), Some(anon)) = (current, line.strip_prefix("Anonymous:")) {
            current = None;
            if anon.trim() == "0 kB" {
                // SAFETY: a read-only, file-backed private mapping of this process with no
                // private pages: its pages are read back from the file on the next access.
                unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
            }
        }
    }
}

/// For a mapping's header line in smaps: Some(range) if it is a read-only mapping of a file,
/// Some(None) for any other mapping; None for a field line.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut f = line.split_whitespace();
    let range = f.next()?;
    let (a, b) = range.split_once('-')?;
    let (a, b) = (
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    );
    let perms = f.next()?;
    let inode = f.nth(2)?;
    let read_only_file =
        inode != "0" && perms.as_bytes().get(1) == Some(&b'-') && perms.ends_with('p');
    Some(read_only_file.then_some((a, b)))
}

#[cfg(test)]
mod tests {
    use super::mapping_header;

    #[test]
    fn only_read_only_private_file_mappings_qualify() {
        let text = "55d0c0a00000-55d0c0a20000 r-xp 00002000 08:01 123 /usr/bin/rkt-stage1";
        assert_eq!(
            mapping_header(text),
            Some(Some((0x55d0c0a00000, 0x55d0c0a20000)))
        );
        let data = "55d0c0a30000-55d0c0a31000 rw-p 00030000 08:01 123 /usr/bin/rkt-stage1";
        assert_eq!(mapping_header(data), Some(None));
        let heap = "55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0 [heap]";
        assert_eq!(mapping_header(heap), Some(None));
        let shared = "7f0000000000-7f0000001000 r--s 00000000 08:01 99 /dev/shm/x";
        assert_eq!(mapping_header(shared), Some(None));
        assert_eq!(mapping_header("Anonymous:          0 kB"), None);
        assert_eq!(mapping_header("VmFlags: rd ex mr mw me"), None);
    }
}
