//! `rkt status|list|stop|rm|gc|cat-manifest`: pods as rkt showed and cleaned them.

use crate::flags::{self, Format, GlobalArgs};
use crate::output;
use anyhow::{bail, Result};
use pod::status::PodStatus;
use pod::{Pod, Pods, State};
use stage0::lifecycle::{self, GcEvent};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    let pods = Pods::open(&global.data_dir()?)?;
    let mut pod = pods.find_from(args.uuid.as_deref(), args.uuid_file.as_deref())?;
    if let Some(limit) = wait_spec(&args.wait_ready)? {
        lifecycle::wait_ready(&pods, &pod.uuid, limit)?;
        pod = pods.find(&pod.uuid)?;
    }
    if let Some(limit) = wait_spec(&args.wait)? {
        lifecycle::wait_exited(&pods, &pod.uuid, limit)?;
        pod = pods.find(&pod.uuid)?;
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&PodStatus::of(&pod))?),
        Format::JsonPretty => println!("{}", super::image::go_indent(&PodStatus::of(&pod))),
        Format::Tabbed => print!("{}", status_text(&pod)),
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
    let pods = Pods::open(&global.data_dir()?)?;
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
                image_name(&app.image),
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

/// `name:version`, as rkt's list showed an app's image (its name and `version` label).
fn image_name(image: &pod::manifest::RuntimeImage) -> String {
    match image.labels.iter().find(|l| l.name == "version") {
        Some(v) => format!("{}:{}", image.name, v.value),
        None => image.name.clone(),
    }
}

/// The pods named by `--uuid-file` or by UUIDs (prefixes allowed).
fn targets(pods: &Pods, uuid_file: Option<&Path>, uuids: &[String]) -> Result<Vec<Pod>> {
    match uuid_file {
        Some(f) => Ok(vec![pods.find_from(None, Some(f))?]),
        None if uuids.is_empty() => bail!("give at least one pod UUID, or --uuid-file"),
        None => Ok(uuids
            .iter()
            .map(|u| pods.find(u))
            .collect::<pod::Result<_>>()?),
    }
}

pub fn stop(
    global: &GlobalArgs,
    force: bool,
    uuid_file: Option<&Path>,
    uuids: &[String],
) -> Result<()> {
    let pods = Pods::open(&global.data_dir()?)?;
    let mut failed = 0;
    for pod in targets(&pods, uuid_file, uuids)? {
        match lifecycle::stop(&pods, &pod, force) {
            Ok(left) => {
                println!("{:?}", pod.uuid);
                if let Some(e) = left {
                    eprintln!("stop: pod {:?}: {e}", pod.uuid);
                }
            }
            Err(e) if e.kind() == stage0::Kind::Conflict && pod.state != State::Running => {
                eprintln!("{e}")
            }
            Err(e) => {
                eprintln!("stop: pod {:?}: {e}", pod.uuid);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} pod(s) could not be stopped");
    }
    Ok(())
}

pub fn rm(global: &GlobalArgs, uuid_file: Option<&Path>, uuids: &[String]) -> Result<()> {
    let pods = Pods::open(&global.data_dir()?)?;
    let mut failed = 0;
    for pod in targets(&pods, uuid_file, uuids)? {
        match lifecycle::remove(&pod) {
            Ok(left) => {
                println!("{:?}", pod.uuid);
                if let Some(e) = left {
                    eprintln!("rm: pod {:?}: {e}", pod.uuid);
                }
            }
            Err(e) => {
                eprintln!("rm: {e}");
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
    Ok(lifecycle::net_teardown(pod_dir)?)
}

pub fn gc(
    global: &GlobalArgs,
    grace: Duration,
    expire_prepared: Duration,
    mark_only: bool,
) -> Result<()> {
    let config = global.config()?;
    Ok(lifecycle::gc(
        &config,
        grace,
        expire_prepared,
        mark_only,
        &mut |event| match event {
            GcEvent::Marked(uuid) => eprintln!("moving pod {uuid:?} to garbage"),
            GcEvent::Removed(uuid) => eprintln!("Garbage collecting pod {uuid:?}"),
            GcEvent::Failed(uuid, e) => eprintln!("gc: pod {uuid:?}: {e}"),
            GcEvent::NetworkLeft(uuid, e) => eprintln!("gc: pod {uuid:?}: {e}"),
        },
    )?)
}

/// Replaces this process with `rkt-stage1 enter`, which joins the pod and runs the command.
pub fn enter(global: &GlobalArgs, app: Option<&str>, uuid: &str, command: &[String]) -> Result<()> {
    Err(lifecycle::enter(&global.config()?, uuid, app, command).into())
}

pub fn cat_manifest(
    global: &GlobalArgs,
    pretty: bool,
    uuid_file: Option<&Path>,
    uuid: Option<&str>,
) -> Result<()> {
    let pods = Pods::open(&global.data_dir()?)?;
    let pod = pods.find_from(uuid, uuid_file)?;
    let m = pod.manifest()?;
    if pretty {
        println!("{}", super::image::go_indent(&m));
    } else {
        println!("{}", serde_json::to_string(&m)?);
    }
    Ok(())
}
