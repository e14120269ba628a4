//! Thin, checked wrappers over the system calls stage1 needs. Each error names the call.
//!
//! Descriptors are `OwnedFd`s (closed when dropped, so no early return leaks one) and most
//! calls go through rustix, whose wrappers are safe; what remains `unsafe` here is what
//! rustix leaves to libc on purpose (fork and clone, the signal mask, execve, setuid and
//! friends, an interface ioctl, madvise), each with its contract stated.

use crate::error::{Error, Result};
use rustix::fs::{Mode, OFlags};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn err(what: &str) -> Error {
    Error::last(what)
}

fn path_c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::new("/nonexistent").unwrap())
}

/// clone(2) without a new stack: like fork, into the new namespaces `flags` names. Returns
/// 0 in the child and the child's PID in the parent.
///
/// # Safety
/// The calling process must be single-threaded: the child is a copy of the calling thread
/// alone, and state other threads held (locks, the allocator's) would stay locked in it.
/// stage1 never starts a thread.
pub unsafe fn clone_process(flags: libc::c_int) -> Result<libc::pid_t> {
    // SAFETY: raw clone with a null stack duplicates the calling process like fork does
    // (the child continues on its copy of the stack); single-threaded per this function's
    // contract.
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

/// fork(2). Returns 0 in the child and the child's PID in the parent.
///
/// # Safety
/// As [`clone_process`]: the calling process must be single-threaded.
pub unsafe fn fork() -> Result<libc::pid_t> {
    // SAFETY: single-threaded per this function's contract.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork"));
    }
    Ok(pid)
}

/// Sends `sig` to `pid` (a child of ours, or a PID read from our own pod directory).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) };
}

/// Blocks `signals` and SIGCHLD; returns the mask, for sigtimedwait.
pub fn block_signals(signals: &[libc::c_int]) -> Result<libc::sigset_t> {
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

pub fn unblock_signals(set: &libc::sigset_t) -> Result<()> {
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
    let pid = rustix::process::Pid::from_raw(pid)?;
    match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
        Ok(Some((_, status))) => exit_code(status),
        Ok(None) => None,
        Err(_) => Some(254),
    }
}

/// The exit code a shell would report: the status, or 128 + the signal that killed it.
fn exit_code(status: rustix::process::WaitStatus) -> Option<i32> {
    if let Some(code) = status.exit_status() {
        Some(code)
    } else {
        status.terminating_signal().map(|s| 128 + s)
    }
}

/// Reaps one exited child, if any; false when there is none left to reap now.
pub fn reap_any() -> bool {
    matches!(
        rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG),
        Ok(Some(_))
    )
}

/// Reaps one exited child without waiting; its PID and exit code.
pub fn wait_any() -> Option<(libc::pid_t, i32)> {
    match rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {
        Ok(Some((pid, status))) => Some((pid.as_raw_nonzero().get(), exit_code(status)?)),
        _ => None,
    }
}

fn open(p: &Path, flags: OFlags) -> Result<OwnedFd> {
    rustix::fs::open(p, flags | OFlags::CLOEXEC, Mode::empty()).map_err(|e| Error::at("open", p, e))
}

pub fn open_dir(p: &Path) -> Result<OwnedFd> {
    open(p, OFlags::DIRECTORY | OFlags::RDONLY)
}

/// A file to read or pass on (a namespace to join).
pub fn open_path(p: &Path) -> Result<OwnedFd> {
    open(p, OFlags::RDONLY)
}

pub fn open_write(p: &Path) -> Result<OwnedFd> {
    open(p, OFlags::WRONLY)
}

/// Writes `content` to the file `name` in `dir` (created or truncated; never through a
/// symlink).
pub fn write_at(dir: BorrowedFd<'_>, name: &str, content: &str) -> Result<()> {
    let flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o644))
        .map_err(|e| Error::os(format!("writing status {name}"), e))?;
    rustix::io::write(&fd, content.as_bytes())
        .map_err(|e| Error::os(format!("writing status {name}"), e))?;
    Ok(())
}

/// Makes the file an app's exit status will go into (see [`commit_status_at`]) while the
/// disk has room: the app may fill the file system the pod lives on, and its status must
/// still be recorded.
pub fn reserve_status_at(dir: BorrowedFd<'_>, name: &str) -> Result<()> {
    write_at(dir, &reserved(name), "254")
}

/// Writes an app's exit status as `name` in `dir`: into the file [`reserve_status_at`]
/// made, whose block is already allocated, renamed into place; or, without one, anew.
pub fn commit_status_at(dir: BorrowedFd<'_>, name: &str, content: &str) -> Result<()> {
    let tmp = reserved(name);
    let flags = OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = match rustix::fs::openat(dir, tmp.as_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(_) => return write_at(dir, name, content),
    };
    rustix::io::pwrite(&fd, content.as_bytes(), 0)
        .and_then(|_| rustix::fs::ftruncate(&fd, content.len() as u64))
        .and_then(|()| rustix::fs::renameat(dir, tmp.as_str(), dir, name))
        .map_err(|e| Error::os(format!("writing status {name}"), e))
}

/// The reserved status file: app names never start with a dot.
fn reserved(name: &str) -> String {
    format!(".{name}.exit")
}

pub fn touch_at(dir: BorrowedFd<'_>, name: &str) -> Result<()> {
    write_at(dir, name, "")
}

