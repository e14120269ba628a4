//! The plugin end to end: started as Nomad starts it, driven over gRPC like a Nomad client,
//! running real rkt pods (root needed; without it the tests say so and skip).

mod common;

use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::start)
}

fn secs(s: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s as i64,
        nanos: 0,
    })
}

async fn start(p: &mut Plugin, task: d::TaskConfig) -> d::StartTaskResponse {
    p.driver
        .start_task(d::StartTaskRequest { task: Some(task) })
        .await
        .unwrap_or_else(|e| panic!("StartTask: {}", e.message()))
        .into_inner()
}

async fn wait(p: &mut Plugin, id: &str) -> d::WaitTaskResponse {
    p.driver
        .wait_task(d::WaitTaskRequest { task_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

async fn destroy(p: &mut Plugin, id: String) {
    p.driver
        .destroy_task(d::DestroyTaskRequest {
            task_id: id,
            force: true,
        })
        .await
        .unwrap();
}

/// A plugin as the long-lived instance Nomad keeps: started and configured.
async fn configured(rkt_dir: &std::path::Path) -> Plugin {
    let mut p = Plugin::start(rkt_dir).await;
    p.set_config(true).await;
    p
}

fn pods(rkt_dir: &std::path::Path) -> String {
    rkt_ok(rkt_dir, &["list", "--no-legend"])
}

/// Runs rkt on the test's directory; panics unless it succeeds.
fn rkt_ok(rkt_dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(rkt_bin())
        .arg(format!("--dir={}", rkt_dir.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rkt {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn base_plugin_schemas_capabilities_and_fingerprint() {
    let rkt_dir = RktDir::new();
    let mut p = Plugin::start(rkt_dir.path()).await;
    assert!(p.handshake.ends_with("|grpc|"), "{}", p.handshake);
    let info = p
        .base
        .plugin_info(nomad_driver_rkt::proto::base::PluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "rkt");
    assert_eq!(
        info.r#type,
        nomad_driver_rkt::proto::base::PluginType::Driver as i32
    );
    assert_eq!(info.plugin_api_versions, ["v0.1.0"]);
    let schema = p
        .base
        .config_schema(nomad_driver_rkt::proto::base::ConfigSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(format!("{:?}", schema.spec).contains("volumes_enabled"));
    p.set_config(true).await;
    let ts = p
        .driver
        .task_config_schema(d::TaskConfigSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    let text = format!("{:?}", ts.spec);
    for field in [
        "image",
        "port_map",
        "list(map(string))",
        "insecure_options",
        "no_overlay",
    ] {
        assert!(text.contains(field), "{field} missing from the task schema");
    }
    let caps = p
        .driver
        .capabilities(d::CapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .unwrap();
    assert!(caps.send_signals && caps.exec);
    assert_eq!(
        caps.fs_isolation,
        d::driver_capabilities::FsIsolation::Image as i32
    );

    // go-plugin's health service, under the name "plugin".
    let mut health = tonic_health::pb::health_client::HealthClient::new(p.channel.clone());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The first fingerprint comes at once; the stream then stays open.
    let t = Instant::now();
    let mut fp = p
        .driver
        .fingerprint(d::FingerprintRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = fp.message().await.unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    if is_root() {
        assert_eq!(
            first.health,
            d::fingerprint_response::HealthState::Healthy as i32,
            "{}",
            first.health_description
        );
        let v = &first.attributes["driver.rkt.version"];
        assert_eq!(format!("{:?}", v.value), "Some(StringVal(\"1.30.0\"))");
        assert!(first.attributes.contains_key("driver.rkt.appc.version"));
        assert!(first.attributes.contains_key("driver.rkt.volumes.enabled"));
    }
    let more = tokio::time::timeout(Duration::from_millis(500), fp.message()).await;
    assert!(
        more.is_err(),
        "the fingerprint stream must stay open, not end"
    );

    // The events stream stays open too, with nothing to say.
    let mut events = p
        .driver
        .task_events(d::TaskEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.message())
            .await
            .is_err()
    );

    // Shutdown ends the process promptly.
    p.controller
        .shutdown(nomad_driver_rkt::proto::plugin::Empty {})
        .await
        .unwrap();
    let t = Instant::now();
    loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            assert!(s.success());
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "plugin did not exit within 2 s of Shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn not_root_is_undetected() {
    if !test_support::require_root("drops to nobody with setpriv") {
        return;
    }
    if !std::path::Path::new("/usr/bin/setpriv").exists() {
        test_support::skip("needs setpriv (util-linux)");
        return;
    }
    let rkt_dir = RktDir::new();
    let exe = env!("CARGO_BIN_EXE_nomad-driver-rkt");
    let mut p = Plugin::start_with(rkt_dir.path(), |c| {
        let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
        *c = {
            let mut n = std::process::Command::new("setpriv");
            n.args(["--reuid=65534", "--regid=65534", "--clear-groups", exe])
                .args(args);
            n.env("NOMAD_PLUGIN_MAGIC_COOKIE", COOKIE)
                .env("PLUGIN_PROTOCOL_VERSIONS", "2")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            n
        };
    })
    .await;
    let mut fp = p
        .driver
        .fingerprint(d::FingerprintRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = fp.message().await.unwrap().unwrap();
    assert_eq!(
        first.health,
        d::fingerprint_response::HealthState::Undetected as i32
    );
    assert_eq!(first.health_description, "Driver must run as root");
    assert!(first.attributes.is_empty());
}

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
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let out = std::process::Command::new("curl")
            .args(["-sf", "-m", "2", &format!("http://127.0.0.1:{host_port}/")])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the forwarded port never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
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
        &["-c", "trap '' INT TERM; while true; do sleep 0.1; done"],
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
    // The app ignores SIGINT: after the timeout the pod is killed.
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
    let alloc = Alloc::new("second");
    let cfg = command_config(&registry().image(), "/bin/sleep", &["1000"], Some("none"));
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    start(&mut p, task).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn tasks_outlive_a_killed_plugin_and_are_recovered() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let long = Alloc::new("long");
    let short = Alloc::new("short");
    let image = registry().image();
    let cfg_long = command_config(
        &image,
        "/bin/sh",
        &["-c", "trap 'exit 9' TERM; while true; do sleep 0.1; done"],
        Some("none"),
    );
    let cfg_short = command_config(
        &image,
        "/bin/sh",
        &["-c", "sleep 1.5; exit 5"],
        Some("none"),
    );
    let (t_long, t_short) = (long.task_config(cfg_long), short.task_config(cfg_short));
    let h_long = start(&mut p, t_long).await.handle.unwrap();
    let h_short = start(&mut p, t_short).await.handle.unwrap();

    p.kill(); // SIGKILL, as a crash
              // The short task ends while no plugin runs.
    let state: serde_json::Value = serde_json::from_slice(&h_short.driver_state).unwrap();
    let short_uuid = state["uuid"].as_str().unwrap().to_string();
    test_support::eventually(Duration::from_secs(10), "the short task to exit", || {
        rkt_ok(rkt_dir.path(), &["status", &short_uuid])
            .contains("state=exited")
            .then_some(())
    });

    let mut p = configured(rkt_dir.path()).await;
    for h in [&h_long, &h_short] {
        let mut h = h.clone();
        // After an agent restart the handle comes back without the driver config.
        h.config.as_mut().unwrap().msgpack_driver_config.clear();
        p.driver
            .recover_task(d::RecoverTaskRequest {
                task_id: String::new(),
                handle: Some(h.clone()),
            })
            .await
            .unwrap();
        // Recovering a task already tracked is fine.
        p.driver
            .recover_task(d::RecoverTaskRequest {
                task_id: String::new(),
                handle: Some(h),
            })
            .await
            .unwrap();
    }
    let id_short = h_short.config.as_ref().unwrap().id.clone();
    let id_long = h_long.config.as_ref().unwrap().id.clone();
    let w = tokio::time::timeout(Duration::from_secs(10), wait(&mut p, &id_short))
        .await
        .unwrap();
    assert_eq!(
        w.result.unwrap().exit_code,
        5,
        "the real exit code of a task that ended while no plugin ran"
    );
    let i = p
        .driver
        .inspect_task(d::InspectTaskRequest {
            task_id: id_long.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(i.task.unwrap().state, d::TaskState::Running as i32);
    p.driver
        .stop_task(d::StopTaskRequest {
            task_id: id_long.clone(),
            timeout: secs(5),
            signal: "SIGTERM".into(),
        })
        .await
        .unwrap();
    let w = wait(&mut p, &id_long).await;
    assert_eq!(w.result.unwrap().exit_code, 9);
    for id in [id_long, id_short] {
        destroy(&mut p, id).await;
    }
    assert_eq!(pods(rkt_dir.path()), "");
}

/// The image IDs in rkt's store.
fn images(rkt_dir: &std::path::Path) -> Vec<String> {
    rkt_ok(
        rkt_dir,
        &["image", "list", "--no-legend", "--full", "--fields=id"],
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

/// `gc { image = true  image_delay = "2s" }`: the image of a running task stays however long
/// it runs; once Nomad destroys the task, the image goes after the delay, also when the plugin
/// was killed in between and a new one took over. An image no task of the driver used (an
/// operator's `rkt fetch`) is never the driver's to remove.
#[tokio::test(flavor = "multi_thread")]
async fn unused_images_go_after_the_delay_even_across_a_plugin_restart() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let config = gc_plugin_config(true, "2s");
    let mut p = Plugin::start(rkt_dir.path()).await;
    p.base
        .set_config(set_config_request(config.clone(), true))
        .await
        .unwrap();
    registry().harness().push("multi", "demo/operators:latest");
    let operators = rkt_ok(
        rkt_dir.path(),
        &[
            "--insecure-options=image,http",
            "fetch",
            "--full",
            &registry().harness().image("demo/operators:latest"),
        ],
    );
    let operators = operators.trim().to_string();

    let alloc = Alloc::new("gc");
    let task = alloc.task_config(command_config(
        &registry().image(),
        "/bin/sleep",
        &["3600"],
        Some("none"),
    ));
    let id = task.id.clone();
    start(&mut p, task).await;
    let all = images(rkt_dir.path());
    assert_eq!(all.len(), 2, "{all:?}");
    let used = all.iter().find(|i| **i != operators).unwrap().clone();
    // In use for twice the delay (sweeps every half second): kept.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(images(rkt_dir.path()), all, "an image in use was removed");

    destroy(&mut p, id).await;
    assert_eq!(pods(rkt_dir.path()), "");
    assert!(
        images(rkt_dir.path()).contains(&used),
        "removed before the delay"
    );
    // The plugin dies; the delay passes while none runs.
    p.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(images(rkt_dir.path()).contains(&used));

    let mut p = Plugin::start(rkt_dir.path()).await;
    p.base
        .set_config(set_config_request(config, true))
        .await
        .unwrap();
    // Then it goes, and its blobs with it: what is left is the operator's image's.
    let cas = rkt_dir.path().join("cas");
    let info: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cas.join("images").join(&operators).join("info.json")).unwrap(),
    )
    .unwrap();
    let mut wanted: Vec<String> = info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&info["configDigest"]])
        .map(|d| {
            d.as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    wanted.sort();
    let blobs = || {
        let mut b: Vec<String> = std::fs::read_dir(cas.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        b.sort();
        b
    };
    test_support::eventually(
        Duration::from_secs(10),
        "the unused image and its blobs to be removed",
        || (images(rkt_dir.path()) == [operators.clone()] && blobs() == wanted).then_some(()),
    );
    rkt_ok(rkt_dir.path(), &["gc", "--grace-period=0s"]);
    drop(p);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_streaming_with_a_terminal() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = configured(rkt_dir.path()).await;
    let alloc = Alloc::new("shell");
    let cfg = command_config(&registry().image(), "/bin/sleep", &["1000"], Some("none"));
    let task = alloc.task_config(cfg);
    let id = task.id.clone();
    start(&mut p, task).await;
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
    tx.send(stdin(b"busybox sleep 100\n")).await.unwrap();
    let keys = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = keys.send(stdin(b"\x03")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
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
    while let Some(m) = tokio::time::timeout(Duration::from_secs(15), out.next())
        .await
        .unwrap()
    {
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
