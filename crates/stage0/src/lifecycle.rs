//! Pods after they start: waiting for them, stopping, entering, removing and collecting
//! them, and undoing what a killed supervisor left behind (network, cgroups).

use crate::error::{Context, Error, Result};
use crate::Config;
use pod::{Pod, Pods, State};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `stop` waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn send_signal(pid: i32, sig: i32) {
    let (Some(pid), Some(sig)) = (
        rustix::process::Pid::from_raw(pid),
        rustix::process::Signal::from_named_raw(sig),
    ) else {
        return;
    };
    let _ = rustix::process::kill_process(pid, sig);
}

/// Calls `done` every 10 ms until it is true, for at most `limit` (None: forever).
pub fn poll(
    limit: Option<Duration>,
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    while !done()? {
        if limit.is_some_and(|l| start.elapsed() >= l) {
            return Err(Error::failed(format!(
                "timed out waiting for the pod to be {what}"
            )));
        }
        // Short pauses while a change is likely soon (a pod is ready within milliseconds,
        // and the driver's StartTask waits on this), then longer ones.
        let pause = if start.elapsed() < Duration::from_millis(100) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        std::thread::sleep(pause);
    }
    Ok(())
}

/// Whether the pod's init has started every app: from then on the pod's root is in place.
pub fn apps_started(pod: &Pod) -> bool {
    pod.pid().is_some()
        && pod
            .manifest()
            .is_ok_and(|m| m.apps.iter().all(|a| pod.app_started(&a.name)))
}

/// Waits until the pod runs with every app started (so its root is in place), or is already
/// past running.
pub fn wait_ready(pods: &Pods, uuid: &str, limit: Option<Duration>) -> Result<()> {
    poll(limit, "ready", || {
        let p = pods.find(uuid)?;
        Ok(p.state.ran() && (p.state != State::Running || apps_started(&p)))
    })
}

/// Waits until the pod is no longer running.
pub fn wait_exited(pods: &Pods, uuid: &str, limit: Option<Duration>) -> Result<()> {
    poll(limit, "exited", || {
        Ok(pods.find(uuid)?.state != State::Running)
    })
}

/// Stops a running pod: SIGTERM to the pod's init (it forwards it to the apps), then SIGKILL
/// to the init, which takes every process of the pod's PID namespace with it. `force` goes
/// straight to SIGKILL. Undoes the pod's network if its supervisor cannot.
///
/// `Ok(Some(e))`: stopped, but its network could not be undone (`rkt gc` retries); the
/// caller says so. A pod already stopped is a conflict, unless undoing its network failed.
pub fn stop(pods: &Pods, pod: &Pod, force: bool) -> Result<Option<Error>> {
    if pod.state != State::Running {
        if let Some(e) = settle_network(pods, &pod.uuid) {
            return Err(e.context(format!(
                "pod {:?} is already stopped, but undoing its network failed",
                pod.uuid
            )));
        }
        return Err(Error::conflict(format!(
            "pod {:?} is already stopped",
            pod.uuid
        )));
    }
    stop_running(pods, pod, force)?;
    Ok(settle_network(pods, &pod.uuid))
}

