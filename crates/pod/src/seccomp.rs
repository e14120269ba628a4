//! Seccomp for apps: a default allow-list of system calls, and rkt's `--seccomp` isolator
//! (`mode=retain|remove[,errno=NAME],SYSCALL|@GROUP,…`). Stage0 turns names into this
//! architecture's numbers; stage1 compiles and installs the filter.
//!
//! The default list is the well-known container allow-list: what ordinary programs need, and
//! none of the calls that reach the host (mount, kexec, module loading, bpf, ptrace, keyctl,
//! reboot, swap, clock setting, namespaces).

use crate::error::{invalid, Error, Result};

macro_rules! syscalls {
    ($($name:ident),* $(,)?) => { &[$((stringify!($name), libc::$name as i64)),*] };
}

/// (name without `SYS_`, number): the calls every architecture has.
const COMMON: &[(&str, i64)] = syscalls!(
    SYS_accept,
    SYS_accept4,
    SYS_bind,
    SYS_brk,
    SYS_capget,
    SYS_capset,
    SYS_chdir,
    SYS_chroot,
    SYS_clock_getres,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_clone,
    SYS_clone3,
    SYS_close,
    SYS_close_range,
    SYS_connect,
    SYS_copy_file_range,
    SYS_dup,
    SYS_dup3,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_eventfd2,
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_exit_group,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_fadvise64,
    SYS_fallocate,
    SYS_fchdir,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchown,
    SYS_fchownat,
    SYS_fcntl,
    SYS_fdatasync,
    SYS_fgetxattr,
    SYS_flistxattr,
    SYS_flock,
    SYS_fremovexattr,
    SYS_fsetxattr,
    SYS_fstat,
    SYS_fstatfs,
    SYS_fsync,
    SYS_ftruncate,
    SYS_futex,
    SYS_getcpu,
    SYS_getcwd,
    SYS_getdents64,
    SYS_getegid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getgroups,
    SYS_getitimer,
    SYS_getpeername,
    SYS_getpgid,
    SYS_getpid,
    SYS_getppid,
    SYS_getpriority,
    SYS_getrandom,
    SYS_getresgid,
    SYS_getresuid,
    SYS_getrlimit,
    SYS_get_robust_list,
    SYS_getrusage,
    SYS_getsid,
    SYS_getsockname,
    SYS_getsockopt,
    SYS_gettid,
    SYS_gettimeofday,
    SYS_getuid,
    SYS_getxattr,
    SYS_inotify_add_watch,
    SYS_inotify_init1,
    SYS_inotify_rm_watch,
    SYS_io_cancel,
    SYS_ioctl,
    SYS_io_destroy,
    SYS_io_getevents,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_io_setup,
    SYS_io_submit,
    SYS_kill,
    SYS_lgetxattr,
    SYS_linkat,
    SYS_listen,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_lremovexattr,
    SYS_lseek,
    SYS_lsetxattr,
    SYS_madvise,
    SYS_membarrier,
    SYS_memfd_create,
    SYS_mincore,
    SYS_mkdirat,
    SYS_mknodat,
    SYS_mlock,
    SYS_mlock2,
    SYS_mlockall,
    SYS_mmap,
    SYS_mprotect,
    SYS_mq_getsetattr,
    SYS_mq_notify,
    SYS_mq_open,
    SYS_mq_timedreceive,
    SYS_mq_timedsend,
    SYS_mq_unlink,
    SYS_mremap,
    SYS_msgctl,
    SYS_msgget,
    SYS_msgrcv,
    SYS_msgsnd,
    SYS_msync,
    SYS_munlock,
    SYS_munlockall,
    SYS_munmap,
    SYS_nanosleep,
    SYS_newfstatat,
    SYS_openat,
    SYS_openat2,
    SYS_personality,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_pipe2,
    SYS_ppoll,
    SYS_prctl,
    SYS_pread64,
    SYS_preadv,
    SYS_preadv2,
    SYS_prlimit64,
    SYS_pselect6,
    SYS_pwrite64,
    SYS_pwritev,
    SYS_pwritev2,
    SYS_read,
    SYS_readahead,
    SYS_readlinkat,
    SYS_readv,
    SYS_recvfrom,
    SYS_recvmmsg,
    SYS_recvmsg,
    SYS_remap_file_pages,
    SYS_removexattr,
    SYS_renameat,
    SYS_renameat2,
    SYS_restart_syscall,
    SYS_rseq,
    SYS_rt_sigaction,
    SYS_rt_sigpending,
    SYS_rt_sigprocmask,
    SYS_rt_sigqueueinfo,
    SYS_rt_sigreturn,
    SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait,
    SYS_rt_tgsigqueueinfo,
    SYS_sched_getaffinity,
    SYS_sched_getattr,
    SYS_sched_getparam,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_getscheduler,
    SYS_sched_rr_get_interval,
    SYS_sched_setaffinity,
    SYS_sched_setattr,
    SYS_sched_setparam,
    SYS_sched_setscheduler,
    SYS_sched_yield,
    SYS_seccomp,
    SYS_semctl,
    SYS_semget,
    SYS_semop,
    SYS_semtimedop,
    SYS_sendfile,
    SYS_sendmmsg,
    SYS_sendmsg,
    SYS_sendto,
    SYS_setfsgid,
    SYS_setfsuid,
    SYS_setgid,
    SYS_setgroups,
    SYS_setitimer,
    SYS_setpgid,
    SYS_setpriority,
    SYS_setregid,
    SYS_setresgid,
    SYS_setresuid,
    SYS_setreuid,
    SYS_setrlimit,
    SYS_set_robust_list,
    SYS_setsid,
    SYS_setsockopt,
    SYS_set_tid_address,
    SYS_setuid,
    SYS_setxattr,
    SYS_shmat,
    SYS_shmctl,
    SYS_shmdt,
    SYS_shmget,
    SYS_shutdown,
    SYS_sigaltstack,
    SYS_signalfd4,
    SYS_socket,
    SYS_socketpair,
    SYS_splice,
    SYS_statfs,
    SYS_statx,
    SYS_symlinkat,
    SYS_sync,
    SYS_sync_file_range,
    SYS_syncfs,
    SYS_sysinfo,
    SYS_tee,
    SYS_tgkill,
    SYS_timer_create,
    SYS_timer_delete,
    SYS_timer_getoverrun,
    SYS_timer_gettime,
    SYS_timer_settime,
    SYS_timerfd_create,
    SYS_timerfd_gettime,
    SYS_timerfd_settime,
    SYS_times,
    SYS_tkill,
    SYS_truncate,
    SYS_umask,
    SYS_uname,
    SYS_unlinkat,
    SYS_utimensat,
    SYS_vmsplice,
    SYS_wait4,
    SYS_waitid,
    SYS_write,
    SYS_writev,
);

