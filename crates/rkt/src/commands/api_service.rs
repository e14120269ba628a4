//! `rkt api-service [--listen=ADDR]`: rkt's read-only gRPC API (v1alpha) over this rkt
//! directory's pods and images, on rkt's default address `localhost:15441`, until SIGINT or
//! SIGTERM. The service lives in the `api` crate.

use crate::flags::GlobalArgs;
use anyhow::{Context, Result};

/// rkt's default listen address.
pub const DEFAULT_LISTEN: &str = "localhost:15441";

pub fn run(global: &GlobalArgs, listen: &str) -> Result<()> {
    let dir = global.data_dir()?;
    let flags = api::Flags {
        dir: dir.clone(),
        system_config: global.system_config.display().to_string(),
        local_config: global.local_config.display().to_string(),
        user_config: global
            .user_config
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        insecure_options: insecure_string(&global.insecure_options),
        trust_keys_from_https: global.trust_keys_from_https,
    };
    // Nothing to show in the store yet is fine, but a directory rkt cannot use is not.
    pod::Pods::open(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        eprintln!("API service starting...");
        let listener = bind(listen).await?;
        eprintln!("Listening on {listen}");
        eprintln!("API service running");
        api::serve(api::Service::new(flags), listener, stopped())
            .await
            .context("serving the API")?;
        eprintln!("API service exiting...");
        Ok(())
    })
}

/// The first address `listen` resolves to (IPv4 first, as Go's resolver prefers it).
async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    let mut addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("--listen={listen}: not an address to listen on (HOST:PORT)"))?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    let addr = addrs
        .first()
        .with_context(|| format!("--listen={listen}: resolves to no address"))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not open tcp socket on {addr} (--listen={listen})"))
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// `--insecure-options` as rkt printed it: the options in effect, or `none`.
fn insecure_string(o: &stage0::InsecureOptions) -> String {
    let set: Vec<&str> = [
        (o.image, "image"),
        (o.tls, "tls"),
        (o.ondisk, "ondisk"),
        (o.http, "http"),
        (o.pubkey, "pubkey"),
        (o.capabilities, "capabilities"),
        (o.paths, "paths"),
        (o.seccomp, "seccomp"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if set.is_empty() {
        "none".into()
    } else {
        set.join(",")
    }
}
