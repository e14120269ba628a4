//! `rkt status|list|stop|rm|gc|cat-manifest`: pods as rkt showed and cleaned them.

use crate::flags::{self, Format, GlobalArgs};
use crate::output;
use anyhow::{bail, Context, Result};
use pod::status::PodStatus;
use pod::{Pod, Pods, State};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a PID read from the pod directory.
    unsafe { libc::kill(pid, sig) };
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Wait for the pod to exit (true, or a duration)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    wait: String,
    /// Wait for the pod to be running (true, or a duration)
    #[arg(long = "wait-ready", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    wait_ready: String,
    #[arg(long, default_value = "", value_parser = flags::parse_format)]
    format: Format,
    #[arg(long = "uuid-file")]
    uuid_file: Option<PathBuf>,
    uuid: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    full: bool,
    #[arg(long = "no-legend", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    no_legend: bool,
    #[arg(long, default_value = "", value_parser = flags::parse_format)]
    format: Format,
}

/// How long `stop` waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `--wait`-style value: false/0 (no wait), true or negative (forever), or a duration.
fn wait_spec(s: &str) -> Result<Option<Option<Duration>>> {
    if let Ok(b) = flags::parse_bool(s) {
        return Ok(if b { Some(None) } else { None });
    }
    if s.starts_with('-') {
        return Ok(Some(None));
    }
    let d = flags::parse_duration(s).map_err(anyhow::Error::msg)?;
    Ok(if d.is_zero() { None } else { Some(Some(d)) })
}

pub fn status(global: &GlobalArgs, args: &StatusArgs) -> Result<()> {
    let pods = Pods::open(&global.dir)?;
    let mut pod = pods.find_from(args.uuid.as_deref(), args.uuid_file.as_deref())?;
    if let Some(limit) = wait_spec(&args.wait_ready)? {
        // Ready: running with every app started (so its root is in place), or already past
        // running.
        poll(limit, "ready", || {
            let p = pods.find(&pod.uuid)?;
            Ok(p.state.ran() && (p.state != State::Running || apps_started(&p)))
        })?;
        pod = pods.find(&pod.uuid)?;
    }
    if let Some(limit) = wait_spec(&args.wait)? {
        poll(limit, "exited", || {
            Ok(pods.find(&pod.uuid)?.state != State::Running)
        })?;
        pod = pods.find(&pod.uuid)?;
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&PodStatus::of(&pod))?),
        Format::JsonPretty => println!("{}", super::image::go_indent(&PodStatus::of(&pod))),
        Format::Tabbed => print!("{}", status_text(&pod)),
    }
    Ok(())
}

/// Whether the pod's init has started every app: from then on the pod's root is in place.
fn apps_started(pod: &Pod) -> bool {
    pod.pid().is_some()
        && pod
            .manifest()
            .is_ok_and(|m| m.apps.iter().all(|a| pod.app_started(&a.name)))
}

