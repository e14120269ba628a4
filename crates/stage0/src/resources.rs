//! An app's cgroup resources and devices, checked and turned into the plan's fields: every
//! combination the kernel would refuse (or silently not enforce) is refused here, naming the
//! flag and the fix, before anything is fetched or run.

use crate::error::{bail, invalid, Context, Result};
use crate::spec::{AppSpec, MemorySwap};
use layout::plan::{DeviceRule, Mount, UNLIMITED};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// The CFS period when `--cpu-period` is not given, the kernel's default.
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

/// What an app's resource flags come to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    pub memory_swap: Option<u64>,
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: Option<u64>,
    pub cpuset_cpus: Option<String>,
}

/// Checks the memory, CPU and cpuset flags of `app` against each other and this host.
pub(crate) fn resources(app: &AppSpec, online_cpus: &str) -> Result<Resources> {
    check_memory(app)?;
    let (cpu_quota_us, cpu_period_us) = cpu_quota(app)?;
    let cpuset_cpus = match &app.cpuset_cpus {
        Some(set) => Some(check_cpuset(set, online_cpus)?),
        None => None,
    };
    Ok(Resources {
        memory_swap: app.memory_swap.map(|s| match s {
            MemorySwap::Limit(n) => n,
            MemorySwap::Unlimited => UNLIMITED,
        }),
        cpu_quota_us,
        cpu_period_us,
        cpuset_cpus,
    })
}

fn check_memory(app: &AppSpec) -> Result<()> {
    if let (Some(r), Some(m)) = (app.memory_reservation, app.memory) {
        if r > m {
            bail!("--memory-reservation ({r} bytes) is more than --memory ({m} bytes): the reservation is a floor below the limit; lower it or raise --memory");
        }
    }
    match (app.memory_swap, app.memory) {
        (Some(_), None) => bail!(
            "--memory-swap limits memory and swap together, and needs --memory (the memory part of it); give --memory too"
        ),
        (Some(MemorySwap::Limit(s)), Some(m)) if s < m => bail!(
            "--memory-swap ({s} bytes) is less than --memory ({m} bytes): it counts memory and swap together; give at least --memory, or -1 for no swap limit"
        ),
        _ => Ok(()),
    }
}

/// The CFS quota and period: `--cpu` millicores of each period.
fn cpu_quota(app: &AppSpec) -> Result<(Option<u64>, Option<u64>)> {
    let Some(millicores) = app.cpu_millicores else {
        if app.cpu_period_us.is_some() {
            bail!("--cpu-period sets the period of --cpu's quota, and there is no --cpu; give --cpu too");
        }
        return Ok((None, None));
    };
    if millicores == 0 {
        bail!("a CPU limit of 0 would never let the app run; give millicores of 1 or more");
    }
    let period = app.cpu_period_us.unwrap_or(DEFAULT_CPU_PERIOD_US);
    if !(1_000..=1_000_000).contains(&period) {
        bail!("--cpu-period={period}: the kernel takes periods from 1000 to 1000000 microseconds (1 ms to 1 s)");
    }
    let quota = millicores.saturating_mul(period) / 1000;
    if quota < 1_000 {
        bail!("--cpu={millicores}m of a {period} us period is a quota of {quota} us, below the kernel's least (1000 us); give more CPU or a longer --cpu-period");
    }
    Ok((Some(quota), app.cpu_period_us))
}

/// A cpuset's CPUs must be online here (the kernel refuses others when the pod starts).
fn check_cpuset(set: &crate::spec::CpuSet, online: &str) -> Result<String> {
    let online = crate::spec::CpuSet::parse(online.trim())
        .map(|s| s.cpus())
        .unwrap_or_default();
    if let Some(c) = set.cpus().into_iter().find(|c| !online.contains(c)) {
        bail!(
            "--cpuset-cpus={}: CPU {c} is not online on this host (online: {}); choose among those",
            set.as_str(),
            list(&online)
        );
    }
    Ok(set.as_str().to_string())
}

fn list(cpus: &[u32]) -> String {
    cpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The host's online CPUs, in the kernel's list format.
pub(crate) fn online_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default()
}

/// `--device`s: a bind of each host node into the app and a rule for the device cgroup. The
/// host path is the operator's (not an image's), so a symlink such as `/dev/disk/by-id/…` is
/// followed to its node, which must be a character or block device.
pub(crate) fn devices(app: &AppSpec) -> Result<(Vec<Mount>, Vec<DeviceRule>)> {
    let mut mounts = Vec::new();
    let mut rules = Vec::new();
    for d in &app.devices {
        let shown = d.host.display();
        let node = std::fs::canonicalize(&d.host)
            .with_context(|| format!("--device {shown}: the host has no such device"))?;
        let rule = rule_for(&node, &d.access)?.ok_or_else(|| {
            invalid!("--device {shown}: {} is not a device node; give a character or block device such as /dev/fuse", node.display())
        })?;
        let target = d
            .target
            .clone()
            .unwrap_or_else(|| d.host.display().to_string());
        mounts.push(Mount {
            source: node.display().to_string(),
            target,
            read_only: !d.access.contains('w'),
            recursive: false,
        });
        rules.push(rule);
    }
    Ok((mounts, rules))
}

