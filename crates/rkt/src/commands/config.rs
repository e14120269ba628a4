//! `rkt config`: the configuration rkt works with, merged from the system and local
//! (and user) directories, as JSON in rkt 1.30's shape: `{"stage0": [entries…]}` with one `auth` entry
//! per domain, one `dockerAuth` entry per registry, then `paths` and `stage1`.

use crate::flags::GlobalArgs;
use anyhow::Result;
use serde::Serialize;

pub fn run(global: &GlobalArgs, pretty_print: bool) -> Result<()> {
    let config = global.config()?;
    let mut stage0 = image::auth::config_entries(&config.config_dirs())?;
    let stage1 = stage0::stage1_path(&config)?;
    stage0.push(serde_json::json!({
        "rktVersion": "v1",
        "rktKind": "paths",
        "data": config.dir,
        // Where this rkt's stage1 is: rkt-stage1, beside rkt.
        "stage1-images": stage1.parent().unwrap_or(&stage1),
    }));
    // stage1.d's name and location where it gives them (refused if they name no built-in
    // flavour); else the flavour pods get without one, found in rkt-stage1 beside rkt.
    let conf = config.stage1_conf()?;
    let flavour = conf.flavour()?;
    let (name, version) = match conf.name {
        Some(n) => n.value,
        None => {
            let (name, _, _) = stage0::fly::NAMES
                .iter()
                .find(|(_, _, f)| *f == flavour)
                .expect("every flavour has a name");
            (name.to_string(), stage0::fly::VERSION.to_string())
        }
    };
    let location = conf
        .location
        .map(|l| l.value)
        .unwrap_or_else(|| stage1.display().to_string());
    stage0.push(serde_json::json!({
        "rktVersion": "v1",
        "rktKind": "stage1",
        "name": name,
        "version": version,
        "location": location,
    }));
    let all = serde_json::json!({ "stage0": stage0 });
    println!("{}", to_json(&all, pretty_print)?);
    Ok(())
}

/// Go's json.MarshalIndent(v, "", "\t") when pretty, json.Marshal otherwise.
fn to_json(v: &serde_json::Value, pretty: bool) -> Result<String> {
    if !pretty {
        return Ok(serde_json::to_string(v)?);
    }
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}
