//! What the driver test binaries (driver_*.rs) share: the registry with the busybox image,
//! and the RPCs and rkt commands every test uses.
#![allow(dead_code)]

use super::*;
use nomad_driver_rkt::proto::drivers as d;
use std::sync::OnceLock;

pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::start)
}

pub fn secs(s: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s as i64,
        nanos: 0,
    })
}

pub async fn start(p: &mut Plugin, task: d::TaskConfig) -> d::StartTaskResponse {
    p.driver
        .start_task(d::StartTaskRequest { task: Some(task) })
        .await
        .unwrap_or_else(|e| panic!("StartTask: {}", e.message()))
        .into_inner()
}

/// Starts `command args` from the test image as the task of a new allocation named
/// `alloc`, on no network: the allocation (keep it while the task runs: it owns the
/// task's directory and log FIFOs), the task's ID and StartTask's answer.
pub async fn start_command(
    p: &mut Plugin,
    alloc: &str,
    command: &str,
    args: &[&str],
) -> (Alloc, String, d::StartTaskResponse) {
    let cfg = command_config(&registry().image(), command, args, Some("none"));
    let alloc = Alloc::new(alloc);
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    let started = start(p, task).await;
    (alloc, id, started)
}

pub async fn wait(p: &mut Plugin, id: &str) -> d::WaitTaskResponse {
    p.driver
        .wait_task(d::WaitTaskRequest { task_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

pub async fn destroy(p: &mut Plugin, id: String) {
    p.driver
        .destroy_task(d::DestroyTaskRequest {
            task_id: id,
            force: true,
        })
        .await
        .unwrap();
}

/// A plugin as the long-lived instance Nomad keeps: started and configured.
pub async fn configured(rkt_dir: &std::path::Path) -> Plugin {
    let mut p = Plugin::start(rkt_dir).await;
    p.set_config(true).await;
    p
}

pub fn pods(rkt_dir: &std::path::Path) -> String {
    rkt_ok(rkt_dir, &["list", "--no-legend"])
}

/// Runs rkt on the test's directory; panics unless it succeeds.
pub fn rkt_ok(rkt_dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(rkt_bin())
        .arg(format!("--dir={}", rkt_dir.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rkt {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
