//! A cluster on one machine: one Nomad server and two clients (each with its own data
//! directory, node name, ports and rkt store). A service job with `count = 4` spreads over
//! both; one client is SIGKILLed and its allocations are replaced on the other; when the
//! job stops and the dead client comes back, nothing is left on the host: no pod, network
//! namespace, veth, IPAM reservation or nat rule of any of the job's pods.
//!
//! Same prerequisites as `nomad_agent.rs` (root, a Nomad binary); see `agent/mod.rs`.

mod agent;
mod common;

use agent::*;
use serde_json::Value;
use std::time::Duration;

const JOB: &str = r#"job "spread" {
  datacenters = ["dc1"]
  group "web" {
    count = 4
    spread {
      attribute = "${node.unique.name}"
    }
    task "t" {
      driver = "rkt"
      config {
        image   = "docker://127.0.0.1:5000/demo/httpd:latest"
        command = "/bin/httpd"
        args    = ["-f", "-p", "8080", "-h", "/www"]
        port_map {
          app = "8080-tcp"
        }
      }
      resources {
        cpu    = 50
        memory = 32
        network {
          mbits = 1
          port "app" {}
        }
      }
    }
  }
}
"#;

/// The job's running allocations: (allocation ID, node name).
fn running(server: &Agent) -> Vec<(String, String)> {
    server
        .allocs("spread")
        .into_iter()
        .filter(|a| a["ClientStatus"] == "running")
        .map(|a| {
            (
                a["ID"].as_str().unwrap_or_default().to_string(),
                a["NodeName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The UUIDs of a client's pods that run.
fn pods(client: &Agent) -> Vec<String> {
    client
        .pods()
        .into_iter()
        .filter(|(_, s)| s == "running")
        .map(|(u, _)| u)
        .collect()
}

/// Everything a pod of the default network can leave on the host, for these pods.
fn host_leftovers(uuids: &[String]) -> Vec<String> {
    let sh = |c: &str| {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(c)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let nat = sh("iptables -w -t nat -S");
    let ipam = sh("grep -rl . /var/lib/cni/networks 2>/dev/null || true");
    let veths = sh("ip -o addr show");
    let mut found = Vec::new();
    for u in uuids {
        if std::path::Path::new(&format!("/run/netns/rkt-{u}")).exists() {
            found.push(format!("netns rkt-{u}"));
        }
        found.extend(
            nat.lines()
                .filter(|l| l.contains(&u[..8]))
                .map(|l| format!("nat rule {l}")),
        );
        found.extend(
            ipam.lines()
                .filter(|f| std::fs::read_to_string(f).is_ok_and(|c| c.contains(u.as_str())))
                .map(|f| format!("IPAM reservation {f}")),
        );
    }
    found.extend(
        veths
            .lines()
            .filter(|l| l.contains("veth") && l.contains("172.16.28."))
            .map(|l| format!("veth {l}")),
    );
    found
}

#[test]
fn four_allocations_spread_survive_a_lost_client_and_leave_nothing() {
    let Some(nomad) = prerequisites() else { return };
    let server = Agent::start_as(&nomad, Role::Server, "server");
    let join = Role::Client {
        server: server.rpc_address(),
    };
    let c1 = Agent::start_as(&nomad, join.clone(), "client-1");
    let mut c2 = Agent::start_as(&nomad, join, "client-2");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spread.nomad");
    std::fs::write(&file, JOB).unwrap();
    server
        .cli(&["job", "run", file.to_str().unwrap()])
        .ok("nomad job run");
    let placed = wait_for("four allocations running", Duration::from_secs(120), || {
        let r = running(&server);
        (r.len() == 4).then_some(r)
    });
    let on = |node: &str, r: &[(String, String)]| r.iter().filter(|(_, n)| n == node).count();
    assert_eq!(
        (on("client-1", &placed), on("client-2", &placed)),
        (2, 2),
        "spread over both clients: {placed:?}"
    );
    let mut all_pods = pods(&c1);
    all_pods.extend(pods(&c2));
    assert_eq!(all_pods.len(), 4, "one pod per allocation");

    // client-2 crashes: its allocations are lost and replaced on client-1.
    c2.kill_agent();
    let after = wait_for(
        "the lost allocations replaced on client-1",
        Duration::from_secs(120),
        || {
            let r = running(&server);
            (r.len() == 4 && on("client-1", &r) == 4).then_some(r)
        },
    );
    let lost: Vec<Value> = server
        .allocs("spread")
        .into_iter()
        .filter(|a| a["ClientStatus"] == "lost")
        .collect();
    assert_eq!(lost.len(), 2, "{after:?}");
    let on_c1 = wait_for("four pods on client-1", Duration::from_secs(60), || {
        let p = pods(&c1);
        (p.len() == 4).then_some(p)
    });
    for (alloc, _) in &after {
        let status: Value = serde_json::from_str(
            &server
                .cli(&["alloc", "status", "-json", alloc])
                .ok("alloc status")
                .stdout,
        )
        .unwrap();
        let port = status["AllocatedResources"]["Tasks"]["t"]["Networks"][0]["DynamicPorts"][0]
            ["Value"]
            .as_u64()
            .unwrap_or_else(|| panic!("no port: {status}")) as u16;
        let (code, _) = wait_for(
            &format!("allocation {alloc} to answer on {port}"),
            Duration::from_secs(30),
            || http("GET", port, "/").ok(),
        );
        assert_eq!(code, 200);
    }
    all_pods.extend(on_c1);
    all_pods.sort();
    all_pods.dedup();

    // Everything stops: client-1's pods with the job, and the crashed client's once it is
    // back and hears that its allocations are gone.
    server.cli(&["job", "stop", "spread"]).ok("nomad job stop");
    wait_for("client-1's pods removed", Duration::from_secs(60), || {
        c1.pods().is_empty().then_some(())
    });
    c2.restart();
    wait_for("client-2's pods removed", Duration::from_secs(90), || {
        c2.pods().is_empty().then_some(())
    });
    wait_for("nothing of the pods left", Duration::from_secs(30), || {
        host_leftovers(&all_pods).is_empty().then_some(())
    });
}
