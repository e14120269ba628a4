//! Twenty fetches of one image at once, fetches killed half way, and twenty pods run at once:
//! one consistent image, each blob downloaded once, nothing half-made visible, the next fetch
//! completes the work, and every pod runs once, to its end, and is removed without a trace.
//! (More faults, killed at random points: faults.rs.)

mod common;

use common::{push_big_image, Registry, Rkt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn blob_requests(log: &str, repo: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let i = l.find(&format!("GET /v2/{repo}/blobs/sha256:"))?;
            Some(l[i..].split_whitespace().nth(1)?.to_string())
        })
        .collect()
}

#[test]
fn concurrent_fetches_share_downloads_and_agree() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::start("plain");
    let image = push_big_image(&reg);
    let rkt = Rkt::new();
    let children: Vec<_> = (0..20)
        .map(|_| {
            rkt.cmd()
                .args(["fetch", "--full", &image])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
    assert_eq!(rkt.image_dirs(), [ids[0].clone()]);
    assert!(rkt.tmp_entries().is_empty(), "{:?}", rkt.tmp_entries());
    let requests = blob_requests(&reg.log(), "big");
    assert!(
        !requests.is_empty(),
        "the registry's access log shows no blob GETs:\n{}",
        reg.log()
    );
    let mut unique = requests.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        requests.len(),
        unique.len(),
        "a blob was downloaded twice: {requests:#?}"
    );
}

fn partial_files(cas: &Path) -> Vec<(PathBuf, u64)> {
    std::fs::read_dir(cas.join("blobs/sha256"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn killed_fetch_leaves_nothing_visible_and_next_fetch_resumes() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::start("plain");
    push_big_image(&reg);
    // Reach the registry through a proxy that passes 8 MB/s, so the kill lands mid-blob.
    let port = reg.port.to_string();
    let (mut proxy, port, _dir) = common::python_server("slow_proxy.py", &[&port, "8000000"]);
    let image = format!("docker://127.0.0.1:{port}/big:latest");
    let rkt = Rkt::new();
    let mut child = rkt
        .cmd()
        .args(["fetch", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let every = Duration::from_millis(10);
    test_support::poll(Duration::from_secs(30), every, "a partial download", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "fetch ended before it could be killed"
        );
        partial_files(&rkt.cas())
            .iter()
            .any(|(_, n)| *n > 4 << 20)
            .then_some(())
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(rkt.image_dirs().is_empty(), "a half image is visible");
    let list = rkt.ok(&["image", "list", "--no-legend"]);
    assert!(list.trim().is_empty(), "{list}");
    let (_, kept) = partial_files(&rkt.cas())[0].clone();

    let out = rkt.run(&["fetch", &image]);
    proxy.kill().ok();
    proxy.wait().ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Resuming"),
        "the second fetch did not resume: {stderr}"
    );
    assert!(kept > 0);
    assert!(partial_files(&rkt.cas()).is_empty());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let data = std::fs::metadata(rkt.rootfs(&id).join("data/blob")).unwrap();
    assert_eq!(data.len(), 50331648);
}

/// Twenty `rkt run` at once in one store: each pod gets a UUID of its own, runs its app once
/// (its own output, its own exit status), is listed as exited, and `gc` leaves nothing.
#[test]
fn twenty_concurrent_runs_each_run_once() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = common::pods::busybox();
    rkt.ok(&["fetch", &image]);
    let children: Vec<_> = (0..20)
        .map(|i| {
            let save = rkt.config.path().join(format!("uuid-{i}"));
            let child = rkt
                .cmd()
                .args([
                    "run",
                    "--net=none",
                    &format!("--uuid-file-save={}", save.display()),
                    &image,
                    "--exec=/bin/sh",
                    "--",
                    "-c",
                    &format!("echo run-{i}; exit {i}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, save, child)
        })
        .collect();
    let mut uuids = Vec::new();
    for (i, save, child) in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(i),
            "pod {i}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches("run-").count(),
            1,
            "pod {i} ran once: {stdout}"
        );
        assert!(stdout.contains(&format!("run-{i}")), "{stdout}");
        uuids.push(std::fs::read_to_string(save).unwrap());
    }
    let mut unique = uuids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "{uuids:?}");
    let list = rkt.ok(&["list", "--no-legend", "--full"]);
    assert_eq!(
        list.lines().filter(|l| l.contains("exited")).count(),
        20,
        "{list}"
    );
    for (i, uuid) in uuids.iter().enumerate() {
        let status = rkt.ok(&["status", uuid]);
        assert!(status.contains(&format!("={i}\n")), "{status}");
    }
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert!(common::pods::pod_dirs(&rkt).is_empty());
    common::pods::assert_no_mounts(&rkt);
    let left: Vec<_> = uuids
        .iter()
        .flat_map(|u| common::pods::cgroups_of(u))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