fn stop_running(pods: &Pods, pod: &Pod, force: bool) -> Result<()> {
    let running = || -> Result<bool> { Ok(pods.find(&pod.uuid)?.state == State::Running) };
    // A pod stopped right after it started may not have its init yet: the supervisor
    // records the init's PID as soon as it has cloned it.
    let start = Instant::now();
    while pod.pid().is_none() && running()? && start.elapsed() < STOP_TIMEOUT {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !force {
        // To the pod's init, which forwards it to the app: that works even when the
        // supervisor is gone (SIGKILLed), since the init holds the pod lock as well.
        match pod.pid().or(pod.supervisor_pid()) {
            Some(pid) => send_signal(pid, libc::SIGTERM),
            None => return Err(Error::conflict("the pod has no init PID yet")),
        }
        let start = Instant::now();
        while running()? && start.elapsed() < STOP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !running()? {
            return Ok(());
        }
    }
    let pid = pod
        .pid()
        .ok_or_else(|| Error::conflict("the pod has no init PID yet"))?;
    send_signal(pid, libc::SIGKILL);
    // With its own PID namespace the apps die with the init; sharing the host's (--pid=host)
    // they would not: everything in the pod's cgroups goes too.
    kill_cgroup_members(&pod.path);
    let start = Instant::now();
    while running()? {
        if start.elapsed() > STOP_TIMEOUT {
            return Err(Error::failed("the pod did not exit after SIGKILL"));
        }
        // Short pauses while a change is likely soon (a pod is ready within milliseconds,
        // and the driver's StartTask waits on this), then longer ones.
        let pause = if start.elapsed() < Duration::from_millis(100) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        std::thread::sleep(pause);
    }
    Ok(())
}

fn kill_cgroup_members(pod: &Path) {
    let Some(rel) = layout::cgroup::of_pod(pod) else {
        return;
    };
    let dirs = layout::cgroup::pod_dirs_everywhere(Path::new(layout::cgroup::ROOT), &rel);
    for pid in layout::cgroup::processes_in(&dirs) {
        send_signal(pid, libc::SIGKILL);
    }
}

/// Sends `sig` to every app process of a running pod: the pod init's children, found from
/// the host. Signals no process can catch (SIGKILL, SIGSTOP, SIGCONT) reach the apps this
/// way too, instead of the supervisor or the init that would have forwarded the others.
/// Returns how many processes were signalled.
pub fn signal_apps(pod: &Pod, sig: i32) -> Result<usize> {
    let not_running = || Error::conflict(format!("pod {} has no running app", pod.uuid));
    if pod.state != State::Running {
        return Err(not_running());
    }
    let init = pod.pid().ok_or_else(not_running)?;
    let apps = children_of(init);
    if apps.is_empty() {
        return Err(not_running());
    }
    for pid in &apps {
        send_signal(*pid, sig);
    }
    Ok(apps.len())
}

/// The processes whose parent is `pid` (from /proc/PID/task/PID/children, or by reading
/// every process's parent where the kernel lacks that file).
fn children_of(pid: i32) -> Vec<i32> {
    if let Ok(list) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return list
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| parent_of(*p) == Some(pid))
        .collect()
}

/// A process's parent, from the fourth field of /proc/PID/stat (after the command's
/// parenthesised name, which may itself hold spaces and parentheses).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// `rkt net-teardown POD_DIR`: the exited pod's supervisor undoes its network.
pub fn net_teardown(pod_dir: &Path) -> Result<()> {
    let uuid = pod_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid("a pod directory is named after its UUID"))?;
    Ok(net::teardown(uuid, pod_dir)?)
}

/// Undoes the network of a pod that exited without its supervisor doing it (the supervisor
/// was killed); a running pod or one busy elsewhere is left alone. Returns why it could not.
pub fn settle_network(pods: &Pods, uuid: &str) -> Option<Error> {
    let pod = pods.find(uuid).ok()?;
    if pod.state == State::Running || !net::is_set_up(&pod.path) {
        return None;
    }
    let Ok(Some(_lock)) = pod::try_lock_dir(&pod.path) else {
        return None;
    };
    net::teardown(&pod.uuid, &pod.path)
        .err()
        .map(|e| Error::from(e).context("undoing its network"))
}

