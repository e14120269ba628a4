//! The pod lifecycle for real: prepare, run-prepared, status, stop, rm and gc, a killed
//! supervisor, listing formats, refused input, and leak checks over many cycles.

mod common;

use common::pods::*;
use common::Rkt;
use std::time::{Duration, Instant};

#[test]
fn prepare_run_prepared_status_stop_rm() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let uuid_file = rkt.config.path().join("uuid");
    let uuid = rkt.ok(&[
        "prepare",
        "--quiet",
        &format!("--uuid-file-save={}", uuid_file.display()),
        &busybox(),
        "--exec",
        "/bin/sleep",
        "--memory=32Mi",
        "--cpu=500m",
        "--",
        "60",
    ]);
    let uuid = uuid.trim().to_string();
    assert_eq!(std::fs::read_to_string(&uuid_file).unwrap(), uuid);
    assert!(rkt
        .ok(&["status", &uuid[..8]])
        .starts_with("state=prepared\n"));

    let mut child = rkt
        .cmd()
        .args(["run-prepared", "--net=none", &uuid])
        .spawn()
        .unwrap();
    let status = rkt.ok(&[
        "status",
        "--wait-ready=10s",
        &format!("--uuid-file={}", uuid_file.display()),
    ]);
    assert!(status.starts_with("state=running\n"), "{status}");
    assert!(status.contains("exited=false"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["status", "--format=json", &uuid])).unwrap();
    assert_eq!(json["name"], uuid.as_str());
    assert_eq!(json["state"], "running");
    assert_eq!(json["apps"][0]["name"], "busybox");
    assert!(json["apps"][0]["oom_killed"].is_null(), "{json}");
    // Limits are in the pod's cgroups while it runs.
    let mem = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/rkt.slice/rkt-{uuid}/memory.limit_in_bytes"
    ));
    if let Ok(mem) = mem {
        assert_eq!(mem.trim(), (32 << 20).to_string());
        let quota = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/cpu/rkt.slice/rkt-{uuid}/cpu.cfs_quota_us"
        ))
        .unwrap();
        assert_eq!(quota.trim(), "50000");
    }
    let list = rkt.ok(&["list", "--no-legend"]);
    assert!(
        list.starts_with(&uuid[..8]) && list.contains("running"),
        "{list}"
    );

    // Removing a running pod is refused; stopping it forwards SIGTERM to the app.
    let err = rkt.fails(&["rm", &uuid]);
    assert!(err.contains("stop it first"), "{err}");
    let started = Instant::now();
    assert_eq!(rkt.ok(&["stop", &uuid]).trim(), format!("{uuid:?}"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let code = child.wait().unwrap().code();
    assert_eq!(
        code,
        Some(143),
        "rkt run-prepared exits with the app's status (SIGTERM)"
    );
    let status = rkt.ok(&["status", &uuid]);
    assert!(
        status.contains("state=exited") && status.contains("app-busybox=143"),
        "{status}"
    );
    let err = rkt.ok(&["stop", &uuid]);
    assert!(err.is_empty());
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory/rkt.slice/rkt-{uuid}")).exists());

    assert_eq!(rkt.ok(&["rm", &uuid]).trim(), format!("{uuid:?}"));
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
}

#[test]
fn ambiguous_uuid_prefix_is_refused() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let mut uuids: Vec<String> = Vec::new();
    // Prepare pods until two share a first character.
    let prefix = loop {
        let u = rkt
            .ok(&["prepare", &busybox(), "--exec=/bin/true"])
            .trim()
            .to_string();
        if let Some(p) = uuids.iter().find(|p| p[..1] == u[..1]) {
            break p[..1].to_string();
        }
        uuids.push(u);
    };
    let err = rkt.fails(&["status", &prefix]);
    assert!(err.contains("matches"), "{err}");
    rkt.ok(&["gc", "--expire-prepared=0s", "--grace-period=0s"]);
    assert!(pod_dirs(&rkt).is_empty());
}

#[test]
fn run_rm_cycles_leave_nothing_behind() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let uuid_file = rkt.config.path().join("uuid");
    let cycles: usize = std::env::var("RKT_TEST_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(500);
    let mut uuids = Vec::new();
    for _ in 0..cycles {
        rkt.ok(&[
            "run",
            "--net=none",
            &format!("--uuid-file-save={}", uuid_file.display()),
            &busybox(),
            "--memory=64M",
            "--exec=/bin/true",
        ]);
        uuids.push(std::fs::read_to_string(&uuid_file).unwrap());
        rkt.ok(&["rm", &format!("--uuid-file={}", uuid_file.display())]);
    }
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
    // Every cycle's pod, in every hierarchy (v1 controllers and the unified one).
    let leftover: Vec<_> = uuids.iter().flat_map(|u| cgroups_of(u)).collect();
    assert!(leftover.is_empty(), "{leftover:?}");
}

