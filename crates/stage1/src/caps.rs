//! Capabilities, no_new_privs and the seccomp filter for the app, applied between fork and
//! exec.

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
pub fn limit_bounding_set(keep: &[u32]) -> Result<(), String> {
    for cap in (0..=last_cap().min(63)).filter(|c| !keep.contains(c)) {
        rustix::thread::remove_capability_from_bounding_set(one(cap))
            .map_err(|e| format!("dropping capability {cap} from the bounding set: {e}"))?;
    }
    Ok(())
}

/// Sets the effective, permitted and inheritable sets to exactly `keep` (for apps that run
/// as root; for other users the kernel has cleared them at setuid already).
pub fn set_process_caps(keep: &[u32]) -> Result<(), String> {
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
    .map_err(|e| format!("capset: {e}"))
}

pub fn set_no_new_privs() -> Result<(), String> {
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))
}

/// Installs a seccomp filter allowing exactly `allowed`; other calls kill the process with
/// SIGSYS, or fail with `errno`. Needs no_new_privs (or CAP_SYS_ADMIN); install it last.
pub fn install_seccomp(allowed: &[i64], errno: Option<i32>) -> Result<(), String> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e:?}"))?;
    let rules = allowed.iter().map(|n| (*n, Vec::new())).collect();
    let refuse = match errno {
        Some(e) => SeccompAction::Errno(e as u32),
        None => SeccompAction::KillProcess,
    };
    let filter = SeccompFilter::new(rules, refuse, SeccompAction::Allow, arch)
        .map_err(|e| format!("building the seccomp filter: {e}"))?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e| format!("compiling the seccomp filter: {e:?}"))?;
    // prctl directly rather than seccompiler::apply_filter, which would also set
    // no_new_privs: a root app with CAP_SYS_ADMIN (--insecure-options=capabilities) may go
    // without it, and the caller decides.
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const seccompiler::sock_filter,
    }
    let fprog = SockFprog {
        len: u16::try_from(prog.len()).map_err(|_| "seccomp filter too long".to_string())?,
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
        return Err(format!(
            "installing the seccomp filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
