//! Several fetches at once, and fetches killed half way: one consistent image, each blob
//! downloaded once, nothing half-made visible, and the next fetch completes the work.

mod common;

use common::{Registry, Rkt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A one-layer image holding 48 MiB of random (incompressible) data, built by umoci and
/// pushed by skopeo, so that downloads take long enough to be interrupted.
fn push_big_image(reg: &Registry) -> String {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    let bundle = work.path().join("bundle");
    let sh = |script: &str| {
        let out = Command::new("bash")
            .arg("-ec")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&format!(
        "umoci init --layout {l} && umoci new --image {l}:big && umoci unpack --image {l}:big {b} >/dev/null \
         && mkdir -p {b}/rootfs/data && head -c 50331648 /dev/urandom > {b}/rootfs/data/blob \
         && umoci repack --image {l}:big {b} \
         && skopeo copy --dest-tls-verify=false oci:{l}:big docker://127.0.0.1:{p}/big:latest >/dev/null",
        l = layout.display(),
        b = bundle.display(),
        p = reg.port
    ));
    reg.image("big:latest")
}

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
    let children: Vec<_> = (0..4)
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if partial_files(&rkt.cas()).iter().any(|(_, n)| *n > 4 << 20) {
            break;
        }
        assert!(Instant::now() < deadline, "no partial download appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "fetch ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
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
