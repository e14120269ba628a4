//! A `registries.d/*.json` file, then a short name resolved against what it set.
#![no_main]
use image::registries::Registries;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut r = Registries::default();
    if r.add_file(
        text,
        std::path::Path::new("/etc/rkt/registries.d/fuzz.json"),
    )
    .is_ok()
    {
        if let Ok(reference) = r.reference("redis:3.2") {
            let _ = r.describe_short("redis:3.2", &reference);
        }
    }
});
