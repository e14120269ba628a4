//! `rkt export UUID FILE.aci`: an exited pod's app, with its changes, as an ACI that appc's
//! own `actool validate` accepts and that runs again as an image; refusals leave no file.

mod common;

use common::pods::*;
use common::Rkt;
use std::path::Path;

/// Runs busybox with `flags`, changing its root (a new file, a file removed), and returns
/// the exited pod's UUID.
fn changed_pod(rkt: &Rkt, flags: &[&str]) -> String {
    let uuid_file = rkt.config.path().join(format!("uuid-{}", rand_suffix()));
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let image = busybox();
    let mut args = vec!["run", "--net=none", save.as_str()];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        &image,
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo made in the pod > /www/new.txt; rm /www/index.html; mkdir -p /var/lib/x; echo $$ > /var/lib/x/pid",
    ]);
    let o = rkt.run(&args);
    assert!(o.status.success(), "{}", out(&o).1);
    std::fs::read_to_string(&uuid_file).unwrap()
}

fn actool_validate(aci: &Path) {
    let o = std::process::Command::new("actool")
        .args(["-debug", "validate"])
        .arg(aci)
        .output()
        .expect("actool (package appc-spec)");
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "actool validate: {stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("valid app container image"),
        "{stdout}{stderr}"
    );
}

/// The exported ACI, fetched into a fresh store and run: the pod's changes are its content.
fn assert_runs_with_changes(aci: &Path) {
    let other = Rkt::new();
    let id = other.ok(&["fetch", &aci.display().to_string()]);
    let o = other.run(&[
        "run",
        "--net=none",
        id.trim(),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "cat /www/new.txt; test -e /www/index.html && echo index still there; cat /var/lib/x/pid >/dev/null && echo pid kept",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout, "made in the pod\npid kept\n");
}

#[test]
fn an_exited_pods_app_exports_as_a_valid_aci_with_its_changes() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let work = tempfile::tempdir().unwrap();
    for (how, flags) in [("overlay", &[][..]), ("no-overlay", &["--no-overlay"][..])] {
        let uuid = changed_pod(&rkt, flags);
        let aci = work.path().join(format!("{how}.aci"));
        rkt.ok(&["export", &uuid, &aci.display().to_string()]);
        actool_validate(&aci);
        // A removed file is simply absent: no overlay whiteout (a 0:0 device) is archived.
        let listing = std::process::Command::new("tar")
            .arg("tzvf")
            .arg(&aci)
            .output()
            .unwrap();
        let listing = out(&listing).0;
        assert!(listing.contains("manifest"), "{listing}");
        assert!(listing.contains("rootfs/www/new.txt"), "{how}: {listing}");
        assert!(
            !listing.contains("rootfs/www/index.html"),
            "{how}: {listing}"
        );
        assert_runs_with_changes(&aci);
    }
    assert_no_mounts(&rkt);
}

#[test]
fn refusals_name_the_problem_and_leave_no_file() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let work = tempfile::tempdir().unwrap();
    let aci = work.path().join("out.aci");
    let aci_s = aci.display().to_string();

    let (mut child, running) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "60"]);
    let e = rkt.fails(&["export", &running, &aci_s]);
    assert!(e.contains("only exited pods"), "{e}");
    rkt.ok(&["stop", "--force", &running]);
    let _ = child.wait();

    let e = rkt.fails(&[
        "export",
        &running,
        &work.path().join("out.tar").display().to_string(),
    ]);
    assert!(e.contains("extension must be .aci"), "{e}");

    std::fs::write(&aci, b"keep me").unwrap();
    let e = rkt.fails(&["export", &running, &aci_s]);
    assert!(e.contains("--overwrite"), "{e}");
    assert_eq!(std::fs::read(&aci).unwrap(), b"keep me");
    rkt.ok(&["export", "--overwrite", &running, &aci_s]);
    actool_validate(&aci);

    // A pod of two apps: --app says which.
    let o = rkt.run(&[
        "run",
        "--net=none",
        &busybox(),
        "--name=one",
        "--exec=/bin/true",
        "---",
        &busybox(),
        "--name=two",
        "--exec=/bin/true",
    ]);
    assert!(o.status.success(), "{}", out(&o).1);
    let list: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["list", "--format=json"])).unwrap();
    let two_apps = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["apps"].as_array().is_some_and(|a| a.len() == 2))
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let second = work.path().join("two.aci");
    let e = rkt.fails(&["export", &two_apps, &second.display().to_string()]);
    assert!(e.contains("--app") && e.contains("one, two"), "{e}");
    let e = rkt.fails(&[
        "export",
        "--app=three",
        &two_apps,
        &second.display().to_string(),
    ]);
    assert!(e.contains("three"), "{e}");
    assert!(!second.exists());
    rkt.ok(&[
        "export",
        "--app=two",
        &two_apps,
        &second.display().to_string(),
    ]);
    actool_validate(&second);
    let names: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("rkt-tmp")),
        "a temporary file was left: {names:?}"
    );
    assert_no_mounts(&rkt);
}