/// A SIGKILLed supervisor cannot remove its pod's cgroups; rm and gc must, the apps' own
/// child cgroups included.
#[test]
fn killed_supervisor_cgroups_are_removed_by_rm_and_gc() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    for remove in [&["rm"][..], &["gc", "--grace-period=0s"][..]] {
        let (mut child, uuid) = start_pod(
            &rkt,
            &[],
            &[
                "--name=a",
                "--memory=64M",
                "--exec",
                "/bin/sleep",
                "--",
                "60",
                "---",
                &image,
                "--name=b",
                "--cpu=200m",
                "--exec",
                "/bin/sleep",
                "--",
                "60",
            ],
        );
        let made = cgroups_of(&uuid);
        assert!(
            made.iter().any(|d| d.ends_with(format!("rkt-{uuid}/a")))
                && made.iter().any(|d| d.ends_with(format!("rkt-{uuid}/b"))),
            "per-app cgroups: {made:?}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        rkt.ok(&["stop", &uuid]);
        rkt.ok(&["status", "--wait=10s", &uuid]);
        assert!(!cgroups_of(&uuid).is_empty(), "nobody removed them yet");
        let mut args = remove.to_vec();
        if remove[0] == "rm" {
            args.push(&uuid);
        }
        rkt.ok(&args);
        assert_eq!(
            cgroups_of(&uuid),
            Vec::<std::path::PathBuf>::new(),
            "{remove:?}"
        );
        assert!(
            pod_dirs(&rkt).is_empty(),
            "{remove:?}: {:?}",
            pod_dirs(&rkt)
        );
    }
}

/// The pod outlives its supervisor: after a SIGKILL of rkt-stage1 on the host side, the pod's
/// init still holds the lock and runs the app; stop still works and the exit is recorded.
#[test]
fn pod_survives_a_killed_supervisor() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "60"]);
    child.kill().unwrap(); // the supervisor: `rkt run` became it by exec
    child.wait().unwrap();
    let status = rkt.ok(&["status", &uuid]);
    assert!(status.starts_with("state=running"), "{status}");
    let started = Instant::now();
    rkt.ok(&["stop", &uuid]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM reached the app"
    );
    let status = rkt.ok(&["status", &uuid]);
    assert!(
        status.contains("state=exited") && status.contains("app-busybox=143"),
        "{status}"
    );
    rkt.ok(&["rm", &uuid]);
    assert_eq!(cgroups_of(&uuid), Vec::<std::path::PathBuf>::new());
}

#[test]
fn app_flags_and_listing_formats() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    // --readonly-rootfs, --name, --inherit-env, --oom-score-adj, --cpu-shares.
    let o = rkt
        .cmd()
        .env("FROM_HOST", "yes")
        .args([
            "run", "--net=none", "--inherit-env", &busybox(), "--name=web", "--readonly-rootfs",
            "--oom-score-adj=500", "--cpu-shares=256", "--user=0", "--exec", "/bin/sh", "--", "-c",
            "echo $FROM_HOST $AC_APP_NAME; cat /proc/self/oom_score_adj; \
             touch /www/x 2>/dev/null && echo writable || echo read-only; touch /data/ok && echo volume-writable",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stdout, "yes web\n500\nread-only\nvolume-writable\n");

    // status --wait blocks until the pod exits; list --full and JSON.
    let uuid_file = rkt.config.path().join("uuid");
    let mut child = rkt
        .cmd()
        .args([
            "run",
            "--net=none",
            &format!("--uuid-file-save={}", uuid_file.display()),
            &busybox(),
            "--exec",
            "/bin/sleep",
            "--",
            "1",
        ])
        .spawn()
        .unwrap();
    test_support::eventually(Duration::from_secs(30), "the pod's UUID file", || {
        uuid_file.exists().then_some(())
    });
    let started = Instant::now();
    let status = rkt.ok(&[
        "status",
        "--wait",
        &format!("--uuid-file={}", uuid_file.display()),
    ]);
    assert!(
        status.contains("state=exited") && status.contains("app-busybox=0"),
        "{status}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "--wait returned before the pod exited"
    );
    child.wait().unwrap();
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    let full = rkt.ok(&["list", "--full"]);
    let header: Vec<&str> = full
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "UUID",
            "APP",
            "IMAGE NAME",
            "IMAGE ID",
            "STATE",
            "CREATED",
            "STARTED",
            "NETWORKS"
        ]
    );
    assert!(full.contains(&uuid) && full.contains("sha512-"), "{full}");
    let json: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["list", "--format=json"])).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == uuid.as_str() && p["state"] == "exited"));
    let manifest: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["cat-manifest", &uuid])).unwrap();
    assert_eq!(manifest["acKind"], "PodManifest");
    assert_eq!(
        manifest["apps"][0]["app"]["exec"],
        serde_json::json!(["/bin/sleep", "1"])
    );
    rkt.ok(&["gc", "--grace-period=0s"]);
}

