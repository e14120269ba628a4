//! A layer tarball applied to a fresh tree in a temporary directory: whatever the archive
//! says, nothing may appear beside the tree, and the tree must be removable afterwards.
//! The first byte picks the layer's compression (0: none, 1: gzip, 2: zstd, others: none).
#![no_main]
use image::unpack::{remove_tree, Compression, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, layer)) = data.split_first() else {
        return;
    };
    let compression = match first {
        1 => Compression::Gzip,
        2 => Compression::Zstd,
        _ => Compression::None,
    };
    let outer = tempfile::Builder::new()
        .prefix("rkt-fuzz-tar-")
        .tempdir()
        .unwrap();
    let root = outer.path().join("rootfs");
    let mut tree = Tree::open(&root).unwrap();
    if let Ok(reader) = compression.decoder(layer) {
        let _ = tree.apply_layer(reader);
    }
    drop(tree);
    let beside: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "rootfs")
        .collect();
    assert!(
        beside.is_empty(),
        "the layer wrote outside its tree: {beside:?}"
    );
    remove_tree(&root).expect("a rendered tree can be removed");
    assert!(!root.exists());
});
