//! Where rkt keeps its state and configuration, what `--insecure-options` relaxed, and how
//! images are fetched: what every stage0 operation is given.

use crate::error::{Error, Result};
use image::fetch::{Fetcher, Progress, PullPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What every stage0 operation works with.
#[derive(Clone)]
pub struct Config {
    /// rkt's data directory (`--dir`, default /var/lib/rkt): pods and the image store.
    pub dir: PathBuf,
    /// `--local-config` (default /etc/rkt) and `--system-config` (default /usr/lib/rkt):
    /// net.d, auth.d, registries.d.
    pub local_config: PathBuf,
    pub system_config: PathBuf,
    pub insecure: InsecureOptions,
    pub debug: bool,
    /// Where image download progress goes.
    pub progress: Arc<dyn Progress>,
    /// Longest wait for a silent registry, per request (default: the registry client's).
    pub registry_timeout: Option<Duration>,
    /// The `rkt` binary: run as `rkt net-teardown` by the supervisor, with `rkt-stage1`
    /// beside it. Default: this process's own executable.
    pub rkt: Option<PathBuf>,
}

impl Config {
    /// rkt's defaults, with `dir` as the data directory and progress reported nowhere.
    pub fn new(dir: impl Into<PathBuf>) -> Config {
        Config {
            dir: dir.into(),
            local_config: PathBuf::from(layout::DEFAULT_LOCAL_CONFIG),
            system_config: PathBuf::from(layout::DEFAULT_SYSTEM_CONFIG),
            insecure: InsecureOptions::default(),
            debug: false,
            progress: Arc::new(image::fetch::NoProgress),
            registry_timeout: None,
            rkt: None,
        }
    }

    pub fn rkt_binary(&self) -> Result<PathBuf> {
        match &self.rkt {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe()
                .map_err(|e| Error::from(e).context("finding the rkt binary")),
        }
    }

    /// `registries.d`: mirrors, and the default registry of short names.
    pub fn registries(&self) -> Result<image::registries::Registries> {
        Ok(image::registries::Registries::load(
            &self.system_config,
            &self.local_config,
        )?)
    }

    /// The trusted keys of this configuration (`rkt trust`).
    pub fn keystore(&self) -> image::trust::Keystore {
        image::trust::Keystore::new(&self.system_config, &self.local_config)
    }

    /// A fetcher for this store and configuration.
    pub fn fetcher(&self, policy: PullPolicy) -> Result<Fetcher> {
        let store = image::store::Store::open(&self.dir)?;
        let credentials = image::auth::Credentials::load(&self.system_config, &self.local_config)
            .map_err(|e| Error::invalid(format!("{e:#}")))?;
        let registries = self.registries()?;
        let mut options = image::registry::Options {
            allow_http: self.insecure.http,
            skip_tls_verify: self.insecure.tls,
            ..Default::default()
        };
        if let Some(t) = self.registry_timeout {
            options.timeout = t;
        }
        Ok(Fetcher {
            store: Arc::new(store),
            credentials,
            registries,
            options,
            policy,
            progress: self.progress.clone(),
            parallel: 4,
            debug: self.debug,
            keystore: self.keystore(),
            verify: !self.insecure.image,
        })
    }

    /// Fetches `image` into the store; its image ID. Blocks (on a runtime of its own).
    pub fn fetch(&self, image: &str, policy: PullPolicy) -> Result<String> {
        let fetcher = self.fetcher(policy)?;
        self.block_on(fetcher.fetch(image))
    }

    /// Runs a fetch to its end on a runtime of its own.
    pub(crate) fn block_on<T>(
        &self,
        fetch: impl std::future::Future<Output = image::Result<T>>,
    ) -> Result<T> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::from(e).context("starting the async runtime"))?;
        Ok(rt.block_on(fetch)?)
    }
}

/// What `--insecure-options` switched off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsecureOptions {
    pub image: bool,
    pub tls: bool,
    pub ondisk: bool,
    pub http: bool,
    pub pubkey: bool,
    pub capabilities: bool,
    pub paths: bool,
    pub seccomp: bool,
}

impl InsecureOptions {
    pub fn parse(s: &str) -> std::result::Result<InsecureOptions, String> {
        let mut o = InsecureOptions::default();
        for opt in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match opt {
                "none" => {}
                "image" => o.image = true,
                "tls" => o.tls = true,
                "ondisk" => o.ondisk = true,
                "http" => o.http = true,
                "pubkey" => o.pubkey = true,
                "capabilities" => o.capabilities = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "run" | "all-run" => {
                    o.capabilities = true;
                    o.paths = true;
                    o.seccomp = true;
                }
                "all-fetch" => {
                    o.image = true;
                    o.tls = true;
                    o.http = true;
                }
                "all" => {
                    o = InsecureOptions {
                        image: true,
                        tls: true,
                        ondisk: true,
                        http: true,
                        pubkey: true,
                        capabilities: true,
                        paths: true,
                        seccomp: true,
                    }
                }
                other => {
                    return Err(format!(
                        "unknown insecure option {other:?}; valid are none, image, tls, ondisk, http, pubkey, capabilities, paths, seccomp, run, all-fetch, all-run, all"
                    ))
                }
            }
        }
        Ok(o)
    }

    /// Fails with rkt's message when a Docker image (a `docker://` reference or a short
    /// name) would be fetched without `--insecure-options=image`.
    pub fn require_image(&self, image: &str) -> Result<()> {
        use image::reference::{classify, ImageArg};
        let docker = matches!(classify(image), ImageArg::Docker | ImageArg::ShortName);
        if docker && !self.image {
            return Err(Error::invalid(format!(
                "image {image:?}: signature verification for docker images is not supported; pass --insecure-options=image to fetch it unverified"
            )));
        }
        Ok(())
    }
}
