//! The example jobs (`examples/*.nomad`, from Nomad's rkt documentation page) submitted
//! unchanged to a real Nomad agent that loads this plugin, and checked with the `nomad`
//! command line as an operator would: placement, logs, exec, signals, restarts, statistics,
//! task events, ports, and the pod gone after `nomad job stop`.
//!
//! Needs root and a Nomad binary (`NOMAD_BIN`, `../shared/tools/nomad`, or `nomad` on PATH);
//! without them each test says so and skips, or fails under `CI=true`. Each test has an agent
//! of its own (see `agent/mod.rs`); the examples' image is served at 127.0.0.1:5000, as
//! `examples/serve-images.sh` serves it.

mod agent;
mod common;

use agent::*;
use common::repo_root;
use serde_json::Value;
use std::time::Duration;

/// The image every example runs.
const IMAGE: &str = "docker://127.0.0.1:5000/demo/httpd:latest";

/// What the fixture image's web server serves (tests/harness/fixtures.sh: /www/index.html).
const PAGE: &str = "hello from rkt";

/// Every job file in examples/, each run by a test below.
const EXAMPLES: &[&str] = &[
    "constraint.nomad",
    "dns.nomad",
    // Run by nomad_docker_style.rs, on a plugin that allows privileged tasks.
    "docker-style.nomad",
    "etcd.nomad",
    "port-map.nomad",
    "volumes.nomad",
    "webservice.nomad",
];

fn example(file: &str) -> String {
    repo_root()
        .join("examples")
        .join(file)
        .display()
        .to_string()
}

/// `nomad job run FILE` (the file as it is in examples/); waits until the task runs, and
/// checks what every example shows: the image download as the driver's task events.
/// Returns the allocation's ID.
fn run_example(a: &Agent, file: &str, job: &str, task: &str) -> String {
    // `job run` follows the evaluation; it exits 2 when the job cannot be placed.
    let run = a.cli(&["job", "run", &example(file)]);
    assert_eq!(run.code, 0, "nomad job run {file}: {run:#?}");
    assert!(
        run.stdout.contains("finished with status \"complete\"")
            && !run.stdout.contains("failed to place"),
        "{}",
        run.stdout
    );
    let alloc = a.wait_running(job, task, Duration::from_secs(120));
    let driver_events: Vec<String> = a
        .events(&alloc, task)
        .into_iter()
        .filter(|(t, _, _)| t == "Driver")
        .map(|(_, m, _)| m)
        .collect();
    let pos = |want: &str| {
        driver_events
            .iter()
            .position(|m| m == want)
            .unwrap_or_else(|| panic!("no task event {want:?} in {driver_events:#?}"))
    };
    let downloading = pos(&format!("Downloading image {IMAGE}"));
    let downloaded = pos(&format!("Downloaded image {IMAGE}"));
    assert!(downloading < downloaded, "{driver_events:#?}");
    // Progress in between: each layer as it lands, with its digest and size.
    let layers: Vec<&String> = driver_events[downloading + 1..downloaded]
        .iter()
        .filter(|m| m.starts_with(&format!("Image {IMAGE}: Downloaded sha256:")))
        .collect();
    assert_eq!(
        layers.len(),
        2,
        "the fixture image has two layers: {driver_events:#?}"
    );
    alloc
}

/// `nomad job stop`; the allocation completes and the driver has removed the pod: nothing
/// left in the agent's rkt store, running or not.
fn stop_and_check_pod_removed(a: &Agent, job: &str) {
    a.stop_job(job);
    wait_for(
        &format!("the pod of {job} to be removed"),
        Duration::from_secs(20),
        || a.pods().is_empty().then_some(()),
    );
    let list = a.rkt(&["list", "--no-legend"]).ok("rkt list");
    assert_eq!(list.stdout.trim(), "", "pods left after job stop");
    let after_gc = a.rkt(&["gc", "--grace-period=0s"]).ok("rkt gc");
    let list = a.rkt(&["list", "--no-legend"]).ok("rkt list");
    assert_eq!(list.stdout.trim(), "", "pods left after gc: {after_gc:?}");
}

