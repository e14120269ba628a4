//! What goes wrong, seen through a real Nomad agent as an operator sees it: an image that
//! does not exist (a clear event, no restart storm), a registry that cannot be reached
//! (recoverable: the restart policy applies), a config field the driver does not know (the
//! job fails naming it), an app the OOM killer kills (the event says so, exit 137), and an
//! app that ignores its stop signal (`kill_timeout`, then killed).
//!
//! Same prerequisites as `nomad_agent.rs` (root, a Nomad binary); see `agent/mod.rs`.

mod agent;
mod common;

use agent::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const IMAGE: &str = "docker://127.0.0.1:5000/demo/httpd:latest";

/// A job of one task (`task`), with `config` and `extra` (task-level HCL) as given, and a
/// restart policy of `attempts` restarts, one second apart.
fn job(name: &str, config: &str, extra: &str, attempts: u32) -> String {
    format!(
        r#"job "{name}" {{
  datacenters = ["dc1"]
  group "g" {{
    restart {{
      attempts = {attempts}
      delay    = "1s"
      interval = "10m"
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "t" {{
      driver = "rkt"
      config {{
        {config}
      }}
      {extra}
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

/// Submits `hcl` (detached: these jobs are meant to fail) and returns its allocation's ID.
fn submit(a: &Agent, dir: &std::path::Path, name: &str, hcl: &str) -> String {
    let file = dir.join(format!("{name}.nomad"));
    std::fs::write(&file, hcl).unwrap();
    a.cli(&["job", "run", "-detach", file.to_str().unwrap()])
        .ok("nomad job run -detach");
    wait_for(
        &format!("an allocation of {name}"),
        Duration::from_secs(60),
        || {
            a.allocs(name)
                .first()
                .and_then(|al| al["ID"].as_str().map(str::to_string))
        },
    )
}

/// Waits until the allocation has failed; returns the task's events.
fn failed(a: &Agent, alloc: &str, limit: Duration) -> Vec<(String, String, Value)> {
    wait_for(&format!("allocation {alloc} to fail"), limit, || {
        (a.alloc(alloc)["ClientStatus"] == "failed").then_some(())
    });
    a.events(alloc, "t")
}

fn count(events: &[(String, String, Value)], kind: &str) -> usize {
    events.iter().filter(|(t, _, _)| t == kind).count()
}

fn text(events: &[(String, String, Value)]) -> String {
    events
        .iter()
        .map(|(t, m, _)| format!("\n  {t}: {m}"))
        .collect()
}

#[test]
fn failures_read_as_an_operator_needs_them() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start(&nomad);
    let dir = tempfile::tempdir().unwrap();

    // An image the registry does not have: one clear failure, no restarts although the
    // policy allows three.
    let hcl = job(
        "missing-image",
        r#"image = "docker://127.0.0.1:5000/demo/no-such-image:1"
        command = "/bin/true""#,
        "",
        3,
    );
    let alloc = submit(&a, dir.path(), "missing-image", &hcl);
    let events = failed(&a, &alloc, Duration::from_secs(60));
    let failure = events
        .iter()
        .find(|(t, _, _)| t == "Driver Failure")
        .unwrap_or_else(|| panic!("no Driver Failure: {}", text(&events)));
    assert!(
        failure.1.contains("not found") && failure.1.contains("no-such-image"),
        "{}",
        text(&events)
    );
    assert_eq!(count(&events, "Restarting"), 0, "{}", text(&events));

    // A registry nobody answers: recoverable, so Nomad retries as the policy says (once),
    // then gives up.
    let hcl = job(
        "unreachable",
        r#"image = "docker://127.0.0.1:1/demo/httpd:latest"
        command = "/bin/true""#,
        "",
        1,
    );
    let alloc = submit(&a, dir.path(), "unreachable", &hcl);
    let events = failed(&a, &alloc, Duration::from_secs(120));
    assert!(count(&events, "Driver Failure") >= 2, "{}", text(&events));
    assert_eq!(count(&events, "Restarting"), 1, "{}", text(&events));
    assert!(
        text(&events).contains("unreachable"),
        "the event says why: {}",
        text(&events)
    );

    // A config field the driver does not have: the job fails, naming it.
    let hcl = job(
        "bad-field",
        &format!(
            r#"image = "{IMAGE}"
        command = "/bin/true"
        dns_servrs = ["192.0.2.1"]"#
        ),
        "",
        0,
    );
    let alloc = submit(&a, dir.path(), "bad-field", &hcl);
    let events = failed(&a, &alloc, Duration::from_secs(60));
    assert!(
        text(&events).contains("dns_servrs"),
        "the event names the field: {}",
        text(&events)
    );

    // Over its memory: killed by the OOM killer inside its own cgroup, and the event says so.
    let hcl = job(
        "hog",
        &format!(
            r#"image = "{IMAGE}"
        command = "/bin/sh"
        args = ["-c", "a=x; while :; do a=\"$a$a\"; done"]"#
        ),
        "",
        0,
    );
    let alloc = submit(&a, dir.path(), "hog", &hcl);
    let events = failed(&a, &alloc, Duration::from_secs(120));
    let terminated = &events
        .iter()
        .find(|(t, _, _)| t == "Terminated")
        .unwrap_or_else(|| panic!("no Terminated event: {}", text(&events)))
        .2;
    assert_eq!(terminated["ExitCode"], 137, "{terminated}");
    assert_eq!(
        terminated["Details"]["oom_killed"], "true",
        "the event says OOM: {terminated}"
    );
    assert!(a.pods().iter().all(|(_, s)| s != "running"));

    // An app that ignores SIGINT and SIGTERM: `job stop` waits kill_timeout, then kills it.
    let hcl = job(
        "stubborn",
        &format!(
            r#"image = "{IMAGE}"
        command = "/bin/sh"
        args = ["-c", "trap '' INT TERM; while true; do sleep 0.1; done"]"#
        ),
        r#"kill_timeout = "3s""#,
        0,
    );
    let alloc = submit(&a, dir.path(), "stubborn", &hcl);
    wait_for("the stubborn task to run", Duration::from_secs(60), || {
        (a.alloc(&alloc)["TaskStates"]["t"]["State"] == "running").then_some(())
    });
    let t = Instant::now();
    a.stop_job("stubborn");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(30),
        "stop took {took:?}: {}",
        a.events_text(&alloc, "t")
    );
    wait_for("its pod to be removed", Duration::from_secs(20), || {
        a.pods().is_empty().then_some(())
    });
}
