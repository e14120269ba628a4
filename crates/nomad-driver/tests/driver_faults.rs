//! The plugin SIGKILLed in the middle of StartTask and of StopTask, driven like a Nomad client
//! (the plugin binary over gRPC, real pods). After each: no task lost or duplicated, states
//! truthful, every pod removable.
//!
//! The plugin killed while tasks run (and the tasks recovered by a new plugin) is
//! `tasks_outlive_a_killed_plugin_and_are_recovered` in driver_plugin.rs.

mod common;

use common::tasks::*;
use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::time::{Duration, Instant};
use test_support::poll_async;

fn running_pods(rkt_dir: &std::path::Path) -> Vec<String> {
    pods(rkt_dir)
        .lines()
        .filter(|l| l.contains("running"))
        .map(str::to_string)
        .collect()
}

/// A small xorshift generator; the seed is printed, `FAULTS_SEED=…` replays a run.
fn delays(n: usize, max_ms: u64) -> Vec<Duration> {
    let mut x: u64 = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand32() as u64 | 1);
    eprintln!("FAULTS_SEED={x}");
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(x % max_ms)
        })
        .collect()
}

/// When a round kills the plugin.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Once a blob is partly downloaded.
    Downloading,
    /// As soon as a pod directory shows in `pods/<dir>` (prepared: before its network and
    /// plan are made; run: ready, as its supervisor starts).
    PodIn(&'static str),
    /// After this long.
    After(Duration),
}

fn has_entry(dir: &std::path::Path, suffix: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(suffix))
        })
        .unwrap_or(false)
}

/// StartTask interrupted by a SIGKILL of the plugin: while the image downloads (through a
/// slow proxy), right after the pod is prepared, right after its supervisor starts, and at
/// random points. Nomad never got a handle, so it starts the task again (a new task ID) on a
/// new plugin: exactly one pod of the task runs then, the one Nomad knows, and once it is
/// destroyed nothing is left that `rkt gc` cannot remove.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_killed_during_start_task_leaves_no_second_pod() {
    if !root_or_skip() {
        return;
    }
    // 400 kB/s: the busybox image (about 1 MB) takes a few seconds to download.
    let (mut proxy, port, _dir) = test_support::python_server(
        "slow_proxy.py",
        &[&registry().harness().port.to_string(), "400000"],
    );
    let image = format!("docker://127.0.0.1:{port}/demo/busybox:latest");
    let rkt_dir = RktDir::new();
    let mut cuts = vec![Cut::Downloading, Cut::PodIn("prepared"), Cut::PodIn("run")];
    cuts.extend(delays(4, 150).into_iter().map(Cut::After));
    let mut orphans = 0;
    for (round, cut) in cuts.into_iter().enumerate() {
        let p = configured(rkt_dir.path()).await;
        let alloc = Alloc::new(&format!("start{round}"));
        let cfg = command_config(&image, "/bin/sleep", &["1000"], Some("none"));
        let task = alloc.task_config(cfg.clone());
        let mut driver = p.driver.clone();
        let pending = tokio::spawn(async move {
            driver
                .start_task(d::StartTaskRequest { task: Some(task) })
                .await
        });
        let pods_dir = rkt_dir.path().join("pods");
        let blobs = rkt_dir.path().join("cas/blobs/sha256");
        let t = Instant::now();
        // Fine-grained polls: the moment to cut is short (a pod passes through `prepare`
        // in milliseconds).
        let (limit, every) = (Duration::from_secs(30), Duration::from_millis(1));
        match cut {
            Cut::After(delay) => tokio::time::sleep(delay).await,
            Cut::Downloading => {
                poll_async(limit, every, "a download", async || {
                    has_entry(&blobs, ".partial").then_some(())
                })
                .await
            }
            Cut::PodIn(dir) => {
                let what = format!("a pod in {dir}");
                poll_async(limit, every, &what, async || {
                    has_entry(&pods_dir.join(dir), "").then_some(())
                })
                .await
            }
        }
        let mut p = p;
        p.kill();
        let answered = pending.await.unwrap().is_ok();
        let left = pods(rkt_dir.path());
        eprintln!(
            "round {round}: killed at {cut:?} after {:?}; StartTask {}; pods left:\n{left}",
            t.elapsed(),
            if answered { "had returned" } else { "was cut" }
        );
        if answered {
            // Nomad has the handle: the task is its to stop; nothing to check here.
            test_support::remove_all_pods(rkt_dir.path());
            continue;
        }
        // A pod in run/ whose supervisor had not started yet shows as exited: left all
        // the same, with its network, for the next plugin to remove.
        if ["prepared", "running", "exited"]
            .iter()
            .any(|s| left.contains(s))
        {
            orphans += 1;
        }
        // Nomad restarts the task: a new plugin, a new task ID, the same allocation.
        let mut p = configured(rkt_dir.path()).await;
        let mut again = Alloc::new(&format!("start{round}"));
        again.id = alloc.id.clone();
        let task = again.task_config(cfg);
        let id = task.id.clone();
        start(&mut p, task).await;
        let running = running_pods(rkt_dir.path());
        assert_eq!(running.len(), 1, "round {round}: {}", pods(rkt_dir.path()));
        destroy(&mut p, id).await;
        rkt_ok(rkt_dir.path(), &["gc", "--grace-period=0s"]);
        assert_eq!(pods(rkt_dir.path()), "", "round {round}");
        p.kill();
    }
    eprintln!("{orphans} round(s) left a pod behind the killed plugin");
    assert!(
        orphans >= 2,
        "the cuts after prepare and after the supervisor started must leave a pod to clean"
    );
    proxy.kill().ok();
    proxy.wait().ok();
}

