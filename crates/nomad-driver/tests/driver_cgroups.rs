//! The driver's view of its pods' cgroups over gRPC, as Nomad gets it, on whatever hierarchy
//! the host has (cgroup v1 or hybrid here; pure v2 in tests/guest/lane.sh's guest): statistics
//! that follow what the app does, an OOM kill reported as one, and a task recovered by a new
//! plugin still measured, signalled and removed with its cgroups.

mod common;

use common::tasks::*;
use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::time::{Duration, Instant};

/// The task's next statistics, asked for at a short interval.
async fn sample(p: &mut Plugin, id: &str) -> d::TaskResourceUsage {
    let mut stream = p
        .driver
        .task_stats(d::TaskStatsRequest {
            task_id: id.into(),
            collection_interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 500_000_000,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    // The first reading has no CPU percentage yet (nothing to compare with): the second.
    let _ = stream.message().await.unwrap().unwrap();
    let s = stream.message().await.unwrap().unwrap();
    s.stats.unwrap().agg_resource_usage.unwrap()
}

fn rss(u: &d::TaskResourceUsage) -> u64 {
    u.memory.as_ref().unwrap().rss
}

fn percent(u: &d::TaskResourceUsage) -> f64 {
    u.cpu.as_ref().unwrap().percent
}

/// Memory and CPU figures move when the app allocates and spins: read from the pod's own
/// cgroups, wherever its plan recorded them.
#[tokio::test(flavor = "multi_thread")]
async fn statistics_follow_what_the_app_uses() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    // 24 MB held in a shell variable, then a busy loop, after a quiet start.
    let (_alloc, id, _) = start_command(
        &mut p,
        "busy",
        "/bin/sh",
        &[
            "-c",
            "sleep 3; x=$(head -c 25165824 /dev/zero | tr '\\0' a); while :; do :; done",
        ],
    )
    .await;
    let quiet = sample(&mut p, &id).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let busy = loop {
        let u = sample(&mut p, &id).await;
        if rss(&u) > rss(&quiet) + (16 << 20) && percent(&u) > 20.0 {
            break u;
        }
        assert!(
            Instant::now() < deadline,
            "the figures never moved: quiet {quiet:?}, now {u:?}"
        );
    };
    assert!(percent(&quiet) < 20.0, "{quiet:?}");
    eprintln!(
        "rss {} -> {}, cpu {:.0}% -> {:.0}%",
        rss(&quiet),
        rss(&busy),
        percent(&quiet),
        percent(&busy)
    );
    destroy(&mut p, id).await;
    assert_eq!(pods(rkt_dir.path()), "");
}

/// An app over its memory limit is killed by the kernel inside its pod's cgroup, and the
/// driver says so (`oom_killed`, which Nomad shows as "OOM Killed").
#[tokio::test(flavor = "multi_thread")]
async fn an_oom_kill_is_reported_as_one() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let cfg = command_config(
        &registry().image(),
        "/bin/sh",
        &[
            "-c",
            "x=$(head -c 100663296 /dev/zero | tr '\\0' a); echo survived",
        ],
        Some("none"),
    );
    let alloc = Alloc::new("hog");
    let mut task = alloc.task_config(cfg);
    let linux = task
        .resources
        .as_mut()
        .unwrap()
        .linux_resources
        .as_mut()
        .unwrap();
    linux.memory_limit_bytes = 32 << 20;
    let id = task.id.clone();
    start(&mut p, task).await;
    let w = tokio::time::timeout(Duration::from_secs(120), wait(&mut p, &id))
        .await
        .expect("the hog is killed");
    let r = w.result.unwrap();
    assert!(r.oom_killed, "{r:?}");
    assert_eq!(r.exit_code, 137, "killed by SIGKILL: {r:?}");
    destroy(&mut p, id).await;
    assert_eq!(pods(rkt_dir.path()), "");
}

/// A task outlives its plugin; a new plugin recovers it from its handle and still reads its
/// statistics, signals it, and removes it with every cgroup it had.
#[tokio::test(flavor = "multi_thread")]
async fn a_recovered_task_is_measured_signalled_and_removed() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let cfg = command_config(
        &registry().image(),
        "/bin/sh",
        &["-c", "trap 'exit 5' USR1; while true; do sleep 0.1; done"],
        Some("none"),
    );
    let alloc = Alloc::new("kept");
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    let handle = start(&mut p, task).await.handle.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    p.kill();

    let mut p = configured(rkt_dir.path()).await;
    p.driver
        .recover_task(d::RecoverTaskRequest {
            task_id: id.clone(),
            handle: Some(handle),
        })
        .await
        .unwrap();
    let u = sample(&mut p, &id).await;
    assert!(rss(&u) > 0, "{u:?}");
    let uuid = rkt_ok(rkt_dir.path(), &["list", "--full", "--no-legend"]);
    let uuid = uuid.split_whitespace().next().unwrap().to_string();
    let rel = layout::cgroup::pod_rel(layout::cgroup::DEFAULT_PARENT, &uuid);
    let root = std::path::Path::new(layout::cgroup::ROOT);
    assert!(!layout::cgroup::pod_dirs_everywhere(root, &rel).is_empty());
    p.driver
        .signal_task(d::SignalTaskRequest {
            task_id: id.clone(),
            signal: "SIGUSR1".into(),
        })
        .await
        .unwrap();
    let w = tokio::time::timeout(Duration::from_secs(30), wait(&mut p, &id))
        .await
        .expect("the signal ends the app");
    assert_eq!(w.result.unwrap().exit_code, 5);
    destroy(&mut p, id).await;
    assert_eq!(pods(rkt_dir.path()), "");
    assert_eq!(
        layout::cgroup::pod_dirs_everywhere(root, &rel),
        Vec::<std::path::PathBuf>::new()
    );
}