#[test]
fn version_is_rkts_five_lines() {
    let rkt = Rkt::new();
    let v = rkt.ok(&["version"]);
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], "rkt Version: 1.30.0");
    assert_eq!(lines[1], "appc Version: 0.8.11");
}

/// `rkt image gc` never removes the image of a pod, running or exited, until the pod is
/// removed: the image's tree is below the pod's overlay (rkt kept its pods' tree stores).
#[test]
fn image_gc_keeps_the_images_pods_use() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "60"]);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert_eq!(rkt.image_dirs().len(), 1, "the image of a running pod");
    rkt.ok(&["stop", "--force", &uuid]);
    child.wait().unwrap();
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert_eq!(rkt.image_dirs().len(), 1, "the image of an exited pod");
    rkt.ok(&["rm", &uuid]);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(rkt.image_dirs().is_empty(), "no pod uses it any more");
}

#[test]
fn bad_input_is_refused_and_leaves_no_pod() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    rkt.ok(&["fetch", &busybox()]);
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--net=none", "--bogus", "IMG"], "unknown flag"),
        (
            &["run", "--net=none", "--volume=v,kind=nope", "IMG"],
            "--volume",
        ),
        (&["run", "--net=none", "IMG", "--mount=volume=v"], "--mount"),
        (
            &["run", "--net=none", "IMG", "--mount=volume=nov,target=/x"],
            "no --volume defines it",
        ),
        (
            &["run", "--net=none", "IMG", "--memory=lots"],
            "invalid quantity",
        ),
        (
            &["run", "--net=none", "IMG", "--cpu=fast"],
            "invalid CPU quantity",
        ),
        (
            &["run", "--net=none", "IMG", "--user=nobody-here"],
            "not found in the image",
        ),
        (
            &[
                "run",
                "--net=none",
                "--pull-policy=never",
                "docker://127.0.0.1:1/missing:1",
            ],
            "--pull-policy=never",
        ),
        (
            &["run", "--net=nosuch", "IMG", "--exec=/bin/true"],
            "network \"nosuch\" not found",
        ),
    ];
    for (args, expect) in cases {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if *a == "IMG" {
                    busybox()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = rkt.fails(&args);
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
        assert!(
            pod_dirs(&rkt).is_empty(),
            "{args:?} left {:?}",
            pod_dirs(&rkt)
        );
    }
    // A refused run-prepared leaves the pod prepared.
    let uuid = rkt.ok(&["prepare", &busybox(), "--exec=/bin/true"]);
    let err = rkt.fails(&["run-prepared", "--net=nosuch", uuid.trim()]);
    assert!(err.contains("not found"), "{err}");
    assert!(rkt
        .ok(&["status", uuid.trim()])
        .starts_with("state=prepared"));
}

/// `rkt enter` on a terminal whose caller types at once (as an executor that allocated the
/// terminal and writes straight away): each line is echoed once, by whichever terminal was
/// echoing when it came, never by both.
#[test]
fn enter_on_a_terminal_echoes_early_input_once() {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut pod, uuid) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "60"]);
    // A terminal as callers have them: cooked, echoing.
    let master = libc_pty();
    let slave_name = std::ffi::CStr::from_bytes_until_nul(&master.1)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_name)
        .unwrap();
    let mut child = rkt
        .cmd()
        .args(["enter", &uuid, "/bin/cat"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut m = std::fs::File::from(master.0);
    rustix::fs::fcntl_setfl(m.as_fd(), rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut out = Vec::new();
    let mut seen = |m: &mut std::fs::File, line: &str| {
        let _ = m.read_to_end(&mut out);
        String::from_utf8_lossy(&out).matches(line).count()
    };
    m.write_all(b"early-line\n").unwrap();
    // Two copies: cat runs and has written it back, so the next line comes after `enter`
    // set its terminal up.
    test_support::eventually(
        Duration::from_secs(10),
        "cat to echo the early line",
        || (seen(&mut m, "early-line") >= 2).then_some(()),
    );
    m.write_all(b"late-line\n").unwrap();
    test_support::eventually(Duration::from_secs(10), "cat to echo the late line", || {
        (seen(&mut m, "late-line") >= 2).then_some(())
    });
    // A third copy of either (echoed by both terminals) would follow within moments: what
    // must not arrive can only be waited for.
    std::thread::sleep(Duration::from_millis(500));
    seen(&mut m, "");
    let out = String::from_utf8_lossy(&out);
    // Once echoed, once written back by cat.
    assert_eq!(out.matches("early-line").count(), 2, "{out:?}");
    assert_eq!(out.matches("late-line").count(), 2, "{out:?}");
    child.kill().ok();
    child.wait().ok();
    rkt.ok(&["stop", "--force", &uuid]);
    pod.wait().unwrap();
}

/// A pseudo-terminal: its master, and its slave's name (NUL-terminated).
fn libc_pty() -> (std::os::fd::OwnedFd, Vec<u8>) {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    (master, name.into_bytes_with_nul())
}
