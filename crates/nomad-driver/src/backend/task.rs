//! One task's pod: starting it, waiting for it (as its parent, or through a pidfd after the
//! plugin restarted), signalling and stopping it.

use super::rkt::{is_supervisor, Rkt};
use super::start::{Launch, Options, Spec};
use super::{Driver, DriverState, Error};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How a task ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExitInfo {
    pub exit_code: i32,
    pub signal: i32,
    pub oom_killed: bool,
    pub err: Option<String>,
}

/// The pod's address on its first network, and label → container port.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInfo {
    pub ip: String,
    pub ports: BTreeMap<String, i32>,
}

/// InspectTask's view.
#[derive(Debug, Clone)]
pub struct TaskState {
    pub id: String,
    pub name: String,
    pub started_at: SystemTime,
    pub completed_at: Option<SystemTime>,
    pub exit: Option<ExitInfo>,
    pub pid: i32,
    pub uuid: String,
}

pub struct Task {
    pub id: String,
    pub name: String,
    pub uuid: String,
    pub pid: i32,
    pub started_at: SystemTime,
    pub network: Option<NetworkInfo>,
    exit: watch::Sender<Option<ExitInfo>>,
    completed_at: Mutex<Option<SystemTime>>,
}

impl Task {
    pub fn exit(&self) -> Option<ExitInfo> {
        self.exit.borrow().clone()
    }

    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return ExitInfo {
                    err: Some("the task's waiter went away".into()),
                    ..Default::default()
                };
            }
        }
    }

    fn finish(&self, e: ExitInfo) {
        *self.completed_at.lock().expect("completed_at") = Some(SystemTime::now());
        self.exit.send_replace(Some(e));
    }

    pub fn state(&self) -> TaskState {
        TaskState {
            id: self.id.clone(),
            name: self.name.clone(),
            started_at: self.started_at,
            completed_at: *self.completed_at.lock().expect("completed_at"),
            exit: self.exit(),
            pid: self.pid,
            uuid: self.uuid.clone(),
        }
    }

    /// Sends `sig` to the task's app (every app of its pod) directly, so that SIGKILL,
    /// SIGSTOP and SIGCONT reach it as well as the signals the supervisor would forward.
    pub fn signal(&self, rkt: &Rkt, sig: i32) -> Result<(), Error> {
        if self.exit().is_some() {
            return Err(Error::fatal("task is not running"));
        }
        let failed = |e: &dyn std::fmt::Display| Error::fatal(format!("signalling task: {e}"));
        let pods = pod::Pods::open(&rkt.data_dir()).map_err(|e| failed(&e))?;
        let pod = pods.find(&self.uuid).map_err(|e| failed(&e))?;
        stage0::lifecycle::signal_apps(&pod, sig)
            .map(|_| ())
            .map_err(|e| failed(&e))
    }

    /// The signal, `timeout` for the task to exit, then `rkt stop --force`; returns once it
    /// has exited.
    pub async fn stop(&self, rkt: &Rkt, timeout: Duration, signal: &str) -> Result<(), Error> {
        if self.exit().is_some() {
            return Ok(());
        }
        let sig = match signal {
            "" => libc::SIGINT,
            s => signal_number(s).unwrap_or(libc::SIGINT),
        };
        if sig != libc::SIGKILL && !timeout.is_zero() {
            let _ = self.signal(rkt, sig);
            if tokio::time::timeout(timeout, self.wait()).await.is_ok() {
                return Ok(());
            }
        }
        rkt.stop(&self.uuid, true).await?;
        tokio::time::timeout(Duration::from_secs(15), self.wait())
            .await
            .map_err(|_| Error::fatal(format!("pod {} did not exit after SIGKILL", self.uuid)))?;
        Ok(())
    }
}

/// Signal names as Nomad sends them (`SIGHUP`, also `HUP`).
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    })
}

