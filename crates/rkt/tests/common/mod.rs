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
