//! rkt's integration tests use the workspace's shared test support (`crates/test-support`):
//! real registries with the fixture images, the `rkt` binary against a private store, and
//! skips that say why (and that CI refuses).
#![allow(dead_code, unused_imports)]

pub use test_support::*;

/// Pods need root: namespaces, mounts, cgroups, and images rendered with device nodes and
/// owners.
pub fn require_root() -> bool {
    test_support::require_root("runs pods and renders images with device nodes and owners")
}
pub mod pods;

/// A one-layer image holding 48 MiB of random (incompressible) data, built by umoci and
/// pushed by skopeo, so that downloads take long enough to be interrupted.
pub fn push_big_image(reg: &Registry) -> String {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    let bundle = work.path().join("bundle");
    let sh = |script: &str| {
        let out = std::process::Command::new("bash")
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