/// Trust, prepare (its progress becomes task events), ready the pod and start its
/// supervisor in the background.
pub(super) async fn launch(
    d: &Arc<Driver>,
    opts: &Options,
    spec: &Spec,
    launch: Launch,
    record: &super::starting::Record,
) -> Result<Arc<Task>, Error> {
    let mut config = d.rkt.stage0_config();
    config.insecure = launch.insecure;
    config.debug = launch.debug;
    pull_settings(&mut config, &launch, &d.pulls())?;
    if let Some(prefix) = &launch.trust_prefix {
        trust(&config, prefix).await?;
    }
    let uuid = prepare(d, spec, &config, &launch, &record.uuid_file()).await?;
    let started = match spawn_supervisor(spec, &config, &uuid, launch.runtime.clone()).await {
        Ok(s) => s,
        Err(e) => {
            let _ = d.rkt.rm(&uuid).await;
            return Err(e);
        }
    };
    let (mut child, pid) = started;
    // Running means the app has started: a stop or a signal right after StartTask then
    // reaches the app, not a supervisor still setting up.
    wait_started(&d.rkt, &uuid, &mut child).await;
    let (tx, _) = watch::channel(None);
    let mut task = Task {
        id: spec.id.clone(),
        name: spec.name.clone(),
        uuid: uuid.clone(),
        pid,
        started_at: SystemTime::now(),
        network: None,
        exit: tx,
        completed_at: Mutex::new(None),
    };
    if launch.contained {
        match network(&d.rkt, &uuid, &opts.port_map).await {
            Ok(n) => task.network = Some(n),
            Err(e) if !opts.port_map.is_empty() => {
                let _ = d.rkt.stop(&uuid, true).await;
                let _ = d.rkt.rm(&uuid).await;
                return Err(Error::fatal(format!(
                    "Trying to map ports but driver could not determine network information: {e}"
                )));
            }
            Err(_) => {}
        }
    }
    let task = Arc::new(task);
    let waiter = task.clone();
    let rkt = d.rkt.clone();
    tokio::spawn(async move {
        let mut child = child;
        let status = child.wait().await;
        let exit = match status {
            // Without a code the supervisor itself was killed: the pod's init may still run
            // the app, and the exit code is the app's, from the pod.
            Ok(s) => exit_from_pod(&rkt, &waiter.uuid, s.code()).await,
            Err(e) => ExitInfo {
                err: Some(format!("executor: error waiting on process: {e}")),
                ..Default::default()
            },
        };
        waiter.finish(exit);
    });
    Ok(task)
}

/// How this task's image is fetched: the task's `auth {}` for its registry (and the
/// `server_address` it names), the plugin's Docker credentials, `auth_soft_fail`, and the
/// two timeouts. Credentials stay in this process's memory: never written, never logged.
fn pull_settings(
    config: &mut stage0::Config,
    launch: &Launch,
    pulls: &crate::config::PullConfig,
) -> Result<(), Error> {
    config.pull_timeout = Some(launch.pull_timeout);
    config.pull_activity_timeout = Some(pulls.activity_timeout);
    config.auth.soft_fail = launch.auth_soft_fail;
    if pulls.auth_config.is_some() || pulls.auth_helper.is_some() {
        config.auth.docker = Some(image::docker_config::DockerCredentials {
            config: pulls.auth_config.clone(),
            helper: pulls.auth_helper.clone(),
        });
    }
    let Some(auth) = &launch.auth else {
        return Ok(());
    };
    let credential = image::auth::Credential::Basic {
        user: auth.username.clone(),
        password: auth.password.clone(),
    };
    let registries = config
        .registries()
        .map_err(|e| Error::fatal(format!("auth: {e}")))?;
    let mut hosts = Vec::new();
    if let Ok(r) = registries.reference(&launch.app.image) {
        hosts.push(r.registry);
    }
    let server = auth.server_address.trim();
    if !server.is_empty() {
        let host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        hosts.push(host.to_string());
    }
    if hosts.is_empty() {
        return Err(Error::fatal(format!(
            "auth: image {:?} is not a Docker image from a registry; auth applies to those",
            launch.app.image
        )));
    }
    for host in hosts {
        config.auth.given.push((host, credential.clone()));
    }
    Ok(())
}

