//! `nomad-driver-rkt`: started by a Nomad client from its plugin_dir.
//!
//! Flags (the `args` of the agent's `plugin "nomad-driver-rkt"` block):
//!   --rkt=PATH                 the rkt binary (default: rkt on PATH)
//!   --rkt-dir=DIR              rkt's data directory (default: rkt's own, /var/lib/rkt)
//!   --rkt-local-config=DIR     rkt's --local-config: net.d, auth.d, registries.d
//!                              (default: rkt's own, /etc/rkt)
//!   --rkt-system-config=DIR    rkt's --system-config (default: rkt's own, /usr/lib/rkt)

use nomad_driver_rkt::backend::{rkt::Rkt, Driver};
use nomad_driver_rkt::proto::{base, drivers, plugin as gp};
use nomad_driver_rkt::{log, plugin, server};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
    // glibc gives every thread that allocates an arena of its own and keeps it: with a pod
    // prepared on a thread each, twenty tasks started at once would leave twenty arenas in
    // this long-lived process. Two are plenty for what it does.
    // SAFETY: mallopt before any other thread exists; it only changes the allocator's policy.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    if let Err(e) = plugin::check_launched_by_nomad() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let mut rkt_path = None;
    let mut rkt_dir = None;
    let (mut local_config, mut system_config) = (None, None);
    for arg in std::env::args().skip(1) {
        if let Some(p) = arg.strip_prefix("--rkt=") {
            rkt_path = Some(PathBuf::from(p));
        } else if let Some(d) = arg.strip_prefix("--rkt-dir=") {
            rkt_dir = Some(PathBuf::from(d));
        } else if let Some(d) = arg.strip_prefix("--rkt-local-config=") {
            local_config = Some(PathBuf::from(d));
        } else if let Some(d) = arg.strip_prefix("--rkt-system-config=") {
            system_config = Some(PathBuf::from(d));
        } else {
            eprintln!(
                "nomad-driver-rkt: unknown argument {arg:?}; it takes --rkt=PATH, --rkt-dir=DIR, --rkt-local-config=DIR and --rkt-system-config=DIR"
            );
            std::process::exit(1);
        }
    }
    // go-plugin servers ignore SIGINT: the plugin shares the agent's process group, and a
    // Ctrl-C meant for the agent must not take the plugin (tasks get default dispositions).
    // SAFETY: setting a signal disposition at start-up, before any thread exists.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(serve(rkt_path, rkt_dir, local_config, system_config));
    std::process::exit(code);
}

async fn serve(
    rkt_path: Option<PathBuf>,
    rkt_dir: Option<PathBuf>,
    local_config: Option<PathBuf>,
    system_config: Option<PathBuf>,
) -> i32 {
    // A missing rkt is reported by the fingerprint ("Failed to execute rkt version"), so
    // the plugin still starts and the agent does too.
    let mut rkt = Rkt::locate(rkt_path.clone(), rkt_dir.clone()).unwrap_or_else(|e| {
        log::warn(&e.to_string(), &[]);
        Rkt {
            path: rkt_path.unwrap_or_else(|| "rkt".into()),
            dir: rkt_dir,
            ..Default::default()
        }
    });
    rkt.local_config = local_config;
    rkt.system_config = system_config;
    let driver = Driver::new(rkt);
    driver.image_gc.spawn();
    let socket = plugin::socket_path();
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nomad-driver-rkt: listening on {}: {e}", socket.display());
            return 1;
        }
    };
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let router = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(
            plugin::Controller {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(plugin::Stdio))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(
            plugin::Broker,
        ))
        .add_service(base::base_plugin_server::BasePluginServer::new(
            server::Base {
                driver: driver.clone(),
            },
        ))
        .add_service(drivers::driver_server::DriverServer::new(
            server::DriverService { driver },
        ));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", plugin::handshake_line(&socket));
    let _ = out.flush();
    drop(out);
    log::info(
        "plugin started",
        &[("socket", &socket.display().to_string())],
    );
    let serving =
        router.serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener));
    // Shutdown: the reply goes out, then the process ends without waiting for the client to
    // hang up (Nomad SIGKILLs a plugin still there 2 s later). Tasks live on regardless.
    let stopped = async {
        shutdown.notified().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let code = tokio::select! {
        result = serving => match result {
            Ok(()) => 0,
            Err(e) => {
                log::error("serving", &[("error", &e.to_string())]);
                1
            }
        },
        () = stopped => 0,
    };
    let _ = std::fs::remove_file(&socket);
    code
}
