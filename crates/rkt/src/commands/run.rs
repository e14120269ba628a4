//! `rkt run`, `rkt prepare` and `rkt run-prepared`: stage0. It fetches images, writes the pod
//! manifest and the stage1 plan into the pod directory, then (for run) replaces itself with
//! the stage1 supervisor, which keeps the PID and the pod lock.
//!
//! Contained networks are built by the `net` crate before the pod moves to `run/`; the
//! supervisor tears them down when the pod exits (by running `rkt net-teardown`).

use super::app_args::{self, AppArgs, PodArgs};
use crate::flags::GlobalArgs;
use anyhow::{anyhow, bail, Context, Result};
use image::appc::NameValue;
use image::fetch::PullPolicy;
use image::store::Store;
use layout::plan::{AppPlan, Mount as PlanMount, Net, Plan, Seccomp};
use layout::pod_dir::PodDir;
use pod::manifest::{Mount, PodManifest, RuntimeApp, RuntimeImage, Volume};
use pod::{PodLock, Pods, State};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// The flags `run-prepared` takes (and `run` shares).
#[derive(Debug, Default, clap::Args)]
pub struct RuntimeArgs {
    /// Networks: default, default-restricted, host, none, all, or names from net.d
    /// (NAME:K=V;K=V passes CNI_ARGS); a bare --net means default
    #[arg(long, value_delimiter = ',', num_args = 0..=1, require_equals = true, default_missing_value = "default")]
    pub net: Vec<String>,
    /// DNS server IPs, or "host" or "none"
    #[arg(long)]
    pub dns: Vec<String>,
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    #[arg(long = "dns-opt")]
    pub dns_opt: Vec<String>,
    #[arg(long = "dns-domain")]
    pub dns_domain: Option<String>,
    /// The pod's hostname (default rkt-<uuid>)
    #[arg(long)]
    pub hostname: Option<String>,
    /// IP=HOST entries for /etc/hosts, or "host"
    #[arg(long = "hosts-entry")]
    pub hosts_entries: Vec<String>,
    /// Join this existing network namespace instead of making one (not an rkt 1.30 flag:
    /// nomad-driver-rkt uses it for Nomad's group networks)
    #[arg(long = "net-namespace")]
    pub net_namespace: Option<PathBuf>,
    /// Give the (single) app this terminal: its stdin is rkt's (otherwise /dev/null)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::flags::parse_bool, default_value = "false")]
    pub interactive: bool,
    /// The pod's IPC namespace: auto or private (its own), or parent (the host's)
    #[arg(long)]
    pub ipc: Option<String>,
    #[arg(long = "mds-register", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::flags::parse_bool, default_value = "false")]
    pub mds_register: bool,
}

pub fn run(global: &GlobalArgs, raw: &[String]) -> Result<()> {
    let (pod_args, apps) = app_args::parse(raw)?;
    let pods = Pods::open(&global.dir)?;
    let (mut pod, lock) = pods.create()?;
    let result = prepare_pod(global, &pod.path, &pod_args, &apps);
    if let Err(e) = result {
        discard(&pod.path);
        return Err(e);
    }
    let runtime = RuntimeArgs {
        net: pod_args.net.clone(),
        dns: pod_args.dns.clone(),
        dns_search: pod_args.dns_search.clone(),
        dns_opt: pod_args.dns_opt.clone(),
        dns_domain: pod_args.dns_domain.clone(),
        hostname: pod_args.hostname.clone(),
        hosts_entries: pod_args.hosts_entries.clone(),
        interactive: pod_args.interactive,
        ipc: pod_args.ipc.clone(),
        ..Default::default()
    };
    if let Err(e) = write_runtime(global, &pod.path, &pod.uuid, &runtime) {
        discard(&pod.path);
        return Err(e);
    }
    let started = save_uuid(&pod_args, &pod.uuid)
        .and_then(|()| pods.transition(&mut pod, "run", State::Running))
        .map(|()| exec_stage1(&pod.path, lock));
    let err = match started {
        Ok(exec_error) | Err(exec_error) => exec_error,
    };
    let _ = net::teardown(&pod.uuid, &pod.path);
    discard(&pod.path);
    Err(err)
}

