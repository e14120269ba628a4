//! Task statistics from the pod's own cgroups (where the pod recorded them in its plan when it
//! ran: `rkt.slice/rkt-<uuid>` under each controller unless `--cgroup-parent` said otherwise),
//! on cgroup v1, hybrid and v2 hosts. On v2 the pod's cgroup counts its init's and apps'
//! leaves together (memory.stat and cpu.stat are hierarchical). Unlike the original driver's
//! pid-walking executor, this sees every process of the pod and the kernel's own accounting:
//! memory RSS, cache, swap, usage and max usage; CPU user, system, percent and throttling.

use super::FileError;
use std::path::Path;
use std::time::Instant;

/// One reading of a pod's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub rss: u64,
    pub cache: u64,
    pub swap: u64,
    pub usage: u64,
    pub max_usage: Option<u64>,
    /// Nanoseconds of CPU time.
    pub cpu_user: u64,
    pub cpu_system: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

/// What Nomad is sent: counters plus CPU use since the previous reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub counters: Counters,
    /// 100 = one core.
    pub percent: f64,
    pub user_percent: f64,
    pub system_percent: f64,
    /// MHz used, as Nomad compares it with the task's `cpu`.
    pub total_ticks: f64,
}

/// Reads the pod cgroup `rel` (as its plan recorded it) under `root` (normally
/// /sys/fs/cgroup).
pub fn read(root: &Path, rel: &str) -> Result<Counters, FileError> {
    use layout::cgroup::{self, Hierarchy};
    match Hierarchy::detect(root) {
        Hierarchy::V1 => {
            let cpu = root.join("cpu").join(rel);
            let cpu = if cpu.is_dir() {
                cpu
            } else {
                root.join("cpu,cpuacct").join(rel)
            };
            read_v1(
                &root.join("memory").join(rel),
                &cgroup::v1_cpuacct_dir(root, rel),
                &cpu,
            )
        }
        Hierarchy::V2 => read_v2(&root.join(rel)),
    }
}

