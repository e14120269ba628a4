//! Group networks in a real Nomad agent: a task of a group with `network { mode = "bridge" }`
//! (Nomad's own bridge) or `mode = "cni/NAME"` (an operator's CNI network) joins the
//! namespace Nomad made for the group; traffic to the port Nomad allocated reaches the pod,
//! and the pod's DNS follows the group's `dns {}`.
//!
//! Same prerequisites as `nomad_agent.rs` (root, a Nomad binary); see `agent/mod.rs`.

mod agent;
mod common;

use agent::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const IMAGE: &str = "docker://127.0.0.1:5000/demo/httpd:latest";
const PAGE: &str = "hello from rkt";

/// Nomad 1.0 offers bridge networks only where it finds the bridge module listed in
/// /proc/modules or /lib/modules/$(uname -r)/modules.builtin; these machines have it built
/// in but neither file lists it (see ../shared/tools/nomad/README.md). For the test's
/// duration, a modules.builtin that lists it is put in place, and what was there before (or
/// its absence) comes back when the guard is dropped.
struct BridgeListed {
    file: PathBuf,
    before: Option<Vec<u8>>,
    made_dirs: Vec<PathBuf>,
}

impl BridgeListed {
    fn ensure() -> BridgeListed {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let dir = Path::new("/lib/modules").join(release.trim());
        let file = dir.join("modules.builtin");
        let before = std::fs::read(&file).ok();
        let mut made_dirs = Vec::new();
        for d in [Path::new("/lib/modules"), dir.as_path()] {
            if !d.exists() {
                std::fs::create_dir(d).unwrap();
                made_dirs.push(d.to_path_buf());
            }
        }
        let mut text = before.clone().unwrap_or_default();
        if !String::from_utf8_lossy(&text).contains("bridge.ko") {
            text.extend_from_slice(b"kernel/net/bridge/bridge.ko\n");
            std::fs::write(&file, text).unwrap();
        }
        BridgeListed {
            file,
            before,
            made_dirs,
        }
    }
}

impl Drop for BridgeListed {
    fn drop(&mut self) {
        match &self.before {
            Some(b) => {
                let _ = std::fs::write(&self.file, b);
            }
            None => {
                let _ = std::fs::remove_file(&self.file);
            }
        }
        for d in self.made_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The host's links and iptables rules as they were: what Nomad's bridge and the CNI
/// plugins add (the `nomad` and `rkte2e0` bridges, the CNI-* and NOMAD-ADMIN chains and the
/// rules that jump to them) is removed when the guard is dropped, after the agent.
struct HostNetwork {
    /// One test at a time: each removes what is new since its snapshot.
    _serial: std::sync::MutexGuard<'static, ()>,
    links: Vec<String>,
    rules: Vec<(String, Vec<String>)>,
}

fn sh(cmd: &str) -> String {
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn links() -> Vec<String> {
    sh("ip -o link show")
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

const TABLES: [&str; 2] = ["filter", "nat"];

fn rules() -> Vec<(String, Vec<String>)> {
    TABLES
        .iter()
        .map(|t| {
            let lines = sh(&format!("iptables -w -t {t} -S"));
            (t.to_string(), lines.lines().map(str::to_string).collect())
        })
        .collect()
}

impl HostNetwork {
    fn snapshot() -> HostNetwork {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        HostNetwork {
            _serial: SERIAL.lock().unwrap_or_else(|e| e.into_inner()),
            links: links(),
            rules: rules(),
        }
    }
}

impl Drop for HostNetwork {
    fn drop(&mut self) {
        for l in links() {
            if !self.links.contains(&l) {
                sh(&format!("ip link del {l}"));
            }
        }
        for ((table, before), (_, now)) in self.rules.iter().zip(rules()) {
            let new: Vec<&String> = now.iter().filter(|r| !before.contains(r)).collect();
            // Rules first (they may jump to new chains), then the chains themselves.
            for r in new.iter().filter(|r| r.starts_with("-A ")) {
                sh(&format!("iptables -w -t {table} -D {}", &r[3..]));
            }
            for r in new.iter().filter(|r| r.starts_with("-N ")) {
                sh(&format!(
                    "iptables -w -t {table} -F {0}; iptables -w -t {table} -X {0}",
                    &r[3..]
                ));
            }
        }
    }
}

/// A web server task in a group whose network is `mode`, with port "http" to 8080 and the
/// group's DNS settings.
fn web_job(name: &str, mode: &str) -> String {
    format!(
        r#"job "{name}" {{
  datacenters = ["dc1"]
  group "g" {{
    network {{
      mode = "{mode}"
      port "http" {{
        to = 8080
      }}
      dns {{
        servers  = ["192.0.2.53"]
        searches = ["group.internal"]
      }}
    }}
    task "web" {{
      driver = "rkt"
      config {{
        image   = "{IMAGE}"
        command = "/bin/httpd"
        args    = ["-f", "-p", "8080", "-h", "/www"]
      }}
      resources {{
        cpu    = 100
        memory = 64
      }}
    }}
  }}
}}
"#
    )
}

/// Runs the job, checks the page on the group's allocated port and the pod's resolv.conf,
/// stops it, and checks the pod is gone.
fn serves_on_the_group_port(a: &Agent, name: &str, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.nomad"));
    std::fs::write(&file, web_job(name, mode)).unwrap();
    a.cli(&["job", "run", file.to_str().unwrap()])
        .ok("nomad job run");
    let alloc = a.wait_running(name, "web", Duration::from_secs(120));
    let status: Value = serde_json::from_str(
        &a.cli(&["alloc", "status", "-json", &alloc])
            .ok("alloc status -json")
            .stdout,
    )
    .unwrap();
    let shared = &status["AllocatedResources"]["Shared"];
    let port = shared["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["Label"] == "http")
        .and_then(|p| p["Value"].as_u64())
        .unwrap_or_else(|| panic!("no port http in {shared}")) as u16;
    let (code, body) = wait_for(
        &format!("the web server on 127.0.0.1:{port}"),
        Duration::from_secs(30),
        || http("GET", port, "/").ok(),
    );
    assert_eq!((code, body.trim()), (200, PAGE));
    let resolv = a
        .cli(&[
            "alloc",
            "exec",
            "-t=false",
            "-task",
            "web",
            &alloc,
            "/bin/cat",
            "/etc/resolv.conf",
        ])
        .ok("alloc exec cat /etc/resolv.conf")
        .stdout;
    assert!(
        resolv.contains("nameserver 192.0.2.53") && resolv.contains("group.internal"),
        "the group's dns {{}}: {resolv}"
    );
    a.stop_job(name);
    wait_for("the pod to be removed", Duration::from_secs(20), || {
        a.pods().is_empty().then_some(())
    });
    assert!(http("GET", port, "/").is_err(), "port {port} still answers");
}

#[test]
fn nomads_bridge_network() {
    let Some(nomad) = prerequisites() else { return };
    let _host = HostNetwork::snapshot();
    let _listed = BridgeListed::ensure();
    let a = Agent::start(&nomad);
    serves_on_the_group_port(&a, "bridged", "bridge");
}

#[test]
fn an_operators_cni_network() {
    let Some(nomad) = prerequisites() else { return };
    let _host = HostNetwork::snapshot();
    let a = Agent::start(&nomad);
    serves_on_the_group_port(&a, "cni", &format!("cni/{CNI_NETWORK}"));
}