pub fn prepare(global: &GlobalArgs, raw: &[String]) -> Result<()> {
    let (pod_args, apps) = app_args::parse(raw)?;
    if !pod_args.net.is_empty()
        || !pod_args.dns.is_empty()
        || pod_args.hostname.is_some()
        || pod_args.interactive
        || pod_args.ipc.is_some()
    {
        bail!("--net, --dns, --hostname, --interactive and --ipc are flags of run-prepared, not of prepare");
    }
    let pods = Pods::open(&global.dir)?;
    let (mut pod, lock) = pods.create()?;
    if let Err(e) = prepare_pod(global, &pod.path, &pod_args, &apps) {
        discard(&pod.path);
        return Err(e);
    }
    save_uuid(&pod_args, &pod.uuid)?;
    pods.transition(&mut pod, "prepared", State::Prepared)?;
    drop(lock);
    println!("{}", pod.uuid);
    Ok(())
}

pub fn run_prepared(global: &GlobalArgs, uuid: &str, runtime: &RuntimeArgs) -> Result<()> {
    let pods = Pods::open(&global.dir)?;
    let mut pod = pods.find(uuid)?;
    if pod.state != State::Prepared {
        bail!(
            "pod {} is not prepared (it is {})",
            pod.uuid,
            pod.state.as_str()
        );
    }
    let lock = pod::try_lock_dir(&pod.path)?
        .ok_or_else(|| anyhow!("pod {} is locked by another rkt", pod.uuid))?;
    // Refused runtime flags leave the pod prepared, as it was.
    write_runtime(global, &pod.path, &pod.uuid, runtime)?;
    if let Err(e) = pods.transition(&mut pod, "run", State::Running) {
        let _ = net::teardown(&pod.uuid, &pod.path);
        return Err(e);
    }
    let err = exec_stage1(&pod.path, lock);
    // The pod is in run/ with no supervisor: it shows as exited, with its network undone.
    let _ = net::teardown(&pod.uuid, &pod.path);
    Err(err)
}

/// Removes a pod that failed to prepare, so that nothing half-made stays behind.
fn discard(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}

fn save_uuid(pod_args: &PodArgs, uuid: &str) -> Result<()> {
    if let Some(f) = &pod_args.uuid_file_save {
        // Whole or not at all: whoever waits for the file must never read half a UUID.
        let tmp = format!("{f}.tmp-{}", std::process::id());
        std::fs::write(&tmp, uuid)
            .and_then(|()| std::fs::rename(&tmp, f))
            .with_context(|| format!("writing the UUID to {f}"))?;
    }
    Ok(())
}

/// Fetches the images, resolves the apps, and writes the pod manifest, the apps' plan
/// records and the resolved `--port`s (see [`layout::pod_dir`]).
fn prepare_pod(
    global: &GlobalArgs,
    dir: &Path,
    pod_args: &PodArgs,
    apps: &[AppArgs],
) -> Result<()> {
    // Check the pod's flags before fetching anything, so bad input fails fast and says why.
    for v in &pod_args.volumes {
        parse_volume(v)?;
    }
    let mut runtime_apps: Vec<RuntimeApp> = Vec::new();
    let mut volumes: Vec<Volume> = Vec::new();
    let mut prepared = Vec::new();
    for app in apps {
        let (runtime_app, app_volumes, p) = prepare_app(global, dir, pod_args, app)?;
        if runtime_apps.iter().any(|a| a.name == runtime_app.name) {
            bail!(
                "two apps are named {:?}; give one of them another with --name",
                runtime_app.name
            );
        }
        for v in app_volumes {
            if !volumes.iter().any(|known| known.name == v.name) {
                volumes.push(v);
            }
        }
        runtime_apps.push(runtime_app);
        prepared.push(p);
    }
    let ports = pod_args
        .ports
        .iter()
        .map(|p| forward(p, &runtime_apps))
        .collect::<Result<Vec<_>>>()?;
    let pod_manifest = PodManifest::new(runtime_apps, volumes, Vec::new());
    let pod = PodDir::new(dir);
    std::fs::write(pod.manifest(), serde_json::to_vec(&pod_manifest)?)?;
    std::fs::create_dir_all(pod.path.join("stage1"))?;
    std::fs::write(pod.prepared(), Plan::encode_apps(&prepared)?)?;
    std::fs::write(pod.ports(), serde_json::to_vec(&ports)?)?;
    Ok(())
}