/// Frees everything a pod holds: its network, cgroups and directory. Mounts lived in the
/// pod's own mount namespace and went with it.
///
/// `Ok(Some(e))`: removed, but its network could not be undone (removing the pod matters
/// more); the caller says what is left.
pub fn remove(pod: &Pod) -> Result<Option<Error>> {
    if matches!(
        pod.state,
        State::Running | State::Preparing | State::Deleting | State::ExitedDeleting
    ) {
        return Err(Error::conflict(format!(
            "pod {:?} is {}; stop it first",
            pod.uuid,
            pod.state.as_str()
        )));
    }
    let Some(_lock) = pod::try_lock_dir(&pod.path)? else {
        return Err(Error::conflict(format!(
            "pod {:?} is busy (locked by another rkt)",
            pod.uuid
        )));
    };
    let network_left = net::teardown(&pod.uuid, &pod.path)
        .err()
        .map(|e| Error::from(e).context("undoing its network"));
    remove_cgroups(&pod.uuid, &pod.path)?;
    crate::mds::unregister(&pod.path, &pod.uuid);
    std::fs::remove_dir_all(&pod.path)
        .with_context(|| format!("removing {}", pod.path.display()))?;
    Ok(network_left)
}

/// Every cgroup directory of the pod, its apps' and init's included, in every hierarchy, where
/// its plan recorded them. Normally the supervisor removed them; after a killed supervisor
/// they are left for rm and gc. A pod without a plan never ran, and has none.
fn remove_cgroups(uuid: &str, path: &Path) -> Result<()> {
    let root = Path::new(layout::cgroup::ROOT);
    let Some(rel) = layout::cgroup::of_pod(path) else {
        return Ok(());
    };
    match layout::cgroup::remove_pod(root, &rel).as_slice() {
        [] => Ok(()),
        [(dir, e), ..] => Err(Error::conflict(format!(
            "pod {uuid:?}: removing its cgroup {}: {e}; a process of the pod is still in it (kill it, then remove the pod again)",
            dir.display()
        ))),
    }
}

/// What `gc` did, pod by pod, in order.
#[derive(Debug)]
pub enum GcEvent {
    /// Moved to garbage (exited, aborted, or prepared too long ago).
    Marked(String),
    /// Removed.
    Removed(String),
    /// Removed, but its network could not be undone.
    NetworkLeft(String, Error),
    /// Could not be removed.
    Failed(String, Error),
}

/// `rkt gc`: marks exited pods (and prepared ones older than `expire_prepared`) as garbage,
/// then removes the garbage marked at least `grace` ago.
pub fn gc(
    config: &Config,
    grace: Duration,
    expire_prepared: Duration,
    mark_only: bool,
    report: &mut dyn FnMut(GcEvent),
) -> Result<()> {
    let pods = Pods::open(&config.dir)?;
    for mut pod in pods.list()? {
        let to_garbage = match pod.state {
            State::Exited => Some(State::ExitedGarbage),
            State::AbortedPrepare => Some(State::Garbage),
            State::Prepared if age(&pod.dir().created()) > expire_prepared => Some(State::Garbage),
            _ => None,
        };
        if let Some(state) = to_garbage {
            let Some(_lock) = pod::try_lock_dir(&pod.path)? else {
                continue;
            };
            report(GcEvent::Marked(pod.uuid.clone()));
            pods.transition(&mut pod, state)?;
            std::fs::write(pod.dir().gc_marked(), b"")?;
        }
    }
    if mark_only {
        return Ok(());
    }
    for pod in pods.list()? {
        if !matches!(pod.state, State::ExitedGarbage | State::Garbage) {
            continue;
        }
        let marked = std::fs::metadata(pod.dir().gc_marked())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(Duration::MAX);
        if marked < grace {
            continue;
        }
        match remove(&pod) {
            Ok(left) => {
                report(GcEvent::Removed(pod.uuid.clone()));
                if let Some(e) = left {
                    report(GcEvent::NetworkLeft(pod.uuid.clone(), e));
                }
            }
            Err(e) => report(GcEvent::Failed(pod.uuid.clone(), e)),
        }
    }
    Ok(())
}

