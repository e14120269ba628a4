//! Capabilities, no_new_privs and the seccomp filter for the app, applied between fork and
//! exec.

use crate::error::{Error, Result};
use rustix::thread::{CapabilitySet, CapabilitySets};

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Capability number `cap` as a set of one.
fn one(cap: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1u64 << cap)
}

/// Drops every capability not in `keep` from the bounding set. Call before changing user.
pub fn limit_bounding_set(keep: &[u32]) -> Result<()> {
    for cap in (0..=last_cap().min(63)).filter(|c| !keep.contains(c)) {
        rustix::thread::remove_capability_from_bounding_set(one(cap)).map_err(|e| {
            Error::os(
                format!("dropping capability {cap} from the bounding set"),
                e,
            )
        })?;
    }
    Ok(())
}

/// Sets the effective, permitted and inheritable sets to exactly `keep` (for apps that run
/// as root; for other users the kernel has cleared them at setuid already).
pub fn set_process_caps(keep: &[u32]) -> Result<()> {
    let set = keep
        .iter()
        .filter(|c| **c < 64)
        .fold(CapabilitySet::empty(), |s, c| s | one(*c));
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: set,
            permitted: set,
            inheritable: set,
        },
    )
    .map_err(|e| Error::os("capset", e))
}

pub fn set_no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).map_err(|e| Error::os("no_new_privs", e))
}

/// Capability number 21 (linux/capability.h), which libc does not name.
pub const CAP_SYS_ADMIN: u32 = 21;

/// The namespaces `clone` may not create for an app without CAP_SYS_ADMIN: what `unshare`
/// (not on the allow-list) would give it, through the other door.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// Installs a seccomp filter allowing exactly `allowed`; other calls kill the process with
/// SIGSYS, or fail with `errno`. Needs no_new_privs (or CAP_SYS_ADMIN); install it last.
///
/// With `no_namespaces` (an app without CAP_SYS_ADMIN, as Docker's profile does it):
/// `clone` is allowed only without namespace flags, and `clone3`, whose flags lie in memory
/// a filter cannot read, fails with ENOSYS, which makes the C library fall back to `clone`.
/// Without this an app could make a user namespace, and in it mount file systems and reach
/// the kernel interfaces that only CAP_SYS_ADMIN reaches.
pub fn install_seccomp(allowed: &[i64], errno: Option<i32>, no_namespaces: bool) -> Result<()> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
    };
    let refuse = match errno {
        Some(e) => SeccompAction::Errno(e as u32),
        None => SeccompAction::KillProcess,
    };
    let mut rules = std::collections::BTreeMap::new();
    for n in allowed {
        let conditions = if no_namespaces && *n == libc::SYS_clone {
            // clone's flags are its first argument on x86_64 and aarch64.
            let none = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS),
                0,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| Error::msg(format!("seccomp: {e}")))?;
            vec![none]
        } else {
            Vec::new()
        };
        rules.insert(*n, conditions);
    }
    load_filter(rules, refuse, SeccompAction::Allow)?;
    if no_namespaces && allowed.contains(&libc::SYS_clone3) {
        // A second filter: the kernel applies the stricter answer of the two.
        let clone3 = std::collections::BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
        load_filter(
            clone3,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
        )?;
    }
    Ok(())
}

/// Compiles and installs one filter: `matched` for the calls in `rules` whose conditions
/// hold, `mismatched` for the others.
fn load_filter(
    rules: std::collections::BTreeMap<i64, Vec<seccompiler::SeccompRule>>,
    mismatched: seccompiler::SeccompAction,
    matched: seccompiler::SeccompAction,
) -> Result<()> {
    use seccompiler::{BpfProgram, SeccompFilter, TargetArch};
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| Error::msg(format!("seccomp: {e:?}")))?;
    let filter = SeccompFilter::new(rules, mismatched, matched, arch)
        .map_err(|e| Error::msg(format!("building the seccomp filter: {e}")))?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e| Error::msg(format!("compiling the seccomp filter: {e:?}")))?;
    // prctl directly rather than seccompiler::apply_filter, which would also set
    // no_new_privs: a root app with CAP_SYS_ADMIN (--insecure-options=capabilities) may go
    // without it, and the caller decides.
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const seccompiler::sock_filter,
    }
    let fprog = SockFprog {
        len: u16::try_from(prog.len()).map_err(|_| Error::msg("seccomp filter too long"))?,
        filter: prog.as_ptr(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const SockFprog as libc::c_ulong,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(Error::last("installing the seccomp filter"));
    }
    Ok(())
}