/// `--port=NAME:[HOSTIP:]HOSTPORT`, NAME being a port of one of the pod's apps.
fn forward(spec: &str, apps: &[RuntimeApp]) -> Result<net::Forward> {
    let bad = || {
        anyhow!("invalid --port {spec:?}; use NAME:[HOSTIP:]HOSTPORT, NAME being a port of the image (such as 80-tcp)")
    };
    let (name, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (host_ip, host_port) = match rest.rsplit_once(':') {
        Some((ip, port)) => (Some(ip.parse().map_err(|_| bad())?), port),
        None => (None, rest),
    };
    let host_port: u16 = host_port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let port = apps
        .iter()
        .flat_map(|a| &a.app.ports)
        .find(|p| p.name == name)
        .ok_or_else(|| anyhow!("port name {name:?} could not be found in any apps"))?;
    let protocol = port.protocol.to_ascii_lowercase();
    if protocol != "tcp" && protocol != "udp" {
        bail!("port {name:?} uses protocol {protocol:?}; only tcp and udp can be forwarded");
    }
    Ok(net::Forward {
        name: name.to_string(),
        protocol,
        host_ip,
        host_port,
        pod_port: port.port,
    })
}

/// Resolves one app: its image (fetched if needed), command, environment, user, volumes and
/// limits. Returns its pod-manifest entry, the volumes it uses, and what stage1 needs.
fn prepare_app(
    global: &GlobalArgs,
    dir: &Path,
    pod_args: &PodArgs,
    app: &AppArgs,
) -> Result<(RuntimeApp, Vec<Volume>, AppPlan)> {
    let memory = app
        .memory
        .as_deref()
        .map(app_args::parse_bytes)
        .transpose()?;
    let millicores = app
        .cpu
        .as_deref()
        .map(app_args::parse_millicores)
        .transpose()?;
    let caps = pod::caps::effective_set(app.caps_retain.as_deref(), app.caps_remove.as_deref())?;
    let seccomp = pod::seccomp::filter(app.seccomp.as_deref())?;
    let policy: PullPolicy = pod_args
        .pull_policy
        .as_deref()
        .unwrap_or("new")
        .parse()
        .map_err(anyhow::Error::msg)?;
    let store = Store::open(&global.dir)?;
    let image_id = resolve_image(global, &store, &app.image, policy)?;
    store.touch(&image_id)?;
    let manifest = store.manifest(&image_id)?;
    let image_app = manifest.app.clone().ok_or_else(|| {
        anyhow!(
            "image {} has no app to run (its manifest has no \"app\")",
            app.image
        )
    })?;
    let name = app.name.clone().unwrap_or_else(|| app_name(&manifest.name));
    let image_rootfs = store.rootfs(&image_id);

    let mut exec = match &app.exec {
        Some(e) => vec![e.clone()],
        None => image_app.exec.clone(),
    };
    if app.exec.is_some() || !app.args.is_empty() {
        // --exec replaces the whole command; arguments after `--` replace the image's.
        exec.truncate(1);
        exec.extend(app.args.iter().cloned());
    }
    if exec.is_empty() {
        bail!(
            "image {} has no exec; give the command with --exec",
            app.image
        );
    }
    let env = environment(pod_args, app, &image_app.environment, &name)?;
    let user = app.user.clone().unwrap_or(image_app.user.clone());
    let group = app.group.clone().unwrap_or(image_app.group.clone());
    let uid = resolve_id(&image_rootfs, &user, "passwd", "user")?;
    let gid = resolve_id(&image_rootfs, &group, "group", "group")?;

    let (volumes, mounts) = volumes(dir, pod_args, app, &image_app.mount_points)?;
    let mut isolators = Vec::new();
    if let Some(m) = memory {
        isolators.push(
            serde_json::json!({"name": "resource/memory", "value": {"limit": m.to_string()}}),
        );
    }
    if let Some(c) = millicores {
        isolators
            .push(serde_json::json!({"name": "resource/cpu", "value": {"limit": format!("{c}m")}}));
    }
    let insecure = &global.insecure_options;
    if !insecure.capabilities {
        let names: Vec<&str> = caps.iter().map(|c| pod::caps::name(*c)).collect();
        isolators.push(serde_json::json!({"name": "os/linux/capabilities-retain-set", "value": {"set": names}}));
    }
    let mut runtime_app = image_app.clone();
    runtime_app.exec = exec.clone();
    runtime_app.user = uid.to_string();
    runtime_app.group = gid.to_string();
    runtime_app.isolators = isolators;
    let runtime_app = RuntimeApp {
        name: name.clone(),
        image: RuntimeImage {
            name: manifest.name.clone(),
            id: image_id.clone(),
            labels: manifest.labels.clone(),
        },
        app: runtime_app,
        read_only_root_fs: app.readonly_rootfs,
        mounts: mounts
            .iter()
            .map(|(vol, target, _, _, _)| Mount {
                volume: vol.clone(),
                path: target.clone(),
            })
            .collect(),
    };
    let appsinfo = dir.join("appsinfo").join(&name);
    std::fs::create_dir_all(&appsinfo)?;
    std::fs::write(appsinfo.join("treeStoreID"), &image_id)?;

    let overlay = !pod_args.no_overlay;
    if !overlay {
        super::copy_tree(
            &image_rootfs,
            &dir.join("stage1/rootfs/opt/stage2")
                .join(&name)
                .join("rootfs"),
        )?;
    }
    let caps = (!insecure.capabilities).then_some(caps);
    let prepared = AppPlan {
        name,
        image: Some(app.image.clone()),
        image_rootfs: image_rootfs.display().to_string(),
        overlay,
        exec,
        env,
        workdir: app
            .working_dir
            .clone()
            .or(Some(image_app.working_directory.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into()),
        uid,
        gid,
        supplementary_gids: app.supplementary_gids.clone(),
        readonly_rootfs: app.readonly_rootfs,
        mounts: mounts
            .into_iter()
            .map(|(_, target, source, read_only, recursive)| PlanMount {
                source,
                target,
                read_only,
                recursive,
            })
            .collect(),
        memory_limit: memory,
        cpu_quota_us: millicores.map(|m| m * 100),
        cpu_shares: app.cpu_shares,
        oom_score_adj: app.oom_score_adj,
        // No app gains privileges through setuid binaries or file capabilities, unless
        // --insecure-options=capabilities lifted the capability limits too.
        no_new_privs: caps.is_some(),
        caps,
        mask_paths: !insecure.paths,
        seccomp: (!insecure.seccomp).then_some(Seccomp {
            allowed: seccomp.allowed,
            errno: seccomp.errno,
        }),
    };
    Ok((runtime_app, volumes, prepared))
}

/// Fetches or finds the image for an app argument.
fn resolve_image(
    global: &GlobalArgs,
    store: &Store,
    image: &str,
    policy: PullPolicy,
) -> Result<String> {
    if image.starts_with("docker://") {
        // A stored image is used as it is; only a fetch needs --insecure-options=image.
        if policy != PullPolicy::Update {
            let r = image::reference::Reference::parse(image)?;
            if let Some(info) = store.find_by_name(&r.image_name(), r.tag.as_deref())? {
                if r.digest.is_none() || r.digest.as_deref() == Some(&info.manifest_digest) {
                    return Ok(info.id);
                }
            }
        }
        crate::flags::require_insecure_image(&global.insecure_options, image)?;
        let fetcher = super::fetch::fetcher(global, policy)?;
        return super::fetch::runtime()?.block_on(fetcher.fetch(image));
    }
    Ok(store
        .resolve(image)
        .with_context(|| {
            format!("image {image:?} is not in the store, and only docker:// images can be fetched")
        })?
        .id)
}

/// rkt names an app after the last component of its image name.
fn app_name(image_name: &str) -> String {
    let last = image_name.rsplit('/').next().unwrap_or(image_name);
    image::appc::sanitize_ac_name(last).unwrap_or_else(|_| "app".into())
}

/// appc's environment, by rkt's precedence: host (with --inherit-env), image,
/// --set-env-file, --set-env, --environment; then AC_APP_NAME and container.
fn environment(
    pod: &PodArgs,
    app: &AppArgs,
    image_env: &[NameValue],
    name: &str,
) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(n, _)| n == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    set(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    if pod.inherit_env {
        for (k, v) in std::env::vars() {
            set(&k, &v);
        }
    }
    for e in image_env {
        set(&e.name, &e.value);
    }
    for f in &pod.set_env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("--set-env-file {f}"))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| anyhow!("--set-env-file {f}: line {line:?} is not NAME=VALUE"))?;
            set(k, v);
        }
    }
    for kv in pod.set_env.iter().chain(&app.environment) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("environment {kv:?} is not NAME=VALUE"))?;
        set(k, v);
    }
    set("AC_APP_NAME", name);
    set("container", "rkt");
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// A user or group: a number, a name from the image's /etc/passwd or /etc/group, or an
/// absolute path whose owner (or group) is used.
fn resolve_id(rootfs: &Path, spec: &str, db: &str, what: &str) -> Result<u32> {
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(n);
    }
    if spec.starts_with('/') {
        let st = image::rootfs::stat(rootfs, spec)
            .with_context(|| format!("{what} {spec:?}: no such file in the image"))?;
        return Ok(if what == "user" { st.st_uid } else { st.st_gid });
    }
    let text = image::rootfs::read(rootfs, &format!("/etc/{db}"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?;
            (name == spec).then(|| id.parse().ok()).flatten()
        })
        .next()
        .ok_or_else(|| anyhow!("{what} {spec:?} not found in the image's /etc/{db}; give a number or a name the image defines"))
}

