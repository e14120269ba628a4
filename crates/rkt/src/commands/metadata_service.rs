//! `rkt metadata-service [--listen-port=PORT]`: the appc metadata service for pods run with
//! `--mds-register`, until SIGINT or SIGTERM. The service lives in the `mds` crate.

use anyhow::{Context, Result};

pub fn run(listen_port: u16) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        eprintln!("metadata service starting...");
        let socket = mds::socket_path();
        let listeners = mds::bind(listen_port, &socket)
            .await
            .with_context(|| format!("registration socket {}", socket.display()))?;
        eprintln!("metadata service running...");
        mds::serve(listeners, super::api_service::stopped())
            .await
            .context("serving the metadata service")?;
        eprintln!("metadata service exiting...");
        Ok(())
    })
}