fn age(p: &Path) -> Duration {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

/// `rkt enter`: replaces this process with `rkt-stage1 enter`, which joins the pod's
/// namespaces and cgroups and runs `command` (default /bin/bash) confined like `app`.
/// Returns only on failure.
pub fn enter(config: &Config, uuid: &str, app: Option<&str>, command: &[String]) -> Error {
    match enter_inner(config, uuid, app, command) {
        Ok(e) | Err(e) => e,
    }
}

fn enter_inner(
    config: &Config,
    uuid: &str,
    app: Option<&str>,
    command: &[String],
) -> Result<Error> {
    let pods = Pods::open(&config.dir)?;
    let pod = pods.find(uuid)?;
    if pod.state != State::Running {
        return Err(Error::conflict(format!(
            "pod {} is not running (it is {})",
            pod.uuid,
            pod.state.as_str()
        )));
    }
    let apps: Vec<String> = pod.manifest()?.apps.into_iter().map(|a| a.name).collect();
    let app = match app {
        Some(a) if !apps.iter().any(|n| n == a) => {
            return Err(Error::not_found(format!(
                "pod {} has no app {a:?} (it has: {})",
                pod.uuid,
                apps.join(", ")
            )))
        }
        Some(a) => a.to_string(),
        None if apps.len() > 1 => {
            return Err(Error::invalid(format!(
                "Pod contains multiple apps: {}; choose one with --app",
                apps.join(", ")
            )))
        }
        None => apps.first().cloned().unwrap_or_default(),
    };
    // A pod that was just started may not have its root in place yet: enter only once its
    // init has started the app.
    poll(Some(Duration::from_secs(10)), "ready", || {
        let p = pods.find(&pod.uuid)?;
        if p.state != State::Running {
            return Err(Error::conflict(format!(
                "pod {} is not running (it is {})",
                p.uuid,
                p.state.as_str()
            )));
        }
        Ok(p.app_started(&app))
    })?;
    let default = ["/bin/bash".to_string()];
    let command = if command.is_empty() {
        &default[..]
    } else {
        command
    };
    let stage1 = crate::start::stage1_path(config)?;
    let err = std::process::Command::new(&stage1)
        .arg("enter")
        .arg(&pod.path)
        .arg(&app)
        .args(command)
        .exec();
    Ok(Error::failed(format!(
        "starting {}: {err}",
        stage1.display()
    )))
}

/// The images a pod uses: each app's `appsinfo/<app>/treeStoreID` (written as soon as the
/// app's image is resolved, before the pod manifest) and the pod manifest's image IDs.
fn pod_images(path: &Path) -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    let dir = layout::pod_dir::PodDir::new(path);
    if let Ok(apps) = std::fs::read_dir(dir.appsinfo_dir()) {
        for app in apps.flatten() {
            let app = app.file_name().to_string_lossy().into_owned();
            if let Ok(id) = std::fs::read_to_string(dir.tree_store_id(&app)) {
                ids.insert(id.trim().to_string());
            }
        }
    }
    let dir = layout::pod_dir::PodDir::new(path);
    if let Ok(bytes) = std::fs::read(dir.manifest()) {
        if let Ok(m) = serde_json::from_slice::<pod::manifest::PodManifest>(&bytes) {
            ids.extend(m.apps.into_iter().map(|a| a.image.id));
        }
    }
    ids.retain(|id| !id.is_empty());
    ids
}

/// The image IDs pod `uuid` uses.
pub fn images_of(config: &Config, uuid: &str) -> Result<Vec<String>> {
    let pods = Pods::open(&config.dir)?;
    let pod = pods.find(uuid)?;
    Ok(pod_images(&pod.path).into_iter().collect())
}

/// The image IDs some pod of the store uses, whatever its state (a pod that exited still
/// has its image below its overlay until it is removed): the images nothing may remove.
/// A pod being prepared right now has not named its image yet; a collector must keep its
/// own starts out of the way.
pub fn images_in_use(config: &Config) -> Result<std::collections::BTreeSet<String>> {
    let pods = Pods::open(&config.dir)?;
    let mut ids = std::collections::BTreeSet::new();
    for pod in pods.list()? {
        ids.extend(pod_images(&pod.path));
    }
    Ok(ids)
}