fn logs(a: &Agent, alloc: &str, task: &str) -> String {
    a.cli(&["alloc", "logs", alloc, task])
        .ok("nomad alloc logs")
        .stdout
}

/// `nomad alloc exec` without a TTY (`-t=false`; stdin is not a terminal either).
fn exec(a: &Agent, alloc: &str, task: &str, cmd: &[&str]) -> Run {
    let mut args = vec!["alloc", "exec", "-t=false", "-task", task, alloc];
    args.extend_from_slice(cmd);
    a.cli(&args)
}

/// The numbers of a `nomad alloc status -stats` table: the row under `title`'s header, by
/// column name.
fn stats_table(status: &str, title: &str) -> Vec<(String, String)> {
    let mut lines = status.lines().skip_while(|l| l.trim() != title).skip(1);
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no {title:?} in {status}"));
    let values = lines.next().unwrap_or("");
    // Columns are aligned: each value starts where its header starts, and headers are
    // separated by at least two spaces ("Max Usage" is one header).
    let h = header.as_bytes();
    let starts: Vec<usize> = (0..h.len())
        .filter(|&i| h[i] != b' ' && (i == 0 || (i >= 2 && h[i - 1] == b' ' && h[i - 2] == b' ')))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).copied().unwrap_or(usize::MAX);
            let cut = |l: &str| l.get(s..end.min(l.len())).unwrap_or("").trim().to_string();
            (cut(header), cut(values))
        })
        .collect()
}

#[test]
fn every_example_job_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".nomad"))
        .collect();
    files.sort();
    assert_eq!(files, EXAMPLES, "a job in examples/ that no test runs");
}

