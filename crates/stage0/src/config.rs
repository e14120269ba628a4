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
    /// `--user-config`: a third configuration directory, over the local one.
    pub user_config: Option<PathBuf>,
    /// `--trust-keys-from-https`.
    pub trust_keys_from_https: bool,
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
    fn debug(&self, message: &str) {
        self.inner.debug(message);
    }
    fn resumed(&self, what: &str, offset: u64) {
        self.inner.resumed(what, offset);
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
            user_config: None,
            trust_keys_from_https: false,
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

    /// The configuration directories, lowest precedence first: system, local, user. Every
    /// kind of configuration (`auth.d`, `net.d`, `registries.d`, `trustedkeys`, `paths.d`,
    /// `stage1.d`)
    /// is read from each, a later one winning, as rkt documented.
    pub fn config_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.system_config.clone(), self.local_config.clone()];
        dirs.extend(self.user_config.clone());
        dirs
    }

    /// `stage1.d`: the default stage1 of pods given no `--stage1-*` flag.
    pub fn stage1_conf(&self) -> Result<crate::stage1_conf::Stage1Conf> {
        crate::stage1_conf::Stage1Conf::read(&self.config_dirs())
    }

    /// `registries.d`: mirrors, and the default registry of short names.
    pub fn registries(&self) -> Result<image::registries::Registries> {
        Ok(image::registries::Registries::load(&self.config_dirs())?)
    }

    /// The trusted keys of this configuration (`rkt trust`).
    pub fn keystore(&self) -> image::trust::Keystore {
        image::trust::Keystore::new(&self.config_dirs(), &self.local_config)
    }

    /// A fetcher for this store and configuration.
    pub fn fetcher(&self, policy: PullPolicy) -> Result<Fetcher> {
        let store = image::store::Store::open(&self.dir)?;
        let mut credentials = image::auth::Credentials::load(&self.config_dirs())
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
            trust_keys_from_https: self.trust_keys_from_https,
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
                // As rkt 1.30 grouped them: the on-disk check is a run-time one.
                "run" | "all-run" => {
                    o.ondisk = true;
                    o.capabilities = true;
                    o.paths = true;
                    o.seccomp = true;
                }
                "all-fetch" => {
                    o.image = true;
                    o.tls = true;
                    o.http = true;
                    o.pubkey = true;
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

/// The `.json` files of one kind's subdirectory (`paths.d`, `stage1.d`) of a configuration
/// directory, in name order; none when it does not exist. rkt did not recurse, and neither
/// does this.
pub(crate) fn config_files(dir: &std::path::Path, kind: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(kind)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    files
}

/// rkt's `paths.d`: where rkt keeps its data (`data`) when `--dir` is not given, read from
/// `dirs` (system, local, user; a later file wins). `stage1-images` is refused: this rkt
/// has no stage1 images to look for.
pub fn data_dir_from_paths(dirs: &[PathBuf]) -> Result<Option<PathBuf>> {
    let mut data = None;
    for dir in dirs {
        for f in config_files(dir, "paths.d") {
            let bad = |why: String| {
                Error::invalid(format!(
                    "{}: {why}; a paths file is {{\"rktKind\":\"paths\",\"rktVersion\":\"v1\",\"data\":\"/path\"}}",
                    f.display()
                ))
            };
            let text = std::fs::read_to_string(&f).map_err(|e| bad(e.to_string()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            if v["rktKind"] != "paths" || v["rktVersion"] != "v1" {
                return Err(bad("not rktKind \"paths\", rktVersion \"v1\"".into()));
            }
            for (key, value) in v.as_object().into_iter().flatten() {
                match key.as_str() {
                    "rktKind" | "rktVersion" => {}
                    "data" => {
                        let p = value
                            .as_str()
                            .filter(|p| p.starts_with('/'))
                            .ok_or_else(|| bad("\"data\" must be an absolute path".into()))?;
                        data = Some(PathBuf::from(p));
                    }
                    "stage1-images" => {
                        return Err(bad("\"stage1-images\": this rkt's stage1 is built in (rkt-stage1 beside rkt) and it reads no stage1 images; remove the key".into()))
                    }
                    other => return Err(bad(format!("unknown key {other:?}"))),
                }
            }
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_d_moves_the_data_directory_and_refuses_what_it_cannot_do() {
        let sys = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let write = |dir: &std::path::Path, name: &str, text: &str| {
            std::fs::create_dir_all(dir.join("paths.d")).unwrap();
            std::fs::write(dir.join("paths.d").join(name), text).unwrap();
        };
        let dirs = vec![sys.path().to_path_buf(), local.path().to_path_buf()];
        assert_eq!(data_dir_from_paths(&dirs).unwrap(), None);
        write(
            sys.path(),
            "a.json",
            r#"{"rktKind":"paths","rktVersion":"v1","data":"/sys-data"}"#,
        );
        write(
            local.path(),
            "b.json",
            r#"{"rktKind":"paths","rktVersion":"v1","data":"/srv/rkt"}"#,
        );
        assert_eq!(data_dir_from_paths(&dirs).unwrap(), Some("/srv/rkt".into()));
        write(
            local.path(),
            "c.json",
            r#"{"rktKind":"paths","rktVersion":"v1","stage1-images":"/x"}"#,
        );
        let e = data_dir_from_paths(&dirs).unwrap_err().to_string();
        assert!(e.contains("stage1-images") && e.contains("c.json"), "{e}");
        write(
            local.path(),
            "c.json",
            r#"{"rktKind":"paths","rktVersion":"v1","data":"rel"}"#,
        );
        assert!(data_dir_from_paths(&dirs).is_err());
    }
}
