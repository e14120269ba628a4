//! Soak: StartTask/StopTask/DestroyTask cycles on one long-lived plugin, driven like a Nomad
//! client. Before and after (after a warm-up), printed and compared: the plugin's open
//! descriptors, threads and resident memory, and what pods leave on the host (pod
//! directories, mounts of the store, pod cgroups).
//!
//! `SOAK_CYCLES` (default 50) sets the length; `SOAK_CYCLES=1000` is the long form. Host-wide
//! counts: a binary with one test, run while nothing else makes pods.

mod common;

use common::tasks::*;
use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn proc_status(pid: u32, key: &str) -> usize {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// Mounts in this mount namespace, except network namespaces other programs pinned in
/// /run/netns (a pod's are `rkt-<uuid>`, and count).
fn mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            let target = l.split(' ').nth(4).unwrap_or("");
            !target.starts_with("/run/netns/") || target.starts_with("/run/netns/rkt-")
        })
        .count()
}

fn counts(pid: u32, rkt_dir: &std::path::Path) -> BTreeMap<&'static str, usize> {
    let dir = rkt_dir.display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // Pods' cgroups below the default parent, in the unified hierarchy and in each v1 one.
    let cgroups: usize = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path())
        .chain([std::path::PathBuf::from("/sys/fs/cgroup")])
        .map(|h| {
            std::fs::read_dir(h.join(layout::cgroup::DEFAULT_PARENT))
                .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0)
        })
        .sum();
    // Every pod state directory (prepare, prepared, run, exited-garbage, ...).
    let pod_dirs: usize = std::fs::read_dir(rkt_dir.join("pods"))
        .map(|states| {
            states
                .flatten()
                .map(|s| {
                    std::fs::read_dir(s.path())
                        .map(|rd| rd.count())
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0);
    BTreeMap::from([
        (
            "plugin fds",
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count(),
        ),
        ("plugin threads", proc_status(pid, "Threads:")),
        ("plugin RSS (KiB)", proc_status(pid, "VmRSS:")),
        ("mounts", mounts()),
        (
            "mounts of the store",
            mountinfo.lines().filter(|l| l.contains(&dir)).count(),
        ),
        ("pod cgroups", cgroups),
        ("pod dirs", pod_dirs),
    ])
}

/// One task from start to destroy; its app exits 3 on SIGTERM.
async fn one(p: &mut Plugin, cfg: &[u8], i: usize) {
    let mut alloc = Alloc::new(&format!("soak{i}"));
    let task = alloc.task_config(cfg.to_vec());
    let id = task.id.clone();
    start(p, task).await;
    alloc.until_trapped().await;
    p.driver
        .stop_task(d::StopTaskRequest {
            task_id: id.clone(),
            timeout: secs(10),
            signal: "SIGTERM".into(),
        })
        .await
        .unwrap();
    let w = wait(p, &id).await;
    assert_eq!(
        w.result.unwrap().exit_code,
        3,
        "cycle {i}: {}",
        alloc.stderr()
    );
    destroy(p, id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn start_stop_destroy_cycles_leak_nothing_in_the_plugin() {
    if !root_or_skip() {
        return;
    }
    let cycles: usize = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let pid = p.child.id();
    let image = registry().image();
    let cfg = command_config(
        &image,
        "/bin/sh",
        &[
            "-c",
            "trap 'exit 3' TERM; : >/alloc/trapped; while true; do sleep 0.1; done",
        ],
        Some("none"),
    );
    // Warm-up: the first tasks make what the plugin keeps (runtime threads, buffers, the
    // gRPC connection's state).
    for i in 0..10 {
        one(&mut p, &cfg, i).await;
    }
    let before = counts(pid, rkt_dir.path());
    let t = Instant::now();
    for i in 0..cycles {
        one(&mut p, &cfg, 10 + i).await;
        if (i + 1) % 100 == 0 {
            eprintln!(
                "{} cycles, {:?}, plugin RSS {} KiB",
                i + 1,
                t.elapsed(),
                proc_status(pid, "VmRSS:")
            );
        }
    }
    let took = t.elapsed();
    // Threads that ran the last cycle's blocking work end after tokio's idle timeout (10 s).
    let after = test_support::eventually(Duration::from_secs(20), "the plugin to settle", || {
        let c = counts(pid, rkt_dir.path());
        (c["plugin threads"] <= before["plugin threads"] && c["plugin fds"] <= before["plugin fds"])
            .then_some(c)
    });
    eprintln!("{cycles} StartTask/StopTask/DestroyTask cycles in {took:?}");
    eprintln!("{:<24} {:>8} {:>8}", "", "before", "after");
    for (k, v) in &before {
        eprintln!("{k:<24} {v:>8} {:>8}", after[k]);
    }
    for k in [
        "plugin fds",
        "mounts",
        "mounts of the store",
        "pod cgroups",
        "pod dirs",
    ] {
        assert_eq!(before[k], after[k], "{k} grew over {cycles} cycles");
    }
    // Memory: the allocator keeps freed memory, so allow a little; a leak per task of even a
    // few KiB shows over a thousand cycles.
    let (rss0, rss1) = (before["plugin RSS (KiB)"], after["plugin RSS (KiB)"]);
    assert!(
        rss1 <= rss0 + 8 * 1024,
        "the plugin's RSS grew from {rss0} KiB to {rss1} KiB over {cycles} cycles"
    );
    assert_eq!(pods(rkt_dir.path()), "");
}
