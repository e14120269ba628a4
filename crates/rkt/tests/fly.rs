//! rkt's fly stage1 (`--stage1-name=coreos.com/rkt/stage1-fly`, `--stage1-from-dir=
//! stage1-fly.aci`), as CoreOS's wrapper units ran rkt: one app in the host's namespaces
//! with the host's privileges, /dev, /proc and /sys, in its image's root; what fly cannot
//! give is refused; no mount is left on the host.

mod common;

use common::pods::*;
use common::Rkt;

const FLY: &str = "--stage1-name=coreos.com/rkt/stage1-fly:1.30.0";

fn ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn cap_eff(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_app_runs_in_the_hosts_namespaces_with_its_privileges_in_its_root() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let script = "for n in pid net uts ipc mnt; do echo $n $(readlink /proc/self/ns/$n); done; \
                  hostname; cat /www/index.html; stat -f -c 'tmp %T' /tmp; \
                  test -c /dev/kmsg && echo kmsg; grep CapEff /proc/self/status; exit 5";
    let o = rkt.run(&[
        "run",
        FLY,
        &busybox(),
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        script,
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(
        o.status.code(),
        Some(5),
        "the app's status: {stdout}\n{stderr}"
    );
    for kind in ["pid", "net", "uts", "ipc"] {
        assert!(
            stdout.contains(&format!("{kind} {}\n", ns(kind))),
            "not the host's {kind} namespace:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains(&format!("mnt {}\n", ns("mnt"))),
        "the pod's mounts must not be made in the host's mount namespace:\n{stdout}"
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        stdout.contains(&format!("\n{}\n", host_name.trim())),
        "{stdout}"
    );
    assert!(
        stdout.contains("hello from rkt\n"),
        "the image's root: {stdout}"
    );
    assert!(stdout.contains("tmp tmpfs\n"), "{stdout}");
    assert!(stdout.contains("kmsg\n"), "the host's /dev: {stdout}");
    let host_caps = cap_eff(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert!(
        stdout.contains(&format!("CapEff:\t{host_caps}")),
        "the host's privileges ({host_caps}): {stdout}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["list", "--format=json"])).unwrap();
    let uuid = list[0]["name"].as_str().unwrap();
    let status = rkt.ok(&["status", uuid]);
    assert!(status.contains("app-busybox=5"), "{status}");

    // Prepared for fly, run later: still fly (the host's PID namespace); a network flag is
    // refused and leaves the pod prepared.
    let prepared = rkt.ok(&[
        "prepare",
        "--quiet",
        FLY,
        &busybox(),
        "--exec",
        "/bin/busybox",
        "--",
        "readlink",
        "/proc/self/ns/pid",
    ]);
    let prepared = prepared.trim();
    let e = rkt.fails(&["run-prepared", "--net=default", prepared]);
    assert!(e.contains("--net") && e.contains("fly"), "{e}");
    let o = rkt.run(&["run-prepared", prepared]);
    assert_eq!(out(&o).0.trim(), ns("pid"), "{}", out(&o).1);
    assert_no_mounts(&rkt);
}

#[test]
fn volumes_enter_and_stop_work_as_for_other_pods() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let host = tempfile::tempdir().unwrap();
    let volume = format!("--volume=data,kind=host,source={}", host.path().display());
    let (mut child, uuid) = start_pod_fly(&rkt, &volume);
    // enter: the app's root, not the host's.
    let o = rkt.run(&["enter", &uuid, "/bin/cat", "/www/index.html"]);
    assert_eq!(out(&o).0, "hello from rkt\n", "{}", out(&o).1);
    let written = host.path().join("from-the-pod");
    common::eventually(
        std::time::Duration::from_secs(10),
        "the volume's file",
        || written.exists().then_some(()),
    );
    rkt.ok(&["stop", &uuid]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "SIGTERM reached the app");
    assert_no_mounts(&rkt);
}

fn start_pod_fly(rkt: &Rkt, volume: &str) -> (std::process::Child, String) {
    let uuid_file = rkt.config.path().join("uuid");
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let image = busybox();
    let child = rkt
        .cmd()
        .args([
            "run",
            "--stage1-from-dir=stage1-fly.aci",
            &save,
            volume,
            &image,
            "--mount=volume=data,target=/data",
            "--user=0",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "touch /data/from-the-pod; exec sleep 60",
        ])
        .spawn()
        .unwrap();
    let uuid = common::eventually(std::time::Duration::from_secs(30), "the UUID", || {
        std::fs::read_to_string(&uuid_file).ok()
    });
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    (child, uuid)
}

#[test]
fn what_fly_cannot_give_is_refused_leaving_nothing() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    for (args, says) in [
        (vec!["run", FLY, &image, "---", &image], "one app"),
        (vec!["run", FLY, &image, "--memory=64Mi"], "--memory"),
        (
            vec!["run", FLY, &image, "--caps-retain=CAP_CHOWN"],
            "--caps-retain",
        ),
        (vec!["run", FLY, "--net=default", &image], "--net"),
        (vec!["run", FLY, "--hostname=x", &image], "--hostname"),
        (
            vec!["run", "--stage1-name=coreos.com/rkt/stage1-kvm", &image],
            "stage1-fly",
        ),
        (
            vec!["run", "--stage1-path=/usr/lib/rkt/stage1-fly.aci", &image],
            "built in",
        ),
    ] {
        let e = rkt.fails(&args);
        assert!(e.contains(says), "{args:?}: {e}");
    }
    assert_eq!(pod_dirs(&rkt), Vec::<String>::new());
    assert_no_mounts(&rkt);
}

/// rkt's `stage1.d` chooses the default stage1 of pods given no `--stage1-*` flag; a flag
/// wins; `rkt config` shows it; what names no built-in flavour is refused before any pod
/// directory is made.
#[test]
fn stage1_d_chooses_the_default_flavour() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let stage1_d = rkt.config.path().join("stage1.d");
    std::fs::create_dir_all(&stage1_d).unwrap();
    let write = |text: &str| std::fs::write(stage1_d.join("default.json"), text).unwrap();
    write(
        r#"{"rktKind":"stage1","rktVersion":"v1","name":"coreos.com/rkt/stage1-fly","version":"1.30.0"}"#,
    );
    let pid_ns = "readlink /proc/self/ns/pid";
    let o = rkt.run(&["run", &image, "--exec", "/bin/sh", "--", "-c", pid_ns]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains(&ns("pid")),
        "stage1.d's fly runs the app in the host's PID namespace: {stdout}"
    );
    let o = rkt.run(&[
        "run",
        "--stage1-name=coreos.com/rkt/stage1-coreos",
        &image,
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        pid_ns,
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        !stdout.contains(&ns("pid")),
        "the flag wins over stage1.d: {stdout}"
    );
    let shown: serde_json::Value = serde_json::from_str(&rkt.ok(&["config"])).unwrap();
    let entry = shown["stage0"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["rktKind"] == "stage1")
        .unwrap()
        .clone();
    assert_eq!(entry["name"], "coreos.com/rkt/stage1-fly", "{entry}");
    let pods_before = pod_dirs(&rkt);
    write(
        r#"{"rktKind":"stage1","rktVersion":"v1","name":"coreos.com/rkt/stage1-kvm","version":"1.30.0"}"#,
    );
    for args in [vec!["run", &image], vec!["prepare", &image], vec!["config"]] {
        let e = rkt.fails(&args);
        assert!(
            e.contains("default.json") && e.contains("stage1-kvm"),
            "{args:?}: {e}"
        );
    }
    assert_eq!(pod_dirs(&rkt), pods_before, "no pod directory left");
    // A stage1 image given by location only is refused too: this rkt fetches none.
    write(r#"{"rktKind":"stage1","rktVersion":"v1","location":"https://example.com/s1.aci"}"#);
    let e = rkt.fails(&["run", &image]);
    assert!(
        e.contains("default.json") && e.contains("fetches no stage1"),
        "{e}"
    );
}