/// webservice.nomad: runs; its web server answers inside the pod (`alloc exec`, output and
/// exit codes passed through); `alloc status -stats` shows the pod's memory and CPU; a signal
/// from `alloc signal` reaches the app; `job stop` removes the pod.
#[test]
fn webservice_runs_answers_exec_shows_stats_and_takes_signals() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start(&nomad);
    let alloc = run_example(&a, "webservice.nomad", "webservice", "webservice");
    assert_eq!(a.pods().len(), 1, "{:?}", a.pods());

    // The node as `nomad node status` shows it: the driver detected and healthy, with its
    // attributes.
    let node = a
        .cli(&["node", "status", "-self", "-verbose"])
        .ok("node status");
    let tokens = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert!(
        node.stdout.lines().any(|l| tokens(l).starts_with(&[
            "rkt".into(),
            "true".into(),
            "true".into()
        ])),
        "the rkt driver is not detected and healthy: {}",
        node.stdout
    );
    assert!(
        node.stdout
            .lines()
            .any(|l| tokens(l) == ["driver.rkt.version", "=", "1.30.0"]),
        "{}",
        node.stdout
    );

    // exec: the web server answers on the pod's loopback; stdout, stderr and the exit code
    // come back.
    let page = exec(
        &a,
        &alloc,
        "webservice",
        &["wget", "-qO-", "http://127.0.0.1:8080/"],
    )
    .ok("alloc exec wget");
    assert_eq!(page.stdout.trim(), PAGE);
    let r = exec(
        &a,
        &alloc,
        "webservice",
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 7"],
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (7, "out\n", "err\n"),
        "{r:#?}"
    );
    let id = exec(&a, &alloc, "webservice", &["id"]).ok("alloc exec id");
    assert_eq!(
        id.stdout.trim(),
        "uid=1000(app) gid=1000(app)",
        "the image's user"
    );

    // Stats: a busy loop started in the pod shows as CPU use of the task; memory is the
    // pod's own.
    let pid = exec(
        &a,
        &alloc,
        "webservice",
        &[
            "/bin/sh",
            "-c",
            "while :; do :; done >/dev/null 2>&1 & echo $!",
        ],
    )
    .ok("alloc exec: a busy loop");
    let pid = pid.stdout.trim().to_string();
    assert!(pid.parse::<u32>().is_ok(), "{pid:?}");
    let status = wait_for(
        "the busy loop to show in alloc status -stats",
        Duration::from_secs(30),
        || {
            let s = a
                .cli(&["alloc", "status", "-stats", &alloc])
                .ok("alloc status -stats");
            let cpu = stats_table(&s.stdout, "CPU Stats");
            let percent = cpu
                .iter()
                .find(|(k, _)| k == "Percent")
                .and_then(|(_, v)| v.trim_end_matches('%').parse::<f64>().ok())?;
            (percent > 20.0).then_some(s.stdout)
        },
    );
    let memory = stats_table(&status, "Memory Stats");
    let column = |name: &str| {
        memory
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in the memory stats: {status}"))
    };
    for name in ["RSS", "Usage", "Max Usage"] {
        let v = column(name);
        assert!(
            v.ends_with("iB") && !v.starts_with("0 "),
            "{name} = {v:?}: {status}"
        );
    }
    let resources = stats_table(&status, "Task Resources");
    let cpu = &resources.iter().find(|(k, _)| k == "CPU").unwrap().1;
    let used: u64 = cpu
        .split('/')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("CPU {cpu:?}: {status}"));
    assert!(
        cpu.ends_with("/100 MHz") && used > 0,
        "CPU {cpu:?}: {status}"
    );
    // The same numbers through the API.
    let stats = a
        .get(&format!("/v1/client/allocation/{alloc}/stats"))
        .unwrap();
    let usage = &stats["Tasks"]["webservice"]["ResourceUsage"];
    assert!(usage["MemoryStats"]["RSS"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        usage["CpuStats"]["TotalTicks"].as_f64().unwrap() > 0.0,
        "{usage}"
    );
    exec(
        &a,
        &alloc,
        "webservice",
        &["/bin/sh", "-c", &format!("kill {pid}")],
    )
    .ok("alloc exec kill");

    // `alloc exec -t`, the CLI on a terminal (under script(1)), as an operator runs it: the
    // command has a terminal of the pod's own that it can name, its size, and TERM.
    let shell = format!(
        "stty rows 31 cols 97; {} alloc exec -t -task webservice {alloc} /bin/sh -c \
         '/bin/busybox tty; /bin/busybox stty size; echo TERM=$TERM; exit 3'",
        a.nomad.display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &shell, "/dev/null"])
        .env("NOMAD_ADDR", a.address());
    let tty = run_with_limit(c, Duration::from_secs(60));
    assert_eq!(tty.code, 3, "the exit status comes back: {tty:#?}");
    assert!(tty.stdout.contains("/dev/pts/0\r\n"), "{tty:#?}");
    assert!(tty.stdout.contains("TERM=xterm"), "{tty:#?}");
    assert!(
        tty.stdout.contains("\n31 97\r\n"),
        "the terminal's size reaches the pod: {tty:#?}"
    );

    // Signal: SIGUSR1 ends busybox httpd (it has no handler), so the task terminates with
    // it and Nomad's restart policy takes over.
    a.cli(&["alloc", "signal", "-s", "SIGUSR1", &alloc, "webservice"])
        .ok("alloc signal");
    // The client reports Terminated and Restarting to the server in batches: wait for both.
    let terminated: Value = wait_for(
        "the task to end by SIGUSR1 and be restarted",
        Duration::from_secs(30),
        || {
            let events = a.events(&alloc, "webservice");
            events
                .iter()
                .any(|(t, _, _)| t == "Restarting")
                .then_some(())?;
            events
                .into_iter()
                .find(|(t, _, _)| t == "Terminated")
                .map(|(_, _, e)| e)
        },
    );
    let events = a.events_text(&alloc, "webservice");
    assert!(
        terminated["Signal"] == libc::SIGUSR1 || terminated["ExitCode"] == 128 + libc::SIGUSR1,
        "{terminated}\n{events}"
    );
    let order: Vec<String> = a
        .events(&alloc, "webservice")
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    let at = |t: &str| {
        order
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("no {t} event: {events}"))
    };
    assert!(
        at("Signaling") < at("Terminated") && at("Terminated") < at("Restarting"),
        "{events}"
    );

    // SIGKILL, which no supervisor could forward, reaches the app: exit 137 in Nomad.
    wait_for("the restarted task to run", Duration::from_secs(60), || {
        (a.events(&alloc, "webservice")
            .iter()
            .filter(|(t, _, _)| t == "Started")
            .count()
            >= 2)
            .then_some(())
    });
    a.cli(&["alloc", "signal", "-s", "SIGKILL", &alloc, "webservice"])
        .ok("alloc signal -s SIGKILL");
    let killed: Value = wait_for(
        "the task to die of SIGKILL",
        Duration::from_secs(30),
        || {
            a.events(&alloc, "webservice")
                .into_iter()
                .filter(|(t, _, _)| t == "Terminated")
                .nth(1)
                .map(|(_, _, e)| e)
        },
    );
    assert!(
        killed["ExitCode"] == 137 || killed["Signal"] == libc::SIGKILL,
        "{killed}\n{}",
        a.events_text(&alloc, "webservice")
    );

    stop_and_check_pod_removed(&a, "webservice");
}

