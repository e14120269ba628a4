//! rkt's argument grammar: the words after `rkt run`/`prepare` (NUL-separated), image
//! references, and the values of `--insecure-options`, `--memory`, `--cpu`, `--net` and
//! durations.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stage0::spec;

fuzz_target!(|data: &[u8]| {
    let words: Vec<String> = data
        .split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    rkt::grammar::fuzz_words(&words);
    for w in &words {
        let _ = image::reference::Reference::parse(w);
        let _ = image::reference::classify(w);
        let _ = stage0::InsecureOptions::parse(w);
        let _ = spec::parse_bytes(w);
        let _ = spec::parse_millicores(w);
        let _ = spec::parse_duration(w);
        let _ = spec::parse_bool(w);
    }
});