/// The rule for the node at `path` with `access`, or None when it is no device node.
fn rule_for(path: &Path, access: &str) -> Result<Option<DeviceRule>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let kind = if meta.file_type().is_char_device() {
        'c'
    } else if meta.file_type().is_block_device() {
        'b'
    } else {
        return Ok(None);
    };
    use std::os::unix::fs::MetadataExt;
    let rdev = meta.rdev();
    Ok(Some(DeviceRule {
        kind,
        major: libc::major(rdev),
        minor: Some(libc::minor(rdev)),
        access: access.to_string(),
    }))
}

/// Rules for the app's bind mounts whose host source is itself a device node (a host volume
/// of `/dev/fuse`, Nomad's `devices`): given on purpose, so allowed, read-only ones for
/// reading only. Directories are mounted nodev and need none.
pub(crate) fn mount_rules(mounts: &[Mount]) -> Vec<DeviceRule> {
    mounts
        .iter()
        .filter(|m| m.source.starts_with('/'))
        .filter_map(|m| {
            let access = if m.read_only { "r" } else { "rw" };
            rule_for(Path::new(&m.source), access).ok().flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CpuSet, DeviceSpec};

    fn app() -> AppSpec {
        AppSpec {
            memory: Some(64 << 20),
            cpu_millicores: Some(500),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_quota_and_period() {
        let r = resources(&app(), "0-1").unwrap();
        assert_eq!((r.cpu_quota_us, r.cpu_period_us), (Some(50_000), None));
        let a = AppSpec {
            cpu_period_us: Some(10_000),
            ..app()
        };
        let r = resources(&a, "0-1").unwrap();
        assert_eq!(
            (r.cpu_quota_us, r.cpu_period_us),
            (Some(5_000), Some(10_000))
        );
        for (millicores, period, what) in [
            (Some(500), Some(999), "1000 to 1000000"),
            (Some(1), Some(100_000), "least"),
            (None, Some(50_000), "give --cpu"),
        ] {
            let a = AppSpec {
                cpu_millicores: millicores,
                cpu_period_us: period,
                ..Default::default()
            };
            let e = resources(&a, "0").unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn memory_reservation_and_swap() {
        let a = AppSpec {
            memory_reservation: Some(128 << 20),
            ..app()
        };
        assert!(resources(&a, "0")
            .unwrap_err()
            .to_string()
            .contains("--memory-reservation"));
        let a = AppSpec {
            memory_swap: Some(MemorySwap::Limit(32 << 20)),
            ..app()
        };
        assert!(resources(&a, "0")
            .unwrap_err()
            .to_string()
            .contains("less than --memory"));
        let a = AppSpec {
            memory_swap: Some(MemorySwap::Unlimited),
            memory: None,
            ..app()
        };
        assert!(resources(&a, "0")
            .unwrap_err()
            .to_string()
            .contains("needs --memory"));
        let a = AppSpec {
            memory_swap: Some(MemorySwap::Unlimited),
            ..app()
        };
        assert_eq!(resources(&a, "0").unwrap().memory_swap, Some(UNLIMITED));
    }

    #[test]
    fn cpusets_must_be_online() {
        let a = AppSpec {
            cpuset_cpus: Some(CpuSet::parse("1").unwrap()),
            ..app()
        };
        assert_eq!(
            resources(&a, "0-1\n").unwrap().cpuset_cpus.as_deref(),
            Some("1")
        );
        let e = resources(&a, "0\n").unwrap_err().to_string();
        assert!(e.contains("CPU 1 is not online"), "{e}");
    }

    #[test]
    fn devices_must_be_device_nodes() {
        let a = AppSpec {
            devices: vec![DeviceSpec {
                host: "/dev/null".into(),
                target: Some("/dev/mine".into()),
                access: "r".into(),
            }],
            ..Default::default()
        };
        let (mounts, rules) = devices(&a).unwrap();
        assert_eq!(rules[0].to_line(), "c 1:3 r");
        assert_eq!(
            (mounts[0].target.as_str(), mounts[0].read_only),
            ("/dev/mine", true)
        );
        assert_eq!(mount_rules(&mounts)[0].to_line(), "c 1:3 r");
        for (host, what) in [
            ("/etc/hostname", "not a device node"),
            ("/dev/nonexistent", "no such device"),
        ] {
            let a = AppSpec {
                devices: vec![DeviceSpec {
                    host: host.into(),
                    target: None,
                    access: "rw".into(),
                }],
                ..Default::default()
            };
            let e = devices(&a).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
