//! Nomad's msgpack-encoded cty values: a job's `config {}` and the plugin's `config {}`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nomad_driver_rkt::config;

fuzz_target!(|data: &[u8]| {
    let _ = config::task_config(data);
    let _ = config::plugin_config(data);
});