fn poll(limit: Option<Duration>, what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    while !done()? {
        if limit.is_some_and(|l| start.elapsed() >= l) {
            bail!("timed out waiting for the pod to be {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// rkt's `key=value` status lines.
fn status_text(pod: &Pod) -> String {
    let mut out = format!("state={}\n", pod.state.as_str());
    let nanos = |t: std::time::SystemTime| pod::status::nanos(t);
    if let Some(c) = pod.created() {
        out.push_str(&format!("created={}\n", output::go_time(nanos(c))));
    }
    if let Some(s) = pod.started() {
        out.push_str(&format!("started={}\n", output::go_time(nanos(s))));
    }
    if matches!(pod.state, State::Running | State::Exited) {
        out.push_str(&format!(
            "networks={}\n",
            net::summary(&net::read_infos(&pod.path))
        ));
    }
    if !pod.state.ran() {
        return out;
    }
    if let Some(pid) = pod.pid() {
        out.push_str(&format!("pid={pid}\n"));
    }
    let exited = matches!(pod.state, State::Exited | State::ExitedGarbage);
    out.push_str(&format!("exited={exited}\n"));
    if pod.state != State::Running {
        for app in pod.manifest().map(|m| m.apps).unwrap_or_default() {
            if let Some(code) = pod.exit_code(&app.name) {
                out.push_str(&format!("app-{}={code}\n", app.name));
            }
        }
    }
    out
}

pub fn list(global: &GlobalArgs, args: &ListArgs) -> Result<()> {
    let pods = Pods::open(&global.dir)?;
    let mut all = pods.list()?;
    all.sort_by_key(|p| p.created());
    match args.format {
        Format::Json => {
            let v: Vec<PodStatus> = all.iter().map(PodStatus::of).collect();
            println!("{}", serde_json::to_string(&v)?);
            return Ok(());
        }
        Format::JsonPretty => {
            let v: Vec<PodStatus> = all.iter().map(PodStatus::of).collect();
            println!("{}", super::image::go_indent(&v));
            return Ok(());
        }
        Format::Tabbed => {}
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    if !args.no_legend {
        let mut h = vec!["UUID", "APP", "IMAGE NAME"];
        if args.full {
            h.push("IMAGE ID");
        }
        h.extend(["STATE", "CREATED", "STARTED", "NETWORKS"]);
        rows.push(h.into_iter().map(String::from).collect());
    }
    let time = |t: Option<std::time::SystemTime>| match t {
        None => String::new(),
        Some(t) if args.full => output::go_time(pod::status::nanos(t)),
        Some(t) => output::reltime(pod::status::nanos(t)),
    };
    for p in &all {
        let apps = p.manifest().map(|m| m.apps).unwrap_or_default();
        let uuid = if args.full {
            p.uuid.clone()
        } else {
            p.uuid[..8].to_string()
        };
        for (i, app) in apps.iter().enumerate() {
            // Pod-level fields only on a pod's first row, as rkt printed them.
            let first = i == 0;
            let mut row = vec![
                if first { uuid.clone() } else { String::new() },
                app.name.clone(),
                app.image.name.clone(),
            ];
            if args.full {
                row.push(app.image.id.chars().take(19).collect());
            }
            row.extend([
                if first {
                    p.state.as_str().to_string()
                } else {
                    String::new()
                },
                if first {
                    time(p.created())
                } else {
                    String::new()
                },
                if first {
                    time(p.started())
                } else {
                    String::new()
                },
                if first && matches!(p.state, State::Running | State::Exited) {
                    net::summary(&net::read_infos(&p.path))
                } else {
                    String::new()
                },
            ]);
            rows.push(row);
        }
    }
    print!("{}", output::tabwrite(&rows));
    Ok(())
}

/// The pods named by `--uuid-file` or by UUIDs (prefixes allowed).
fn targets(pods: &Pods, uuid_file: Option<&Path>, uuids: &[String]) -> Result<Vec<Pod>> {
    match uuid_file {
        Some(f) => Ok(vec![pods.find_from(None, Some(f))?]),
        None if uuids.is_empty() => bail!("give at least one pod UUID, or --uuid-file"),
        None => uuids.iter().map(|u| pods.find(u)).collect(),
    }
}

pub fn stop(
    global: &GlobalArgs,
    force: bool,
    uuid_file: Option<&Path>,
    uuids: &[String],
) -> Result<()> {
    let pods = Pods::open(&global.dir)?;
    let targets = targets(&pods, uuid_file, uuids)?;
    let mut failed = 0;
    for pod in targets {
        if pod.state != State::Running {
            eprintln!("pod {:?} is already stopped", pod.uuid);
            settle_network(&pods, &pod.uuid);
            continue;
        }
        match stop_one(&pods, &pod, force) {
            Ok(()) => {
                settle_network(&pods, &pod.uuid);
                println!("{:?}", pod.uuid)
            }
            Err(e) => {
                eprintln!("stop: pod {:?}: {}", pod.uuid, output::error_chain(&e));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} pod(s) could not be stopped");
    }
    Ok(())
}

/// SIGTERM to the pod's init (it forwards it to the app), then SIGKILL to the init, which
/// takes every process of the pod's PID namespace with it.
fn stop_one(pods: &Pods, pod: &Pod, force: bool) -> Result<()> {
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
            None => bail!("the pod has no init PID yet"),
        }
        let start = Instant::now();
        while running()? && start.elapsed() < STOP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !running()? {
            return Ok(());
        }
    }
    let pid = pod.pid().context("the pod has no init PID yet")?;
    send_signal(pid, libc::SIGKILL);
    let start = Instant::now();
    while running()? {
        if start.elapsed() > STOP_TIMEOUT {
            bail!("the pod did not exit after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

pub fn rm(global: &GlobalArgs, uuid_file: Option<&Path>, uuids: &[String]) -> Result<()> {
    let pods = Pods::open(&global.dir)?;
    let targets = targets(&pods, uuid_file, uuids)?;
    let mut failed = 0;
    for pod in targets {
        match remove(&pod) {
            Ok(()) => println!("{:?}", pod.uuid),
            Err(e) => {
                eprintln!("rm: {}", output::error_chain(&e));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} pod(s) could not be removed");
    }
    Ok(())
}

/// `rkt net-teardown POD_DIR`: the exited pod's supervisor undoes its network.
pub fn net_teardown(pod_dir: &Path) -> Result<()> {
    let uuid = pod_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("a pod directory is named after its UUID")?;
    Ok(net::teardown(uuid, pod_dir)?)
}

/// Undoes the network of a pod that exited without its supervisor doing it (the supervisor
/// was killed); a running pod or one busy elsewhere is left alone.
fn settle_network(pods: &Pods, uuid: &str) {
    let Ok(pod) = pods.find(uuid) else { return };
    if pod.state == State::Running || !net::is_set_up(&pod.path) {
        return;
    }
    if let Ok(Some(_lock)) = pod::try_lock_dir(&pod.path) {
        if let Err(e) = net::teardown(&pod.uuid, &pod.path) {
            eprintln!("stop: pod {uuid:?}: undoing its network: {e}");
        }
    }
}

/// Frees everything a pod holds: its network, cgroups and directory. Mounts lived in the pod's own
/// mount namespace and went with it.
fn remove(pod: &Pod) -> Result<()> {
    if matches!(
        pod.state,
        State::Running | State::Preparing | State::Deleting | State::ExitedDeleting
    ) {
        bail!(
            "pod {:?} is {}; stop it first",
            pod.uuid,
            pod.state.as_str()
        );
    }
    let Some(_lock) = pod::try_lock_dir(&pod.path)? else {
        bail!("pod {:?} is busy (locked by another rkt)", pod.uuid);
    };
    if let Err(e) = net::teardown(&pod.uuid, &pod.path) {
        // Removing the pod matters more; what is left is named so it can be found.
        eprintln!("rm: pod {:?}: undoing its network: {e}", pod.uuid);
    }
    remove_cgroups(&pod.uuid)?;
    std::fs::remove_dir_all(&pod.path).with_context(|| format!("removing {}", pod.path.display()))
}

/// Every cgroup directory of the pod, its apps' included, in every hierarchy. Normally the
/// supervisor removed them; after a killed supervisor they are left for rm and gc.
fn remove_cgroups(uuid: &str) -> Result<()> {
    let root = Path::new(layout::cgroup::ROOT);
    match layout::cgroup::remove_pod(root, uuid).as_slice() {
        [] => Ok(()),
        [(dir, e), ..] => bail!(
            "pod {uuid:?}: removing its cgroup {}: {e}; a process of the pod is still in it (kill it, then remove the pod again)",
            dir.display()
        ),
    }
}

pub fn gc(
    global: &GlobalArgs,
    grace: Duration,
    expire_prepared: Duration,
    mark_only: bool,
) -> Result<()> {
    let pods = Pods::open(&global.dir)?;
    for mut pod in pods.list()? {
        let age = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default()
        };
        let to_garbage = match pod.state {
            State::Exited => Some(("exited-garbage", State::ExitedGarbage)),
            State::AbortedPrepare => Some(("garbage", State::Garbage)),
            State::Prepared if age(&pod.path.join("pod-created")) > expire_prepared => {
                Some(("garbage", State::Garbage))
            }
            _ => None,
        };
        if let Some((dir, state)) = to_garbage {
            let Some(_lock) = pod::try_lock_dir(&pod.path)? else {
                continue;
            };
            eprintln!("moving pod {:?} to garbage", pod.uuid);
            pods.transition(&mut pod, dir, state)?;
            std::fs::write(pod.path.join("gc-marked"), b"")?;
        }
    }
    if mark_only {
        return Ok(());
    }
    for pod in pods.list()? {
        if !matches!(pod.state, State::ExitedGarbage | State::Garbage) {
            continue;
        }
        let marked = std::fs::metadata(pod.path.join("gc-marked"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(Duration::MAX);
        if marked < grace {
            continue;
        }
        eprintln!("Garbage collecting pod {:?}", pod.uuid);
        if let Err(e) = remove(&pod) {
            eprintln!("gc: {}", output::error_chain(&e));
        }
    }
    Ok(())
}

/// Replaces this process with `rkt-stage1 enter`, which joins the pod and runs the command.
pub fn enter(global: &GlobalArgs, app: Option<&str>, uuid: &str, command: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let pods = Pods::open(&global.dir)?;
    let pod = pods.find(uuid)?;
    if pod.state != State::Running {
        bail!(
            "pod {} is not running (it is {})",
            pod.uuid,
            pod.state.as_str()
        );
    }
    let apps: Vec<String> = pod.manifest()?.apps.into_iter().map(|a| a.name).collect();
    let app = match app {
        Some(a) if !apps.iter().any(|n| n == a) => {
            bail!(
                "pod {} has no app {a:?} (it has: {})",
                pod.uuid,
                apps.join(", ")
            )
        }
        Some(a) => a.to_string(),
        None if apps.len() > 1 => bail!(
            "Pod contains multiple apps: {}; choose one with --app",
            apps.join(", ")
        ),
        None => apps.first().cloned().unwrap_or_default(),
    };
    // A pod that was just started may not have its root in place yet: enter only once its
    // init has started the app.
    poll(Some(Duration::from_secs(10)), "ready", || {
        let p = pods.find(&pod.uuid)?;
        if p.state != State::Running {
            bail!("pod {} is not running (it is {})", p.uuid, p.state.as_str());
        }
        Ok(p.app_started(&app))
    })?;
    let default = ["/bin/bash".to_string()];
    let command = if command.is_empty() {
        &default[..]
    } else {
        command
    };
    let stage1 = super::run::stage1_path()?;
    let err = std::process::Command::new(&stage1)
        .arg("enter")
        .arg(&pod.path)
        .arg(&app)
        .args(command)
        .exec();
    Err(anyhow::anyhow!("starting {}: {err}", stage1.display()))
}

pub fn cat_manifest(
    global: &GlobalArgs,
    pretty: bool,
    uuid_file: Option<&Path>,
    uuid: Option<&str>,
) -> Result<()> {
    let pods = Pods::open(&global.dir)?;
    let pod = pods.find_from(uuid, uuid_file)?;
    let m = pod.manifest()?;
    if pretty {
        println!("{}", super::image::go_indent(&m));
    } else {
        println!("{}", serde_json::to_string(&m)?);
    }
    Ok(())
}
