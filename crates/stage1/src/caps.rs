//! Capabilities, no_new_privs and the seccomp filter for the app, applied between fork and
//! exec.

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in `keep` from the bounding set. Call before changing user.
pub fn limit_bounding_set(keep: &[u32]) -> Result<(), String> {
    for cap in 0..=last_cap() {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(format!(
                "dropping capability {cap} from the bounding set: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Sets the effective, permitted and inheritable sets to exactly `keep` (for apps that run
/// as root; for other users the kernel has cleared them at setuid already).
pub fn set_process_caps(keep: &[u32]) -> Result<(), String> {
    let mut data = [Data::default(); 2];
    for &cap in keep {
        let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        if word < 2 {
            data[word].effective |= bit;
            data[word].permitted |= bit;
            data[word].inheritable |= bit;
        }
    }
    let mut header = Header {
        version: CAP_V3,
        pid: 0,
    };
    // SAFETY: header and a two-element data array, as capset(2) expects for version 3.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if r != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    Ok(())
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
