//! The protocol layer end to end, with no rkt: the plugin binary launched as Nomad launches
//! it, its handshake, go-plugin's services, the base plugin and the driver's schema RPCs, as a
//! Nomad client calls them. Runs anywhere (no root, nothing built but this crate).

mod common;

use common::*;
use nomad_driver_rkt::proto::{base, drivers as d, plugin as gp};
use std::time::Duration;
use tonic::Code;

/// Codes that make Nomad's client suspect the plugin died (it waits, then relaunches it):
/// an ordinary refusal must never use them.
fn assert_ordinary_error(s: &tonic::Status) {
    assert!(
        !matches!(s.code(), Code::Unavailable | Code::Cancelled),
        "{s:?}"
    );
}

/// The first answer of a new Fingerprint stream.
async fn first_fingerprint(p: &mut Plugin) -> d::FingerprintResponse {
    let mut fp = p
        .driver
        .fingerprint(d::FingerprintRequest {})
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(5), fp.message())
        .await
        .expect("the first fingerprint comes at once")
        .unwrap()
        .unwrap()
}

#[test]
fn refuses_to_run_outside_nomad() {
    for (cookie, versions, expect) in [
        (None, "2", "This binary is a plugin"),
        (Some("wrong"), "2", "This binary is a plugin"),
        (Some(COOKIE), "1", "Incompatible API version"),
    ] {
        let mut cmd = nomad_command(&["--rkt=/nonexistent/rkt"]);
        cmd.env("PLUGIN_PROTOCOL_VERSIONS", versions);
        match cookie {
            Some(c) => cmd.env("NOMAD_PLUGIN_MAGIC_COOKIE", c),
            None => cmd.env_remove("NOMAD_PLUGIN_MAGIC_COOKIE"),
        };
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{cookie:?} {versions}");
        assert!(out.stdout.is_empty(), "no handshake line");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_base_plugin_schemas_and_shutdown() {
    let mut p = Plugin::start_without_rkt().await;

    // 1|2|unix|<socket>|grpc| with an empty certificate field, the socket in the temp dir.
    assert_eq!(
        p.handshake,
        format!("1|2|unix|{}|grpc|", p.socket.display())
    );
    assert!(p.socket.as_os_str().len() < 108);
    {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(&p.socket).unwrap();
        assert!(meta.file_type().is_socket());
    }

    // What the fingerprint instance is asked.
    let info = p
        .base
        .plugin_info(base::PluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.r#type, base::PluginType::Driver as i32);
    assert_eq!(info.name, "rkt");
    assert_eq!(info.plugin_api_versions, ["v0.1.0"]);
    assert_eq!(info.plugin_version, env!("CARGO_PKG_VERSION"));
    let schema = p
        .base
        .config_schema(base::ConfigSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        schema.spec,
        Some(nomad_driver_rkt::hclspec::plugin_config())
    );

    // The validation instance's SetConfig (no nomad_config), then the long-lived one's; an
    // agent with no `config {}` block sends empty bytes.
    for (bytes, long_lived) in [
        (volumes_enabled_config(false.into()), false),
        (volumes_enabled_config(true.into()), true),
        (volumes_enabled_config(rmpv::Value::Nil), true),
        (Vec::new(), true),
    ] {
        p.base
            .set_config(set_config_request(bytes, long_lived))
            .await
            .unwrap();
    }
    // A configuration that cannot be used is accepted (an error here would only leave the
    // driver undetected, with no reason given) and reported by the fingerprint: unhealthy,
    // naming the field, so that the node says what is wrong and no task is placed.
    let unknown = rmpv::Value::Ext(0, vec![0]);
    for (bytes, why) in [
        (
            volumes_enabled_config(unknown),
            "\"volumes_enabled\" is an unknown value",
        ),
        (
            volumes_enabled_config(3.into()),
            "\"volumes_enabled\" must be a bool",
        ),
        (
            encode(&rmpv::Value::Map(vec![(
                "gc".into(),
                rmpv::Value::Map(vec![("image_delay".into(), "-3m".into())]),
            )])),
            "\"gc.image_delay\" is negative (\"-3m\")",
        ),
    ] {
        p.base
            .set_config(set_config_request(bytes, true))
            .await
            .unwrap();
        let f = first_fingerprint(&mut p).await;
        if is_root() {
            assert_eq!(
                f.health,
                d::fingerprint_response::HealthState::Unhealthy as i32,
                "{f:?}"
            );
            assert!(
                f.health_description
                    .starts_with(&format!("invalid plugin configuration: {why}")),
                "{f:?}"
            );
        }
    }
    // A good configuration makes it healthy again (here: undetected, as there is no rkt).
    p.base
        .set_config(set_config_request(Vec::new(), true))
        .await
        .unwrap();
    let f = first_fingerprint(&mut p).await;
    assert_eq!(
        f.health,
        d::fingerprint_response::HealthState::Undetected as i32,
        "{f:?}"
    );

    // What a task runner asks first.
    let ts = p
        .driver
        .task_config_schema(d::TaskConfigSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ts.spec, Some(nomad_driver_rkt::hclspec::task_config()));
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
    assert!(!caps.must_create_network);

    // go-plugin's health service, under the name "plugin".
    let h = p
        .health()
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

    // Shutdown: the reply, then the process ends with 0 well within Nomad's 2 s, and
    // removes its socket.
    p.controller.shutdown(gp::Empty {}).await.unwrap();
    let status = p.wait_exit(Duration::from_secs(2));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "exit within 2 s");
    assert!(!p.socket.exists(), "socket left behind");

    // Everything on stderr was an hclog JSON line, with hclog's timestamp layout.
    let lines = p.stderr_lines.lock().unwrap().clone();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {line}");
        });
        assert!(
            ["trace", "debug", "info", "warn", "error"].contains(&v["@level"].as_str().unwrap()),
            "{line}"
        );
        assert!(v["@message"].is_string(), "{line}");
        let ts = v["@timestamp"].as_str().unwrap();
        // 2006-01-02T15:04:05.000000Z07:00
        assert_eq!(ts.len(), 27, "{ts}");
        assert_eq!(
            (&ts[10..11], &ts[19..20], &ts[26..]),
            ("T", ".", "Z"),
            "{ts}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn go_plugin_services_and_long_lived_streams_stay_open() {
    let mut p = Plugin::start_without_rkt().await;
    let quiet = Duration::from_millis(300);

    // GRPCStdio: opened, and nothing to say.
    let mut stdio = gp::grpc_stdio_client::GrpcStdioClient::new(p.channel.clone())
        .stream_stdio(())
        .await
        .unwrap()
        .into_inner();
    assert!(tokio::time::timeout(quiet, stdio.message()).await.is_err());

    // GRPCBroker: the stream is accepted and left idle.
    let mut broker = gp::grpc_broker_client::GrpcBrokerClient::new(p.channel.clone())
        .start_stream(tokio_stream::pending::<gp::ConnInfo>())
        .await
        .unwrap()
        .into_inner();
    assert!(tokio::time::timeout(quiet, broker.message()).await.is_err());

    // Fingerprint: the first answer at once (no rkt: undetected, saying why); then open.
    let mut fp = p
        .driver
        .fingerprint(d::FingerprintRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), fp.message())
        .await
        .expect("the first fingerprint comes at once")
        .unwrap()
        .unwrap();
    assert_eq!(
        first.health,
        d::fingerprint_response::HealthState::Undetected as i32
    );
    assert!(!first.health_description.is_empty());
    assert!(tokio::time::timeout(quiet, fp.message()).await.is_err());

    // TaskEvents: open and quiet.
    let mut events = p
        .driver
        .task_events(d::TaskEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(tokio::time::timeout(quiet, events.message()).await.is_err());

    // A task config Nomad could not have validated never reaches rkt: refused as a plain
    // (unrecoverable) error naming the problem.
    let task = |driver_config: Vec<u8>| d::StartTaskRequest {
        task: Some(d::TaskConfig {
            id: "a/t/00000000".into(),
            name: "t".into(),
            msgpack_driver_config: driver_config,
            ..Default::default()
        }),
    };
    let e = p
        .driver
        .start_task(task(task_config(&[])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unknown);
    assert_eq!(
        e.message(),
        "failed to decode driver config: Missing required attribute \"image\""
    );
    let unknown = rmpv::Value::Ext(0, vec![0]);
    let e = p
        .driver
        .start_task(task(task_config(&[
            ("image", "x".into()),
            ("args", unknown),
        ])))
        .await
        .unwrap_err();
    assert_ordinary_error(&e);
    assert!(
        e.message().contains("\"args\" is an unknown value"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_connection_after_the_client_went_away() {
    // After an agent crash Nomad reattaches: a fresh connection to the same socket, and
    // PluginInfo only. The plugin must outlive its first client.
    let mut p = Plugin::start_without_rkt().await;
    p.base
        .plugin_info(base::PluginInfoRequest {})
        .await
        .unwrap();
    let socket = p.socket.clone();
    p.base = base::base_plugin_client::BasePluginClient::new(connect(&socket).await);
    p.driver = d::driver_client::DriverClient::new(connect(&socket).await);
    p.controller = gp::grpc_controller_client::GrpcControllerClient::new(connect(&socket).await);
    p.channel = connect(&socket).await;
    // A plugin that dies of the reconnection dies at once: a moment is all it can take.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(p.child.try_wait().unwrap().is_none(), "the plugin exited");
    let info = p
        .base
        .plugin_info(base::PluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "rkt");
    p.controller.shutdown(gp::Empty {}).await.unwrap();
    assert!(p
        .wait_exit(Duration::from_secs(2))
        .is_some_and(|s| s.success()));
}
