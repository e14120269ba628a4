//! The fuzz targets of fuzz/ in short form, so that CI builds them and runs each one from its
//! seed corpus for a few seconds (scripts/fuzz.sh; `FUZZ_SECONDS`, default 3), from an
//! unoptimized build (`FUZZ_DEV=1`). Longer runs are by hand: `scripts/fuzz.sh 600`. A crash fails this test; the input is saved in
//! fuzz/artifacts/TARGET/.

mod common;

use std::process::Command;

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn every_fuzz_target_runs_from_its_corpus_without_a_crash() {
    if !have("cargo", &["+nightly", "--version"]) {
        return common::skip("no nightly toolchain (scripts/install-deps.sh installs it)");
    }
    if !have("cargo", &["fuzz", "--version"]) {
        return common::skip("no cargo-fuzz (scripts/install-deps.sh installs it)");
    }
    let seconds = std::env::var("FUZZ_SECONDS").unwrap_or_else(|_| "3".into());
    let status = Command::new("bash")
        .arg(common::repo_root().join("scripts/fuzz.sh"))
        .arg(&seconds)
        // An unoptimized build: it halves the build, and a few seconds of fuzzing need no speed.
        .env("FUZZ_DEV", "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "scripts/fuzz.sh {seconds} failed: see above"
    );
}