/// Runs `work` on a thread of its own: stage0 blocks, and runs a runtime of its own for
/// downloads, so it cannot run on this runtime's threads.
async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.await
        .map_err(|_| Error::fatal(format!("{what}: the thread doing it died")))
}

/// `rkt trust --skip-fingerprint-review --prefix=P`, as the original driver ran it: the
/// keys discovered for the prefix are trusted without review.
async fn trust(config: &stage0::Config, prefix: &str) -> Result<(), Error> {
    let (config, prefix) = (config.clone(), prefix.to_string());
    blocking("trusting keys", move || -> stage0::Result<()> {
        let fetching = stage0::trust::Fetching { allow_http: false };
        for location in stage0::trust::discover(&config, &prefix, &fetching)? {
            let key = stage0::trust::read(&config, &location, &fetching)?;
            stage0::trust::store(&config, Some(&prefix), &key)?;
        }
        Ok(())
    })
    .await?
    .map_err(|e| Error::fatal(format!("Error running rkt trust: {e}")))
}

/// The stage1 flavour of the node's `stage1.d` (rkt's default without one), refused when it
/// is fly: fly runs its app in the host's namespaces with every privilege and no limits, which
/// no job gets from this driver.
fn stage1(config: &stage0::Config) -> Result<stage0::spec::Stage1, Error> {
    let refused = |e: String| Error::fatal(format!("rkt's stage1.d configuration: {e}"));
    let conf = config.stage1_conf().map_err(|e| refused(e.to_string()))?;
    let flavour = conf.flavour().map_err(|e| refused(e.to_string()))?;
    if flavour == stage0::spec::Stage1::Fly {
        let file = conf.name.map(|n| n.file).or(conf.location.map(|l| l.file));
        return Err(refused(format!(
            "{} makes fly the default stage1; fly runs an app in the host's namespaces with every privilege and without limits, and this driver runs tasks only in rkt's default stage1: make the file name coreos.com/rkt/stage1-coreos, or move it out of the configuration directories the plugin reads",
            file.unwrap_or_default().display()
        )));
    }
    Ok(flavour)
}

/// `rkt prepare`, done in this process by stage0 from the typed specs: its errors say
/// whether a retry may help (an unreachable registry is recoverable, so Nomad's restart
/// policy applies), and image downloads become task events.
async fn prepare(
    d: &Arc<Driver>,
    spec: &Spec,
    config: &stage0::Config,
    launch: &Launch,
    uuid_file: &std::path::Path,
) -> Result<String, Error> {
    let mut config = config.clone();
    config.progress = download_events(d, spec, &launch.app.image);
    let mut pod = launch.pod.clone();
    pod.stage1 = Some(stage1(&config)?);
    // The pod's UUID reaches the start's record before the pod can run (see starting.rs).
    pod.uuid_file_save = Some(uuid_file.to_path_buf());
    let app = launch.app.clone();
    let result = blocking("preparing the pod", move || {
        stage0::prepare(&config, &pod, std::slice::from_ref(&app))
    })
    .await?;
    match result {
        Ok(uuid) => {
            d.track_images(&uuid).await;
            d.emit(spec, format!("Downloaded image {}", launch.app.image));
            Ok(uuid)
        }
        Err(e) if e.is_retryable() => {
            Err(Error::Recoverable(format!("Error preparing rkt pod: {e}")))
        }
        Err(e) => Err(Error::Fatal(format!("Error preparing rkt pod: {e}"))),
    }
}

