//! The rkt installation the driver works with: its data directory and configuration, read
//! and changed through the libraries (`pod` for pod states, `stage0` for stopping and
//! removing), as `rkt status`, `stop` and `rm` do. The `rkt` binary itself is run only where
//! a process of its own is the point: `rkt version` for the fingerprint (which rkt is
//! installed), `rkt enter` for exec sessions; the supervisor runs `rkt net-teardown`.

use pod::{Pods, State};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Rkt {
    pub path: PathBuf,
    /// `--dir`; rkt's default (/var/lib/rkt) when None.
    pub dir: Option<PathBuf>,
    /// `--local-config` (net.d, auth.d, registries.d); rkt's default (/etc/rkt) when None.
    pub local_config: Option<PathBuf>,
    /// `--system-config`; rkt's default (/usr/lib/rkt) when None.
    pub system_config: Option<PathBuf>,
}

/// What the driver reads of a pod.
#[derive(Debug, Clone)]
pub struct PodStatus {
    pub state: State,
    /// The address on its first network, once it has one.
    pub ip: Option<String>,
    /// Its (first) app's exit code, once it has exited.
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
}

impl Rkt {
    /// rkt as the original driver found it: on PATH (or the path given), symlinks resolved.
    pub fn locate(given: Option<PathBuf>, dir: Option<PathBuf>) -> Result<Rkt, RktError> {
        let path = match given {
            Some(p) => p,
            None => std::env::var_os("PATH")
                .and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join("rkt"))
                        .find(|p| p.is_file())
                })
                .ok_or(RktError::NotOnPath)?,
        };
        let path = std::fs::canonicalize(&path).map_err(|source| RktError::Unresolvable {
            path: path.clone(),
            source,
        })?;
        Ok(Rkt {
            path,
            dir,
            ..Default::default()
        })
    }

    /// rkt's data directory: `--dir`, or rkt's default.
    pub fn data_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(layout::DEFAULT_DIR))
    }

    /// What stage0 works with for this rkt's directory and configuration (rkt's defaults
    /// for the rest).
    pub fn stage0_config(&self) -> stage0::Config {
        let mut config = stage0::Config::new(self.data_dir());
        if let Some(c) = &self.local_config {
            config.local_config = c.clone();
        }
        if let Some(c) = &self.system_config {
            config.system_config = c.clone();
        }
        config.rkt = Some(self.path.clone());
        config
    }

    /// `rkt` with this installation's global flags, then `args`.
    fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.path);
        if let Some(d) = &self.dir {
            c.arg(format!("--dir={}", d.display()));
        }
        if let Some(d) = &self.local_config {
            c.arg(format!("--local-config={}", d.display()));
        }
        if let Some(d) = &self.system_config {
            c.arg(format!("--system-config={}", d.display()));
        }
        c.args(args).stdin(Stdio::null()).kill_on_drop(true);
        default_signals(c.as_std_mut());
        c
    }

    /// `rkt version`'s output: which rkt is installed, for the fingerprint.
    pub async fn version(&self) -> Result<String, RktError> {
        let out = self
            .command(&["version"])
            .output()
            .await
            .map_err(|source| RktError::Spawn {
                path: self.path.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(RktError::Exited {
                status: out.status.code(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `rkt enter UUID CMD…`: a command in a running pod, confined like its app.
    pub fn enter_command(&self, uuid: &str, cmd: &[String]) -> Command {
        let mut args = vec!["enter".to_string(), uuid.to_string()];
        args.extend(cmd.iter().cloned());
        self.command(&args)
    }

    /// Runs `f` on the pods of this store, off the async runtime (it reads files and may
    /// wait on locks).
    async fn with_pods<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Pods) -> stage0::Result<T> + Send + 'static,
    ) -> stage0::Result<T> {
        let dir = self.data_dir();
        tokio::task::spawn_blocking(move || f(&Pods::open(&dir)?))
            .await
            .map_err(|e| stage0::Error::failed(format!("reading pods: {e}")))?
    }

    pub async fn status(&self, uuid: &str) -> stage0::Result<PodStatus> {
        let uuid = uuid.to_string();
        self.with_pods(move |pods| {
            let pod = pods.find(&uuid)?;
            let first_app = pod
                .manifest()
                .ok()
                .and_then(|m| m.apps.first().map(|a| a.name.clone()));
            let exit_code = first_app.as_deref().and_then(|a| pod.exit_code(a));
            let oom_killed = first_app.as_deref().is_some_and(|a| {
                pod.dir()
                    .app_marker(a, layout::pod_dir::Marker::OomKilled)
                    .exists()
            });
            let ip = net::read_infos(&pod.path)
                .first()
                .and_then(|i| i.ip)
                .map(|ip| ip.to_string());
            Ok(PodStatus {
                state: pod.state,
                ip,
                exit_code,
                oom_killed,
            })
        })
        .await
    }

    /// Image port name → container port, for every app of the pod.
    pub async fn ports(&self, uuid: &str) -> stage0::Result<BTreeMap<String, u16>> {
        let uuid = uuid.to_string();
        self.with_pods(move |pods| {
            let manifest = pods
                .find(&uuid)
                .and_then(|p| p.manifest())
                .map_err(|e| stage0::Error::from(e).context("could not get pod manifest"))?;
            Ok(manifest
                .apps
                .iter()
                .flat_map(|a| &a.app.ports)
                .map(|p| (p.name.clone(), p.port))
                .collect())
        })
        .await
    }

    /// Stops the pod (`force`: SIGKILL at once); a pod that is no longer running is fine.
    pub async fn stop(&self, uuid: &str, force: bool) -> stage0::Result<()> {
        let uuid = uuid.to_string();
        self.with_pods(move |pods| {
            let pod = pods.find(&uuid)?;
            match stage0::lifecycle::stop(pods, &pod, force) {
                Ok(left) => {
                    network_left("stop", &uuid, left);
                    Ok(())
                }
                Err(e) if pod.state != State::Running => {
                    if e.kind() != stage0::Kind::Conflict {
                        network_left("stop", &uuid, Some(e));
                    }
                    Ok(())
                }
                Err(e) => Err(e.context(format_args!("stopping pod {uuid}"))),
            }
        })
        .await
    }

    /// Removes an exited pod and everything it holds.
    pub async fn rm(&self, uuid: &str) -> stage0::Result<()> {
        let uuid = uuid.to_string();
        self.with_pods(move |pods| {
            let pod = pods.find(&uuid)?;
            let left = stage0::lifecycle::remove(&pod)
                .map_err(|e| e.context(format_args!("removing pod {uuid}")))?;
            network_left("rm", &uuid, left);
            Ok(())
        })
        .await
    }
}

/// Why rkt itself could not be found or run.
#[derive(Debug)]
pub enum RktError {
    /// No `rkt` on PATH, and no path given.
    NotOnPath,
    /// The path given (or found) does not resolve.
    Unresolvable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The binary could not be started.
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    /// It ran, and failed.
    Exited { status: Option<i32>, stderr: String },
}

impl std::fmt::Display for RktError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RktError::NotOnPath => {
                f.write_str("failed to resolve path to \"rkt\" executable: not found in $PATH")
            }
            RktError::Unresolvable { path, source } => write!(
                f,
                "failed to resolve path to {:?} executable: {source}",
                path.display()
            ),
            RktError::Spawn { path, source } => write!(f, "running {}: {source}", path.display()),
            RktError::Exited { status, stderr } => write!(f, "exit status {status:?}: {stderr}"),
        }
    }
}

// The OS error is in the message already; `source()` does not repeat it.
impl std::error::Error for RktError {}

/// A pod's network that could not be undone, in the plugin's log (the pod is stopped or
/// removed all the same; `rkt gc` retries).
fn network_left(op: &str, uuid: &str, left: Option<stage0::Error>) {
    if let Some(e) = left {
        let e = e.to_string();
        crate::log::warn(op, &[("pod", uuid), ("error", &e)]);
    }
}

/// Whether `pid` is the supervisor of pod `uuid` (and not a process that reused the PID).
pub fn is_supervisor(pid: i32, uuid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(uuid))
        .unwrap_or(false)
}

/// Gives a child default signal dispositions and an empty mask: the plugin ignores SIGINT
/// (as go-plugin servers do), and what it starts, tasks and `rkt enter` sessions alike, must
/// not inherit that.
pub fn default_signals(c: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            for sig in 1..32 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            Ok(())
        });
    }
}
