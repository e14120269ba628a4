//! Hostile and broken images: each is refused with a message naming the image and the
//! problem, nothing is written outside the store, and the store stays usable.

mod common;

use common::{Registry, Rkt};
use std::path::Path;
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
/// Returns the store (None when the test is skipped).
fn refused(repo: &str, expect: &[&str]) -> Option<Rkt> {
    if !common::require_root() {
        return None;
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
    Some(rkt)
}

#[test]
fn dotdot_entries() {
    let Some(rkt) = refused("bad/dotdot", &[".."]) else {
        return;
    };
    assert_not_written(&rkt, &["escape", "escape2"]);
}

#[test]
fn absolute_entries() {
    let Some(rkt) = refused("bad/abs", &["absolute"]) else {
        return;
    };
    assert_not_written(&rkt, &["abs-escape"]);
}

#[test]
fn write_through_symlink() {
    let Some(rkt) = refused("bad/symlink-write", &["symlink"]) else {
        return;
    };
    assert_not_written(&rkt, &["pwned"]);
}

/// No file of these names anywhere a hostile layer entry could have put one: anywhere in the
/// store (beside the staging directory, `../` of it, ...), beside the store, in /tmp (what
/// `link -> /tmp` names) or in `/`.
fn assert_not_written(rkt: &Rkt, names: &[&str]) {
    let mut found = Vec::new();
    let mut stack = vec![rkt.dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if names.iter().any(|n| e.file_name() == **n) {
                found.push(e.path());
            }
        }
    }
    for dir in [
        rkt.dir.path().parent().unwrap(),
        Path::new("/tmp"),
        Path::new("/"),
    ] {
        found.extend(names.iter().map(|n| dir.join(n)).filter(|p| p.exists()));
    }
    assert!(found.is_empty(), "a hostile layer wrote {found:?}");
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
fn config_swapped_for_another_valid_one() {
    refused("bad/config-mismatch", &["does not match its digest"]);
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

/// A decompression bomb (512 MiB of zeros in a 0.5 MiB layer) into a store on a 64 MiB file
/// system: refused when the disk is full, naming the image, with the space given back and
/// the store working as before.
#[test]
fn decompression_bomb_fills_nothing_for_good() {
    if !common::require_root() {
        return;
    }
    let reg = bad();
    let fs = common::SmallFs::new("64m");
    let rkt = fs.rkt();
    let free = fs.free();
    let image = reg.image("bad/bomb:latest");
    let err = rkt.fails(&["fetch", &image]);
    assert!(
        err.contains(&image) && err.contains("No space left on device"),
        "{err}"
    );
    assert!(rkt.image_dirs().is_empty(), "a half image is visible");
    assert!(rkt.tmp_entries().is_empty(), "{:?}", rkt.tmp_entries());
    assert!(
        fs.free() + (2 << 20) >= free,
        "the bomb's bytes stayed: {} free, {free} before",
        fs.free()
    );
    rkt.ok(&["fetch", &reg.image("busybox:latest")]);
    let o = rkt.run(&[
        "run",
        "--net=none",
        &reg.image("busybox:latest"),
        "--exec",
        "/bin/cat",
        "--",
        "/www/index.html",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from rkt\n");
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