/// Matches volumes to mount points and `--mount`s. Returns the manifest's volumes and the
/// mounts as (volume, target, host source, read-only, recursive).
#[allow(clippy::type_complexity)]
fn volumes(
    dir: &Path,
    pod: &PodArgs,
    app: &AppArgs,
    mount_points: &[image::appc::MountPoint],
) -> Result<(Vec<Volume>, Vec<(String, String, String, bool, bool)>)> {
    let mut vols: Vec<Volume> = pod
        .volumes
        .iter()
        .map(|v| parse_volume(v))
        .collect::<Result<_>>()?;
    let mut wanted: Vec<(String, String)> = Vec::new(); // (volume, target)
    for m in pod.mounts.iter().chain(&app.mounts) {
        let mut volume = None;
        let mut target = None;
        for kv in m.split(',') {
            match kv.split_once('=') {
                Some(("volume", v)) => volume = Some(v.to_string()),
                Some(("target", t)) => target = Some(t.to_string()),
                _ => bail!("invalid --mount {m:?}; use volume=NAME,target=PATH"),
            }
        }
        match (volume, target) {
            (Some(v), Some(t)) if t.starts_with('/') => {
                wanted.retain(|(_, old)| *old != t); // a per-app mount wins over a global one
                wanted.push((v, t));
            }
            _ => {
                bail!("invalid --mount {m:?}; use volume=NAME,target=PATH with an absolute target")
            }
        }
    }
    for mp in mount_points {
        if !wanted.iter().any(|(_, t)| *t == mp.path) {
            wanted.push((mp.name.clone(), mp.path.clone()));
        }
    }
    let mut mounts = Vec::new();
    for (vol, target) in wanted {
        if !vols.iter().any(|v| v.name == vol) {
            let from_mount_point = mount_points.iter().any(|m| m.name == vol);
            if !from_mount_point {
                bail!("--mount names volume {vol:?}, but no --volume defines it");
            }
            vols.push(Volume {
                name: vol.clone(),
                kind: "empty".into(),
                source: None,
                read_only: None,
                recursive: None,
                mode: Some("0755".into()),
                uid: Some(0),
                gid: Some(0),
            });
        }
        let v = vols.iter().find(|v| v.name == vol).expect("just ensured");
        let source = match v.kind.as_str() {
            "host" => host_source(v)?,
            _ => {
                // Relative to the pod directory, which moves between state directories.
                make_empty_volume(&dir.join("volumes").join(&v.name), v)?;
                format!("volumes/{}", v.name)
            }
        };
        // rkt's default (its coreos flavour): recursive binds.
        mounts.push((
            vol,
            target,
            source,
            v.read_only.unwrap_or(false),
            v.recursive.unwrap_or(true),
        ));
    }
    Ok((vols, mounts))
}