/// StopTask interrupted by a SIGKILL of the plugin while the app is still handling its
/// SIGTERM: the pod goes on stopping without the plugin; a new plugin recovers the task,
/// reports the app's real exit code, stops it again without error, and destroys it.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_killed_during_stop_task_loses_nothing() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let alloc = Alloc::new("stopping");
    let cfg = command_config(
        &registry().image(),
        "/bin/sh",
        &[
            "-c",
            "trap ': >/alloc/terminating; sleep 2; exit 9' TERM; : >/alloc/trapped; while true; do sleep 0.1; done",
        ],
        Some("none"),
    );
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    let handle = start(&mut p, task).await.handle.unwrap();
    alloc.until_trapped().await;
    let mut driver = p.driver.clone();
    let stop_id = id.clone();
    let stopping = tokio::spawn(async move {
        driver
            .stop_task(d::StopTaskRequest {
                task_id: stop_id,
                timeout: secs(30),
                signal: "SIGTERM".into(),
            })
            .await
    });
    // The app is inside its TERM handler: the plugin is in the middle of StopTask.
    alloc
        .until_marked("terminating", "the app's TERM handler")
        .await;
    p.kill();
    assert!(
        stopping.await.unwrap().is_err(),
        "StopTask cannot have finished: the app takes 2 s"
    );

    let mut p = configured(rkt_dir.path()).await;
    let mut h = handle.clone();
    h.config.as_mut().unwrap().msgpack_driver_config.clear();
    p.driver
        .recover_task(d::RecoverTaskRequest {
            task_id: id.clone(),
            handle: Some(h),
        })
        .await
        .unwrap();
    let t = Instant::now();
    let w = tokio::time::timeout(Duration::from_secs(20), wait(&mut p, &id))
        .await
        .expect("the task ends without the plugin that stopped it");
    assert_eq!(
        w.result.unwrap().exit_code,
        9,
        "the app's own exit, after its TERM handler"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    // Nomad retries the stop: the task has exited, which is no error.
    p.driver
        .stop_task(d::StopTaskRequest {
            task_id: id.clone(),
            timeout: secs(5),
            signal: "SIGTERM".into(),
        })
        .await
        .unwrap();
    let i = p
        .driver
        .inspect_task(d::InspectTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(i.task.unwrap().state, d::TaskState::Exited as i32);
    destroy(&mut p, id).await;
    assert_eq!(pods(rkt_dir.path()), "");
}
