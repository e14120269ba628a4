//! Registry credentials where Docker keeps them: a Docker `config.json` (`auths`, and the
//! credential helpers its `credHelpers` and `credsStore` name) and a credential helper
//! program, `docker-credential-NAME get`, which reads a registry's server URL on stdin and
//! answers `{"Username": …, "Secret": …}` on stdout. Nomad's Docker driver reads both (its
//! plugin `auth { config helper }`); so does the rkt driver.

use crate::auth::Credential;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where Docker-style credentials come from, tried in this order: the config file (its
/// helper for the registry, its store, its `auths`), then `helper`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerCredentials {
    pub config: Option<PathBuf>,
    pub helper: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Docker Hub's registry, as references name it and as Docker's files key it.
const HUB_HOSTS: [&str; 3] = ["registry-1.docker.io", "docker.io", "index.docker.io"];
const HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The keys a registry `host` may have in a config file, and the server URL a helper is
/// asked about.
fn keys(host: &str) -> (Vec<String>, String) {
    if HUB_HOSTS.contains(&host) {
        let mut k: Vec<String> = HUB_HOSTS.iter().map(|h| h.to_string()).collect();
        k.insert(0, HUB_SERVER.to_string());
        return (k, HUB_SERVER.to_string());
    }
    (
        vec![
            host.to_string(),
            format!("https://{host}"),
            format!("http://{host}"),
            format!("https://{host}/v1/"),
            format!("https://{host}/v2/"),
        ],
        host.to_string(),
    )
}

impl DockerCredentials {
    /// The credential for registry `host` (`host[:port]`), if any source has one.
    pub fn lookup(&self, host: &str) -> Result<Option<Credential>> {
        let (keys, server) = keys(host);
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::config(format!(
                    "reading the Docker credentials file {}: {e}",
                    path.display()
                ))
            })?;
            let file: ConfigFile = serde_json::from_str(&text).map_err(|e| {
                Error::config(format!(
                    "the Docker credentials file {} is not a Docker config.json: {e}",
                    path.display()
                ))
            })?;
            let helper = keys
                .iter()
                .find_map(|k| file.cred_helpers.get(k))
                .or(file.creds_store.as_ref());
            if let Some(helper) = helper {
                if let Some(c) = run_helper(helper, &server)? {
                    return Ok(Some(c));
                }
            }
            if let Some(entry) = keys.iter().find_map(|k| file.auths.get(k)) {
                return entry_credential(entry, path);
            }
        }
        match &self.helper {
            Some(h) => run_helper(h, &server),
            None => Ok(None),
        }
    }
}

fn entry_credential(e: &AuthEntry, path: &std::path::Path) -> Result<Option<Credential>> {
    if let Some(token) = e.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::Bearer(token.clone())));
    }
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        return Ok(Some(Credential::Basic {
            user: u.clone(),
            password: p.clone(),
        }));
    }
    let Some(auth) = e.auth.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        Error::config(format!(
            "an \"auth\" entry in {} is not base64 of USER:PASSWORD",
            path.display()
        ))
    };
    let decoded = base64_decode(auth).ok_or_else(bad)?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credential::Basic {
        user: user.to_string(),
        password: password.to_string(),
    }))
}

/// `docker-credential-NAME get`, the server URL on stdin. A helper that has nothing for
/// the server says so ("credentials not found"), which is no credential rather than an error.
fn run_helper(name: &str, server: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::config(format!(
                "running the credential helper {program}: {e}; install it on the node's PATH or fix auth.helper"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::config(format!("waiting for {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        // Its stderr names what went wrong; it holds no secret (the answer is on stdout).
        return Err(Error::config(format!(
            "the credential helper {program} failed for {server}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let answer: HelperAnswer = serde_json::from_str(&stdout).map_err(|_| {
        Error::config(format!(
            "the credential helper {program} answered something that is not {{\"Username\",\"Secret\"}} JSON"
        ))
    })?;
    // Docker's convention: a user of "<token>" means the secret is an identity token.
    Ok(Some(if answer.username == "<token>" {
        Credential::Bearer(answer.secret)
    } else {
        Credential::Basic {
            user: answer.username,
            password: answer.secret,
        }
    }))
}

/// Standard base64, padded or not; None if it is not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim().trim_end_matches('='))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("dTpw").unwrap(), b"u:p");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("@@@@").is_none());
    }

    #[test]
    fn config_auths_and_hub_keys() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},
                "127.0.0.1:5000":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let c = DockerCredentials {
            config: Some(path),
            helper: None,
        };
        assert_eq!(
            c.lookup("registry-1.docker.io").unwrap(),
            Some(Credential::Basic {
                user: "hub".into(),
                password: "secret".into()
            })
        );
        assert!(
            matches!(c.lookup("127.0.0.1:5000").unwrap(), Some(Credential::Basic { user, .. }) if user == "u")
        );
        assert_eq!(c.lookup("other.io").unwrap(), None);
    }

    #[test]
    fn a_missing_helper_is_named() {
        let c = DockerCredentials {
            config: None,
            helper: Some("no-such-helper-here".into()),
        };
        let e = c.lookup("x.io").unwrap_err().to_string();
        assert!(e.contains("docker-credential-no-such-helper-here"), "{e}");
    }
}
