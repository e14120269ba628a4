//! Registry credentials from rkt's configuration directories.
//!
//! rkt reads `auth.d/*.json` under the system config directory (`/usr/lib/rkt`) and then the
//! local one (`/etc/rkt`), files in lexical order, later entries winning. Two kinds matter for
//! registries:
//!
//! ```json
//! {"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],
//!  "credentials":{"user":"u","password":"p"}}
//! {"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"basic",
//!  "credentials":{"user":"u","password":"p"}}
//! ```
//!
//! `auth` entries of type `oauth` carry `{"token": …}` and are sent as a Bearer token.

use crate::error::{Context, Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Never shows a secret: errors and debug output print credentials' owners at most.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { user, .. } => write!(f, "Basic({user:?}, <redacted>)"),
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Credentials per registry host (with port, as written in the reference): a task's own
/// first, then Docker's files and helpers, then `auth.d`.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    by_host: HashMap<String, Credential>,
    /// Given for one operation (a Nomad task's `auth {}`), ahead of everything else.
    given: HashMap<String, Credential>,
    docker: Option<crate::docker_config::DockerCredentials>,
    /// Registries an `auth.d` file gives credentials for that this rkt cannot use (type
    /// `aws`), with why: fetches from them fail, saying so; others are not affected.
    unusable: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    rkt_kind: String,
    rkt_version: String,
}

#[derive(Deserialize)]
struct DockerAuth {
    registries: Vec<String>,
    credentials: UserPassword,
}

#[derive(Deserialize)]
struct Auth {
    domains: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    credentials: serde_json::Value,
}

#[derive(Deserialize)]
struct UserPassword {
    user: String,
    password: String,
}

impl Credentials {
    /// Loads `auth.d` from each configuration directory in `dirs` (system, local, user: a
    /// later one wins).
    pub fn load(dirs: &[PathBuf]) -> Result<Self> {
        let mut creds = Credentials::default();
        for dir in dirs {
            creds.load_dir(&dir.join("auth.d"))?;
        }
        Ok(creds)
    }

    /// The credential for registry `host`: one given for this operation, else Docker's
    /// (a helper may fail), else `auth.d`'s.
    pub fn get(&self, host: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.given.get(host) {
            return Ok(Some(c.clone()));
        }
        if let Some(d) = &self.docker {
            if let Some(c) = d.lookup(host)? {
                return Ok(Some(c));
            }
        }
        if let Some(why) = self.unusable.get(host) {
            return Err(Error::config(why.clone()));
        }
        Ok(self.by_host.get(host).cloned())
    }

    /// A credential for `host` for this operation only, ahead of every other source.
    pub fn give(&mut self, host: &str, cred: Credential) {
        self.given.insert(host.to_string(), cred);
    }

    /// Docker's credential files and helpers, asked before `auth.d`.
    pub fn use_docker(&mut self, docker: crate::docker_config::DockerCredentials) {
        self.docker = Some(docker);
    }

    fn insert(&mut self, host: &str, cred: Credential) {
        self.unusable.remove(host);
        self.by_host.insert(host.to_string(), cred);
    }

    fn load_dir(&mut self, dir: &Path) -> Result<()> {
        for file in json_files(dir)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            self.parse_file(&text, &file).map_err(|e| {
                Error::config(format!(
                    "invalid credentials file {}; expected rktKind \"dockerAuth\" or \"auth\", rktVersion \"v1\": {e}",
                    file.display()
                ))
            })?;
        }
        Ok(())
    }

    /// One `auth.d` file's text, for the fuzz target (`fuzz/`). Not an API.
    #[doc(hidden)]
    pub fn fuzz_file(&mut self, text: &str) -> Result<()> {
        self.parse_file(text, Path::new("fuzz.json"))
    }

    fn parse_file(&mut self, text: &str, file: &Path) -> Result<()> {
        let header: Header = serde_json::from_str(text)?;
        if header.rkt_version != "v1" {
            return Err(Error::config(format!(
                "unsupported rktVersion {:?}",
                header.rkt_version
            )));
        }
        match header.rkt_kind.as_str() {
            "dockerAuth" => {
                let d: DockerAuth = serde_json::from_str(text)?;
                for r in d.registries {
                    self.insert(
                        &r,
                        Credential::Basic {
                            user: d.credentials.user.clone(),
                            password: d.credentials.password.clone(),
                        },
                    );
                }
            }
            "auth" => {
                let a: Auth = serde_json::from_str(text)?;
                let cred = match a.kind.as_str() {
                    "basic" => {
                        let up: UserPassword = serde_json::from_value(a.credentials)?;
                        Credential::Basic {
                            user: up.user,
                            password: up.password,
                        }
                    }
                    "oauth" => {
                        let token = a.credentials["token"]
                            .as_str()
                            .ok_or_else(|| Error::config("oauth credentials need a \"token\""))?;
                        Credential::Bearer(token.to_string())
                    }
                    "aws" => {
                        let why = format!(
                            "{} gives AWS (ECR) credentials for these registries, and this rkt cannot exchange them for a registry token yet; give a dockerAuth entry with user AWS and the password of `aws ecr get-login-password` instead",
                            file.display()
                        );
                        for d in a.domains {
                            self.unusable.insert(d, why.clone());
                        }
                        return Ok(());
                    }
                    other => {
                        return Err(Error::config(format!(
                            "unsupported auth type {other:?} (basic, oauth and aws are)"
                        )))
                    }
                };
                for d in a.domains {
                    self.insert(&d, cred.clone());
                }
            }
            other => return Err(Error::config(format!("unknown rktKind {other:?}"))),
        }
        Ok(())
    }
}