/// Image download progress as task events: one when the download starts, one per layer.
fn download_events(d: &Arc<Driver>, spec: &Spec, image: &str) -> Arc<dyn image::fetch::Progress> {
    struct Events {
        driver: Arc<Driver>,
        spec: Spec,
        image: String,
        started: std::sync::atomic::AtomicBool,
        sizes: std::sync::Mutex<BTreeMap<String, u64>>,
    }
    impl image::fetch::Progress for Events {
        fn start(&self, what: &str, total: Option<u64>) {
            use std::sync::atomic::Ordering;
            if !self.started.swap(true, Ordering::SeqCst) {
                self.driver
                    .emit(&self.spec, format!("Downloading image {}", self.image));
            }
            if let Some(t) = total {
                self.sizes.lock().expect("sizes").insert(what.into(), t);
            }
        }
        fn advance(&self, _what: &str, _bytes: u64) {}
        fn debug(&self, message: &str) {
            crate::log::info(message, &[("task_id", &self.spec.id)]);
        }
        fn note(&self, message: &str) {
            self.driver
                .emit(&self.spec, format!("Image {}: {message}", self.image));
        }
        fn finish(&self, what: &str) {
            let size = self.sizes.lock().expect("sizes").remove(what);
            let size = size
                .map(|s| format!(": {}", image::fetch::ibytes(s)))
                .unwrap_or_default();
            self.driver.emit(
                &self.spec,
                format!("Image {}: Downloaded {what}{size}", self.image),
            );
        }
    }
    Arc::new(Events {
        driver: d.clone(),
        spec: spec.clone(),
        image: image.to_string(),
        started: false.into(),
        sizes: Default::default(),
    })
}

/// What `rkt run-prepared` does (the pod's network, /etc files and plan, by stage0 in this
/// process), then the pod's supervisor, `rkt-stage1`: in a session of its own (it must
/// outlive the plugin), with default signal dispositions (the plugin ignores SIGINT, which
/// is Nomad's stop signal), writing straight into the task's log FIFOs.
async fn spawn_supervisor(
    spec: &Spec,
    config: &stage0::Config,
    uuid: &str,
    runtime: stage0::RuntimeSpec,
) -> Result<(tokio::process::Child, i32), Error> {
    let (out_path, err_path) = (spec.stdout_path.clone(), spec.stderr_path.clone());
    // Opening a FIFO for writing blocks until its reader (Nomad's logmon) is there.
    let (stdout, stderr) = tokio::task::spawn_blocking(move || {
        let open = |p: &std::path::Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| super::FileError::new("opening the task's log", p, e))
        };
        Ok::<_, super::FileError>((open(&out_path)?, open(&err_path)?))
    })
    .await
    .map_err(|e| Error::fatal(e.to_string()))??;
    let (config, id) = (config.clone(), uuid.to_string());
    let ready = blocking("making the pod ready", move || {
        stage0::ready_prepared(&config, &id, &runtime)
    })
    .await?
    .map_err(|e| Error::fatal(format!("Error running rkt pod: {e}")))?;
    let mut c = ready.command();
    c.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let task_dir = spec.task_dir();
    if task_dir.is_dir() {
        c.current_dir(task_dir);
    }
    super::rkt::default_signals(&mut c);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = match tokio::process::Command::from(c).kill_on_drop(false).spawn() {
        Ok(child) => child,
        Err(e) => {
            ready.abandon();
            return Err(Error::fatal(format!("starting the pod's supervisor: {e}")));
        }
    };
    // The supervisor holds the pod lock now; this process lets go of its copy.
    drop(ready);
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    Ok((child, pid))
}

/// Waits until the pod's init has started its app (or the supervisor has exited).
async fn wait_started(rkt: &Rkt, uuid: &str, child: &mut tokio::process::Child) {
    let (dir, id) = (rkt.data_dir(), uuid.to_string());
    let ready = tokio::task::spawn_blocking(move || {
        let Ok(pods) = pod::Pods::open(&dir) else {
            return;
        };
        let _ = stage0::lifecycle::wait_ready(&pods, &id, Some(Duration::from_secs(30)));
    });
    tokio::select! {
        _ = ready => {}
        _ = child.wait() => {}
    }
}

