//! ACI fixtures and a local appc discovery server: names such as `aci.test` resolve, through
//! entries this module adds to `/etc/hosts` and removes again, to a loopback address of the
//! test's own, where `tests/harness/discovery_server.py` answers HTTPS on port 443 (discovery
//! URLs carry no port) with a certificate from a test CA.

use crate::{eventually, harness, repo_root, run_script};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The ACIs, keys and signatures `tests/harness/aci_fixtures.sh` builds (once per run).
pub fn aci_fixtures() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = repo_root().join("target/test-fixtures-aci");
        run_script("aci_fixtures.sh", &[dir.to_str().unwrap()]);
        dir
    })
}

const HOSTS: &str = "/etc/hosts";
const TAG: &str = "# rkt-rs test, pid";

/// Lines this process added to `/etc/hosts`; removed when dropped. Lines left by a test
/// process that died are removed by the next one.
pub struct HostsEntries {
    marker: String,
}

static HOSTS_LOCK: Mutex<()> = Mutex::new(());

fn edit_hosts(f: impl FnOnce(Vec<String>) -> Vec<String>) {
    let _guard = HOSTS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Other test processes edit it too.
    let lock = std::fs::File::create("/run/rkt-rs-test-hosts.lock").unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; the lock goes when `lock` is closed, at the end of this
    // function.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let text = std::fs::read_to_string(HOSTS).unwrap_or_default();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut out = f(lines).join("\n");
    out.push('\n');
    // In place, not by rename: /etc/hosts may be a bind mount.
    std::fs::write(HOSTS, out).unwrap();
}

impl HostsEntries {
    pub fn add(ip: &str, names: &[&str]) -> HostsEntries {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let marker = format!(
            "{TAG} {} #{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        edit_hosts(|mut lines| {
            lines.retain(|l| !stale(l));
            lines.push(format!("{ip} {} {marker}", names.join(" ")));
            lines
        });
        HostsEntries { marker }
    }
}

/// A line of a test process that no longer runs.
fn stale(line: &str) -> bool {
    let Some(rest) = line.split_once(TAG).map(|(_, r)| r) else {
        return false;
    };
    let pid = rest.split_whitespace().next().unwrap_or("");
    !Path::new(&format!("/proc/{pid}")).exists()
}

impl Drop for HostsEntries {
    fn drop(&mut self) {
        edit_hosts(|mut lines| {
            lines.retain(|l| !l.ends_with(&self.marker));
            lines
        });
    }
}

/// A discovery server for `names`, on a loopback address of its own.
pub struct DiscoveryServer {
    child: std::process::Child,
    pub ip: String,
    pub dir: tempfile::TempDir,
    names: Vec<String>,
    routes: Mutex<serde_json::Map<String, serde_json::Value>>,
    _hosts: HostsEntries,
}

impl DiscoveryServer {
    pub fn start(names: &[&str]) -> DiscoveryServer {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ip = format!("127.81.{}.{}", std::process::id() % 250, n);
        let dir = tempfile::Builder::new()
            .prefix("discovery-")
            .tempdir()
            .unwrap();
        let mut cert_names: Vec<&str> = names.to_vec();
        cert_names.push(&ip);
        let mut args = vec![dir.path().to_str().unwrap()];
        args.extend(cert_names);
        run_script("tls_cert.sh", &args);
        std::fs::write(dir.path().join("routes.json"), "{}").unwrap();
        let hosts = HostsEntries::add(&ip, names);
        let portfile = dir.path().join("port");
        let child = Command::new("python3")
            .arg(harness("discovery_server.py"))
            .arg(&portfile)
            .arg(dir.path().join("routes.json"))
            .arg(&ip)
            .arg(dir.path().join("server.pem"))
            .arg(dir.path().join("server.key"))
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(10), "the discovery server", || {
            std::fs::read_to_string(&portfile).ok()
        });
        DiscoveryServer {
            child,
            ip,
            dir,
            names: names.iter().map(|s| s.to_string()).collect(),
            routes: Mutex::new(serde_json::Map::new()),
            _hosts: hosts,
        }
    }

    /// Answers `key` ("HOST/PATH" or "HOST/PATH?QUERY") with `route` ({"file": …},
    /// {"body": …}, {"redirect": …} or {"status": …}).
    pub fn route(&self, key: &str, route: serde_json::Value) {
        let mut routes = self.routes.lock().unwrap();
        routes.insert(key.to_string(), route);
        let path = self.dir.path().join("routes.json");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&*routes).unwrap()).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    /// Serves a file at `https://KEY`.
    pub fn file(&self, key: &str, file: &Path) {
        self.route(key, serde_json::json!({ "file": file }));
    }

    /// A discovery page for `page` ("HOST/PATH?ac-discovery=1" is added) with meta tags.
    pub fn discovery_page(&self, page: &str, metas: &[(&str, &str, &str)]) {
        let tags: String = metas
            .iter()
            .map(|(name, prefix, uri)| {
                format!("<meta name=\"{name}\" content=\"{prefix} {uri}\">\n")
            })
            .collect();
        let body = format!("<!DOCTYPE html>\n<html><head>\n{tags}</head><body></body></html>\n");
        self.route(
            &format!("{page}?ac-discovery=1"),
            serde_json::json!({ "body": body }),
        );
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// What rkt needs to reach it: the test CA, and the names exempt from the dead proxy
    /// that keeps tests off the network.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SSL_CERT_FILE".into(), self.ca().display().to_string()),
            (
                "NO_PROXY".into(),
                format!("127.0.0.0/8,localhost,{}", self.names.join(",")),
            ),
        ]
    }

    /// The requests served so far, one "HOST/PATH?QUERY" per line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("port.log")).unwrap_or_default()
    }
}

impl Drop for DiscoveryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