/// port-map.nomad: Nomad's port "app" (static 12345) is forwarded to the pod's 8080-tcp;
/// the web server answers on the host port Nomad allocated; after `job stop` it is gone.
#[test]
fn port_map_forwards_the_allocated_host_port() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start(&nomad);
    let alloc = run_example(&a, "port-map.nomad", "redis-like", "web");
    let status = a
        .cli(&["alloc", "status", "-json", &alloc])
        .ok("alloc status -json");
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let networks = &status["AllocatedResources"]["Tasks"]["web"]["Networks"];
    let port = networks[0]["ReservedPorts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["Label"] == "app")
        .and_then(|p| p["Value"].as_u64())
        .unwrap_or_else(|| panic!("no port app in {networks}")) as u16;
    assert_eq!(port, 12345, "the job's static port");
    assert_eq!(networks[0]["IP"], "127.0.0.1", "{networks}");
    let (code, body) = wait_for(
        &format!("the web server on 127.0.0.1:{port}"),
        Duration::from_secs(20),
        || http("GET", port, "/").ok(),
    );
    assert_eq!((code, body.trim()), (200, PAGE));

    stop_and_check_pod_removed(&a, "redis-like");
    assert!(
        http("GET", port, "/").is_err(),
        "port {port} still answers after job stop"
    );
}