/// A host volume's source with every symlink resolved now, at prepare time: stage1 refuses to
/// follow a symlink in it later, so a path swapped for a symlink between `prepare` and
/// `run-prepared` (by whoever owns the directory) cannot redirect the bind.
fn host_source(v: &Volume) -> Result<String> {
    let source = v.source.as_deref().expect("host volumes have a source");
    let real = std::fs::canonicalize(source).map_err(|e| {
        anyhow!(
            "volume {}: source {source}: {e}; host volumes bind an existing path",
            v.name
        )
    })?;
    Ok(real.display().to_string())
}

fn make_empty_volume(p: &Path, v: &Volume) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p)?;
    let mode = u32::from_str_radix(v.mode.as_deref().unwrap_or("0755"), 8)
        .map_err(|_| anyhow!("volume {}: invalid mode {:?}", v.name, v.mode))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    std::os::unix::fs::chown(p, v.uid, v.gid)?;
    Ok(())
}

/// `NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL]` or
/// `NAME,kind=empty[,mode=0755][,uid=0][,gid=0]`.
fn parse_volume(s: &str) -> Result<Volume> {
    let bad = |why: &str| {
        anyhow!("invalid --volume {s:?}: {why}; use NAME,kind=host,source=PATH or NAME,kind=empty")
    };
    let mut parts = s.split(',');
    let name = parts
        .next()
        .filter(|n| !n.is_empty() && !n.contains('='))
        .ok_or_else(|| bad("no name"))?;
    let mut v = Volume {
        name: name.to_string(),
        kind: String::new(),
        source: None,
        read_only: None,
        recursive: None,
        mode: None,
        uid: None,
        gid: None,
    };
    for kv in parts {
        let (k, val) = kv
            .split_once('=')
            .ok_or_else(|| bad(&format!("{kv:?} is not key=value")))?;
        let boolean = |x: &str| crate::flags::parse_bool(x).map_err(|e| bad(&e));
        let number = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| bad(&format!("{k}={x} is not a number")))
        };
        match k {
            "kind" => v.kind = val.to_string(),
            "source" => v.source = Some(val.to_string()),
            "readOnly" => v.read_only = Some(boolean(val)?),
            "recursive" => v.recursive = Some(boolean(val)?),
            "mode" => v.mode = Some(val.to_string()),
            "uid" => v.uid = Some(number(val)?),
            "gid" => v.gid = Some(number(val)?),
            _ => return Err(bad(&format!("unknown key {k:?}"))),
        }
    }
    match v.kind.as_str() {
        "host" => {
            let src = v
                .source
                .as_deref()
                .ok_or_else(|| bad("kind=host needs source=PATH"))?;
            if !src.starts_with('/') {
                return Err(bad("source must be an absolute path"));
            }
            if !Path::new(src).exists() {
                return Err(bad(&format!("source {src} does not exist")));
            }
        }
        "empty" => {
            v.mode.get_or_insert_with(|| "0755".into());
            v.uid.get_or_insert(0);
            v.gid.get_or_insert(0);
        }
        _ => return Err(bad("kind must be host or empty")),
    }
    Ok(v)
}

