//! Recovery in a real Nomad agent: tasks outlive a SIGKILLed plugin and a SIGKILLed agent
//! (the same allocation, one pod, the service still answering, exec still working once the
//! agent is back); a task that exits while the agent is down is reported with its exit code;
//! pods removed by hand while the agent was down are replaced.
//!
//! Same prerequisites as `nomad_agent.rs` (root, a Nomad binary); see `agent/mod.rs`.

mod agent;
mod common;

use agent::*;
use serde_json::Value;
use std::time::Duration;

const IMAGE: &str = "docker://127.0.0.1:5000/demo/httpd:latest";
const PAGE: &str = "hello from rkt";

/// A web server on a dynamic host port forwarded to the pod (task-level network, as the
/// documentation page's jobs), or `command` instead when given.
fn job(name: &str, command: Option<&str>) -> String {
    let (config, network) = match command {
        None => (
            r#"command = "/bin/httpd"
        args    = ["-f", "-p", "8080", "-h", "/www"]
        port_map {
          app = "8080-tcp"
        }"#
            .to_string(),
            r#"network {
          mbits = 10
          port "app" {}
        }"#,
        ),
        Some(c) => (
            format!(
                r#"command = "/bin/sh"
        args    = ["-c", "{c}"]"#
            ),
            "",
        ),
    };
    format!(
        r#"job "{name}" {{
  datacenters = ["dc1"]
  group "g" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "t" {{
      driver = "rkt"
      config {{
        image = "{IMAGE}"
        {config}
      }}
      resources {{
        cpu    = 100
        memory = 64
        {network}
      }}
    }}
  }}
}}
"#
    )
}

/// Runs the job until its task runs; returns the allocation's ID.
fn run(a: &Agent, name: &str, command: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.nomad"));
    std::fs::write(&file, job(name, command)).unwrap();
    a.cli(&["job", "run", file.to_str().unwrap()])
        .ok("nomad job run");
    a.wait_running(name, "t", Duration::from_secs(120))
}

/// The host port Nomad allocated for "app".
fn port(a: &Agent, alloc: &str) -> u16 {
    let status: Value = serde_json::from_str(
        &a.cli(&["alloc", "status", "-json", alloc])
            .ok("alloc status -json")
            .stdout,
    )
    .unwrap();
    let networks = &status["AllocatedResources"]["Tasks"]["t"]["Networks"];
    networks[0]["DynamicPorts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["Label"] == "app")
        .and_then(|p| p["Value"].as_u64())
        .unwrap_or_else(|| panic!("no port app in {networks}")) as u16
}

fn answers(port: u16) {
    let (code, body) = wait_for(
        &format!("the web server on 127.0.0.1:{port}"),
        Duration::from_secs(30),
        || http("GET", port, "/").ok(),
    );
    assert_eq!((code, body.trim()), (200, PAGE));
}

/// The agent's pods (UUIDs) that run.
fn running(a: &Agent) -> Vec<String> {
    a.pods()
        .into_iter()
        .filter(|(_, s)| s == "running")
        .map(|(u, _)| u)
        .collect()
}

/// `nomad alloc exec` works on the task: the driver has it (again).
fn exec_works(a: &Agent, alloc: &str) {
    let out = wait_for("exec into the task", Duration::from_secs(60), || {
        let r = a.cli(&[
            "alloc",
            "exec",
            "-t=false",
            "-task",
            "t",
            alloc,
            "/bin/echo",
            "here",
        ]);
        (r.code == 0).then_some(r.stdout)
    });
    assert_eq!(out.trim(), "here");
}

#[test]
fn a_killed_plugin_and_a_killed_agent_lose_no_task() {
    let Some(nomad) = prerequisites() else { return };
    let mut a = Agent::start(&nomad);
    let alloc = run(&a, "web", None);
    let port = port(&a, &alloc);
    answers(port);
    let pods = running(&a);
    assert_eq!(pods.len(), 1, "{pods:?}");

    // The plugin dies: Nomad starts it again, and it recovers the task from its handle.
    let plugin = a.plugin_pid().expect("the plugin runs");
    // SAFETY: kill(2) with a PID found above.
    unsafe { libc::kill(plugin, libc::SIGKILL) };
    wait_for("a new plugin process", Duration::from_secs(60), || {
        a.plugin_pid().filter(|p| *p != plugin)
    });
    exec_works(&a, &alloc);
    answers(port);
    assert_eq!(running(&a), pods, "the same one pod");

    // The agent dies and comes back: the same allocation, the same pod.
    a.kill_agent();
    answers(port);
    a.restart();
    exec_works(&a, &alloc);
    let allocs = a.allocs("web");
    assert_eq!(allocs.len(), 1, "no new allocation");
    assert_eq!(allocs[0]["ID"], alloc.as_str());
    assert_eq!(allocs[0]["ClientStatus"], "running");
    answers(port);
    assert_eq!(running(&a), pods, "the same one pod");
    a.stop_job("web");
}

#[test]
fn a_task_that_exits_while_the_agent_is_down_is_reported() {
    let Some(nomad) = prerequisites() else { return };
    let mut a = Agent::start(&nomad);
    let alloc = run(&a, "short", Some("sleep 5; exit 3"));
    a.kill_agent();
    if let Some(plugin) = a.plugin_pid() {
        // SAFETY: kill(2) with a PID found above: nothing of the client runs now.
        unsafe { libc::kill(plugin, libc::SIGKILL) };
    }
    wait_for("the pod to exit", Duration::from_secs(30), || {
        a.pods().iter().all(|(_, s)| s != "running").then_some(())
    });
    a.restart();
    let terminated = wait_for(
        "the task's exit to be reported",
        Duration::from_secs(60),
        || {
            a.events(&alloc, "t")
                .into_iter()
                .find(|(t, _, _)| t == "Terminated")
                .map(|(_, _, e)| e)
        },
    );
    assert_eq!(
        terminated["ExitCode"],
        3,
        "{terminated}\n{}",
        a.events_text(&alloc, "t")
    );
}

#[test]
fn pods_removed_by_hand_while_the_agent_is_down_are_replaced() {
    let Some(nomad) = prerequisites() else { return };
    let mut a = Agent::start(&nomad);
    let alloc = run(&a, "replaced", None);
    let before = running(&a);
    a.kill_agent();
    if let Some(plugin) = a.plugin_pid() {
        // SAFETY: kill(2) with a PID found above.
        unsafe { libc::kill(plugin, libc::SIGKILL) };
    }
    for uuid in &before {
        a.rkt(&["stop", "--force", uuid]).ok("rkt stop");
        a.rkt(&["rm", uuid]).ok("rkt rm");
    }
    a.restart();
    let now = wait_for("a new pod for the task", Duration::from_secs(90), || {
        let now = running(&a);
        (now.len() == 1 && now != before).then_some(now)
    });
    assert_ne!(now, before);
    let alloc_now = wait_for("the task running again", Duration::from_secs(60), || {
        a.allocs("replaced")
            .into_iter()
            .find(|x| x["ClientStatus"] == "running" && x["TaskStates"]["t"]["State"] == "running")
            .and_then(|x| x["ID"].as_str().map(str::to_string))
    });
    assert_eq!(alloc_now, alloc, "the same allocation, its task restarted");
    answers(port(&a, &alloc_now));
    a.stop_job("replaced");
}
