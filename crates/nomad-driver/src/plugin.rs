//! The go-plugin side of the plugin: the magic cookie, the unix socket, the handshake line,
//! and the services every go-plugin server has (controller, stdio, broker, health).

use crate::proto::plugin as gp;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

pub const MAGIC_COOKIE_KEY: &str = "NOMAD_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255";
/// Nomad's application protocol version for plugins (0.9 and later).
pub const APP_PROTOCOL: &str = "2";

/// Why the plugin will not serve: it was not started by a Nomad agent that speaks its
/// protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotLaunched {
    /// No magic cookie: someone ran the binary by hand.
    ByHand,
    /// The agent offered only these protocol versions.
    IncompatibleProtocol { client_versions: String },
}

impl std::fmt::Display for NotLaunched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotLaunched::ByHand => f.write_str(
                "This binary is a plugin. These are not meant to be executed directly.\n\
                 Please execute the program that consumes these plugins, which will\n\
                 load any plugins automatically",
            ),
            NotLaunched::IncompatibleProtocol { client_versions } => write!(
                f,
                "Incompatible API version with plugin. Plugin version: {APP_PROTOCOL}, Client versions: {client_versions}"
            ),
        }
    }
}

impl std::error::Error for NotLaunched {}

/// Refuses to run outside Nomad, as go-plugin servers do.
pub fn check_launched_by_nomad() -> Result<(), NotLaunched> {
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        return Err(NotLaunched::ByHand);
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        if !versions.split(',').any(|v| v.trim() == APP_PROTOCOL) {
            return Err(NotLaunched::IncompatibleProtocol {
                client_versions: versions,
            });
        }
    }
    Ok(())
}

/// A fresh socket path, in PLUGIN_UNIX_SOCKET_DIR if the host set one.
pub fn socket_path() -> PathBuf {
    let dir = std::env::var_os("PLUGIN_UNIX_SOCKET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!("plugin{}{nanos}", std::process::id()))
}

/// The first (and only) line the plugin writes to stdout.
pub fn handshake_line(socket: &std::path::Path) -> String {
    format!("1|{APP_PROTOCOL}|unix|{}|grpc|", socket.display())
}

/// GRPCController: Shutdown ends the server (the tasks keep running).
pub struct Controller {
    pub shutdown: Arc<Notify>,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        crate::log::info("shutting down on the client's request", &[]);
        self.shutdown.notify_one();
        Ok(Response::new(gp::Empty {}))
    }
}

/// GRPCStdio: the plugin has nothing to forward; the stream stays open and quiet.
pub struct Stdio;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<gp::StdioData>;

    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// GRPCBroker: Nomad's drivers never use it; accepted and left idle.
pub struct Broker;

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<gp::ConnInfo>;

    async fn start_stream(
        &self,
        _: Request<Streaming<gp::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_format() {
        assert_eq!(
            handshake_line(std::path::Path::new("/tmp/plugin123")),
            "1|2|unix|/tmp/plugin123|grpc|"
        );
        assert!(socket_path().as_os_str().len() < 108);
    }
}