/// Writes the runtime parts (the network, hostname, DNS, hosts, the plan for stage1).
/// Everything that can be refused is refused here, before the pod moves to `run/`; on failure
/// the pod's network is undone.
fn write_runtime(global: &GlobalArgs, dir: &Path, uuid: &str, rt: &RuntimeArgs) -> Result<()> {
    stage1_path()?;
    if rt.mds_register {
        bail!("--mds-register: this rkt has no metadata service; leave it false");
    }
    let pod_dir = PodDir::new(dir);
    let mut plan = Plan::load(&pod_dir.prepared()).context("reading the prepared pod")?;
    if rt.interactive && plan.apps.len() > 1 {
        bail!(
            "--interactive gives one app your terminal, and this pod has {} apps; run one image",
            plan.apps.len()
        );
    }
    let ports: Vec<net::Forward> = serde_json::from_slice(
        &std::fs::read(pod_dir.ports()).context("reading the prepared pod's ports")?,
    )?;
    let mode = match &rt.net_namespace {
        Some(ns) => joined_namespace(ns, rt)?,
        None => net::conf::parse_mode(&rt.net)?,
    };
    let hostname = rt.hostname.clone().unwrap_or_else(|| format!("rkt-{uuid}"));
    // Flags are checked before any network is made.
    let hosts = hosts_file(&rt.hosts_entries, &hostname)?;
    let dns = dns_flags(rt)?;
    let networked = match &mode {
        net::NetMode::Contained(requests) => {
            let confs = net::conf::load(&global.local_config, &global.system_config, requests)?;
            Some(net::setup(uuid, dir, &confs, &ports)?)
        }
        _ if !ports.is_empty() => bail!(
            "--port needs a contained network (--net=default or a network from net.d); with --net=host, --net=none or --net-namespace there is nothing for rkt to forward to"
        ),
        _ => None,
    };
    plan.hostname = hostname;
    plan.cgroup = layout::cgroup::pod_rel(uuid);
    plan.interactive = rt.interactive;
    plan.host_ipc = host_ipc(rt.ipc.as_deref())?;
    let written = set_network(&mut plan, uuid, &mode)
        .and_then(|()| write_pod_files(&pod_dir, &plan, &hosts, dns, &mode, networked.as_ref()));
    if written.is_err() {
        let _ = net::teardown(uuid, dir);
    }
    written
}

/// `--ipc`: whether the pod shares the host's IPC namespace.
fn host_ipc(ipc: Option<&str>) -> Result<bool> {
    match ipc.unwrap_or("auto") {
        "auto" | "private" => Ok(false),
        "parent" => Ok(true),
        other => bail!("invalid --ipc {other:?}; use auto, private or parent"),
    }
}

