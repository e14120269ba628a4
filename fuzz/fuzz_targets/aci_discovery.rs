//! What an appc discovery server says: an HTML page read for its `ac-discovery` meta tags
//! (first byte even), or an image name as a user or a dependency gives it (first byte odd),
//! whose templates are then filled.
#![no_main]
use image::aci::discovery::{meta_tags, render, App};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 0 {
        for m in meta_tags(rest) {
            let vars = vec![("name".to_string(), m.prefix.clone())];
            let _ = render(&m.uri, &vars);
        }
    } else if let Ok(s) = std::str::from_utf8(rest) {
        if let Ok(app) = App::parse(s) {
            let vars: Vec<(String, String)> = app.labels.into_iter().collect();
            let _ = render("https://{name}/{version}-{os}-{arch}.{ext}", &vars);
        }
    }
});
