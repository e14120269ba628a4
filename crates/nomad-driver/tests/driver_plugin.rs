//! The plugin itself: its schemas, capabilities and fingerprint, what it says when not
//! root, tasks that outlive it and are recovered by a new instance, and the images it
//! collects.

mod common;

use common::tasks::*;
use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::time::{Duration, Instant};

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
    let exited = p
        .wait_exit(Duration::from_secs(2))
        .expect("plugin did not exit within 2 s of Shutdown");
    assert!(exited.success());
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