/// The plan's network: which namespace the pod init joins, and who undoes it.
fn set_network(plan: &mut Plan, uuid: &str, mode: &net::NetMode) -> Result<()> {
    (plan.net, plan.netns, plan.net_teardown) = match mode {
        net::NetMode::Host => (Net::Host, None, None),
        net::NetMode::None => (Net::None, None, None),
        net::NetMode::Joined(ns) => (Net::Contained, Some(ns.display().to_string()), None),
        net::NetMode::Contained(_) => {
            let rkt = std::env::current_exe().context("finding the rkt binary")?;
            (
                Net::Contained,
                Some(net::netns::path_for(uuid).display().to_string()),
                Some(rkt.display().to_string()),
            )
        }
    };
    Ok(())
}

/// The pod's /etc files and the plan stage1 runs.
fn write_pod_files(
    pod: &PodDir,
    plan: &Plan,
    hosts: &str,
    dns: DnsFlags,
    mode: &net::NetMode,
    networked: Option<&net::Networked>,
) -> Result<()> {
    let etc = pod.etc();
    std::fs::create_dir_all(&etc)?;
    std::fs::write(etc.join("hostname"), format!("{}\n", plan.hostname))?;
    std::fs::write(etc.join("hosts"), hosts)?;
    if let Some(resolv) = resolv_conf(dns, mode, networked.map(|n| &n.dns)) {
        std::fs::write(etc.join("resolv.conf"), resolv)?;
    }
    std::fs::write(pod.plan(), plan.encode()?)?;
    Ok(())
}

/// `--net-namespace=PATH`: an existing network namespace, alone.
fn joined_namespace(ns: &Path, rt: &RuntimeArgs) -> Result<net::NetMode> {
    if !rt.net.is_empty() {
        bail!(
            "--net-namespace joins an existing network namespace; it cannot be combined with --net"
        );
    }
    if !ns.exists() {
        bail!("network namespace {} does not exist", ns.display());
    }
    Ok(net::NetMode::Joined(ns.to_path_buf()))
}

/// Replaces this process with the supervisor, which inherits the pod lock. Returns only on
/// failure.
fn exec_stage1(dir: &Path, lock: PodLock) -> anyhow::Error {
    let stage1 = match stage1_path() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let fd = lock.raw_fd();
    // The lock must survive exec: the supervisor holds it for the pod's life.
    if let Err(e) = clear_cloexec(fd) {
        return e;
    }
    let err = std::process::Command::new(&stage1)
        .arg(dir)
        .env("RKT_LOCK_FD", fd.to_string())
        .exec();
    anyhow!("starting the stage1 supervisor {}: {err}", stage1.display())
}

fn clear_cloexec(fd: i32) -> Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if r != 0 {
        bail!("fcntl on the pod lock: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `rkt-stage1` beside the `rkt` binary.
pub fn stage1_path() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the rkt binary")?;
    let p = exe.with_file_name("rkt-stage1");
    if !p.exists() {
        bail!(
            "stage1 supervisor not found at {}; install rkt-stage1 beside rkt",
            p.display()
        );
    }
    Ok(p)
}

fn hosts_file(entries: &[String], hostname: &str) -> Result<String> {
    if entries.iter().any(|e| e == "host") {
        return std::fs::read_to_string("/etc/hosts").context("reading the host's /etc/hosts");
    }
    let mut out = format!("127.0.0.1\tlocalhost localhost.localdomain {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for e in entries {
        let (ip, host) = e
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --hosts-entry {e:?}; use IP=HOSTNAME or host"))?;
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| anyhow!("invalid --hosts-entry {e:?}: {ip:?} is not an IP address"))?;
        out.push_str(&format!("{ip}\t{host}\n"));
    }
    Ok(out)
}

/// What the DNS flags ask for.
enum DnsFlags {
    /// No DNS flag: the network's DNS (the host's with --net=host), else the image's file.
    Unset,
    /// --dns=host: the host's resolv.conf.
    Host,
    /// --dns=none: the image's own file stays.
    None,
    /// The resolv.conf the flags spell out.
    Given(String),
}

