//! Shared by the pod test binaries (pods_*.rs): the registry with the fixture images, a
//! busybox pod started in the background, and what a pod can leave behind.
#![allow(dead_code)]

use super::{Registry, Rkt};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::with_fixtures("plain"))
}

pub fn busybox() -> String {
    registry().image("busybox:latest")
}

pub fn out(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// No mount of this store is left in the host's mount table.
pub fn assert_no_mounts(rkt: &Rkt) {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = rkt.dir.path().display().to_string();
    assert!(
        !table.contains(&dir),
        "mounts left behind:\n{}",
        table
            .lines()
            .filter(|l| l.contains(&dir))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Starts `rkt run --net=none POD_FLAGS busybox APP_ARGS` in the background and returns it
/// with the pod's UUID once the pod is running.
pub fn start_pod(
    rkt: &Rkt,
    pod_flags: &[&str],
    app_args: &[&str],
) -> (std::process::Child, String) {
    let uuid_file = rkt.config.path().join(format!("uuid-{}", rand_suffix()));
    let image = busybox();
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut args = vec!["run", "--net=none", save.as_str()];
    args.extend_from_slice(pod_flags);
    args.push(&image);
    args.extend_from_slice(app_args);
    let child = rkt.cmd().args(&args).spawn().unwrap();
    test_support::eventually(Duration::from_secs(30), "the pod's UUID", || {
        uuid_file.exists().then_some(())
    });
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    (child, uuid)
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn pod_dirs(rkt: &Rkt) -> Vec<String> {
    let mut v = Vec::new();
    for d in pod::STATE_DIRS {
        if let Ok(rd) = std::fs::read_dir(rkt.dir.path().join("pods").join(d)) {
            v.extend(
                rd.filter_map(|e| e.ok())
                    .map(|e| format!("{d}/{}", e.file_name().to_string_lossy())),
            );
        }
    }
    v
}

/// Every cgroup directory pod `uuid` (run below the default parent) has anywhere on this
/// host.
pub fn cgroups_of(uuid: &str) -> Vec<std::path::PathBuf> {
    let rel = layout::cgroup::pod_rel(layout::cgroup::DEFAULT_PARENT, uuid);
    layout::cgroup::pod_dirs_everywhere(std::path::Path::new(layout::cgroup::ROOT), &rel)
}
