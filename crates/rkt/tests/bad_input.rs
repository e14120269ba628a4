//! Hostile and broken images: each is refused with a message naming the image and the
//! problem, nothing is written outside the store, and the store stays usable.

mod common;

use common::{Registry, Rkt};
use std::sync::OnceLock;

fn bad() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let reg = Registry::with_fixtures("plain");
        common::run_script(
            "bad_fixtures.sh",
            &[&reg.port.to_string(), reg.state.path().to_str().unwrap()],
        );
        reg
    })
}

/// Fetches a bad image, checks the failure, and checks the store is clean and still works.
fn refused(repo: &str, expect: &[&str]) {
    if !common::require_root() {
        return;
    }
    let reg = bad();
    let rkt = Rkt::new();
    let image = reg.image(&format!("{repo}:latest"));
    let err = rkt.fails(&["fetch", &image]);
    assert!(
        err.contains(&image) || err.contains(repo),
        "{repo}: error does not name the image: {err}"
    );
    assert!(
        expect.iter().any(|e| err.contains(e)),
        "{repo}: expected one of {expect:?} in: {err}"
    );
    assert!(
        rkt.image_dirs().is_empty(),
        "{repo}: a half image is visible"
    );
    assert!(
        rkt.tmp_entries().is_empty(),
        "{repo}: staging left behind: {:?}",
        rkt.tmp_entries()
    );
    let list = rkt.ok(&["image", "list", "--no-legend"]);
    assert!(list.trim().is_empty(), "{repo}: {list}");
    // The same store still fetches a good image.
    rkt.ok(&["fetch", &reg.image("busybox:latest")]);
}

#[test]
fn dotdot_entries() {
    refused("bad/dotdot", &[".."]);
    assert!(!std::path::Path::new("/tmp/escape").exists());
}

#[test]
fn absolute_entries() {
    refused("bad/abs", &["absolute"]);
    assert!(!std::path::Path::new("/abs-escape").exists());
}

#[test]
fn write_through_symlink() {
    refused("bad/symlink-write", &["symlink"]);
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[test]
fn hardlink_outside() {
    refused("bad/hardlink-out", &["hardlink", ".."]);
}

#[test]
fn blob_digest_mismatch() {
    refused("bad/corrupt-gzip", &["does not match its digest"]);
}

#[test]
fn truncated_gzip() {
    refused("bad/truncated-gzip", &["applying layer"]);
}

#[test]
fn truncated_zstd() {
    refused("bad/truncated-zstd", &["applying layer"]);
}

#[test]
fn manifest_over_4_mib() {
    refused("bad/big-manifest", &["limit"]);
}

#[test]
fn unknown_layer_media_type() {
    refused("bad/unknown-media", &["unknown media type"]);
}

#[test]
fn schema1_refused() {
    refused("bad/schema1", &["schema1"]);
}

#[test]
fn missing_image() {
    refused("bad/does-not-exist", &["not found"]);
}

#[test]
fn registry_that_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("port");
    let mut server = std::process::Command::new("python3")
        .arg(common::harness("hang_server.py"))
        .arg(&portfile)
        .spawn()
        .unwrap();
    let port = (0..100)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::read_to_string(&portfile)
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .expect("hang server port");
    let mut rkt = Rkt::new();
    rkt.env.push(("RKT_REGISTRY_TIMEOUT".into(), "1s".into()));
    let image = format!("docker://127.0.0.1:{}/x:latest", port.trim());
    let started = std::time::Instant::now();
    let err = rkt.fails(&["fetch", &image]);
    server.kill().ok();
    server.wait().ok();
    assert!(err.contains(&format!("127.0.0.1:{}", port.trim())), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(rkt.image_dirs().is_empty());
}