/// The older calls only x86_64 still has (aarch64 has only their *at forms).
#[cfg(target_arch = "x86_64")]
const LEGACY: &[(&str, i64)] = syscalls!(
    SYS_access,
    SYS_alarm,
    SYS_arch_prctl,
    SYS_chmod,
    SYS_chown,
    SYS_creat,
    SYS_dup2,
    SYS_epoll_create,
    SYS_epoll_wait,
    SYS_eventfd,
    SYS_fork,
    SYS_futimesat,
    SYS_getdents,
    SYS_getpgrp,
    SYS_inotify_init,
    SYS_lchown,
    SYS_link,
    SYS_lstat,
    SYS_mkdir,
    SYS_mknod,
    SYS_open,
    SYS_pause,
    SYS_pipe,
    SYS_poll,
    SYS_readlink,
    SYS_rename,
    SYS_rmdir,
    SYS_select,
    SYS_signalfd,
    SYS_stat,
    SYS_symlink,
    SYS_time,
    SYS_unlink,
    SYS_utime,
    SYS_utimes,
    SYS_vfork,
);
#[cfg(not(target_arch = "x86_64"))]
const LEGACY: &[(&str, i64)] = &[];

/// Calls the default list leaves out but `--seccomp mode=retain,…` may name.
const EXTRA: &[(&str, i64)] = syscalls!(
    SYS_acct,
    SYS_add_key,
    SYS_bpf,
    SYS_clock_adjtime,
    SYS_clock_settime,
    SYS_delete_module,
    SYS_finit_module,
    SYS_init_module,
    SYS_kexec_load,
    SYS_keyctl,
    SYS_mount,
    SYS_move_pages,
    SYS_open_by_handle_at,
    SYS_perf_event_open,
    SYS_pivot_root,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_ptrace,
    SYS_quotactl,
    SYS_reboot,
    SYS_request_key,
    SYS_setdomainname,
    SYS_sethostname,
    SYS_setns,
    SYS_settimeofday,
    SYS_swapoff,
    SYS_swapon,
    SYS_syslog,
    SYS_umount2,
    SYS_unshare,
    SYS_userfaultfd,
);

/// The filter an app gets: allowed call numbers, and what happens to the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub allowed: Vec<i64>,
    /// None: the process is killed (SIGSYS), as rkt did; Some(n): the call fails with errno n.
    pub errno: Option<i32>,
}

