//! The driver's view of its pods' cgroups over gRPC, as Nomad gets it, on whatever hierarchy
//! the host has (cgroup v1 or hybrid here; pure v2 in tests/guest/lane.sh's guest): statistics
//! that follow what the app does, an OOM kill reported as one, and a task recovered by a new
//! plugin still measured, signalled and removed with its cgroups.

mod common;

use common::tasks::*;
use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::time::Duration;
use test_support::poll_async;

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
    // Each sample waits for the plugin's next stats period: no pause of our own between.
    let (limit, every) = (Duration::from_secs(120), Duration::ZERO);
    let busy = poll_async(limit, every, "the figures to move", async || {
        let u = sample(&mut p, &id).await;
        (rss(&u) > rss(&quiet) + (16 << 20) && percent(&u) > 20.0).then_some(u)
    })
    .await;
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
    let res = task.resources.as_mut().unwrap();
    res.allocated_resources.as_mut().unwrap().memory = Some(d::AllocatedMemoryResources {
        memory_mb: 32,
        memory_max_mb: 0,
    });
    res.linux_resources.as_mut().unwrap().memory_limit_bytes = 32 << 20;
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
        &[
            "-c",
            "trap 'exit 5' USR1; : >/alloc/trapped; while true; do sleep 0.1; done",
        ],
        Some("none"),
    );
    let alloc = Alloc::new("kept");
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    let handle = start(&mut p, task).await.handle.unwrap();
    alloc.until_trapped().await;
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

/// The values of cgroup file `name` in every directory of pod `uuid` that has it.
fn cgroup_values(uuid: &str, name: &str) -> Vec<String> {
    let rel = layout::cgroup::pod_rel(layout::cgroup::DEFAULT_PARENT, uuid);
    layout::cgroup::pod_dirs_everywhere(std::path::Path::new(layout::cgroup::ROOT), &rel)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join(name)).ok())
        .map(|v| v.trim().to_string())
        .collect()
}

/// The resources Nomad 1.1 and later send (`memory_max`, `cores`) and the Docker driver's
/// `cpu_hard_limit` with `cpu_cfs_period`, and devices from the task's `devices` and from
/// Nomad's device plugins, as they reach the pod's cgroups: a memory limit with the task's
/// memory kept as a reservation, a CFS quota and period, a cpuset, and device rules that let
/// the app open each node as its permissions say.
#[tokio::test(flavor = "multi_thread")]
async fn docker_style_resources_and_devices_reach_the_cgroups() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    // /dev/kmsg may be opened for writing by anyone: only the device cgroup decides here.
    // (root's, as the node is; reading it needs CAP_SYSLOG, so opening it is enough); the
    // device plugin's is another node, so that each has rules of its own.
    let script = "(exec 3>/dev/k-given) 2>&1 && echo given-w-ok; \
                  (exec 3>/dev/k-nomad) 2>&1 || echo nomad-w-denied; \
                  (exec 3</dev/k-nomad) 2>&1 && echo nomad-r-ok; sleep 60";
    let cfg = task_config(&[
        ("image", registry().image().into()),
        ("command", "/bin/sh".into()),
        ("args", strs(&["-c", script])),
        ("net", strs(&["none"])),
        ("cpu_hard_limit", true.into()),
        ("cpu_cfs_period", 50_000.into()),
        (
            "devices",
            rmpv::Value::Array(vec![rmpv::Value::Map(vec![
                ("host_path".into(), "/dev/kmsg".into()),
                ("container_path".into(), "/dev/k-given".into()),
                ("cgroup_permissions".into(), "w".into()),
            ])]),
        ),
    ]);
    let mut alloc = Alloc::new("limited");
    let mut task = alloc.task_config(cfg);
    let res = task.resources.as_mut().unwrap();
    res.allocated_resources.as_mut().unwrap().memory = Some(d::AllocatedMemoryResources {
        memory_mb: 32,
        memory_max_mb: 96,
    });
    let linux = res.linux_resources.as_mut().unwrap();
    // As Nomad 1.1 and later fill it: the higher of memory and memory_max.
    linux.memory_limit_bytes = 96 << 20;
    linux.cpuset_cpus = "0".into();
    linux.percent_ticks = 0.25;
    task.devices.push(d::Device {
        task_path: "/dev/k-nomad".into(),
        // Opening it (without TUNSETIFF) makes no interface.
        host_path: "/dev/net/tun".into(),
        cgroup_permissions: "r".into(),
    });
    task.user = "0".into();
    let id = task.id.clone();
    start(&mut p, task).await;
    let uuid = rkt_ok(rkt_dir.path(), &["list", "--full", "--no-legend"]);
    let uuid = uuid.split_whitespace().next().unwrap().to_string();
    let v2 = layout::cgroup::Hierarchy::detect(std::path::Path::new(layout::cgroup::ROOT))
        == layout::cgroup::Hierarchy::V2;
    let has = |name: &str, want: &str| {
        let got = cgroup_values(&uuid, name);
        assert!(
            got.iter().any(|v| v == want),
            "{name}: {got:?}, want {want}"
        );
    };
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    let quota = (cores * 250) * 50_000 / 1000;
    if v2 {
        has("memory.max", &(96u64 << 20).to_string());
        has("memory.low", &(32u64 << 20).to_string());
        has("cpu.max", &format!("{quota} 50000"));
    } else {
        has("memory.limit_in_bytes", &(96u64 << 20).to_string());
        has("memory.soft_limit_in_bytes", &(32u64 << 20).to_string());
        has("cpu.cfs_period_us", "50000");
        has("cpu.cfs_quota_us", &quota.to_string());
    }
    has("cpuset.cpus", "0");
    destroy(&mut p, id).await;
    let out = alloc.stdout();
    for want in ["given-w-ok", "nomad-w-denied", "nomad-r-ok"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // Refused by the device cgroup, not by the node's mode.
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(pods(rkt_dir.path()), "");
}