/// The credentials of `auth.d` as `rkt config` prints them: one entry per `auth` domain and
/// per `dockerAuth` registry, in rkt's entry shapes, a later file's entry replacing an
/// earlier one for the same domain (or registry) and kind, sorted by kind and host.
/// Configuration this rkt refuses when fetching is refused here too.
pub fn config_entries(dirs: &[PathBuf]) -> Result<Vec<serde_json::Value>> {
    Credentials::load(dirs)?;
    let mut merged: std::collections::BTreeMap<(String, String), serde_json::Value> =
        Default::default();
    for dir in dirs {
        for file in json_files(&dir.join("auth.d"))? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)?;
            let kind = value["rktKind"].as_str().unwrap_or_default().to_string();
            let hosts = if kind == "dockerAuth" {
                "registries"
            } else {
                "domains"
            };
            for host in value[hosts].as_array().into_iter().flatten() {
                let host = host.as_str().unwrap_or_default().to_string();
                let mut entry = serde_json::json!({"rktVersion": "v1", "rktKind": kind});
                entry[hosts] = serde_json::json!([host]);
                if kind == "auth" {
                    entry["type"] = value["type"].clone();
                }
                entry["credentials"] = value["credentials"].clone();
                merged.insert((kind.clone(), host), entry);
            }
        }
    }
    Ok(merged.into_values().collect())
}

/// The `*.json` files of a configuration directory, in lexical order (none if it is absent).
fn json_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_overrides_system_and_both_kinds_parse() {
        let sys = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("auth.d")).unwrap();
        std::fs::create_dir_all(local.path().join("auth.d")).unwrap();
        std::fs::write(
            sys.path().join("auth.d/a.json"),
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["r:5000","q.io"],"credentials":{"user":"sys","password":"x"}}"#,
        )
        .unwrap();
        std::fs::write(
            local.path().join("auth.d/b.json"),
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["r:5000"],"type":"basic","credentials":{"user":"loc","password":"y"}}"#,
        )
        .unwrap();
        let c = Credentials::load(&[sys.path().into(), local.path().into()]).unwrap();
        assert_eq!(
            c.get("r:5000").unwrap(),
            Some(Credential::Basic {
                user: "loc".into(),
                password: "y".into()
            })
        );
        assert!(
            matches!(c.get("q.io").unwrap(), Some(Credential::Basic { user, .. }) if user == "sys")
        );
        assert!(c.get("other").unwrap().is_none());
        let mut c = c;
        c.give("q.io", Credential::Bearer("t".into()));
        assert_eq!(c.get("q.io").unwrap(), Some(Credential::Bearer("t".into())));
        assert_eq!(
            format!("{:?}", c.get("q.io").unwrap()),
            "Some(Bearer(<redacted>))"
        );
    }

    #[test]
    fn config_entries_are_one_per_host_the_local_one_winning() {
        let sys = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("auth.d")).unwrap();
        std::fs::create_dir_all(local.path().join("auth.d")).unwrap();
        std::fs::write(
            sys.path().join("auth.d/basic.json"),
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["foo.com","bar.com"],"type":"basic","credentials":{"user":"sysUser","password":"sysPassword"}}"#,
        )
        .unwrap();
        std::fs::write(
            local.path().join("auth.d/basic.json"),
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["foo.com"],"type":"basic","credentials":{"user":"user","password":"password"}}"#,
        )
        .unwrap();
        std::fs::write(
            local.path().join("auth.d/docker.json"),
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"d","password":"p"}}"#,
        )
        .unwrap();
        let e = config_entries(&[sys.path().into(), local.path().into()]).unwrap();
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0]["domains"], serde_json::json!(["bar.com"]));
        assert_eq!(e[0]["credentials"]["user"], "sysUser");
        assert_eq!(e[1]["domains"], serde_json::json!(["foo.com"]));
        assert_eq!(e[1]["credentials"]["user"], "user");
        assert_eq!(e[1]["type"], "basic");
        assert_eq!(e[2]["rktKind"], "dockerAuth");
        assert_eq!(e[2]["registries"], serde_json::json!(["quay.io"]));
    }

    #[test]
    fn bad_file_names_itself() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("auth.d")).unwrap();
        std::fs::write(
            d.path().join("auth.d/z.json"),
            r#"{"rktKind":"nope","rktVersion":"v1"}"#,
        )
        .unwrap();
        let e = Credentials::load(&["/nonexistent".into(), d.path().into()]).unwrap_err();
        assert!(format!("{e:#}").contains("z.json"), "{e:#}");
    }
}
