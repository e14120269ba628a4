//! Which networks a pod joins: rkt's `--net` values and the network configuration files.
//!
//! Built-in networks are `default` and `default-restricted` (rkt shipped them in stage1);
//! custom ones are `net.d/*.conf` files under the local and then the system configuration
//! directory, read in lexical order. A local file wins over a system file of the same name.

use crate::{config_err, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What `--net` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// The host's network namespace.
    Host,
    /// A namespace of its own with only loopback.
    None,
    /// A namespace of its own joined to these networks, in order.
    Contained(Vec<Request>),
    /// An existing namespace that someone else made and owns (Nomad's group network, given
    /// with `--net-namespace`): the pod joins it; rkt neither sets it up nor tears it down.
    Joined(std::path::PathBuf),
}

/// One network named by `--net=NAME[:K=V;K=V]` (or `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    /// Passed to the plugins as CNI_ARGS.
    pub args: String,
}

/// A network's configuration, as it will be handed to its plugin.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub name: String,
    /// The file it came from, as rkt reported it (`net/99-default.conf` for built-ins).
    pub source: String,
    /// The plugin type (`ptp`, `bridge`, …).
    pub plugin: String,
    pub json: Value,
    pub args: String,
    /// One of rkt's own networks (`default`, `default-restricted`), whose configuration rkt
    /// owns: its masquerading is done by rkt's nat batch instead of the plugin.
    pub builtin: bool,
}

impl NetConf {
    /// Whether this network masquerades the pod's traffic (port forwarding prefers it).
    pub fn ip_masq(&self) -> bool {
        self.json.get("ipMasq").and_then(Value::as_bool) == Some(true)
    }
}

/// Parses `--net` values; none given means `default`, as in rkt.
pub fn parse_mode(values: &[String]) -> Result<NetMode> {
    let values: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    match values.as_slice() {
        [] => return Ok(NetMode::Contained(vec![request("default")])),
        ["host"] => return Ok(NetMode::Host),
        ["none"] => return Ok(NetMode::None),
        _ => {}
    }
    let mut out: Vec<Request> = Vec::new();
    for v in values {
        if v == "host" || v == "none" {
            return Err(config_err(format!(
                "--net={v} cannot be combined with other networks"
            )));
        }
        let (name, args) = v.split_once(':').unwrap_or((v, ""));
        if name.is_empty() {
            return Err(config_err(format!("--net={v}: no network name before ':'")));
        }
        if out.iter().any(|r| r.name == name) {
            return Err(config_err(format!(
                "network {name:?} is given twice; a pod joins a network once"
            )));
        }
        out.push(Request {
            name: name.to_string(),
            args: args.to_string(),
        });
    }
    Ok(NetMode::Contained(out))
}

fn request(name: &str) -> Request {
    Request {
        name: name.into(),
        args: String::new(),
    }
}

