//! Preparing a pod: fetching its images, resolving each app (command, environment, user,
//! volumes, limits, security), and writing the pod manifest and the apps' plan records.

use crate::error::{bail, invalid, Context, Result};
use crate::spec::{AppSpec, EnvVar, PodSpec, PortSpec};
use crate::volumes::volumes;
use crate::Config;
use image::appc::NameValue;
use image::fetch::PullPolicy;
use image::store::Store;
use layout::plan::{AppPlan, Plan, Seccomp};
use layout::pod_dir::PodDir;
use pod::manifest::{ExposedPort, Mount, PodManifest, RuntimeApp, RuntimeImage, Volume};
use std::path::Path;

/// Removes a pod that failed to prepare, so that nothing half-made stays behind.
pub(crate) fn discard(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}

pub(crate) fn save_uuid(pod_spec: &PodSpec, uuid: &str) -> Result<()> {
    if let Some(f) = &pod_spec.uuid_file_save {
        // Whole or not at all: whoever waits for the file must never read half a UUID.
        image::store::write_atomic(f, uuid.as_bytes())
            .with_context(|| format!("writing the UUID to {}", f.display()))?;
    }
    Ok(())
}

/// Fetches the images, resolves the apps, and writes the pod manifest, the apps' plan
/// records and the resolved `--port`s (see [`layout::pod_dir`]).
pub(crate) fn prepare_pod(
    config: &Config,
    dir: &Path,
    pod_spec: &PodSpec,
    apps: &[AppSpec],
) -> Result<()> {
    if pod_spec.stage1.is_none() {
        let configured = PodSpec {
            stage1: Some(config.stage1_conf()?.flavour()?),
            ..pod_spec.clone()
        };
        return prepare_pod(config, dir, &configured, apps);
    }
    if let Some(manifest) = &pod_spec.pod_manifest {
        return crate::pod_manifest::prepare(config, dir, pod_spec, apps, manifest);
    }
    if pod_spec.private_users {
        crate::userns::check(pod_spec)?;
        if !pod_spec.no_overlay {
            // The apps' roots are copies moved into the pod's user IDs (see crate::userns).
            let copied = PodSpec {
                no_overlay: true,
                ..pod_spec.clone()
            };
            return prepare_pod(config, dir, &copied, apps);
        }
    }
    // Check the pod's flags before fetching anything, so bad input fails fast and says why.
    crate::volumes::check(pod_spec)?;
    let fly = pod_spec.stage1 == Some(crate::spec::Stage1::Fly);
    if fly {
        crate::fly::check(apps)?;
    }
    let mut runtime_apps: Vec<RuntimeApp> = Vec::new();
    let mut volumes: Vec<Volume> = Vec::new();
    let mut prepared = Vec::new();
    for app in apps {
        let (runtime_app, app_volumes, p) = prepare_app(config, dir, pod_spec, app)?;
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
    let ports = pod_spec
        .ports
        .iter()
        .map(|p| forward(p, &runtime_apps))
        .collect::<Result<Vec<_>>>()?;
    // The forwards go into the manifest's `ports` too, as rkt wrote them (appc's
    // ExposedPort: the app's port name and the host side).
    let exposed = ports
        .iter()
        .map(|f| ExposedPort {
            name: f.name.clone(),
            host_port: f.host_port,
            host_ip: f.host_ip.map(|ip| ip.to_string()),
        })
        .collect();
    if fly {
        crate::fly::open_up(&mut runtime_apps, &mut prepared);
    }
    if pod_spec.private_users {
        crate::userns::own(&config.dir, dir, &prepared)?;
    }
    let mut pod_manifest = PodManifest::new(runtime_apps, volumes, exposed);
    pod_manifest.user_annotations = pod_spec.user_annotations.clone();
    pod_manifest.user_labels = pod_spec.user_labels.clone();
    let pod = PodDir::new(dir);
    std::fs::write(pod.manifest(), serde_json::to_vec(&pod_manifest)?)?;
    std::fs::create_dir_all(pod.path.join("stage1"))?;
    std::fs::write(pod.prepared(), Plan::encode_apps(&prepared)?)?;
    std::fs::write(pod.ports(), serde_json::to_vec(&ports)?)?;
    if fly {
        std::fs::write(pod.flavor(), crate::fly::FLAVOR)?;
    }
    Ok(())
}

/// A forwarded port, its name being a port of one of the pod's apps.
pub(crate) fn forward(spec: &PortSpec, apps: &[RuntimeApp]) -> Result<net::Forward> {
    let PortSpec {
        name,
        host_ip,
        host_port,
    } = spec;
    if *host_port == 0 {
        bail!("port {name:?}: host port 0 cannot be forwarded; give a port from 1 to 65535");
    }
    let declared = apps
        .iter()
        .flat_map(|a| &a.app.ports)
        .find(|p| p.name == *name)
        .map(|p| (p.protocol.to_ascii_lowercase(), p.port));
    // A port the image does not declare, named as docker2aci names ports (`8080-tcp`): the
    // pod's port of that number, as Docker's `-p` and Nomad's `ports` forward to.
    let (protocol, pod_port) = declared
        .or_else(|| undeclared_port(name))
        .ok_or_else(|| {
            invalid!("port name {name:?} could not be found in any apps; name one of the image's ports, or a port number and protocol such as 8080-tcp")
        })?;
    if protocol != "tcp" && protocol != "udp" {
        bail!("port {name:?} uses protocol {protocol:?}; only tcp and udp can be forwarded");
    }
    Ok(net::Forward {
        name: name.to_string(),
        protocol,
        host_ip: *host_ip,
        host_port: *host_port,
        pod_port,
    })
}

/// `NUMBER-tcp` or `NUMBER-udp`: (protocol, port).
fn undeclared_port(name: &str) -> Option<(String, u16)> {
    let (number, protocol) = name.split_once('-')?;
    let port = number.parse::<u16>().ok().filter(|p| *p > 0)?;
    matches!(protocol, "tcp" | "udp").then(|| (protocol.to_string(), port))
}

/// Resolves one app: its image (fetched if needed), command, environment, user, volumes and
/// limits. Returns its pod-manifest entry, the volumes it uses, and what stage1 needs.
fn prepare_app(
    config: &Config,
    dir: &Path,
    pod_spec: &PodSpec,
    app: &AppSpec,
) -> Result<(RuntimeApp, Vec<Volume>, AppPlan)> {
    // The app's own flags are checked before anything is fetched.
    let pids_limit = app.pids_limit.value()?;
    check_app(config, app)?;
    pod::caps::effective_set(app.caps_retain.as_deref(), app.caps_remove.as_deref())?;
    pod::seccomp::filter(app.seccomp.as_ref())?;
    let policy = pod_spec.pull_policy;
    let store = Store::open(&config.dir)?;
    let image_id = resolve_image(config, &store, app, policy)?;
    store.touch(&image_id)?;
    let manifest = store.manifest(&image_id)?;
    let image_app = match &app.app {
        Some(given) => given.clone(),
        None => manifest.app.clone().ok_or_else(|| {
            invalid!(
                "image {} has no app to run (its manifest has no \"app\")",
                app.image
            )
        })?,
    };
    let name = app.name.clone().unwrap_or_else(|| app_name(&manifest.name));
    let image_rootfs = store.rootfs(&image_id);
    // What the image's own isolators ask for, where the flags say nothing.
    let with_image = crate::isolators::with_image(app, &image_app.isolators)?;
    let app = &with_image;
    let memory = app.memory;
    let millicores = app.cpu_millicores;
    if millicores == Some(0) {
        bail!("a CPU limit of 0 would never let the app run; give millicores of 1 or more");
    }
    let res = crate::resources::resources(app, &crate::resources::online_cpus())?;
    let (device_mounts, mut device_rules) = crate::resources::devices(app)?;
    let caps = pod::caps::effective_set(app.caps_retain.as_deref(), app.caps_remove.as_deref())?;
    let seccomp = pod::seccomp::filter(app.seccomp.as_ref())?;

    let mut exec = command(app, &image_app.exec);
    if exec.is_empty() {
        bail!(
            "image {} has no exec; give the command with --exec",
            app.image
        );
    }
    let (env, recorded_env) = environment(pod_spec, app, &image_app.environment, &name)?;
    let workdir = app
        .working_dir
        .clone()
        .or(Some(image_app.working_directory.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    exec[0] = crate::exec::Lookup {
        rootfs: &image_rootfs,
        env: &env,
        workdir: &workdir,
        image: &app.image,
    }
    .absolute(&exec[0])?;
    let user = app.user.clone().unwrap_or(image_app.user.clone());
    let group = app.group.clone().unwrap_or(image_app.group.clone());
    let uid = resolve_id(&image_rootfs, &user, "passwd", "user")?;
    let gid = resolve_id(&image_rootfs, &group, "group", "group")?;

    let (volumes, mounts) = volumes(dir, pod_spec, app, &image_app.mount_points)?;
    let mut binds: Vec<layout::plan::Mount> = mounts.iter().map(|m| m.bind.clone()).collect();
    // The devices go last: over anything mounted at the same place.
    binds.extend(device_mounts);
    for r in crate::resources::mount_rules(&binds) {
        if !device_rules.contains(&r) {
            device_rules.push(r);
        }
    }
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
    let insecure = &config.insecure;
    if !insecure.capabilities {
        isolators.push(capabilities_isolator(&caps));
    }
    let mut runtime_app = image_app.clone();
    runtime_app.exec = exec.clone();
    runtime_app.user = uid.to_string();
    runtime_app.group = gid.to_string();
    let supplementary_gids = app
        .supplementary_groups
        .iter()
        .map(|g| resolve_id(&image_rootfs, g, "group", "group"))
        .collect::<Result<Vec<u32>>>()?;
    runtime_app.supplementary_gids = supplementary_gids.clone();
    runtime_app.environment = recorded_env;
    runtime_app.isolators = isolators;
    let runtime_app = RuntimeApp {
        name: name.clone(),
        image: RuntimeImage {
            // Images stored before fetches sanitised names carry the Docker spelling.
            name: image::store::aci_identifier(&manifest.name),
            id: image_id.clone(),
            labels: manifest.labels.clone(),
        },
        app: runtime_app,
        read_only_root_fs: app.readonly_rootfs,
        mounts: mounts
            .iter()
            .map(|m| Mount {
                volume: m.volume.clone(),
                path: m.bind.target.clone(),
            })
            .collect(),
        annotations: Vec::new(),
    };
    let pod_dir = PodDir::new(dir);
    std::fs::create_dir_all(pod_dir.appsinfo(&name))?;
    std::fs::write(pod_dir.tree_store_id(&name), &image_id)?;
    // Once the pod names its image (above), which keeps `image gc` away from its tree while
    // the whole tree is read.
    if !config.insecure.ondisk {
        check_on_disk(&store, &image_id, &app.image)?;
    }

    let overlay = !pod_spec.no_overlay;
    if !overlay {
        crate::fs::copy_tree(&image_rootfs, &pod_dir.app_rootfs(&name))?;
    }
    let caps = (!insecure.capabilities).then_some(caps);
    let prepared = AppPlan {
        name,
        image: Some(app.image.clone()),
        image_rootfs: image_rootfs.display().to_string(),
        overlay,
        exec,
        env,
        workdir,
        uid,
        gid,
        supplementary_gids,
        readonly_rootfs: app.readonly_rootfs,
        mounts: binds,
        memory_limit: memory,
        memory_reservation: app.memory_reservation,
        memory_swap: res.memory_swap,
        cpu_quota_us: res.cpu_quota_us,
        cpu_period_us: res.cpu_period_us,
        cpu_shares: app.cpu_shares,
        cpuset_cpus: res.cpuset_cpus,
        devices: device_rules,
        oom_score_adj: app.oom_score_adj,
        pids_limit,
        // No app gains privileges through setuid binaries or file capabilities, unless
        // --insecure-options=capabilities lifted the capability limits too.
        no_new_privs: caps.is_some() || app.no_new_privs == Some(true),
        caps,
        mask_paths: !insecure.paths,
        rlimits: app.rlimits.clone(),
        tmpfs: app.tmpfs.clone(),
        privileged: app.privileged,
        seccomp: (!insecure.seccomp).then_some(Seccomp {
            allowed: seccomp.allowed,
            errno: seccomp.errno,
        }),
    };
    Ok((runtime_app, volumes, prepared))
}

/// rkt's on-disk check: the image's tree is what was stored (its digest, taken when it was
/// rendered), so that a file changed in the store since is not run. `--insecure-options=ondisk`
/// skips it.
fn check_on_disk(store: &Store, id: &str, image: &str) -> Result<()> {
    use image::verify::Check;
    match image::verify::check(store, id)? {
        Check::Intact | Check::NotRecorded => Ok(()),
        Check::Changed { recorded, now } => Err(crate::Error::invalid(format!(
            "image {image}: its files changed on disk since it was stored (tree digest {now}, recorded {recorded}); `rkt image verify` renders it again, or pass --insecure-options=ondisk to run it as it is"
        ))),
    }
}

/// The app's command: `--entrypoint` replaces the image's entrypoint and drops its command
/// (Docker's rule), with `--exec` and the arguments after it; otherwise `--exec` replaces
/// the image's whole command and the arguments replace the image's.
fn command(app: &AppSpec, image_exec: &[String]) -> Vec<String> {
    if let Some(entrypoint) = &app.entrypoint {
        return entrypoint
            .iter()
            .chain(&app.exec)
            .chain(&app.args)
            .cloned()
            .collect();
    }
    let mut exec = match &app.exec {
        Some(e) => vec![e.clone()],
        None => image_exec.to_vec(),
    };
    if app.exec.is_some() || !app.args.is_empty() {
        exec.truncate(1);
        exec.extend(app.args.iter().cloned());
    }
    exec
}

/// What an app may not ask for on its own: `--privileged` without the isolation lifted
/// (the host's devices to a process that kept seccomp would still hand it the host's disks,
/// so it goes only with `--insecure-options=all-run`), tmpfs at relative paths.
fn check_app(config: &Config, app: &AppSpec) -> Result<()> {
    let i = &config.insecure;
    if app.privileged && !(i.capabilities && i.paths && i.seccomp) {
        bail!(
            "app {}: --privileged gives the app the host's devices and /sys; it needs --insecure-options=all-run (capabilities, paths and seccomp) too",
            app.image
        );
    }
    for t in &app.tmpfs {
        crate::spec::check_tmpfs(t)?;
    }
    for r in &app.rlimits {
        crate::spec::rlimit(&r.name, &format!("{}:{}", r.soft, r.hard))
            .map_err(|e| crate::error::invalid!("ulimit {}: {e}", r.name))?;
    }
    Ok(())
}

/// Fetches or finds the image for an app argument: a Docker image (`docker://…` or a short
/// name, which goes to the default registry of `registries.d`), an image ID in the store, or
/// an ACI.
fn resolve_image(
    config: &Config,
    store: &Store,
    app: &AppSpec,
    policy: PullPolicy,
) -> Result<String> {
    use image::reference::{classify, ImageArg};
    let image = app.image.as_str();
    let kind = classify(image);
    if app.signature.is_some() && kind != ImageArg::Other {
        bail!("--signature {image}: signatures are checked for ACI images; Docker images carry none (--insecure-options=image fetches them)");
    }
    match kind {
        ImageArg::Docker | ImageArg::ShortName => {
            let fetcher = config.fetcher(policy)?;
            let r = fetcher.resolve(image)?;
            // A stored image is used as it is; only a fetch needs --insecure-options=image.
            if policy != PullPolicy::Update {
                if let Some(info) = store.find_docker(&r)? {
                    return Ok(info.id);
                }
            }
            config.insecure.require_image(image)?;
            config.block_on(fetcher.fetch_reference(&r))
        }
        ImageArg::ImageId => Ok(store.resolve(image)?.id),
        // An ACI: a file, a URL, or an appc name (the store first, as the policy allows,
        // then discovery); its signature checked unless --insecure-options=image.
        ImageArg::Other => {
            // A stored image by its name as `rkt image list` shows it (which for Docker
            // images from a registry with a port is no appc name) needs no fetch.
            if policy != PullPolicy::Update {
                if let Ok(info) = store.resolve(image) {
                    return Ok(info.id);
                }
            }
            let fetcher = config.fetcher(policy)?;
            config.block_on(fetcher.fetch_aci(image, app.signature.as_deref()))
        }
    }
}

/// The app's capabilities as an appc isolator. appc requires a non-empty set, so keeping
/// none is written as removing every default one, which means the same.
fn capabilities_isolator(caps: &[u32]) -> serde_json::Value {
    if caps.is_empty() {
        let all = pod::caps::DEFAULT;
        serde_json::json!({"name": "os/linux/capabilities-remove-set", "value": {"set": all}})
    } else {
        let names: Vec<&str> = caps.iter().map(|c| pod::caps::name(*c)).collect();
        serde_json::json!({"name": "os/linux/capabilities-retain-set", "value": {"set": names}})
    }
}

/// rkt names an app after the last component of its image name.
fn app_name(image_name: &str) -> String {
    let last = image_name.rsplit('/').next().unwrap_or(image_name);
    image::appc::sanitize_ac_name(last).unwrap_or_else(|_| "app".into())
}

/// The app's environment, by rkt's precedence: host (with --inherit-env; the image's wins),
/// image, --set-env-file, --set-env, --environment. Returns what the process gets (with
/// stage1's default PATH, AC_APP_NAME and container) and what the pod manifest records, as
/// rkt's stage0 merged it there. appc allows only names like `[A-Za-z_][A-Za-z0-9_.-]*` in a
/// manifest: others (a host's `BASH_FUNC_f%%`) still reach the process but are not recorded.
fn environment(
    pod: &PodSpec,
    app: &AppSpec,
    image_env: &[NameValue],
    name: &str,
) -> Result<(Vec<String>, Vec<NameValue>)> {
    let mut env = EnvList::default();
    if pod.inherit_env {
        for (k, v) in std::env::vars() {
            env.set(&k, &v);
        }
    }
    for e in image_env {
        env.set(&e.name, &e.value);
    }
    for path in &pod.set_env_file {
        let f = path.display();
        let text = std::fs::read_to_string(path).with_context(|| format!("--set-env-file {f}"))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| invalid!("--set-env-file {f}: line {line:?} is not NAME=VALUE"))?;
            env.set(k, v);
        }
    }
    for EnvVar { name, value } in pod.set_env.iter().chain(&app.environment) {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            bail!("environment variable name {name:?} is not a name: it may not be empty or hold '=' or NUL");
        }
        env.set(name, value);
    }
    let recorded = env
        .0
        .iter()
        .filter(|(k, _)| image::appc::is_env_name(k))
        .map(|(k, v)| NameValue {
            name: k.clone(),
            value: v.clone(),
        })
        .collect();
    let mut process = EnvList::default();
    process.set(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    for (k, v) in &env.0 {
        process.set(k, v);
    }
    process.set("AC_APP_NAME", name);
    process.set("container", "rkt");
    let process = process
        .0
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Ok((process, recorded))
}

/// An ordered environment where a later value of a name replaces the earlier one in place.
#[derive(Default)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, k: &str, v: &str) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => self.0.push((k.to_string(), v.to_string())),
        }
    }
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
        .ok_or_else(|| invalid!("{what} {spec:?} not found in the image's /etc/{db}; give a number or a name the image defines"))
}