/// The pod's address and port map, polled from `rkt status` as the original driver did
/// (it appears once the pod runs; one minute at most).
async fn network(
    rkt: &Rkt,
    uuid: &str,
    port_map: &BTreeMap<String, String>,
) -> Result<NetworkInfo, NoNetwork> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        match rkt.status(uuid).await {
            Ok(s) => {
                if let Some(ip) = s.ip {
                    let names = rkt.ports(uuid).await.map_err(NoNetwork::Ports)?;
                    let ports = port_map
                        .iter()
                        .filter_map(|(label, name)| {
                            names.get(name).map(|p| (label.clone(), *p as i32))
                        })
                        .collect();
                    return Ok(NetworkInfo { ip, ports });
                }
                if s.state != pod::State::Running && s.state != pod::State::Prepared {
                    return Err(NoNetwork::Ended(s.state));
                }
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(NoNetwork::TimedOut(last))
}

/// Why a contained pod's address could not be read.
#[derive(Debug)]
enum NoNetwork {
    /// The pod stopped running before it had one.
    Ended(pod::State),
    /// A minute passed; the last error reading the pod's status, if any.
    TimedOut(Option<stage0::Error>),
    /// It has an address, but its manifest (for the port names) could not be read.
    Ports(stage0::Error),
}

impl std::fmt::Display for NoNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoNetwork::Ended(state) => write!(f, "pod is {}", state.as_str()),
            NoNetwork::TimedOut(None) => f.write_str("timed out, last error: no networks found"),
            NoNetwork::TimedOut(Some(e)) => write!(f, "timed out, last error: {e}"),
            NoNetwork::Ports(e) => e.fmt(f),
        }
    }
}

/// The exit of a pod whose supervisor is gone: waits until rkt says the pod is no longer
/// running, then reads the app's exit code and OOM flag from `rkt status`.
async fn exit_from_pod(rkt: &Rkt, uuid: &str, code: Option<i32>) -> ExitInfo {
    loop {
        match rkt.status(uuid).await {
            Ok(s) if s.state == pod::State::Running => {}
            Ok(s) => {
                let exit_code = code.or(s.exit_code).unwrap_or(-1);
                return ExitInfo {
                    exit_code,
                    signal: 0,
                    oom_killed: s.oom_killed,
                    err: None,
                };
            }
            Err(e) => {
                return ExitInfo {
                    exit_code: code.unwrap_or(-1),
                    err: code.is_none().then(|| e.to_string()),
                    ..Default::default()
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A task from a handle: waits on its supervisor through a pidfd (it is not our child any
/// more), or reads the exit of a pod that ended while no plugin ran.
pub(super) async fn recover(
    d: &Arc<Driver>,
    id: &str,
    s: &DriverState,
) -> Result<Arc<Task>, Error> {
    let status = d.rkt.status(&s.uuid).await.map_err(|e| {
        Error::from_stage0(
            format_args!("pod {} of task {id} cannot be found", s.uuid),
            e,
        )
    })?;
    let (tx, _) = watch::channel(None);
    let task = Arc::new(Task {
        id: id.to_string(),
        name: s.task_name.clone(),
        uuid: s.uuid.clone(),
        pid: s.pid,
        started_at: SystemTime::UNIX_EPOCH + Duration::from_nanos(s.started_at.max(0) as u64),
        network: None,
        exit: tx,
        completed_at: Mutex::new(None),
    });
    let waiter = task.clone();
    let rkt = d.rkt.clone();
    let running = status.state == pod::State::Running;
    tokio::spawn(async move {
        if running && is_supervisor(waiter.pid, &waiter.uuid) {
            wait_pidfd(waiter.pid).await;
        }
        let exit = exit_from_pod(&rkt, &waiter.uuid, None).await;
        waiter.finish(exit);
    });
    Ok(task)
}

/// Waits for a process that is not our child: its pidfd turns readable when it exits.
async fn wait_pidfd(pid: i32) {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    // SAFETY: the AsyncFd owns the pidfd, which stays open and unchanged for its lifetime.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    if let Ok(afd) = registered {
        let _ = afd.readable().await;
    }
}
