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
fn layer_swapped_for_another_valid_gzip() {
    refused("bad/digest-mismatch", &["does not match its digest"]);
}

#[test]
fn schema1_refused() {
    refused("bad/schema1", &["schema1"]);
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
fn config_over_4_mib() {
    refused("bad/big-config", &["limit"]);
}

#[test]
fn manifest_over_4_mib() {
    // Distribution itself will not serve a manifest this big, so a one-purpose server does.
    let (mut server, port, _dir) = common::python_server("manifest_server.py", &["5000000"]);
    let rkt = Rkt::new();
    let image = format!("docker://127.0.0.1:{port}/huge:latest");
    let err = rkt.fails(&["fetch", &image]);
    server.kill().ok();
    server.wait().ok();
    assert!(err.contains(&image) && err.contains("limit"), "{err}");
    assert!(rkt.image_dirs().is_empty());
    // Just under the limit is parsed (and then fails later, on its fake config).
    let (mut server, port, _dir) = common::python_server("manifest_server.py", &["4000000"]);
    let err = rkt.fails(&["fetch", &format!("docker://127.0.0.1:{port}/huge:latest")]);
    server.kill().ok();
    server.wait().ok();
    assert!(!err.contains("limit"), "{err}");
}

#[test]
fn unknown_layer_media_type() {
    refused("bad/unknown-media", &["unknown media type"]);
}

#[test]
fn missing_image() {
    refused("bad/does-not-exist", &["not found"]);
}

#[test]
fn registry_that_hangs() {
    let (mut server, port, _dir) = common::python_server("hang_server.py", &[]);
    let mut rkt = Rkt::new();
    rkt.env.push(("RKT_REGISTRY_TIMEOUT".into(), "1s".into()));
    let image = format!("docker://127.0.0.1:{port}/x:latest");
    let started = std::time::Instant::now();
    let err = rkt.fails(&["fetch", &image]);
    server.kill().ok();
    server.wait().ok();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(rkt.image_dirs().is_empty());
}