/// constraint.nomad: `${attr.driver.rkt.version} > 1.2` places the job (the page's
/// `${driver.rkt.version}`, which Nomad never interpolates, does not: shown with a copy of
/// the job as published); its output shows the interpolated task name and rkt version;
/// `alloc restart` runs it again in a new pod and removes the old one.
#[test]
fn constraint_on_the_rkt_version_places_and_restart_reruns() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start(&nomad);
    let text = std::fs::read_to_string(example("constraint.nomad")).unwrap();
    let fixed = r#"attribute = "${attr.driver.rkt.version}""#;
    assert!(text.contains(fixed), "{text}");

    // The job as the documentation page wrote it is never placed.
    let published = text
        .replace(fixed, r#"attribute = "${driver.rkt.version}""#)
        .replace(r#"job "docs""#, r#"job "docs-as-published""#);
    let file = a.dir.path().join("docs-as-published.nomad");
    std::fs::write(&file, published).unwrap();
    let r = a.cli(&["job", "run", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "expected a placement failure: {r:#?}");
    assert!(
        r.stdout
            .contains(r#"Constraint "${driver.rkt.version} > 1.2""#)
            && r.stdout.contains("1 nodes excluded by filter"),
        "{}",
        r.stdout
    );
    a.cli(&["job", "stop", "-purge", "docs-as-published"])
        .ok("job stop -purge");

    let alloc = run_example(&a, "constraint.nomad", "docs", "hello");
    let line = "hello from hello on rkt 1.30.0";
    let out = wait_for("the task's output", Duration::from_secs(20), || {
        let l = logs(&a, &alloc, "hello");
        l.contains(line).then_some(l)
    });
    assert_eq!(out.trim(), line, "stdout: {out:?}");
    let before = a.pods();
    assert_eq!(before.len(), 1, "{before:?}");

    a.cli(&["alloc", "restart", &alloc, "hello"])
        .ok("alloc restart");
    wait_for("the task to run again", Duration::from_secs(60), || {
        let al = a.alloc(&alloc);
        let t = &al["TaskStates"]["hello"];
        (t["State"] == "running" && t["Restarts"] == 1).then_some(())
    });
    let out = wait_for("the second run's output", Duration::from_secs(20), || {
        let l = logs(&a, &alloc, "hello");
        (l.matches(line).count() == 2).then_some(l)
    });
    assert_eq!(out, format!("{line}\n{line}\n"));
    let after = wait_for("the old pod to be removed", Duration::from_secs(20), || {
        let p = a.pods();
        (p.len() == 1).then_some(p)
    });
    assert_ne!(after[0].0, before[0].0, "the restart runs a new pod");
    assert_eq!(after[0].1, "running");
    let events = a.events_text(&alloc, "hello");
    assert!(events.contains("Restart Signaled"), "{events}");

    stop_and_check_pod_removed(&a, "docs");
}

/// dns.nomad: the pod's resolv.conf has the job's servers and search domain, as the task's
/// own output and an exec show.
#[test]
fn dns_servers_and_search_domains_reach_the_pod() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start(&nomad);
    let alloc = run_example(&a, "dns.nomad", "dns", "resolver");
    let want = "nameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch service.internal\n";
    let out = wait_for("the task's output", Duration::from_secs(20), || {
        let l = logs(&a, &alloc, "resolver");
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(out, want);
    let r = exec(&a, &alloc, "resolver", &["cat", "/etc/resolv.conf"]).ok("alloc exec cat");
    assert_eq!(r.stdout, want);
    // On rkt's default network: an eth0 with an address from 172.16.28.0/24.
    let pods = a.rkt(&["list", "--no-legend"]).ok("rkt list");
    assert!(
        pods.stdout.contains("default:ip4=172.16.28."),
        "{}",
        pods.stdout
    );

    stop_and_check_pod_removed(&a, "dns");
}

/// volumes.nomad: /etc bound read-only at /host-etc, and the allocation's data directory
/// at /shared: the task lists the host's /etc into /shared, where `nomad alloc fs` finds
/// it; /host-etc refuses writes, /shared takes them.
#[test]
fn volumes_bind_host_and_allocation_paths() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start(&nomad);
    let alloc = run_example(&a, "volumes.nomad", "volumes", "reader");
    // What ls shows of the host's /etc: names not starting with a dot. Read before and
    // after, as something else on the host may add or remove a file meanwhile.
    let host_etc = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir("/etc")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    };
    let before = host_etc();
    let out = wait_for("the task's output", Duration::from_secs(20), || {
        let l = logs(&a, &alloc, "reader");
        (!l.is_empty()).then_some(l)
    });
    let after = host_etc();
    let listed: std::collections::BTreeSet<String> = out.lines().map(String::from).collect();
    assert!(listed.len() > 10, "{out}");
    assert!(
        before.intersection(&after).all(|n| listed.contains(n))
            && listed
                .iter()
                .all(|n| before.contains(n) || after.contains(n)),
        "ls /host-etc in the task differs from the host's /etc: listed {listed:?}, host {before:?}"
    );
    let file = a
        .cli(&["alloc", "fs", &alloc, "alloc/data/listing"])
        .ok("alloc fs");
    assert_eq!(file.stdout, out, "alloc/data/listing");

    let w = exec(
        &a,
        &alloc,
        "reader",
        &["/bin/sh", "-c", "echo x > /host-etc/nomad-e2e-probe"],
    );
    assert_ne!(w.code, 0, "{w:#?}");
    assert!(w.stderr.contains("Read-only file system"), "{w:#?}");
    assert!(!std::path::Path::new("/etc/nomad-e2e-probe").exists());
    exec(
        &a,
        &alloc,
        "reader",
        &["/bin/sh", "-c", "echo written in the pod > /shared/probe"],
    )
    .ok("a write to /shared");
    let probe = a
        .cli(&["alloc", "fs", &alloc, "alloc/data/probe"])
        .ok("alloc fs");
    assert_eq!(probe.stdout, "written in the pod\n");

    stop_and_check_pod_removed(&a, "volumes");
}

/// Docker Hub's mirror is the examples' registry, and Docker Hub itself is never asked.
const HUB_MIRROR: &str = r#"{
  "rktKind": "registries",
  "rktVersion": "v1",
  "registries": {
    "docker.io": {
      "mirrors": [{"url": "http://127.0.0.1:5000"}],
      "mirrorsOnly": true
    }
  }
}
"#;

/// The image IDs and names in the agent's rkt store.
fn stored_images(a: &Agent) -> Vec<String> {
    a.rkt(&["image", "list", "--no-legend", "--full", "--fields=id,name"])
        .ok("rkt image list")
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The documentation page's `image = "redis:3.2"`, unchanged in the job: a short name for
/// Docker Hub's `library/redis:3.2`, fetched through the mirror that the plugin's rkt
/// configuration names (`--rkt-local-config`, `registries.d`). With the plugin's
/// `gc { image = true  image_delay = "2s" }` the image stays while the task runs, however
/// long, and is removed the delay after `job stop` removed the pod.
#[test]
fn short_names_from_a_mirror_and_unused_images_collected() {
    let Some(nomad) = prerequisites() else { return };
    serve_hub_names();
    let a = Agent::start_with(
        &nomad,
        &Setup {
            plugin_config: Some(
                "    volumes_enabled = true\n    gc {\n      image       = true\n      image_delay = \"2s\"\n    }"
                    .into(),
            ),
            rkt_config: vec![("registries.d/10-hub.json".into(), HUB_MIRROR.into())],
            ..Default::default()
        },
    );
    let job = a.dir.path().join("redis.nomad");
    std::fs::write(
        &job,
        r#"job "redis" {
  datacenters = ["dc1"]
  group "cache" {
    task "redis" {
      driver = "rkt"
      config {
        image   = "redis:3.2"
        command = "/bin/httpd"
        args    = ["-f", "-p", "8080", "-h", "/www"]
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#,
    )
    .unwrap();
    let run = a.cli(&["job", "run", job.to_str().unwrap()]);
    assert_eq!(run.code, 0, "nomad job run: {run:#?}");
    let alloc = a.wait_running("redis", "redis", Duration::from_secs(120));
    let events = a.events_text(&alloc, "redis");
    for want in [
        "Image redis:3.2: image \"redis:3.2\" is a short name: resolved to docker://registry-1.docker.io/library/redis:3.2",
        "Image redis:3.2: fetching docker://registry-1.docker.io/library/redis:3.2 from mirror http://127.0.0.1:5000",
        "Downloaded image redis:3.2",
    ] {
        assert!(events.contains(want), "no event {want:?} in {events}");
    }
    let page = exec(
        &a,
        &alloc,
        "redis",
        &["wget", "-qO-", "http://127.0.0.1:8080/"],
    )
    .ok("alloc exec wget");
    assert_eq!(page.stdout.trim(), PAGE);
    let images = stored_images(&a);
    assert_eq!(images.len(), 1, "{images:?}");
    assert!(
        images[0].ends_with(" registry-1.docker.io/library/redis:3.2"),
        "stored under Docker Hub's name: {images:?}"
    );

    // Running for three times the delay: kept.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(stored_images(&a), images, "an image in use was removed");

    a.stop_job("redis");
    wait_for("the pod to be removed", Duration::from_secs(20), || {
        a.pods().is_empty().then_some(())
    });
    assert_eq!(stored_images(&a), images, "removed before the delay");
    wait_for(
        "the unused image to be removed",
        Duration::from_secs(20),
        || stored_images(&a).is_empty().then_some(()),
    );
}

/// A plugin configuration the driver cannot use (a negative delay) makes Nomad's node show
/// the rkt driver detected but unhealthy, with the reason, and places no task on it.
#[test]
fn a_bad_plugin_configuration_makes_the_driver_unhealthy() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start_with(
        &nomad,
        &Setup {
            plugin_config: Some("    gc {\n      image_delay = \"-3m\"\n    }".into()),
            expect_unhealthy: true,
            ..Default::default()
        },
    );
    let node = a.get(&format!("/v1/node/{}", a.node_id)).unwrap();
    let rkt = &node["Drivers"]["rkt"];
    assert_eq!(
        rkt["HealthDescription"],
        "invalid plugin configuration: \"gc.image_delay\" is negative (\"-3m\"); give how long an unused image is kept, such as \"3m\" (or \"0s\")",
        "{rkt}"
    );
    let run = a.cli(&["job", "run", &example("webservice.nomad")]);
    assert_eq!(run.code, 2, "the job must not be placed: {run:#?}");
    assert!(a.pods().is_empty());
}

/// The page's etcd example as written: `trust_prefix` makes the driver run `rkt trust
/// --prefix=coreos.com/etcd --skip-fingerprint-review`, which discovers the key; the image is
/// found by appc discovery, its signature verified, and run. A local HTTPS server plays
/// coreos.com (named through /etc/hosts for the test's duration, with a test CA).
#[test]
fn etcd_example_trusts_the_prefix_and_runs_the_signed_aci() {
    let Some(nomad) = prerequisites() else {
        return;
    };
    use test_support::discovery::{aci_fixtures, DiscoveryServer};
    let fx = aci_fixtures();
    let srv = DiscoveryServer::start(&["coreos.com"]);
    srv.discovery_page(
        "coreos.com/etcd",
        &[
            (
                "ac-discovery",
                "coreos.com/etcd",
                "https://coreos.com/etcd/releases/{name}-{version}-{os}-{arch}.{ext}",
            ),
            (
                "ac-discovery-pubkeys",
                "coreos.com/etcd",
                "https://coreos.com/dist/pubkeys/aci-pubkeys.gpg",
            ),
        ],
    );
    let aci = "coreos.com/etcd/releases/coreos.com/etcd-v2.0.4-linux-amd64.aci";
    srv.file(aci, &fx.join("etcd.aci"));
    srv.file(&format!("{aci}.asc"), &fx.join("etcd.aci.asc"));
    srv.file(
        "coreos.com/dist/pubkeys/aci-pubkeys.gpg",
        &fx.join("keys/signer.asc"),
    );
    let setup = Setup {
        // A configuration directory of the plugin's own, so that the trusted key lands there
        // and not in the host's /etc/rkt.
        rkt_config: vec![("README".into(), "rkt configuration of this test\n".into())],
        env: srv.env(),
        ..Setup::default()
    };
    let a = Agent::start_with(&nomad, &setup);
    let run = a.cli(&["job", "run", &example("etcd.nomad")]);
    assert_eq!(run.code, 0, "nomad job run etcd.nomad: {run:#?}");
    let alloc = a.wait_running("etcd", "etcd", Duration::from_secs(120));
    wait_for("the stand-in's greeting", Duration::from_secs(20), || {
        logs(&a, &alloc, "etcd")
            .contains("etcd stand-in v2.0.4 serving")
            .then_some(())
    });
    let keys = a
        .dir
        .path()
        .join("rkt-config/trustedkeys/prefix.d/coreos.com/etcd");
    let fpr: Vec<_> = std::fs::read_dir(&keys)
        .unwrap_or_else(|e| panic!("no trusted keys in {}: {e}", keys.display()))
        .collect();
    assert_eq!(fpr.len(), 1, "one key trusted for the prefix");
    let images = a
        .rkt(&["image", "list", "--no-legend"])
        .ok("rkt image list");
    assert!(
        images.stdout.contains("coreos.com/etcd:v2.0.4"),
        "{}",
        images.stdout
    );
    let log = srv.log();
    for wanted in [
        "coreos.com/etcd?ac-discovery=1",
        "coreos.com/dist/pubkeys/aci-pubkeys.gpg",
        aci,
    ] {
        assert!(log.contains(wanted), "{wanted} never asked for:\n{log}");
    }
    // The process is the image's /etcd, found as the job's command says.
    let ps = exec(
        &a,
        &alloc,
        "etcd",
        &[
            "/bin/sh",
            "-c",
            "for c in /proc/[0-9]*/cmdline; do cat $c; echo; done",
        ],
    );
    assert!(ps.stdout.contains("/etcd"), "{ps:?}");
    stop_and_check_pod_removed(&a, "etcd");
}
