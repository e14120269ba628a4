//! The `rkt` command line, as the driver uses it: everything goes through rkt's documented
//! commands and formats (`status --format=json`, `cat-manifest`, `stop`, `rm`, `enter`), so the
//! driver works with any rkt that keeps them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Rkt {
    pub path: PathBuf,
    /// `--dir` for every command; rkt's default (/var/lib/rkt) when None.
    pub dir: Option<PathBuf>,
    /// `--local-config` for every command (net.d, auth.d, registries.d); rkt's default
    /// (/etc/rkt) when None.
    pub local_config: Option<PathBuf>,
    /// `--system-config` for every command; rkt's default (/usr/lib/rkt) when None.
    pub system_config: Option<PathBuf>,
}

/// The parts of `rkt status --format=json` (rkt's v1.Pod) the driver reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodStatus {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub networks: Vec<Network>,
    #[serde(default)]
    pub apps: Vec<AppStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AppStatus {
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
}

/// A finished command's output.
pub struct Output {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Rkt {
    /// rkt as the original driver found it: on PATH (or the path given), symlinks resolved.
    pub fn locate(given: Option<PathBuf>, dir: Option<PathBuf>) -> Result<Rkt, String> {
        let path = match given {
            Some(p) => p,
            None => std::env::var_os("PATH")
                .and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join("rkt"))
                        .find(|p| p.is_file())
                })
                .ok_or_else(|| {
                    "failed to resolve path to \"rkt\" executable: not found in $PATH".to_string()
                })?,
        };
        let path = std::fs::canonicalize(&path).map_err(|e| {
            format!(
                "failed to resolve path to {:?} executable: {e}",
                path.display()
            )
        })?;
        Ok(Rkt {
            path,
            dir,
            ..Default::default()
        })
    }

    /// The global flags the plugin was given for rkt (`--dir`, `--local-config`,
    /// `--system-config`), for every rkt command and for the in-process prepare.
    pub fn global_args(&self) -> Vec<String> {
        let mut g = Vec::new();
        if let Some(d) = &self.dir {
            g.push(format!("--dir={}", d.display()));
        }
        if let Some(c) = &self.local_config {
            g.push(format!("--local-config={}", c.display()));
        }
        if let Some(c) = &self.system_config {
            g.push(format!("--system-config={}", c.display()));
        }
        g
    }

    /// rkt's data directory: `--dir`, or rkt's default.
    pub fn data_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/rkt"))
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

    /// A command with the global flags in front of `args`.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = self.raw(&self.global_args());
        c.args(args);
        c
    }

    /// A command with `args` as they are (start-up's own command lines carry their global
    /// flags already).
    pub fn raw<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.path);
        c.args(args).stdin(Stdio::null()).kill_on_drop(true);
        default_signals(c.as_std_mut());
        c
    }

    /// Runs rkt with `args` as they are (they carry their own global flags) and collects it.
    pub async fn output(&self, mut c: Command) -> Result<Output, String> {
        let out = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| format!("running {}: {e}", self.path.display()))?;
        Ok(Output {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    pub async fn version(&self) -> Result<String, String> {
        let out = self.output(self.command(&["version"])).await?;
        if !out.ok {
            return Err(format!("exit status {:?}: {}", out.code, out.stderr.trim()));
        }
        Ok(out.stdout)
    }

    pub async fn status(&self, uuid: &str) -> Result<PodStatus, String> {
        let out = self
            .output(self.command(&["status", "--format=json", uuid]))
            .await?;
        if !out.ok {
            let err = out.stderr.trim();
            let short: String = err.chars().take(80).collect();
            return Err(format!("rkt status failed. stderr: {short:?}"));
        }
        serde_json::from_str(&out.stdout).map_err(|e| format!("rkt status output: {e}"))
    }

    /// Image port name → container port, for every app of the pod.
    pub async fn ports(&self, uuid: &str) -> Result<BTreeMap<String, u16>, String> {
        let out = self.output(self.command(&["cat-manifest", uuid])).await?;
        if !out.ok {
            return Err(format!("could not get pod manifest: {}", out.stderr.trim()));
        }
        let m: serde_json::Value = serde_json::from_str(&out.stdout)
            .map_err(|e| format!("could not get pod manifest: {e}"))?;
        let mut ports = BTreeMap::new();
        for app in m["apps"].as_array().into_iter().flatten() {
            for p in app["app"]["ports"].as_array().into_iter().flatten() {
                if let (Some(name), Some(port)) = (p["name"].as_str(), p["port"].as_u64()) {
                    ports.insert(name.to_string(), port as u16);
                }
            }
        }
        Ok(ports)
    }

    pub async fn stop(&self, uuid: &str, force: bool) -> Result<(), String> {
        let force = format!("--force={force}");
        let out = self
            .output(self.command(&["stop", force.as_str(), uuid]))
            .await?;
        if out.ok || out.stderr.contains("already stopped") {
            return Ok(());
        }
        Err(format!("rkt stop {uuid}: {}", out.stderr.trim()))
    }

    pub async fn rm(&self, uuid: &str) -> Result<(), String> {
        let out = self.output(self.command(&["rm", uuid])).await?;
        if out.ok {
            return Ok(());
        }
        Err(format!("rkt rm {uuid}: {}", out.stderr.trim()))
    }

    /// The pod's directory while it runs (for its supervisor's PID).
    pub fn run_dir(&self, uuid: &str) -> PathBuf {
        self.data_dir().join("pods/run").join(uuid)
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
