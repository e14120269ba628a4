//! Linux capability names, and the set an app gets: appc's default set, narrowed by
//! `--caps-retain` (an exact allow-list) or `--caps-remove` (subtracted from the default).

use crate::error::{invalid, Result};

/// Every capability, by number.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// appc's default capability set (the same 14 that Docker grants).
pub const DEFAULT: [&str; 14] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETFCAP",
    "CAP_SYS_CHROOT",
];

/// The number of a capability name (`CAP_NET_ADMIN` or `net_admin`).
pub fn number(name: &str) -> Result<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    match NAMES.iter().position(|n| *n == full) {
        Some(i) => Ok(i as u32),
        None => invalid!("unknown capability {name:?}; use names such as CAP_NET_ADMIN"),
    }
}

pub fn name(n: u32) -> &'static str {
    NAMES.get(n as usize).copied().unwrap_or("CAP_UNKNOWN")
}

/// The capabilities an app keeps, as numbers, sorted: only `retain`, or appc's default set
/// without `remove`.
pub fn effective_set(retain: Option<&[String]>, remove: Option<&[String]>) -> Result<Vec<u32>> {
    let parse = |list: &[String]| -> Result<Vec<u32>> {
        list.iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| number(c))
            .collect()
    };
    let mut set = match (retain, remove) {
        (Some(_), Some(_)) => invalid!("--caps-retain and --caps-remove cannot be used together"),
        (Some(r), None) => parse(r)?,
        (None, rm) => {
            let remove = rm.map(parse).transpose()?.unwrap_or_default();
            DEFAULT
                .iter()
                .map(|n| number(n).expect("default names are valid"))
                .filter(|c| !remove.contains(c))
                .collect()
        }
    };
    set.sort_unstable();
    set.dedup();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(set: &[u32]) -> u64 {
        set.iter().fold(0, |m, c| m | 1 << c)
    }

    #[test]
    fn default_set_is_the_familiar_mask() {
        let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(mask(&effective_set(None, None).unwrap()), 0xa80425fb);
        assert_eq!(
            mask(&effective_set(None, Some(&list("CAP_NET_RAW"))).unwrap()),
            0xa80405fb
        );
        assert_eq!(
            mask(&effective_set(Some(&list("CAP_CHOWN,net_admin")), None).unwrap()),
            0x1001
        );
        assert!(effective_set(Some(&list("CAP_CHOWN")), Some(&list("CAP_KILL"))).is_err());
        assert!(effective_set(Some(&list("CAP_BOGUS")), None).is_err());
        assert_eq!(name(21), "CAP_SYS_ADMIN");
    }
}
