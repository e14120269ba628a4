//! A registry's answer to a manifest request: OCI and Docker manifests, indexes and lists.
//! The first byte picks the `Content-Type` the registry claims.
#![no_main]
use image::registry;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/json"),
    Some(registry::MEDIA_OCI_MANIFEST),
    Some(registry::MEDIA_OCI_INDEX),
    Some(registry::MEDIA_DOCKER_MANIFEST),
    Some(registry::MEDIA_DOCKER_LIST),
];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let ct = CONTENT_TYPES[*first as usize % CONTENT_TYPES.len()].map(str::to_string);
    let _ = image::fetch::fuzzing::manifest_answer(body, ct);
});
