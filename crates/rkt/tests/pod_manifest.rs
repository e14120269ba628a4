//! `--pod-manifest=FILE` for `run` and `prepare`: a pod described by an appc pod manifest.
//! The manifests this rkt writes (`rkt cat-manifest`) are valid input and give the same pod;
//! a manifest may give each app whole; flags that shape apps conflict with it, and bad
//! manifests leave nothing behind.

mod common;

use common::pods::*;
use common::Rkt;

/// Prepares a busybox pod with an environment, an empty volume, a limit and a command, and
/// returns its manifest as `cat-manifest` prints it.
fn written_manifest(rkt: &Rkt) -> serde_json::Value {
    let uuid = rkt.ok(&[
        "prepare",
        "--quiet",
        "--set-env=GREETING=hello",
        "--volume=data,kind=empty,mode=0700,uid=1,gid=2",
        &busybox(),
        "--memory=64Mi",
        "--mount=volume=data,target=/data",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo $GREETING; stat -c '%a %u %g' /data",
    ]);
    let text = rkt.ok(&["cat-manifest", uuid.trim()]);
    rkt.ok(&["rm", uuid.trim()]);
    serde_json::from_str(&text).unwrap()
}

fn write(dir: &std::path::Path, name: &str, v: &serde_json::Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p.display().to_string()
}

#[test]
fn a_written_manifest_runs_again_as_the_same_pod() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let manifest = written_manifest(&rkt);
    let file = write(rkt.config.path(), "pod.json", &manifest);
    let flag = format!("--pod-manifest={file}");
    let o = rkt.run(&["run", "--net=none", &flag]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "hello", "the recorded environment: {stdout}");
    assert_eq!(
        lines[1], "700 1 2",
        "the empty volume's mode and owner: {stdout}"
    );

    // prepare takes it too, and run-prepared runs it; the pod's manifest is the given one.
    let uuid = rkt.ok(&["prepare", "--quiet", &flag]);
    let again: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["cat-manifest", uuid.trim()])).unwrap();
    // The same apps: command, environment, identity and isolators (the memory limit).
    assert_eq!(again["apps"], manifest["apps"]);
    assert_eq!(
        again["apps"][0]["app"]["isolators"][0]["value"]["limit"],
        (64u64 << 20).to_string()
    );
    assert_eq!(again["volumes"], manifest["volumes"]);
    let o = rkt.run(&["run-prepared", "--net=none", uuid.trim()]);
    assert!(o.status.success(), "{}", out(&o).1);
    assert_eq!(out(&o).0.lines().next(), Some("hello"));
}

#[test]
fn the_given_app_replaces_the_images_and_annotations_are_kept() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let mut manifest = written_manifest(&rkt);
    let app = &mut manifest["apps"][0];
    app["app"]["exec"] = serde_json::json!(["/bin/sh", "-c", "echo $WHO; id -u; exit 3"]);
    app["app"]["environment"] = serde_json::json!([{"name": "WHO", "value": "given"}]);
    app["app"]["user"] = serde_json::json!("app");
    app["app"]["isolators"] = serde_json::json!([]);
    app["annotations"] = serde_json::json!([{"name": "example.com/role", "value": "test"}]);
    manifest["annotations"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "example.com/pod", "value": "p"}));
    let file = write(rkt.config.path(), "pod.json", &manifest);
    let uuid_file = rkt.config.path().join("uuid");
    let o = rkt.run(&[
        "run",
        "--net=none",
        &format!("--uuid-file-save={}", uuid_file.display()),
        &format!("--pod-manifest={file}"),
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the app's status: {stdout}\n{stderr}"
    );
    // The fixture's /etc/passwd maps app to 1000.
    assert_eq!(stdout, "given\n1000\n");
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["cat-manifest", &uuid])).unwrap();
    assert_eq!(
        written["apps"][0]["annotations"][0]["name"],
        "example.com/role"
    );
    assert!(written["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "example.com/pod"));
    assert_eq!(
        written["apps"][0]["app"]["user"], "1000",
        "resolved as a flag's would be"
    );
}

#[test]
fn conflicting_flags_and_bad_manifests_are_refused_leaving_nothing() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let manifest = written_manifest(&rkt);
    let file = write(rkt.config.path(), "pod.json", &manifest);
    let flag = format!("--pod-manifest={file}");
    let e = rkt.fails(&["run", "--net=none", &flag, &busybox()]);
    assert!(
        e.contains("conflicting flags") && e.contains("images"),
        "{e}"
    );
    let e = rkt.fails(&["prepare", "--set-env=A=1", &flag]);
    assert!(e.contains("--set-env"), "{e}");

    let mut unknown_image = manifest.clone();
    unknown_image["apps"][0]["image"]["id"] =
        serde_json::json!(format!("sha512-{}", "0".repeat(64)));
    let f = write(rkt.config.path(), "unknown.json", &unknown_image);
    let e = rkt.fails(&["run", "--net=none", &format!("--pod-manifest={f}")]);
    assert!(e.contains("no image with ID"), "{e}");

    let mut isolator = manifest.clone();
    isolator["apps"][0]["app"]["isolators"] =
        serde_json::json!([{"name": "os/linux/selinux-context", "value": {"user": "u"}}]);
    let f = write(rkt.config.path(), "isolator.json", &isolator);
    let e = rkt.fails(&["prepare", &format!("--pod-manifest={f}")]);
    assert!(
        e.contains("os/linux/selinux-context") && e.contains("not supported"),
        "{e}"
    );

    let mut typo = manifest.clone();
    typo["apps"][0]["mountz"] = serde_json::json!([]);
    let f = write(rkt.config.path(), "typo.json", &typo);
    let e = rkt.fails(&["prepare", &format!("--pod-manifest={f}")]);
    assert!(
        e.contains("mountz"),
        "an unknown field is named, not ignored: {e}"
    );

    let e = rkt.fails(&["prepare", "--pod-manifest=/nonexistent/pod.json"]);
    assert!(e.contains("/nonexistent/pod.json"), "{e}");
    assert_eq!(
        pod_dirs(&rkt),
        Vec::<String>::new(),
        "a refused pod left its directory"
    );
}