/// setrlimit(2) of the resource `ulimit` names `name` (u64::MAX is unlimited).
pub fn setrlimit(name: &str, soft: u64, hard: u64) -> Result<()> {
    let resource = layout::plan::RLIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| Error::msg(format!("ulimit: unknown resource {name:?}")))?;
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass; the resource number is one of the kernel's.
    if unsafe { libc::setrlimit(resource as _, &limit) } != 0 {
        return Err(err("setrlimit").context(format!("ulimit {name}={soft}:{hard}")));
    }
    Ok(())
}

/// PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to this process.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl with an integer argument.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(err("prctl(PR_SET_CHILD_SUBREAPER)"));
    }
    Ok(())
}

pub fn sethostname(name: &str) -> Result<()> {
    rustix::system::sethostname(name.as_bytes()).map_err(|e| Error::os("sethostname", e))
}

/// Sets the supplementary groups, group and user of this process.
pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> Result<()> {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: groups is valid for its length; the calls take plain integers otherwise. libc's
    // wrappers (not the raw syscalls) so that every thread changes, though there is only one.
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

pub fn execve(prog: &CStr, argv: &[CString], envp: &[CString]) -> Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: null-terminated arrays of valid C strings.
    unsafe { libc::execve(prog.as_ptr(), a.as_ptr(), e.as_ptr()) };
    err(&format!("exec {prog:?}"))
}

pub fn is_executable(p: &str) -> bool {
    rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
}

pub fn mount(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<()> {
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
        return Err(Error::at(
            format!("mount {fstype} {src:?} on"),
            target,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Makes `root` this mount namespace's root: pivot_root(".", ".") stacks the old root under
/// the new one, and detaching it right after removes it.
pub fn pivot_into(root: &Path) -> Result<()> {
    use rustix::process::{chdir, pivot_root};
    chdir(root).map_err(|e| Error::at("chdir to the new root", root, e))?;
    pivot_root(".", ".").map_err(|e| Error::os("pivot_root", e))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| Error::os("detaching the old root", e))?;
    chdir("/").map_err(|e| Error::os("chdir /", e))
}

/// Marks a descriptor this process inherited (by number) close-on-exec.
pub fn set_cloexec(fd: i32) {
    if fd < 0 {
        return;
    }
    // SAFETY: only the flag of the descriptor is changed; if `fd` is not open, fcntl fails
    // with EBADF and nothing happens.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
}

/// Marks every descriptor from 3 up close-on-exec, so that the next execve leaves the new
/// program its stdin, stdout and stderr alone: whatever rkt's caller left open without
/// close-on-exec (a directory of the host, a socket of the plugin) would otherwise reach the
/// app, and a directory descriptor is a way out of any root.
pub fn cloexec_all_but_stdio() -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC changes descriptor flags only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: each open descriptor, one by one.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::at("listing", "/proc/self/fd", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    fds.into_iter().for_each(set_cloexec);
    Ok(())
}

/// Joins the namespace of type `kind` that `fd` refers to.
pub fn setns(fd: impl AsFd, kind: rustix::thread::LinkNameSpaceType) -> Result<()> {
    rustix::thread::move_into_link_name_space(fd.as_fd(), Some(kind))
        .map_err(|e| Error::os("setns", e))
}

/// Confines the calling process to `dir`, an app's root in a pod of several apps: a mount
/// namespace of its own (a copy of the pod's) whose root is `dir`, the pod's root detached.
/// Not chroot: the app keeps CAP_SYS_CHROOT (an appc default), and a chrooted root process
/// climbs out of a chroot with a second one, into the pod's root (the other apps' files,
/// their exit statuses).
pub fn confine_to(dir: &str) -> Result<()> {
    // SAFETY: unshare(CLONE_NEWNS) changes only this process's mount namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(err(&format!("a mount namespace for {dir}")));
    }
    mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "")?;
    pivot_into(Path::new(dir)).map_err(|e| e.context(dir))
}

/// Brings up `lo` in the current network namespace: a new namespace starts with it down.
pub fn loopback_up() -> Result<()> {
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

#[cfg(test)]
mod rlimit_tests {
    /// The plan's resource numbers are the kernel's (as libc names them).
    #[test]
    fn rlimit_numbers_are_the_kernels() {
        let libc_numbers = [
            ("core", libc::RLIMIT_CORE),
            ("cpu", libc::RLIMIT_CPU),
            ("data", libc::RLIMIT_DATA),
            ("fsize", libc::RLIMIT_FSIZE),
            ("locks", libc::RLIMIT_LOCKS),
            ("memlock", libc::RLIMIT_MEMLOCK),
            ("msgqueue", libc::RLIMIT_MSGQUEUE),
            ("nice", libc::RLIMIT_NICE),
            ("nofile", libc::RLIMIT_NOFILE),
            ("nproc", libc::RLIMIT_NPROC),
            ("rss", libc::RLIMIT_RSS),
            ("rtprio", libc::RLIMIT_RTPRIO),
            ("rttime", libc::RLIMIT_RTTIME),
            ("sigpending", libc::RLIMIT_SIGPENDING),
            ("stack", libc::RLIMIT_STACK),
        ];
        for (name, number) in layout::plan::RLIMITS {
            let want = libc_numbers.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(number, want, "{name}");
        }
        assert_eq!(libc::RLIM_INFINITY, u64::MAX);
    }
}
