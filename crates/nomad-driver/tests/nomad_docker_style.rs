//! `examples/docker-style.nomad`, as written, in a real Nomad agent: a job that uses every
//! option of Nomad's Docker driver this driver takes, each checked from inside the pod (the
//! task prints what it sees before it serves), through the forwarded port, and from the
//! pod's status and cgroups. Its plugin allows privileged tasks (the job's "admin" task).
//!
//! Same prerequisites as `nomad_agent.rs` (root, a Nomad binary); see `agent/mod.rs`.

mod agent;
mod common;

use agent::*;
use common::repo_root;
use serde_json::Value;
use std::time::Duration;

/// What the fixture image's web server serves (tests/harness/fixtures.sh).
const PAGE: &str = "hello from rkt";

fn logs(a: &Agent, alloc: &str, task: &str) -> String {
    a.cli(&["alloc", "logs", alloc, task]).stdout
}

#[test]
fn the_docker_style_example_runs_with_every_option() {
    let Some(nomad) = prerequisites() else { return };
    let setup = Setup {
        plugin_config: Some("allow_privileged = true".into()),
        ..Setup::default()
    };
    let a = Agent::start_with(&nomad, &setup);
    let file = repo_root().join("examples/docker-style.nomad");
    a.cli(&["job", "run", file.to_str().unwrap()])
        .ok("nomad job run examples/docker-style.nomad");
    let alloc = a.wait_running("docker-style", "web", Duration::from_secs(120));
    a.wait_running("docker-style", "admin", Duration::from_secs(60));
    let web = wait_for("the web task's report", Duration::from_secs(30), || {
        let l = logs(&a, &alloc, "web");
        l.contains("ready").then_some(l)
    });
    let has = |want: &str| {
        assert!(
            web.contains(want),
            "no {want:?} in the web task's report:\n{web}"
        )
    };
    // hostname, extra_hosts (both families), work_dir.
    has("hostname=web-1");
    has("10.0.0.5\tdb\n");
    has("fd00::5\tdb6\n");
    has("pwd=/www");
    // cap_drop all + cap_add chown, setgid, setuid, net_bind_service; group_add staff (50);
    // no_new_privs and the seccomp filter stay.
    has("CapEff:\t00000000000004c1");
    has("NoNewPrivs:\t1");
    has("Seccomp:\t2");
    assert!(
        web.lines()
            .any(|l| l.starts_with("Groups:") && l.split_whitespace().any(|g| g == "50")),
        "{web}"
    );
    // oom_score_adj, ulimit, sysctl.
    has("oom_score_adj=500");
    has("nofile=4096:8192 nproc=512");
    has("somaxconn=1024");
    // mount blocks (a bind of local/conf, read-only; a 16 MiB tmpfs), readonly_rootfs,
    // shm_size.
    has("served by rkt");
    has("root is read-only");
    has("tmp is writable");
    // devices: the node is there and the pod's device cgroup lets it be opened (what it
    // refuses is driver_cgroups.rs's test).
    has("fuse opens");
    let mount = |target: &str| {
        web.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(target))
            .unwrap_or_else(|| panic!("{target} not mounted:\n{web}"))
            .to_string()
    };
    assert!(mount("/tmp").contains("size=16384k"), "{web}");
    assert!(mount("/dev/shm").contains("size=131072k"), "{web}");
    assert!(mount("/etc/web").contains(" ro,"), "{web}");
    // ports = ["http"]: the group's port, forwarded to its `to` (8080) in the pod.
    let status: Value = serde_json::from_str(
        &a.cli(&["alloc", "status", "-json", &alloc])
            .ok("alloc status -json")
            .stdout,
    )
    .unwrap();
    let port = status["AllocatedResources"]["Shared"]["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["Label"] == "http")
        .and_then(|p| p["Value"].as_u64())
        .unwrap_or_else(|| panic!("no port http in {status}")) as u16;
    let (code, body) = wait_for(
        &format!("the web server on 127.0.0.1:{port}"),
        Duration::from_secs(30),
        || http("GET", port, "/").ok(),
    );
    assert_eq!((code, body.trim()), (200, PAGE));
    // labels (with the alloc ID label every pod gets) in the pod's status; pids_limit in
    // its cgroup.
    let pods = a.pods();
    let web_pod = pods
        .iter()
        .map(|(uuid, _)| uuid.clone())
        .find(|uuid| {
            let s = a.rkt(&["status", "--format=json", uuid]).stdout;
            s.contains("\"team\":\"web\"")
        })
        .unwrap_or_else(|| panic!("no pod labelled team=web among {pods:?}"));
    let s: Value = serde_json::from_str(
        &a.rkt(&["status", "--format=json", &web_pod])
            .ok("rkt status")
            .stdout,
    )
    .unwrap();
    assert_eq!(
        s["user_labels"]["com.hashicorp.nomad.alloc_id"],
        alloc.as_str()
    );
    let web_rel = layout::cgroup::pod_rel(layout::cgroup::DEFAULT_PARENT, &web_pod);
    let pids_max =
        layout::cgroup::pod_dirs_everywhere(std::path::Path::new(layout::cgroup::ROOT), &web_rel)
            .into_iter()
            .find_map(|d| std::fs::read_to_string(d.join("pids.max")).ok());
    assert_eq!(pids_max.as_deref().map(str::trim), Some("256"));
    // memory_hard_limit over the task's memory, cpu_hard_limit in cpu_cfs_period's periods.
    let web_cgroup = |v1: &str, v2: &str| -> Vec<String> {
        layout::cgroup::pod_dirs_everywhere(std::path::Path::new(layout::cgroup::ROOT), &web_rel)
            .iter()
            .flat_map(|d| [d.join(v1), d.join(v2)])
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .map(|v| v.trim().to_string())
            .collect()
    };
    let limit = web_cgroup("memory.limit_in_bytes", "memory.max");
    assert!(limit.contains(&(128u64 << 20).to_string()), "{limit:?}");
    let kept = web_cgroup("memory.soft_limit_in_bytes", "memory.low");
    assert!(kept.contains(&(64u64 << 20).to_string()), "{kept:?}");
    let period = web_cgroup("cpu.cfs_period_us", "cpu.max");
    assert!(
        period.iter().any(|p| p == "50000" || p.ends_with(" 50000")),
        "{period:?}"
    );
    // privileged, pid_mode and ipc_mode host: the admin task sees the host's processes.
    let admin = wait_for("the admin task's report", Duration::from_secs(30), || {
        let l = logs(&a, &alloc, "admin");
        l.contains("admin sees").then_some(l)
    });
    let seen: usize = admin
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{admin}"));
    assert!(
        seen > 20,
        "the host's processes, not the pod's few: {admin}"
    );
    let ipc = a
        .cli(&[
            "alloc",
            "exec",
            "-t=false",
            "-task",
            "admin",
            &alloc,
            "/bin/busybox",
            "readlink",
            "/proc/self/ns/ipc",
        ])
        .ok("alloc exec")
        .stdout;
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_eq!(ipc.trim(), host_ipc.display().to_string());
    a.stop_job("docker-style");
}
