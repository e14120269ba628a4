//! A `net.d/*.conf` network configuration file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = net::conf::parse_conf(data, std::path::Path::new("/etc/rkt/net.d/fuzz.conf"));
});
