//! Tasks end to end: the plugin started as Nomad starts it, driven over gRPC like a Nomad
//! client, running real rkt pods: start to destroy, stop and signals, exec with a terminal,
//! group networks, bad configurations, and many tasks at once.

mod common;

use common::tasks::*;
use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::time::{Duration, Instant};
use test_support::poll_async;
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread")]
async fn a_task_runs_as_a_pod_from_start_to_destroy() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let mut events = p
        .driver
        .task_events(d::TaskEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut alloc = Alloc::new("web_Server");
    std::fs::write(alloc.task_dir().join("local/in.txt"), "from the task dir\n").unwrap();
    let shared = alloc.dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // The image's app runs as uid 1000.
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = task_config(&[
        ("image", registry().image().into()),
        ("command", "/bin/sh".into()),
        (
            "args",
            strs(&[
                "-c",
                "echo hello $NOMAD_TASK_NAME; cat /local/in.txt; echo written > /shared/out; \
            cat /hostvol/x; echo zero bytes: $(head -c 4 /dev/zero2 | wc -c); \
            trap 'echo bye; exit 7' TERM; httpd -p 8080 -h /www; while true; do sleep 0.1; done",
            ]),
        ),
        ("net", strs(&["default"])),
        (
            "port_map",
            rmpv::Value::Array(vec![rmpv::Value::Map(vec![(
                "http".into(),
                "8080-tcp".into(),
            )])]),
        ),
        ("volumes", strs(&["shared:/shared"])),
    ]);
    let mut task = alloc.task_config(cfg);
    task.resources
        .as_mut()
        .unwrap()
        .allocated_resources
        .as_mut()
        .unwrap()
        .networks = vec![d::NetworkResource {
        dynamic_ports: vec![d::NetworkPort {
            label: "http".into(),
            value: host_port as i32,
        }],
        ..Default::default()
    }];
    // A Nomad host volume and a device, read-only.
    let host_volume = tempfile::tempdir().unwrap();
    std::fs::write(host_volume.path().join("x"), "from a host volume\n").unwrap();
    task.mounts = vec![d::Mount {
        task_path: "/hostvol".into(),
        host_path: host_volume.path().display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    task.devices = vec![d::Device {
        task_path: "/dev/zero2".into(),
        host_path: "/dev/zero".into(),
        cgroup_permissions: "r".into(),
    }];
    let id = task.id.clone();
    let started = start(&mut p, task).await;
    let handle = started.handle.unwrap();
    assert_eq!(
        handle.config.as_ref().unwrap().id,
        id,
        "the handle echoes the task config"
    );
    assert_eq!(handle.state, d::TaskState::Running as i32);
    let net = started
        .network_override
        .expect("a contained network is reported");
    assert!(net.addr.starts_with("172.16.28."), "{}", net.addr);
    assert_eq!(net.port_map.get("http"), Some(&8080));
    assert!(!net.auto_advertise);

    // Image download progress arrived as task events.
    let ev = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.alloc_id.as_str(), ev.task_name.as_str()),
        (alloc.id.as_str(), "web_Server")
    );
    assert!(
        ev.message.starts_with("Downloading image docker://"),
        "{}",
        ev.message
    );
    assert!(ev.timestamp.is_some());

    // The app serves on the pod address and through the forwarded host port.
    let url = format!("http://127.0.0.1:{host_port}/");
    let (limit, every) = (Duration::from_secs(10), Duration::from_millis(100));
    let page = test_support::poll(limit, every, "the forwarded port to answer", || {
        let out = std::process::Command::new("curl")
            .args(["-sf", "-m", "2", &url])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(page.contains("hello from rkt"));
    // A relative volume lands inside the allocation directory.
    assert_eq!(
        std::fs::read_to_string(alloc.dir.path().join("shared/out")).unwrap(),
        "written\n"
    );

    // Exec inside the task, confined like it.
    let e = p
        .driver
        .exec_task(d::ExecTaskRequest {
            task_id: id.clone(),
            command: vec!["/bin/cat".into(), "/local/in.txt".into()],
            timeout: secs(10),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(String::from_utf8_lossy(&e.stdout), "from the task dir\n");
    assert_eq!(e.result.unwrap().exit_code, 0);
    let e = p
        .driver
        .exec_task(d::ExecTaskRequest {
            task_id: id.clone(),
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo oops >&2; exit 3".into(),
            ],
            timeout: secs(10),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            e.result.unwrap().exit_code,
            String::from_utf8_lossy(&e.stderr).as_ref()
        ),
        (3, "oops\n")
    );

    // Stats from the pod's cgroups, at the requested interval.
    let mut stats = p
        .driver
        .task_stats(d::TaskStatsRequest {
            task_id: id.clone(),
            collection_interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 200_000_000,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let s = stats.message().await.unwrap().unwrap().stats.unwrap();
    assert!(s.timestamp.is_some());
    let usage = s.agg_resource_usage.unwrap();
    let mem = usage.memory.unwrap();
    assert!(mem.usage > 0 && mem.rss > 0, "{mem:?}");
    assert!(mem
        .measured_fields
        .contains(&(d::memory_usage::Fields::Rss as i32)));
    assert!(usage
        .cpu
        .unwrap()
        .measured_fields
        .contains(&(d::cpu_usage::Fields::Percent as i32)));
    let _ = stats.message().await.unwrap().unwrap();

    // Several waiters at once; SIGTERM ends the app with its own status.
    let mut w1 = p.driver.clone();
    let mut w2 = p.driver.clone();
    let (id1, id2) = (id.clone(), id.clone());
    let a = tokio::spawn(async move {
        w1.wait_task(d::WaitTaskRequest { task_id: id1 })
            .await
            .unwrap()
            .into_inner()
    });
    let b = tokio::spawn(async move {
        w2.wait_task(d::WaitTaskRequest { task_id: id2 })
            .await
            .unwrap()
            .into_inner()
    });
    p.driver
        .signal_task(d::SignalTaskRequest {
            task_id: id.clone(),
            signal: "SIGTERM".into(),
        })
        .await
        .unwrap();
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.result.as_ref().unwrap().exit_code, 7, "{a:?}");
    assert_eq!(a.result, b.result);
    assert_eq!(a.err, "");
    let again = wait(&mut p, &id).await;
    assert_eq!(
        again.result.unwrap().exit_code,
        7,
        "a repeated WaitTask answers at once"
    );
    let out = alloc.stdout();
    assert!(
        out.contains("hello web_Server\nfrom the task dir\nfrom a host volume\nzero bytes: 4\n"),
        "{out:?}"
    );
    assert!(out.contains("bye"), "{out:?}");

    // Stats of an exited task: an error Nomad does not retry.
    let e = p
        .driver
        .task_stats(d::TaskStatsRequest {
            task_id: id.clone(),
            collection_interval: secs(1),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    let i = p
        .driver
        .inspect_task(d::InspectTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let status = i.task.unwrap();
    assert_eq!(status.state, d::TaskState::Exited as i32);
    assert!(status.completed_at.unwrap().seconds > 0);
    // StopTask on an exited task is fine; DestroyTask removes the pod.
    p.driver
        .stop_task(d::StopTaskRequest {
            task_id: id.clone(),
            timeout: secs(1),
            signal: String::new(),
        })
        .await
        .unwrap();
    assert!(!pods(rkt_dir.path()).is_empty());
    destroy(&mut p, id.clone()).await;
    assert_eq!(pods(rkt_dir.path()), "", "the pod is removed");
    let gone = p.driver.wait_task(d::WaitTaskRequest { task_id: id }).await;
    assert!(gone.is_err(), "WaitTask after DestroyTask fails");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_signals_then_kills_and_destroy_force_kills() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let mut alloc = Alloc::new("stubborn");
    let cfg = command_config(
        &registry().image(),
        "/bin/sh",
        &[
            "-c",
            "trap '' INT TERM; : >/alloc/trapped; while true; do sleep 0.1; done",
        ],
        Some("host"),
    );
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    let started = start(&mut p, task).await;
    assert!(
        started.network_override.is_none(),
        "no network override with --net=host"
    );
    // Right after StartTask: the stop must reach the app.
    let i = p
        .driver
        .inspect_task(d::InspectTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        i.task.as_ref().unwrap().state,
        d::TaskState::Running as i32,
        "{i:?}"
    );
    // The app ignores SIGINT once its trap is set: after the timeout the pod is killed.
    alloc.until_trapped().await;
    let t = Instant::now();
    p.driver
        .stop_task(d::StopTaskRequest {
            task_id: id.clone(),
            timeout: secs(1),
            signal: String::new(),
        })
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "stop took {took:?}: {}",
        alloc.stderr()
    );
    let w = wait(&mut p, &id).await;
    assert_ne!(w.result.unwrap().exit_code, 0);
    destroy(&mut p, id).await;

    // DestroyTask of a running task: refused without force, done with it.
    let (_alloc, id, _) = start_command(&mut p, "second", "/bin/sleep", &["1000"]).await;
    let e = p
        .driver
        .destroy_task(d::DestroyTaskRequest {
            task_id: id.clone(),
            force: false,
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("cannot destroy running task"));
    destroy(&mut p, id).await;
    assert_eq!(pods(rkt_dir.path()), "");
}

/// The state letter of every process of a pod but its init (R, S, T, ...), from the host.
fn app_states(rkt_dir: &std::path::Path, uuid: &str) -> Vec<char> {
    let status = rkt_ok(rkt_dir, &["status", uuid]);
    let init: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .expect("a running pod has an init PID");
    let children =
        std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat[stat.rfind(')')? + 2..].chars().next()
        })
        .collect()
}

/// SignalTask reaches the app itself: SIGSTOP stops it and SIGCONT resumes it (neither can
/// be caught and forwarded), and SIGKILL kills it, which the task's exit shows as 137.
#[tokio::test(flavor = "multi_thread")]
async fn uncatchable_signals_reach_the_app() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let alloc = Alloc::new("signals");
    let cfg = command_config(
        &registry().image(),
        "/bin/sh",
        &["-c", "trap '' TERM INT; while true; do sleep 0.1; done"],
        Some("none"),
    );
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    let started = start(&mut p, task).await;
    let state: serde_json::Value =
        serde_json::from_slice(&started.handle.unwrap().driver_state).unwrap();
    let uuid = state["uuid"].as_str().unwrap().to_string();
    let signal = |name: &str| {
        let mut driver = p.driver.clone();
        let (id, name) = (id.clone(), name.to_string());
        async move {
            driver
                .signal_task(d::SignalTaskRequest {
                    task_id: id,
                    signal: name,
                })
                .await
                .unwrap_or_else(|e| panic!("SignalTask: {}", e.message()))
        }
    };
    signal("SIGSTOP").await;
    test_support::eventually(Duration::from_secs(5), "the app to stop", || {
        (app_states(rkt_dir.path(), &uuid) == ['T']).then_some(())
    });
    signal("SIGCONT").await;
    test_support::eventually(Duration::from_secs(5), "the app to go on", || {
        let s = app_states(rkt_dir.path(), &uuid);
        (s.len() == 1 && s[0] != 'T').then_some(())
    });
    signal("SIGKILL").await;
    let w = tokio::time::timeout(Duration::from_secs(10), wait(&mut p, &id))
        .await
        .expect("the app dies of SIGKILL");
    assert_eq!(w.result.unwrap().exit_code, 137);
    destroy(&mut p, id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_streaming_with_a_terminal() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let (_alloc, id, _) = start_command(&mut p, "shell", "/bin/sleep", &["1000"]).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let input = tokio_stream::wrappers::ReceiverStream::new(rx);
    tx.send(d::ExecTaskStreamingRequest {
        setup: Some(d::exec_task_streaming_request::Setup {
            task_id: id.clone(),
            command: vec!["/bin/sh".into()],
            tty: true,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    tx.send(d::ExecTaskStreamingRequest {
        tty_size: Some(d::exec_task_streaming_request::TerminalSize {
            height: 33,
            width: 101,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let stdin = |data: &[u8]| d::ExecTaskStreamingRequest {
        stdin: Some(d::ExecTaskStreamingIoOperation {
            data: data.to_vec(),
            close: false,
        }),
        ..Default::default()
    };
    // A Ctrl-C interrupts a command in the session (the plugin itself ignores SIGINT; what
    // it starts must not), then the shell reports the terminal.
    tx.send(stdin(b"busybox sleep 97\n")).await.unwrap();
    let keys = tx.clone();
    tokio::spawn(async move {
        // The pod's processes are the host's to see: Ctrl-C once the command runs, the
        // next line once it has gone.
        let (limit, every) = (Duration::from_secs(15), Duration::from_millis(20));
        poll_async(limit, every, "the sleep to start", async || {
            sleeping_97().then_some(())
        })
        .await;
        let _ = keys.send(stdin(b"\x03")).await;
        poll_async(limit, every, "Ctrl-C to end the sleep", async || {
            (!sleeping_97()).then_some(())
        })
        .await;
        let _ = keys
            .send(stdin(
                b"busybox stty size; echo term=$TERM; busybox tty; exit 4\n",
            ))
            .await;
    });
    let mut out = p
        .driver
        .exec_task_streaming(input)
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    let mut result = None;
    loop {
        let Ok(next) = tokio::time::timeout(Duration::from_secs(15), out.next()).await else {
            panic!("no end of the session after 15s; its output: {text:?}");
        };
        let Some(m) = next else { break };
        let m = m.unwrap();
        if let Some(o) = m.stdout {
            text.push_str(&String::from_utf8_lossy(&o.data));
        }
        if m.exited {
            result = m.result;
        }
    }
    drop(tx);
    assert!(text.contains("33 101"), "{text:?}");
    // A terminal of the pod's own: the command can name it, and knows what it is.
    assert!(text.contains("\r\n/dev/pts/0\r\n"), "{text:?}");
    assert!(text.contains("term=xterm"), "{text:?}");
    assert_eq!(result.unwrap().exit_code, 4);
    destroy(&mut p, id).await;
}

/// A group network (`network { mode = "bridge" }`): Nomad made the namespace, the task joins it.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_joins_its_groups_network_namespace() {
    if !root_or_skip() {
        return;
    }
    let ns = format!("driver-group-{}", std::process::id());
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{cmd}");
    };
    // As Nomad's bridge network would: a namespace with an interface and an address.
    sh(&format!(
        "ip netns add {ns} && ip link add dg{n}h type veth peer name eth0 netns {ns} && \
         ip -n {ns} addr add 10.215.7.2/24 dev eth0 && ip -n {ns} link set eth0 up",
        n = std::process::id() % 10000
    ));
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let mut alloc = Alloc::new("member");
    let cfg = command_config(
        &registry().image(),
        "/bin/sh",
        &[
            "-c",
            "busybox ip -o -4 addr show eth0; cat /etc/resolv.conf",
        ],
        None,
    );
    let mut task = alloc.task_config(cfg);
    task.network_isolation_spec = Some(d::NetworkIsolationSpec {
        mode: d::network_isolation_spec::NetworkIsolationMode::Group as i32,
        path: format!("/var/run/netns/{ns}"),
        ..Default::default()
    });
    task.dns = Some(d::DnsConfig {
        servers: vec!["10.215.7.1".into()],
        searches: vec!["group.internal".into()],
        options: Vec::new(),
    });
    let id = task.id.clone();
    let started = start(&mut p, task).await;
    assert!(
        started.network_override.is_none(),
        "Nomad knows a group network's address"
    );
    let w = wait(&mut p, &id).await;
    assert_eq!(w.result.unwrap().exit_code, 0);
    let out = alloc.stdout();
    destroy(&mut p, id).await;
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status();
    assert!(out.contains("inet 10.215.7.2/24"), "{out:?}");
    assert!(
        out.contains("nameserver 10.215.7.1\nsearch group.internal"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_task_configs_fail_clearly_and_leave_no_pod() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = Plugin::start(rkt_dir.path()).await;
    p.set_config(false).await;
    let image = registry().image();
    let cases: Vec<(Vec<(&str, rmpv::Value)>, &str)> = vec![
        (
            vec![("volumes", strs(&["a:b:c:d"]))],
            "invalid rkt volume: \"a:b:c:d\"",
        ),
        (
            vec![("volumes", strs(&["/etc:/etc2"]))],
            "volumes_enabled is false; cannot use rkt volumes",
        ),
        (
            vec![("volumes", strs(&["../../etc:/x"]))],
            "may not use \"..\"",
        ),
        (
            vec![("dns_servers", strs(&["not-an-ip"]))],
            "invalid ip address for container dns server \"not-an-ip\"",
        ),
        (
            vec![("insecure_options", strs(&["everything"]))],
            "unknown insecure option \"everything\"",
        ),
        (
            vec![(
                "port_map",
                rmpv::Value::Array(vec![rmpv::Value::Map(vec![(
                    "web".into(),
                    "8080-tcp".into(),
                )])]),
            )],
            "Trying to map ports but no network interface is available",
        ),
        (
            vec![("image", rmpv::Value::Ext(0, vec![0]))],
            "\"image\" is an unknown value",
        ),
        (
            vec![("command", "no-such-tool".into())],
            "command \"no-such-tool\" not found in image",
        ),
    ];
    for (set, expect) in cases {
        let alloc = Alloc::new("bad");
        let mut fields: Vec<(&str, rmpv::Value)> = vec![
            ("image", image.clone().into()),
            ("command", "/bin/true".into()),
        ];
        for (k, v) in set {
            fields.retain(|(n, _)| *n != k);
            fields.push((k, v));
        }
        let e = p
            .driver
            .start_task(d::StartTaskRequest {
                task: Some(alloc.task_config(task_config(&fields))),
            })
            .await
            .unwrap_err();
        assert!(
            e.message().contains(expect),
            "{expect}: got {}",
            e.message()
        );
        assert_ne!(
            e.code(),
            tonic::Code::FailedPrecondition,
            "a bad config is not worth a retry"
        );
    }
    // A registry that cannot be reached: recoverable, so the restart policy applies.
    let alloc = Alloc::new("unreachable");
    let cfg = task_config(&[("image", "docker://127.0.0.1:1/nothing/here:1".into())]);
    let e = p
        .driver
        .start_task(d::StartTaskRequest {
            task: Some(alloc.task_config(cfg)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert!(
        e.message().starts_with("Error preparing rkt pod"),
        "{}",
        e.message()
    );
    let details = e.details();
    let needle = b"hashicorp.nomad.plugins.shared.structs.RecoverableError";
    assert!(
        details.windows(needle.len()).any(|w| w == needle),
        "no RecoverableError detail"
    );
    // An image the registry does not have: not worth a retry, and the message says so.
    let alloc = Alloc::new("missing");
    let missing = image.replace("busybox:latest", "busybox:no-such-tag");
    let cfg = task_config(&[("image", missing.into())]);
    let e = p
        .driver
        .start_task(d::StartTaskRequest {
            task: Some(alloc.task_config(cfg)),
        })
        .await
        .unwrap_err();
    assert_ne!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert!(e.message().contains("not found"), "{}", e.message());
    assert_eq!(pods(rkt_dir.path()), "", "nothing half-made is left");
}

/// A job's relative `command = "sleep"` is looked up in the image's PATH, as rkt did: the
/// pod manifest (which Nomad's own rkt driver read) and the process carry /bin/sleep.
#[tokio::test(flavor = "multi_thread")]
async fn a_relative_command_runs_as_an_absolute_path() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let (_alloc, id, started) = start_command(&mut p, "relative", "sleep", &["1000"]).await;
    let state: serde_json::Value =
        serde_json::from_slice(&started.handle.unwrap().driver_state).unwrap();
    let uuid = state["uuid"].as_str().unwrap().to_string();
    let manifest: serde_json::Value =
        serde_json::from_str(&rkt_ok(rkt_dir.path(), &["cat-manifest", &uuid])).unwrap();
    assert_eq!(
        manifest["apps"][0]["app"]["exec"],
        serde_json::json!(["/bin/sleep", "1000"])
    );
    let ps = rkt_ok(
        rkt_dir.path(),
        &[
            "enter",
            &uuid,
            "/bin/sh",
            "-c",
            "for p in /proc/[0-9]*; do /bin/busybox tr '\\0' ' ' < $p/cmdline; echo; done",
        ],
    );
    assert!(ps.lines().any(|l| l == "/bin/sleep 1000 "), "{ps}");
    destroy(&mut p, id).await;
}

/// Twenty tasks started at once, as Nomad does for a job of count = 20: every one runs.
/// (The plugin prepares pods on threads of its own while it forks supervisors for others.)
#[tokio::test(flavor = "multi_thread")]
async fn twenty_tasks_started_at_once_all_run() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let p = configured(rkt_dir.path()).await;
    let image = registry().image();
    let allocs: Vec<Alloc> = (0..20).map(|i| Alloc::new(&format!("many{i}"))).collect();
    let starts = allocs.iter().map(|alloc| {
        let mut driver = p.driver.clone();
        let cfg = command_config(&image, "/bin/sleep", &["1000"], Some("none"));
        let task = alloc.task_config(cfg);
        async move {
            let id = task.id.clone();
            driver
                .start_task(d::StartTaskRequest { task: Some(task) })
                .await
                .map(|_| id)
                .map_err(|e| e.message().to_string())
        }
    });
    let ids = futures_join_all(starts).await;
    let failed: Vec<&String> = ids.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // Still running a moment later: none of the supervisors failed after the start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let running = pods(rkt_dir.path())
        .lines()
        .filter(|l| l.contains("running"))
        .count();
    assert_eq!(running, 20, "{}", pods(rkt_dir.path()));
    let mut p = p;
    for id in ids.into_iter().flatten() {
        destroy(&mut p, id).await;
    }
}

/// Every future, concurrently, in order.
async fn futures_join_all<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// No descriptor of the plugin (its gRPC socket, its listener, its log FIFOs of other tasks,
/// its store locks) reaches a task's app: the app has its stdin (/dev/null) and the two log
/// FIFOs Nomad gave the task, and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn no_descriptor_of_the_plugin_leaks_into_the_app() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    // A second task running meanwhile, so that the plugin holds its FIFOs too.
    let other = Alloc::new("other");
    let busy = other.task_config(command_config(
        &registry().image(),
        "/bin/sleep",
        &["30"],
        None,
    ));
    let busy_id = busy.id.clone();
    start(&mut p, busy).await;
    // The escape tests' probe (tests/harness/escape_probe.c) lists the descriptors it was
    // started with, but the one it lists them through.
    static PROBE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        registry().harness().push("probe", "demo/probe:latest");
        registry().harness().image("demo/probe:latest")
    });
    let mut alloc = Alloc::new("fds");
    let task = alloc.task_config(command_config(probe, "/bin/escape_probe", &["fds"], None));
    let id = task.id.clone();
    start(&mut p, task).await;
    let w = wait(&mut p, &id).await;
    assert_eq!(w.result.unwrap().exit_code, 0, "{}", alloc.stderr());
    let out = alloc.stdout();
    let fds: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("fd ")?.split_once(' '))
        .collect();
    let numbers: Vec<&str> = fds.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, ["0", "1", "2"], "descriptors in the app: {out}");
    assert_eq!(fds[0].1, "/dev/null", "{out}");
    // Its own log FIFOs, never the other task's, a socket or a pipe of the plugin.
    assert!(fds[1].1.ends_with("/alloc/logs/.fds.stdout.fifo"), "{out}");
    assert!(fds[2].1.ends_with("/alloc/logs/.fds.stderr.fifo"), "{out}");
    destroy(&mut p, id).await;
    destroy(&mut p, busy_id).await;
    drop(other);
}

/// A job's `pids_limit` becomes the pod's pids limit; without one, rkt's default (2048).
#[tokio::test(flavor = "multi_thread")]
async fn pids_limit_reaches_the_pods_cgroup() {
    if !root_or_skip() {
        return;
    }
    let root = std::path::Path::new(layout::cgroup::ROOT);
    if layout::cgroup::v1_pids_dir(root, "rkt").is_none()
        && !root.join("cgroup.controllers").exists()
    {
        test_support::skip("this host has no pids cgroup controller");
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    for (limit, want) in [(Some(64), "64"), (None, "2048")] {
        let alloc = Alloc::new("pids");
        let mut fields = vec![
            ("image", registry().image().into()),
            ("command", "/bin/sleep".into()),
            ("args", strs(&["30"])),
        ];
        if let Some(n) = limit {
            fields.push(("pids_limit", rmpv::Value::from(n)));
        }
        let task = alloc.task_config(task_config(&fields));
        let id = task.id.clone();
        start(&mut p, task).await;
        let uuid = rkt_ok(rkt_dir.path(), &["list", "--full", "--no-legend"]);
        let uuid = uuid.split_whitespace().next().unwrap().to_string();
        let rel = layout::cgroup::pod_rel(layout::cgroup::DEFAULT_PARENT, &uuid);
        let max = match layout::cgroup::v1_pids_dir(root, &rel) {
            Some(d) => d.join("pids.max"),
            None => root.join(&rel).join("pids.max"),
        };
        let got = std::fs::read_to_string(&max).unwrap();
        assert_eq!(got.trim(), want, "{}", max.display());
        destroy(&mut p, id).await;
    }
}

/// Whether a `sleep 97` runs anywhere on the host (the exec session's command, seen from
/// outside its pod).
fn sleeping_97() -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| c.ends_with(b"sleep\x0097\x00"))
}
