//! One task's pod: starting it, waiting for it (as its parent, or through a pidfd after the
//! plugin restarted), signalling and stopping it.

use super::rkt::{is_supervisor, Rkt};
use super::start::{Commands, Options, Spec};
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
        rkt.stop(&self.uuid, true).await.map_err(Error::fatal)?;
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

/// Trust, prepare (its progress becomes task events), and the supervisor in the background.
pub(super) async fn launch(
    d: &Arc<Driver>,
    opts: &Options,
    spec: &Spec,
    cmds: &Commands,
    record: &super::starting::Record,
) -> Result<Arc<Task>, Error> {
    if let Some(trust) = &cmds.trust {
        let out = d.rkt.output(d.rkt.raw(trust)).await.map_err(Error::fatal)?;
        if !out.ok {
            return Err(Error::fatal(format!(
                "Error running rkt trust: exit status {:?}\n\nOutput: {}\n\nError: {}",
                out.code, out.stdout, out.stderr
            )));
        }
    }
    let uuid = prepare(d, opts, spec, &cmds.prepare, &record.uuid_file()).await?;
    let started = match spawn_supervisor(d, spec, &cmds.run_prepared, &uuid).await {
        Ok(s) => s,
        Err(e) => {
            let _ = d.rkt.rm(&uuid).await;
            return Err(e);
        }
    };
    let (mut child, pid) = started;
    // Running means the app has started: a stop or a signal right after StartTask then
    // reaches the app, not a supervisor still setting up.
    wait_started(&d.rkt.run_dir(&uuid), &mut child).await;
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
    if cmds.contained {
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
            // the app, and the exit code is the app's, from rkt.
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

/// `rkt prepare`, done in this process by stage0 on the command line the original driver
/// ran: its errors say whether a retry may help (an unreachable registry is recoverable, so
/// Nomad's restart policy applies), and image downloads become task events.
async fn prepare(
    d: &Arc<Driver>,
    opts: &Options,
    spec: &Spec,
    args: &[String],
    uuid_file: &std::path::Path,
) -> Result<String, Error> {
    let config = prepare_config(d, args, download_events(d, spec, &opts.image))?;
    let mut rest = args
        .iter()
        .position(|a| a == "prepare")
        .map(|i| args[i + 1..].to_vec())
        .ok_or_else(|| Error::fatal("the prepare command line has no \"prepare\""))?;
    // The pod's UUID reaches the start's record before the pod can run (see starting.rs).
    rest.insert(0, format!("--uuid-file-save={}", uuid_file.display()));
    // stage0 blocks and runs a runtime of its own for the download: a thread of its own,
    // outside this runtime.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = stage0::spec::parse(&rest)
            .and_then(|(pod, apps)| stage0::prepare(&config, &pod, &apps));
        let _ = tx.send(result);
    });
    let result = rx
        .await
        .map_err(|_| Error::fatal("preparing the pod: the preparing thread died"))?;
    match result {
        Ok(uuid) => {
            d.track_images(&uuid).await;
            d.emit(spec, format!("Downloaded image {}", opts.image));
            Ok(uuid)
        }
        Err(e) if e.is_retryable() => {
            Err(Error::Recoverable(format!("Error preparing rkt pod: {e}")))
        }
        Err(e) => Err(Error::Fatal(format!("Error preparing rkt pod: {e}"))),
    }
}

