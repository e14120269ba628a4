//! A pod manifest, as `rkt cat-manifest`, `status` and the driver read it from a pod
//! directory: whatever parses must write back to the same document.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pod::manifest::PodManifest;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<PodManifest>(data) else {
        return;
    };
    let written = serde_json::to_value(&m).expect("a parsed manifest serializes");
    let again: PodManifest = serde_json::from_value(written.clone()).expect("and reads back");
    assert_eq!(serde_json::to_value(&again).unwrap(), written);
});
