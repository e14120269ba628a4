//! An `auth.d/*.json` credentials file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = image::auth::Credentials::default().fuzz_file(text);
});
