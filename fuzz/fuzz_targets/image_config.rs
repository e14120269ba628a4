//! An image's config blob, converted to the appc image manifest that is stored with the image
//! and read back by `rkt image cat-manifest` and by pods; and a stored appc image manifest
//! itself, which must write back to what was read.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = image::fetch::fuzzing::image_config(data);
    if let Ok(m) = serde_json::from_slice::<image::appc::ImageManifest>(data) {
        let written = serde_json::to_vec(&m).expect("a parsed manifest serializes");
        let again: image::appc::ImageManifest =
            serde_json::from_slice(&written).expect("and reads back");
        assert_eq!(again, m);
    }
});
