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
    /// Credentials beyond `auth.d`: given for this operation (a Nomad task's `auth {}`), and
    /// Docker's files and helpers.
    pub auth: RegistryAuth,
    /// The longest a fetch may take in all (Nomad's `image_pull_timeout`); None: no limit.
    pub pull_timeout: Option<Duration>,
    /// A fetch that makes no progress this long is cancelled (`pull_activity_timeout`).
    pub pull_activity_timeout: Option<Duration>,
    /// When the fetch under way last made progress.
    activity: Arc<Activity>,
}

/// When a fetch last made progress (a download started, advanced or finished).
#[derive(Debug)]
struct Activity {
    since: std::time::Instant,
    /// Milliseconds after `since`.
    last: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            since: std::time::Instant::now(),
            last: 0.into(),
        }
    }

    fn touch(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
        self.since
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

/// Forwards progress to where it goes, noting each step as activity.
struct Watched {
    inner: Arc<dyn Progress>,
    activity: Arc<Activity>,
}

impl Progress for Watched {
    fn start(&self, what: &str, total: Option<u64>) {
        self.activity.touch();
        self.inner.start(what, total);
    }
    fn advance(&self, what: &str, bytes: u64) {
        self.activity.touch();
        self.inner.advance(what, bytes);
    }
    fn note(&self, message: &str) {
        self.inner.note(message);
    }
    fn finish(&self, what: &str) {
        self.activity.touch();
        self.inner.finish(what);
    }
}

/// Credentials beyond rkt's `auth.d`.
#[derive(Clone, Default, Debug)]
pub struct RegistryAuth {
    /// For a registry host (`host[:port]`), ahead of every other source.
    pub given: Vec<(String, image::auth::Credential)>,
    /// A Docker `config.json` and credential helper, asked before `auth.d`.
    pub docker: Option<image::docker_config::DockerCredentials>,
    /// Credentials a registry refuses are dropped and the fetch tried anonymously.
    pub soft_fail: bool,
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
            auth: RegistryAuth::default(),
            pull_timeout: None,
            pull_activity_timeout: None,
            activity: Arc::new(Activity::new()),
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
        let mut credentials =
            image::auth::Credentials::load(&self.system_config, &self.local_config)
                .map_err(|e| Error::invalid(format!("{e:#}")))?;
        if let Some(d) = &self.auth.docker {
            credentials.use_docker(d.clone());
        }
        for (host, c) in &self.auth.given {
            credentials.give(host, c.clone());
        }
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
            progress: Arc::new(Watched {
                inner: self.progress.clone(),
                activity: self.activity.clone(),
            }),
            parallel: 4,
            debug: self.debug,
            keystore: self.keystore(),
            verify: !self.insecure.image,
            auth_soft_fail: self.auth.soft_fail,
        })
    }

    /// Fetches `image` into the store; its image ID. Blocks (on a runtime of its own).
    pub fn fetch(&self, image: &str, policy: PullPolicy) -> Result<String> {
        let fetcher = self.fetcher(policy)?;
        self.block_on(fetcher.fetch(image))
    }

    /// Runs a fetch to its end on a runtime of its own, abandoning it (every download
    /// stops) when it outlasts [`Config::pull_timeout`] or makes no progress for
    /// [`Config::pull_activity_timeout`].
    pub(crate) fn block_on<T>(
        &self,
        fetch: impl std::future::Future<Output = image::Result<T>>,
    ) -> Result<T> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::from(e).context("starting the async runtime"))?;
        rt.block_on(async {
            tokio::select! {
                r = fetch => Ok(r?),
                e = self.deadline() => Err(e),
                e = self.stall() => Err(e),
            }
        })
    }

    async fn deadline(&self) -> Error {
        match self.pull_timeout {
            Some(t) => {
                tokio::time::sleep(t).await;
                Error::retryable(format!(
                    "the image download did not finish within {}s (image_pull_timeout); it was abandoned",
                    t.as_secs()
                ))
            }
            None => std::future::pending().await,
        }
    }

    /// Returns when the fetch has made no progress for the activity timeout.
    async fn stall(&self) -> Error {
        let Some(limit) = self.pull_activity_timeout else {
            return std::future::pending().await;
        };
        self.activity.touch();
        loop {
            let idle = self.activity.idle();
            if idle >= limit {
                return Error::retryable(format!(
                    "the image download made no progress for {}s (pull_activity_timeout); it was cancelled",
                    limit.as_secs()
                ));
            }
            tokio::time::sleep((limit - idle).min(Duration::from_secs(1))).await;
        }
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