fn read_v1(mem: &Path, acct: &Path, cpu: &Path) -> Result<Counters, FileError> {
    let stat = keyed(&read_file(&mem.join("memory.stat"))?);
    let get = |k: &str| {
        stat.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    let usage = read_file(&mem.join("memory.usage_in_bytes"))?
        .trim()
        .parse()
        .unwrap_or(0);
    let max_usage = read_file(&mem.join("memory.max_usage_in_bytes"))
        .ok()
        .and_then(|v| v.trim().parse().ok());
    // cpuacct.stat is in USER_HZ ticks (1/100 s on Linux).
    let cpu_stat = keyed(&read_file(&acct.join("cpuacct.stat")).unwrap_or_default());
    let ticks = |k: &str| {
        cpu_stat
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v * 10_000_000)
            .unwrap_or(0)
    };
    let throttling = keyed(&read_file(&cpu.join("cpu.stat")).unwrap_or_default());
    let thr = |k: &str| {
        throttling
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    Ok(Counters {
        rss: get("total_rss"),
        cache: get("total_cache"),
        swap: get("total_swap"),
        usage,
        max_usage,
        cpu_user: ticks("user"),
        cpu_system: ticks("system"),
        throttled_periods: thr("nr_throttled"),
        throttled_time: thr("throttled_time"),
    })
}

fn read_v2(dir: &Path) -> Result<Counters, FileError> {
    let stat = keyed(&read_file(&dir.join("memory.stat"))?);
    let get = |k: &str| {
        stat.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    let num = |f: &str| {
        read_file(&dir.join(f))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let cpu = keyed(&read_file(&dir.join("cpu.stat")).unwrap_or_default());
    let us = |k: &str| {
        cpu.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    Ok(Counters {
        rss: get("anon"),
        cache: get("file"),
        swap: num("memory.swap.current").unwrap_or(0),
        usage: num("memory.current").unwrap_or(0),
        max_usage: num("memory.peak"),
        cpu_user: us("user_usec") * 1000,
        cpu_system: us("system_usec") * 1000,
        throttled_periods: us("nr_throttled"),
        throttled_time: us("throttled_usec") * 1000,
    })
}

fn read_file(p: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(p).map_err(|e| FileError::new("reading", p, e))
}

/// `key value` lines.
fn keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Turns successive readings into samples with CPU percentages.
#[derive(Default)]
pub struct Sampler {
    last: Option<(Instant, Counters)>,
}

impl Sampler {
    pub fn sample(&mut self, now: Instant, c: Counters, mhz_per_core: f64) -> Sample {
        let mut s = Sample {
            counters: c.clone(),
            ..Default::default()
        };
        if let Some((t, prev)) = &self.last {
            let wall = now.duration_since(*t).as_nanos() as f64;
            if wall > 0.0 {
                let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 / wall * 100.0;
                s.user_percent = pct(c.cpu_user, prev.cpu_user);
                s.system_percent = pct(c.cpu_system, prev.cpu_system);
                s.percent = s.user_percent + s.system_percent;
                s.total_ticks = s.percent / 100.0 * mhz_per_core;
            }
        }
        self.last = Some((now, c));
        s
    }
}

/// The host CPU's clock in MHz (the first `cpu MHz` of /proc/cpuinfo), as Nomad's ticks use.
pub fn mhz_per_core() -> f64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_on_fake_hierarchies() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        // A pod that ran before the parent was configurable recorded rkt/<uuid>.
        let u = "rkt/abc";
        let w = |p: &str, s: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        w(
            "memory/rkt/abc/memory.stat",
            "rss 1\ntotal_rss 4096\ntotal_cache 8192\ntotal_swap 0\n",
        );
        w("memory/rkt/abc/memory.usage_in_bytes", "12288\n");
        w("memory/tasks", "");
        w("memory/rkt/abc/memory.max_usage_in_bytes", "20000\n");
        w("cpuacct/rkt/abc/cpuacct.stat", "user 150\nsystem 50\n");
        w(
            "cpu/rkt/abc/cpu.stat",
            "nr_periods 10\nnr_throttled 3\nthrottled_time 999\n",
        );
        let c = read(root, u).unwrap();
        assert_eq!(
            (c.rss, c.cache, c.usage, c.max_usage),
            (4096, 8192, 12288, Some(20000))
        );
        assert_eq!((c.cpu_user, c.cpu_system), (1_500_000_000, 500_000_000));
        assert_eq!((c.throttled_periods, c.throttled_time), (3, 999));

        let t2 = tempfile::tempdir().unwrap();
        let root = t2.path();
        let w = |p: &str, s: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        let u = "rkt.slice/rkt-abc";
        w("rkt.slice/rkt-abc/memory.stat", "anon 100\nfile 200\n");
        w("rkt.slice/rkt-abc/memory.current", "300\n");
        w(
            "rkt.slice/rkt-abc/cpu.stat",
            "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnr_throttled 2\nthrottled_usec 5\n",
        );
        let c = read(root, u).unwrap();
        assert_eq!(
            (c.rss, c.cache, c.usage, c.max_usage),
            (100, 200, 300, None)
        );
        assert_eq!(
            (c.cpu_user, c.cpu_system, c.throttled_time),
            (20_000, 10_000, 5_000)
        );
        assert!(read(root, "missing").is_err());
    }

    #[test]
    fn percent_from_successive_readings() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        let c0 = Counters::default();
        assert_eq!(s.sample(t0, c0, 2000.0).percent, 0.0);
        let c1 = Counters {
            cpu_user: 300_000_000,
            cpu_system: 200_000_000,
            ..Default::default()
        };
        let x = s.sample(t0 + std::time::Duration::from_secs(1), c1, 2000.0);
        assert!((x.percent - 50.0).abs() < 1e-9, "{}", x.percent);
        assert!((x.user_percent - 30.0).abs() < 1e-9);
        assert!((x.total_ticks - 1000.0).abs() < 1e-6);
    }
}