/// stage0's configuration: the plugin's rkt (directory, configuration, binary), and the
/// job's own global flags in front of `prepare` (`--insecure-options`, `--debug`; the rest
/// [`super::start::commands`] wrote from the plugin's rkt itself).
fn prepare_config(
    d: &Driver,
    args: &[String],
    progress: Arc<dyn image::fetch::Progress>,
) -> Result<stage0::Config, Error> {
    let mut config = d.rkt.stage0_config();
    config.progress = progress;
    for a in args.iter().take_while(|a| *a != "prepare") {
        let (flag, value) = a.split_once('=').unwrap_or((a.as_str(), "true"));
        match flag {
            "--dir" | "--local-config" | "--system-config" => {}
            "--insecure-options" => {
                config.insecure = stage0::InsecureOptions::parse(value).map_err(Error::fatal)?
            }
            "--debug" => config.debug = stage0::spec::parse_bool(value).map_err(Error::fatal)?,
            _ => return Err(Error::fatal(format!("unexpected global flag {a:?}"))),
        }
    }
    Ok(config)
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

/// `rkt run-prepared`, which becomes the pod's supervisor: in a session of its own (it must
/// outlive the plugin), with default signal dispositions (the plugin ignores SIGINT, which is
/// Nomad's stop signal), writing straight into the task's log FIFOs.
async fn spawn_supervisor(
    d: &Arc<Driver>,
    spec: &Spec,
    run_prepared: &[String],
    uuid: &str,
) -> Result<(tokio::process::Child, i32), Error> {
    let (out_path, err_path) = (spec.stdout_path.clone(), spec.stderr_path.clone());
    // Opening a FIFO for writing blocks until its reader (Nomad's logmon) is there.
    let (stdout, stderr) = tokio::task::spawn_blocking(move || {
        let open = |p: &std::path::Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| format!("opening the task's log {}: {e}", p.display()))
        };
        Ok::<_, String>((open(&out_path)?, open(&err_path)?))
    })
    .await
    .map_err(|e| Error::fatal(e.to_string()))?
    .map_err(Error::fatal)?;
    let mut c = std::process::Command::new(&d.rkt.path);
    c.args(run_prepared)
        .arg(uuid)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
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
    let child = tokio::process::Command::from(c)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| Error::fatal(format!("starting rkt run-prepared: {e}")))?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    Ok((child, pid))
}

/// Waits until the pod's init has started its app (or the supervisor has exited).
async fn wait_started(pod: &std::path::Path, child: &mut tokio::process::Child) {
    let pod = layout::pod_dir::PodDir::new(pod);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let started = !pod.apps_with(layout::pod_dir::Marker::Started).is_empty();
        if started || !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The pod's address and port map, polled from `rkt status` as the original driver did
/// (it appears once the pod runs; one minute at most).
async fn network(
    rkt: &Rkt,
    uuid: &str,
    port_map: &BTreeMap<String, String>,
) -> Result<NetworkInfo, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::from("no networks found");
    while tokio::time::Instant::now() < deadline {
        match rkt.status(uuid).await {
            Ok(s) => {
                if let Some(ip) = s.networks.first().and_then(|n| n.ip.clone()) {
                    let names = rkt.ports(uuid).await?;
                    let ports = port_map
                        .iter()
                        .filter_map(|(label, name)| {
                            names.get(name).map(|p| (label.clone(), *p as i32))
                        })
                        .collect();
                    return Ok(NetworkInfo { ip, ports });
                }
                if s.state != "running" && s.state != "prepared" {
                    return Err(format!("pod is {}", s.state));
                }
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("timed out, last error: {last}"))
}

/// The exit of a pod whose supervisor is gone: waits until rkt says the pod is no longer
/// running, then reads the app's exit code and OOM flag from `rkt status`.
async fn exit_from_pod(rkt: &Rkt, uuid: &str, code: Option<i32>) -> ExitInfo {
    loop {
        match rkt.status(uuid).await {
            Ok(s) if s.state == "running" => {}
            Ok(s) => {
                let app = s.apps.first().cloned().unwrap_or_default();
                let exit_code = code.or(app.exit_code).unwrap_or(-1);
                return ExitInfo {
                    exit_code,
                    signal: 0,
                    oom_killed: app.oom_killed,
                    err: None,
                };
            }
            Err(e) => {
                return ExitInfo {
                    exit_code: code.unwrap_or(-1),
                    err: code.is_none().then_some(e),
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
    let status =
        d.rkt.status(&s.uuid).await.map_err(|e| {
            Error::fatal(format!("pod {} of task {id} cannot be found: {e}", s.uuid))
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
    let running = status.state == "running";
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
