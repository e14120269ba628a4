//! What a registry says about authentication: its `WWW-Authenticate` challenge (first byte
//! even) and its token server's answer (first byte odd).
#![no_main]
use image::registry::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 0 {
        if let Ok(header) = std::str::from_utf8(rest) {
            let _ = fuzzing::www_authenticate(header);
        }
    } else {
        let _ = fuzzing::token_answer(rest);
    }
});
