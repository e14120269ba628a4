//! The driver's benchmark (run by bench/driver.sh; needs root and the workspace built in
//! release mode): plugin idle memory, StartTask latency against plain `rkt run`, and node
//! memory per running task beyond the app itself.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// (RSS, PSS, USS) in KiB.
fn mem(pid: u32) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>()
    };
    (
        field("Rss:"),
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

fn mem_used_kib() -> u64 {
    let t = std::fs::read_to_string("/proc/meminfo").unwrap();
    let get = |k: &str| {
        t.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    get("MemTotal:") - get("MemAvailable:")
}

fn sleeper(image: &str) -> Vec<u8> {
    command_config(image, "/bin/sleep", &["3600"], Some("none"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !is_root() {
        eprintln!("the driver benchmark needs root");
        std::process::exit(1);
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let tasks: usize = std::env::var("TASKS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let registry = Registry::start();
    let image = registry.image();
    let rkt_dir = RktDir::new();
    let rkt = |args: &[&str]| {
        std::process::Command::new(rkt_bin())
            .arg(format!("--dir={}", rkt_dir.path().display()))
            .arg("--insecure-options=all")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(rkt(&["fetch", &image]).status.success());

    let mut p = Plugin::start(rkt_dir.path()).await;
    p.set_config(true).await;
    let mut fp = p
        .driver
        .fingerprint(d::FingerprintRequest {})
        .await
        .unwrap()
        .into_inner();
    fp.message().await.unwrap();
    let _events = p
        .driver
        .task_events(d::TaskEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _, idle_uss) = mem(p.child.id());

    // StartTask to running against rkt run of /bin/true, alternating, cached image.
    let (mut start_ms, mut run_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let out = rkt(&["run", "--net=none", &image, "--exec", "/bin/true"]);
        run_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(out.status.success());
        let alloc = Alloc::new("bench");
        let task = alloc.task_config(sleeper(&image));
        let id = task.id.clone();
        let t = Instant::now();
        p.driver
            .start_task(d::StartTaskRequest { task: Some(task) })
            .await
            .unwrap();
        start_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        p.driver
            .destroy_task(d::DestroyTaskRequest {
                task_id: id,
                force: true,
            })
            .await
            .unwrap();
        rkt(&["gc", "--grace-period=0s"]);
    }

    // Node memory per running task, beyond the app.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_used = mem_used_kib();
    let before_plugin = mem(p.child.id()).0;
    let mut allocs = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..tasks {
        let alloc = Alloc::new("mem");
        let task = alloc.task_config(sleeper(&image));
        ids.push(task.id.clone());
        p.driver
            .start_task(d::StartTaskRequest { task: Some(task) })
            .await
            .unwrap();
        allocs.push(alloc);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_used = mem_used_kib();
    let after_plugin = mem(p.child.id()).0;
    // The pods' own processes: supervisor and init (rkt-stage1), and the apps (sleep).
    let (mut stage1_pss, mut stage1_uss, mut app_pss) = (0u64, 0u64, 0u64);
    for entry in std::fs::read_dir(rkt_dir.path().join("pods/run"))
        .unwrap()
        .flatten()
    {
        for f in ["ppid", "pid"] {
            if let Ok(pid) = std::fs::read_to_string(entry.path().join(f))
                .map(|p| p.trim().parse::<u32>().unwrap_or(0))
            {
                let (_, pss, uss) = mem(pid);
                stage1_pss += pss;
                stage1_uss += uss;
                if f == "pid" {
                    // The app is the init's only child.
                    let children =
                        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                            .unwrap_or_default();
                    for c in children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok())
                    {
                        app_pss += mem(c).1;
                    }
                }
            }
        }
    }
    for id in ids {
        p.driver
            .destroy_task(d::DestroyTaskRequest {
                task_id: id,
                force: true,
            })
            .await
            .unwrap();
    }
    let n = tasks as f64;
    let node_per_task = (after_used.saturating_sub(before_used) as f64 - app_pss as f64) / n;
    let (s, r) = (median(start_ms.clone()), median(run_ms.clone()));
    println!("| measure | value |");
    println!("|---|---|");
    println!("| plugin idle RSS (fingerprint and events streams open) | {} KiB ({:.1} MiB); USS {} KiB |", idle_rss, idle_rss as f64 / 1024.0, idle_uss);
    println!("| StartTask to running (median of {rounds}) | {s:.1} ms |");
    println!("| rkt run --net=none of /bin/true (median of {rounds}, alternating) | {r:.1} ms |");
    println!("| StartTask / rkt run | {:.2} |", s / r);
    println!(
        "| per task: rkt-stage1 supervisor + init, PSS (USS) | {:.0} KiB ({:.0} KiB) |",
        stage1_pss as f64 / n,
        stage1_uss as f64 / n
    );
    println!(
        "| per task: plugin RSS growth | {:.0} KiB |",
        after_plugin.saturating_sub(before_plugin) as f64 / n
    );
    println!("| per task: node memory used (MemTotal - MemAvailable) minus the app's PSS, {tasks} tasks | {node_per_task:.0} KiB |");
}