fn lookup(name: &str) -> Option<i64> {
    let want = format!("SYS_{name}");
    COMMON
        .iter()
        .chain(LEGACY)
        .chain(EXTRA)
        .find(|(n, _)| *n == want)
        .map(|(_, v)| *v)
}

fn default_list() -> Vec<i64> {
    COMMON.iter().chain(LEGACY).map(|(_, v)| *v).collect()
}

/// Expands a syscall name or a group (`@rkt/default-whitelist`, `@docker/default-whitelist`).
fn expand(item: &str) -> Result<Vec<i64>> {
    match item {
        "@rkt/default-whitelist" | "@docker/default-whitelist" | "@appc.io/all" => {
            Ok(default_list())
        }
        g if g.starts_with('@') => invalid!(
            "unknown seccomp group {g:?}; known: @rkt/default-whitelist, @docker/default-whitelist"
        ),
        name => lookup(name).map(|n| vec![n]).ok_or_else(|| {
            Error::InvalidInput(format!("unknown system call {name:?} in --seccomp"))
        }),
    }
}

fn errno_number(name: &str) -> Result<i32> {
    Ok(match name {
        "EPERM" => libc::EPERM,
        "EACCES" => libc::EACCES,
        "ENOSYS" => libc::ENOSYS,
        "EINVAL" => libc::EINVAL,
        "ENOTSUP" | "EOPNOTSUPP" => libc::EOPNOTSUPP,
        "EFAULT" => libc::EFAULT,
        "ENOENT" => libc::ENOENT,
        "EIO" => libc::EIO,
        other => {
            invalid!("unknown errno {other:?} in --seccomp; use a name such as EPERM or ENOSYS")
        }
    })
}

/// Whether a seccomp set lists the calls allowed or the calls taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only the listed calls (appc's `os/linux/seccomp-retain-set`).
    Retain,
    /// The default list without the listed calls (`os/linux/seccomp-remove-set`).
    Remove,
}

/// A seccomp setting as rkt's `--seccomp` and appc's seccomp isolators give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub mode: Mode,
    /// The errno refused calls fail with (`EPERM`); None kills the caller with SIGSYS.
    pub errno: Option<String>,
    /// System call names and groups (`@rkt/default-whitelist`).
    pub set: Vec<String>,
}

impl Spec {
    /// rkt's `--seccomp mode=retain|remove[,errno=NAME],CALL,…`.
    pub fn parse(spec: &str) -> Result<Spec> {
        let mut mode = None;
        let mut errno = None;
        let mut set = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("mode", "retain")) => mode = Some(Mode::Retain),
                Some(("mode", "remove")) => mode = Some(Mode::Remove),
                Some(("errno", e)) => errno = Some(e.to_string()),
                Some((k, _)) => {
                    invalid!("invalid --seccomp option {k:?}; use mode=retain|remove, errno=NAME")
                }
                None => set.push(part.to_string()),
            }
        }
        let Some(mode) = mode else {
            invalid!("--seccomp needs mode=retain or mode=remove")
        };
        Ok(Spec { mode, errno, set })
    }
}

/// The filter for an app: the default list, or what the spec says.
pub fn filter(spec: Option<&Spec>) -> Result<Filter> {
    let Some(spec) = spec else {
        return Ok(Filter {
            allowed: default_list(),
            errno: None,
        });
    };
    let errno = spec.errno.as_deref().map(errno_number).transpose()?;
    let mut items = Vec::new();
    for item in &spec.set {
        items.extend(expand(item)?);
    }
    let mut allowed = match spec.mode {
        Mode::Retain => items,
        Mode::Remove => default_list()
            .into_iter()
            .filter(|n| !items.contains(n))
            .collect(),
    };
    allowed.sort_unstable();
    allowed.dedup();
    Ok(Filter { allowed, errno })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_modes() {
        let filter = |s: Option<&str>| filter(s.map(Spec::parse).transpose()?.as_ref());
        let d = filter(None).unwrap();
        assert!(d.allowed.contains(&libc::SYS_read) && !d.allowed.contains(&libc::SYS_mount));
        assert_eq!(d.errno, None);
        let r = filter(Some("mode=remove,errno=ENOSYS,uname")).unwrap();
        assert!(!r.allowed.contains(&libc::SYS_uname));
        assert_eq!(r.errno, Some(libc::ENOSYS));
        let k = filter(Some("mode=retain,@rkt/default-whitelist,mount")).unwrap();
        assert!(k.allowed.contains(&libc::SYS_mount));
        for bad in [
            "uname",
            "mode=maybe,read",
            "mode=retain,nosuchcall",
            "mode=retain,errno=EWHAT,read",
            "mode=retain,@x/y",
        ] {
            assert!(filter(Some(bad)).is_err(), "{bad}");
        }
    }
}