/// Checks --dns, --dns-search, --dns-opt and --dns-domain.
fn dns_flags(rt: &RuntimeArgs) -> Result<DnsFlags> {
    let special = rt.dns.iter().any(|d| d == "host" || d == "none");
    if special && rt.dns.len() > 1 {
        bail!("--dns=host and --dns=none must be used alone");
    }
    match rt.dns.first().map(String::as_str) {
        Some("host") => return Ok(DnsFlags::Host),
        Some("none") => return Ok(DnsFlags::None),
        None if rt.dns_search.is_empty() && rt.dns_opt.is_empty() && rt.dns_domain.is_none() => {
            return Ok(DnsFlags::Unset);
        }
        _ => {}
    }
    let mut out = String::new();
    for ip in &rt.dns {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| anyhow!("invalid --dns {ip:?}: not an IP address (or host, none)"))?;
        out.push_str(&format!("nameserver {ip}\n"));
    }
    if let Some(d) = &rt.dns_domain {
        out.push_str(&format!("domain {d}\n"));
    }
    if !rt.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", rt.dns_search.join(" ")));
    }
    if !rt.dns_opt.is_empty() {
        out.push_str(&format!("options {}\n", rt.dns_opt.join(" ")));
    }
    Ok(DnsFlags::Given(out))
}

/// The pod's resolv.conf by rkt's precedence: the flags, then the DNS a CNI plugin returned,
/// then (with --net=host) the host's; None keeps the image's own file.
fn resolv_conf(flags: DnsFlags, mode: &net::NetMode, cni: Option<&net::Dns>) -> Option<String> {
    let host = || std::fs::read_to_string("/etc/resolv.conf").ok();
    match flags {
        DnsFlags::Given(text) => Some(text),
        DnsFlags::Host => host(),
        DnsFlags::None => None,
        DnsFlags::Unset => match (mode, cni) {
            // A namespace someone else made comes without DNS of its own: the host's.
            (net::NetMode::Host | net::NetMode::Joined(_), _) => host(),
            (_, Some(d)) if !d.is_empty() => Some(cni_resolv_conf(d)),
            _ => None,
        },
    }
}

fn cni_resolv_conf(d: &net::Dns) -> String {
    let mut out = String::new();
    for ns in &d.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !d.domain.is_empty() {
        out.push_str(&format!("domain {}\n", d.domain));
    }
    if !d.search.is_empty() {
        out.push_str(&format!("search {}\n", d.search.join(" ")));
    }
    if !d.options.is_empty() {
        out.push_str(&format!("options {}\n", d.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_syntax() {
        let v = parse_volume("data,kind=host,source=/tmp,readOnly=true").unwrap();
        assert_eq!((v.kind.as_str(), v.read_only), ("host", Some(true)));
        let v = parse_volume("scratch,kind=empty,mode=0700,uid=5").unwrap();
        assert_eq!(
            (v.mode.as_deref(), v.uid, v.gid),
            (Some("0700"), Some(5), Some(0))
        );
        for bad in [
            "",
            "x,kind=host",
            "x,kind=host,source=rel",
            "x,kind=weird",
            "x,kind=empty,uid=a",
            "x,bogus",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_and_hosts() {
        let rt = RuntimeArgs {
            dns: vec!["8.8.8.8".into()],
            dns_search: vec!["a.b".into()],
            ..Default::default()
        };
        let none = net::NetMode::None;
        let resolv = |rt: &RuntimeArgs, cni: Option<&net::Dns>| {
            resolv_conf(dns_flags(rt).unwrap(), &none, cni)
        };
        assert_eq!(
            resolv(&rt, None).unwrap(),
            "nameserver 8.8.8.8\nsearch a.b\n"
        );
        let cni = net::Dns {
            nameservers: vec!["10.0.0.53".into()],
            search: vec!["svc.local".into()],
            ..Default::default()
        };
        // Flags win over what the network suggests; with no flag the network's DNS is used.
        assert_eq!(
            resolv(&rt, Some(&cni)).unwrap(),
            "nameserver 8.8.8.8\nsearch a.b\n"
        );
        let unset = RuntimeArgs::default();
        assert_eq!(
            resolv(&unset, Some(&cni)).unwrap(),
            "nameserver 10.0.0.53\nsearch svc.local\n"
        );
        let dns_none = RuntimeArgs {
            dns: vec!["none".into()],
            ..Default::default()
        };
        assert_eq!(resolv(&dns_none, Some(&cni)), None);
        let rt = RuntimeArgs {
            dns: vec!["nope".into()],
            ..Default::default()
        };
        assert!(dns_flags(&rt).is_err());
        let h = hosts_file(&["10.0.0.1=db".into()], "rkt-x").unwrap();
        assert!(h.contains("10.0.0.1\tdb\n") && h.contains("rkt-x"));
        assert!(hosts_file(&["bad".into()], "h").is_err());
    }
}
