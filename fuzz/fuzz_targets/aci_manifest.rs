//! What an ACI or a key server says: an image manifest checked against appc's rules (first
//! byte even), or an OpenPGP public key or detached signature (first byte odd).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 0 {
        if let Ok(m) = image::aci::validate::image_manifest(rest) {
            // What passes must serialize again (it is stored and read back).
            serde_json::to_vec(&m).expect("a valid manifest serializes");
        }
    } else {
        let _ = image::trust::parse_key(rest);
        let _ = image::trust::verify(&[], &b"data"[..], rest, std::time::SystemTime::now());
    }
});