/// rkt's built-in `default`: a veth pair per pod, a default route and masquerading.
pub fn builtin_default() -> Value {
    json!({"cniVersion": "0.1.0", "name": "default", "type": "ptp", "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "172.16.28.0/24", "routes": [{"dst": "0.0.0.0/0"}]}})
}

/// rkt's built-in `default-restricted`: reaches the host only; no masquerading, no default
/// route.
pub fn builtin_restricted() -> Value {
    json!({"cniVersion": "0.1.0", "name": "default-restricted", "type": "ptp", "ipMasq": false,
        "ipam": {"type": "host-local", "subnet": "172.31.0.0/16"}})
}

/// Resolves the requested networks against the configuration directories `dirs` (system,
/// local, user: a later one wins). `all` means every configured network plus `default`, as
/// in rkt.
pub fn load(dirs: &[std::path::PathBuf], requests: &[Request]) -> Result<Vec<NetConf>> {
    let net_dirs: Vec<std::path::PathBuf> = dirs.iter().rev().map(|d| d.join("net.d")).collect();
    let files = config_files(&net_dirs)?;
    let mut custom: Vec<NetConf> = Vec::new();
    for f in &files {
        let conf = read_conf(f)?;
        if let Some(prev) = custom.iter().find(|c| c.name == conf.name) {
            return Err(config_err(format!(
                "network {:?} is defined twice: in {} and in {}; rename one",
                conf.name, prev.source, conf.source
            )));
        }
        custom.push(conf);
    }
    let find = |name: &str| -> Option<NetConf> {
        custom.iter().find(|c| c.name == name).cloned().or_else(|| {
            let json = match name {
                "default" => builtin_default(),
                "default-restricted" => builtin_restricted(),
                _ => return None,
            };
            Some(NetConf {
                name: name.to_string(),
                source: format!("net/99-{name}.conf"),
                plugin: "ptp".into(),
                json,
                args: String::new(),
                builtin: true,
            })
        })
    };
    let mut out = Vec::new();
    for r in requests {
        if r.name == "all" {
            for c in custom.iter().cloned().chain(find("default")) {
                if !out.iter().any(|o: &NetConf| o.name == c.name) {
                    out.push(c);
                }
            }
            continue;
        }
        let mut conf = find(&r.name).ok_or_else(|| {
            let mut known: Vec<String> = custom.iter().map(|c| c.name.clone()).collect();
            known.extend(["default".into(), "default-restricted".into()]);
            config_err(format!(
                "network {:?} not found: no such file in {}; known networks: {}",
                r.name,
                net_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
                known.join(", ")
            ))
        })?;
        conf.args = r.args.clone();
        out.push(conf);
    }
    Ok(out)
}

/// `*.conf` files of the directories, by file name in lexical order; a file name seen in an
/// earlier directory hides the same name in later ones.
fn config_files(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut by_name: Vec<(String, PathBuf)> = Vec::new();
    for d in dirs {
        let entries = match std::fs::read_dir(d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(config_err(format!("reading {}: {e}", d.display()))),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") && !by_name.iter().any(|(n, _)| *n == name) {
                by_name.push((name, e.path()));
            }
        }
    }
    by_name.sort();
    Ok(by_name.into_iter().map(|(_, p)| p).collect())
}

fn read_conf(path: &Path) -> Result<NetConf> {
    let text =
        std::fs::read(path).map_err(|e| config_err(format!("reading {}: {e}", path.display())))?;
    parse_conf(&text, path)
}

/// A `net.d` file's bytes, as [`load`] reads them. Public for the fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn parse_conf(text: &[u8], path: &Path) -> Result<NetConf> {
    let json: Value = serde_json::from_slice(text).map_err(|e| {
        config_err(format!(
            "network configuration {} is not valid JSON: {e}; fix or remove the file",
            path.display()
        ))
    })?;
    let field = |k: &str| {
        json.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                config_err(format!(
                    "network configuration {} has no {k:?}; every network needs \"name\" and \"type\"",
                    path.display()
                ))
            })
    };
    let name = field("name")?;
    let plugin = field("type")?;
    if plugin.contains('/') {
        return Err(config_err(format!(
            "network {name:?} ({}): plugin type {plugin:?} must be a bare name",
            path.display()
        )));
    }
    Ok(NetConf {
        name,
        source: path.display().to_string(),
        plugin,
        json,
        args: String::new(),
        builtin: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn modes() {
        assert_eq!(
            parse_mode(&[]).unwrap(),
            NetMode::Contained(vec![request("default")])
        );
        assert_eq!(parse_mode(&v(&["host"])).unwrap(), NetMode::Host);
        assert_eq!(parse_mode(&v(&["none"])).unwrap(), NetMode::None);
        let NetMode::Contained(r) = parse_mode(&v(&["default:IP=172.16.28.9", "x"])).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r[0].name.as_str(), r[0].args.as_str()),
            ("default", "IP=172.16.28.9")
        );
        assert!(parse_mode(&v(&["host", "default"])).is_err());
        assert!(parse_mode(&v(&["a", "a"])).is_err());
    }

    #[test]
    fn loads_in_lexical_order_local_first() {
        let t = tempfile::tempdir().unwrap();
        let (local, system) = (t.path().join("l"), t.path().join("s"));
        for d in [&local, &system] {
            std::fs::create_dir_all(d.join("net.d")).unwrap();
        }
        let w = |d: &Path, f: &str, name: &str| {
            std::fs::write(
                d.join("net.d").join(f),
                format!(r#"{{"name":"{name}","type":"bridge"}}"#),
            )
            .unwrap()
        };
        w(&local, "20-b.conf", "b");
        w(&local, "10-a.conf", "a");
        w(&system, "10-a.conf", "shadowed");
        w(&system, "05-c.conf", "c");
        let all = load(&[system.clone(), local.clone()], &[request("all")]).unwrap();
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["c", "a", "b", "default"]);
        let e = load(&[system.clone(), local.clone()], &[request("nope")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"nope\" not found") && e.contains("a, b"),
            "{e}"
        );
        std::fs::write(local.join("net.d/30-bad.conf"), "{").unwrap();
        let e = load(&[system.clone(), local.clone()], &[request("a")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("30-bad.conf is not valid JSON"), "{e}");
    }
}
