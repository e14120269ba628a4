//! An image's config blob, converted to the appc image manifest that is stored with the image
//! and read back by `rkt image cat-manifest` and by pods.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = image::fetch::fuzzing::image_config(data);
});
