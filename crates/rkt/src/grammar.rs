//! rkt's argument grammar for `run` and `prepare`: pod flags, then images, each followed by
//! the flags that apply to it alone; `--` ends rkt's parsing for an app (the rest are the
//! app's arguments) and `---` resumes it for the next image. Flags take `--f=v` or `--f v`;
//! booleans take only `--f` or `--f=bool`, as Go's pflag did.
//!
//! Every value is parsed here, once, into the typed field of stage0's specs it sets
//! ([`stage0::PodSpec`], [`stage0::AppSpec`], [`stage0::RuntimeSpec`]); the Nomad driver sets
//! the same fields from a job without going through text.

use stage0::spec::{
    parse_bool, parse_bytes, parse_device, parse_memory_swap, parse_millicores, parse_pids_limit,
    AppSpec, CpuSet, EnvVar, HostSource, HostsEntry, Ipc, MountSpec, PodSpec, PortSpec, Volume,
    VolumeKind,
};
use stage0::{Error, Result};
use std::path::PathBuf;

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(Error::invalid(format!($($arg)*)))
    };
}

const POD_VALUE_FLAGS: &[&str] = &[
    "net",
    "dns",
    "dns-search",
    "dns-opt",
    "dns-domain",
    "hostname",
    "hosts-entry",
    "volume",
    "port",
    "set-env",
    "set-env-file",
    "uuid-file-save",
    "pull-policy",
    "stage1-url",
    "stage1-path",
    "stage1-name",
    "stage1-hash",
    "stage1-from-dir",
    "pod-manifest",
    "ipc",
    "cgroup-parent",
    "user-annotation",
    "user-label",
    "stdin",
    "stdout",
    "stderr",
    "sysctl",
    "shm-size",
    "pid",
];
const BOOL_FLAGS: &[&str] = &[
    "inherit-env",
    "no-overlay",
    "quiet",
    "interactive",
    "readonly-rootfs",
    "mds-register",
    "private-users",
    "store-only",
    "no-store",
    "privileged",
];
const GLOBAL_FLAGS: &[&str] = &[
    "dir",
    "debug",
    "insecure-options",
    "local-config",
    "system-config",
    "user-config",
    "trust-keys-from-https",
];
const APP_VALUE_FLAGS: &[&str] = &[
    "exec",
    "name",
    "user",
    "group",
    "supplementary-gids",
    "working-dir",
    "memory",
    "memory-reservation",
    "memory-swap",
    "cpu",
    "cpu-period",
    "cpu-shares",
    "cpuset-cpus",
    "device",
    "oom-score-adj",
    "pids-limit",
    "environment",
    "mount",
    "caps-retain",
    "caps-remove",
    "cap-retain",
    "cap-remove",
    "seccomp",
    "entrypoint",
    "ulimit",
    "tmpfs",
    "signature",
];

/// One line of help per flag of the grammar above (a test checks that none lacks one): what
/// `rkt run --help` and `rkt prepare --help` list.
const FLAG_HELP: &[(&str, &str)] = &[
    // Pod flags, before the first image.
    ("net", "networks: default, default-restricted, host, none, all, or names from net.d (NAME:K=V;… passes CNI_ARGS)"),
    ("dns", "DNS server IP for the pod, or host, or none"),
    ("dns-search", "DNS search domain"),
    ("dns-opt", "resolv.conf option"),
    ("dns-domain", "resolv.conf domain"),
    ("hostname", "the pod's hostname (default rkt-UUID)"),
    ("hosts-entry", "IP=HOSTNAME for the pod's /etc/hosts, or host for the host's file"),
    ("volume", "NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL] or NAME,kind=empty[,mode=0755][,uid=N][,gid=N]"),
    ("port", "NAME:[HOSTIP:]HOSTPORT: forward a port of an app from the host"),
    ("set-env", "NAME=VALUE for every app"),
    ("set-env-file", "a file of NAME=VALUE lines for every app"),
    ("uuid-file-save", "write the pod's UUID to this file"),
    ("pull-policy", "new, update or never"),
    ("ipc", "auto, private or parent (the host's IPC namespace)"),
    ("cgroup-parent", "the cgroup pods go below (default rkt.slice), such as machine.slice/rkt"),
    ("inherit-env", "give the apps rkt's environment"),
    ("no-overlay", "copy the image instead of an overlay root"),
    ("quiet", "no download progress"),
    ("interactive", "give the (single) app rkt's stdin and terminal"),
    ("mds-register", "register the pod with the metadata service (rkt metadata-service); its apps get AC_METADATA_URL"),
    ("store-only", "deprecated: --pull-policy=never"),
    ("no-store", "deprecated: --pull-policy=update"),
    ("private-users", "the apps in a user namespace of the pod's own, mapped to a range of host IDs no other pod uses"),
    ("pod-manifest", "an appc pod manifest to run as given (conflicts with images and their flags)"),
    ("user-annotation", "K=V kept in the pod manifest's annotations, shown by status and list"),
    ("user-label", "K=V kept in the pod manifest's labels, shown by status and list"),
    ("stage1-url", "refused: stage1 images cannot be used (the flavours are built in)"),
    ("stage1-path", "refused: stage1 images cannot be used (the flavours are built in)"),
    ("stage1-name", "a built-in flavour: coreos.com/rkt/stage1-coreos (default) or coreos.com/rkt/stage1-fly"),
    ("stage1-hash", "refused: stage1 images cannot be used (the flavours are built in)"),
    ("stage1-from-dir", "a built-in flavour by its image's file name (stage1-coreos.aci, stage1-fly.aci)"),
    ("signature", "the image's detached signature (default: IMAGE.asc beside it)"),
    ("stdin", "refused: use --interactive"),
    ("stdout", "refused: use --interactive"),
    ("stderr", "refused: use --interactive"),
    // App flags, after the image they apply to.
    ("exec", "the command to run instead of the image's"),
    ("name", "the app's name"),
    ("user", "user: a number, a name from the image's /etc/passwd, or a path whose owner"),
    ("group", "group: a number, a name from the image's /etc/group, or a path whose group"),
    ("supplementary-gids", "comma-separated group IDs"),
    ("working-dir", "the app's working directory"),
    ("readonly-rootfs", "the app's root read-only"),
    ("memory", "memory limit (bytes, 512Mi, 1G); the app is OOM-killed beyond it"),
    ("memory-reservation", "memory kept for the app when the host runs short (at most --memory)"),
    ("memory-swap", "memory and swap together (at least --memory), or -1 for no swap limit"),
    ("cpu", "CPU limit in cores or millicores (500m, 2): a quota per --cpu-period"),
    ("cpu-period", "the CPU quota's period in microseconds (1000 to 1000000; default 100000)"),
    ("cpu-shares", "relative CPU weight (cgroup v1 shares; v2 weight converted)"),
    ("cpuset-cpus", "the CPUs the app may run on (0-3,6)"),
    ("device", "HOSTPATH[:CONTAINERPATH[:PERMS]]: a host device for the app, PERMS of r, w, m (default rwm)"),
    ("oom-score-adj", "the app's OOM score adjustment"),
    ("pids-limit", "the most processes and threads (default 2048; max or -1: none)"),
    ("environment", "NAME=VALUE for this app"),
    ("mount", "volume=NAME,target=PATH (before any image: for every app)"),
    ("caps-retain", "keep only these capabilities"),
    ("caps-remove", "appc's default capabilities without these"),
    ("cap-retain", "same as --caps-retain"),
    ("cap-remove", "same as --caps-remove"),
    ("seccomp", "mode=retain|remove[,errno=NAME],SYSCALL|@GROUP,…"),
    ("entrypoint", "JSON list replacing the image's entrypoint (drops its command, as Docker)"),
    ("ulimit", "NAME=SOFT[:HARD] resource limit the app starts with (nofile, nproc, …)"),
    ("tmpfs", "PATH[:size=BYTES,mode=OCTAL]: a file system in memory for the app"),
    // Pod flags not in rkt 1.30.
    ("sysctl", "K=V for the pod's own namespaces (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)"),
    ("shm-size", "the size of /dev/shm (default 64Mi)"),
    ("pid", "private (default) or host (needs --insecure-options=all-run)"),
    ("privileged", "every capability, the host's devices and a writable /sys (needs --insecure-options=all-run)"),
];

/// The flags of `run` and `prepare`, for `--help`.
pub fn help() -> String {
    let line = |(n, h): &(&str, &str)| format!("  --{n:<20} {h}\n");
    let is_app =
        |n: &str| APP_VALUE_FLAGS.contains(&n) || n == "readonly-rootfs" || n == "privileged";
    let mut out = String::from("Pod flags (before the first image):\n");
    for f in FLAG_HELP.iter().filter(|(n, _)| !is_app(n)) {
        out.push_str(&line(f));
    }
    out.push_str("\nApp flags (after the image they apply to):\n");
    for f in FLAG_HELP.iter().filter(|(n, _)| is_app(n)) {
        out.push_str(&line(f));
    }
    out.push_str("\n`--` ends rkt's flags for an app (the rest are its arguments); `---` starts the next image.\n");
    out
}

/// The words after `rkt run` or `rkt prepare`, as typed specs.
pub fn parse(raw: &[String]) -> Result<(PodSpec, Vec<AppSpec>)> {
    let mut pod = PodSpec::default();
    let mut apps: Vec<AppSpec> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let tok = &raw[i];
        i += 1;
        if tok == "---" {
            continue;
        }
        if tok == "--" {
            let Some(app) = apps.last_mut() else {
                bail!("\"--\" must follow an image: it starts that image's arguments");
            };
            while i < raw.len() && raw[i] != "---" {
                app.args.push(raw[i].clone());
                i += 1;
            }
            continue;
        }
        let Some(flag) = tok.strip_prefix("--") else {
            if tok.starts_with('-') && tok.len() > 1 {
                bail!("unknown shorthand flag {tok:?}");
            }
            apps.push(AppSpec {
                image: tok.clone(),
                ..Default::default()
            });
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if BOOL_FLAGS.contains(&name.as_str()) {
            let v = match inline {
                Some(v) => parse_bool(&v).map_err(Error::invalid)?,
                None => true,
            };
            set_bool(&mut pod, apps.last_mut(), &name, v)?;
            continue;
        }
        if GLOBAL_FLAGS.contains(&name.as_str()) {
            bail!("--{name} is a global flag: put it before the subcommand (rkt --{name}=… run …)");
        }
        let is_app = APP_VALUE_FLAGS.contains(&name.as_str());
        if !is_app && !POD_VALUE_FLAGS.contains(&name.as_str()) {
            bail!("unknown flag: --{name}");
        }
        let value = match inline {
            Some(v) => v,
            // rkt's --net has a value for its bare form (Go's NoOptDefVal): the default
            // network; the next word stays an image.
            None if name == "net" => "default".to_string(),
            None if i < raw.len() => {
                i += 1;
                raw[i - 1].clone()
            }
            None => bail!("flag needs an argument: --{name}"),
        };
        if is_app {
            set_app_flag(&mut pod, apps.last_mut(), &name, value)?;
        } else {
            set_pod_flag(&mut pod, &name, value)?;
        }
    }
    if apps.is_empty() && pod.pod_manifest.is_none() {
        bail!("must provide at least one image (or --pod-manifest)");
    }
    Ok((pod, apps))
}

fn set_bool(pod: &mut PodSpec, app: Option<&mut AppSpec>, name: &str, v: bool) -> Result<()> {
    use image::fetch::PullPolicy;
    match name {
        "inherit-env" => pod.inherit_env = v,
        "no-overlay" => pod.no_overlay = v,
        "quiet" => pod.quiet = v,
        "interactive" => pod.runtime.interactive = v,
        "readonly-rootfs" | "privileged" => match (app, name) {
            (Some(a), "readonly-rootfs") => a.readonly_rootfs = v,
            (Some(a), _) => a.privileged = v,
            (None, _) => bail!("--{name} must follow the image it applies to"),
        },
        // rkt's deprecated spellings of --pull-policy.
        "store-only" if v => pod.pull_policy = PullPolicy::Never,
        "no-store" if v => pod.pull_policy = PullPolicy::Update,
        "store-only" | "no-store" => {}
        "mds-register" => pod.runtime.mds_register = v,
        "private-users" => pod.private_users = v,
        _ => unreachable!("--{name} is in BOOL_FLAGS"),
    }
    Ok(())
}

fn set_pod_flag(pod: &mut PodSpec, name: &str, v: String) -> Result<()> {
    let rt = &mut pod.runtime;
    match name {
        "net" => rt.net.extend(v.split(',').map(str::to_string)),
        // rkt took several servers (and entries) comma-separated as well as repeated.
        "dns" => rt.dns.extend(v.split(',').map(str::to_string)),
        "dns-search" => rt.dns_search.push(v),
        "dns-opt" => rt.dns_opt.push(v),
        "dns-domain" => rt.dns_domain = Some(v),
        "hostname" => rt.hostname = Some(v),
        "hosts-entry" => {
            for e in v.split(',') {
                rt.hosts_entries.push(hosts_entry(e)?);
            }
        }
        "sysctl" => rt.sysctls.push(stage0::spec::parse_sysctl(&v)?),
        "shm-size" => rt.shm_size = Some(stage0::spec::parse_size(&v)?),
        "user-annotation" => {
            let (k, val) = key_value("--user-annotation", &v)?;
            pod.user_annotations.insert(k, val);
        }
        "user-label" => {
            let (k, val) = key_value("--user-label", &v)?;
            pod.user_labels.insert(k, val);
        }
        "volume" => pod.volumes.push(volume(&v)?),
        "port" => pod.ports.push(port(&v)?),
        "set-env" => pod.set_env.push(env_var("--set-env", &v)?),
        "set-env-file" => pod.set_env_file.push(PathBuf::from(v)),
        "uuid-file-save" => pod.uuid_file_save = Some(PathBuf::from(v)),
        "pull-policy" => pod.pull_policy = v.parse().map_err(Error::invalid)?,
        "ipc" => rt.ipc = ipc(&v)?,
        "pid" => rt.pid = pid(&v)?,
        "pod-manifest" => pod.pod_manifest = Some(PathBuf::from(v)),
        "cgroup-parent" => {
            rt.cgroup_parent = Some(layout::cgroup::check_parent(&v).map_err(Error::invalid)?)
        }
        "stage1-name" | "stage1-from-dir" | "stage1-url" | "stage1-path" | "stage1-hash" => {
            pod.stage1 = Some(stage1(name, &v)?)
        }
        "stdin" | "stdout" | "stderr" => bail!(
            "--{name}: app stream modes (rkt's experimental attach) are not supported; --interactive gives the app your terminal"
        ),
        _ => unreachable!("--{name} is in POD_VALUE_FLAGS"),
    }
    Ok(())
}

fn set_app_flag(pod: &mut PodSpec, app: Option<&mut AppSpec>, name: &str, v: String) -> Result<()> {
    let Some(app) = app else {
        if name == "mount" {
            pod.mounts.push(mount(&v)?);
            return Ok(());
        }
        bail!("--{name} must follow the image it applies to");
    };
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    match name {
        "exec" => app.exec = Some(v),
        "name" => app.name = Some(v),
        "user" => app.user = Some(v),
        "group" => app.group = Some(v),
        // Group IDs, as rkt took them; names from the image's /etc/group too.
        "supplementary-gids" => app.supplementary_groups.extend(list(&v)),
        "entrypoint" => app.entrypoint = Some(entrypoint(&v)?),
        "ulimit" => app.rlimits.push(stage0::spec::parse_rlimit(&v)?),
        "tmpfs" => app.tmpfs.push(stage0::spec::parse_tmpfs(&v)?),
        "signature" => app.signature = Some(PathBuf::from(v)),
        "working-dir" => app.working_dir = Some(v),
        "memory" => app.memory = Some(parse_bytes(&v)?),
        "memory-reservation" => app.memory_reservation = Some(parse_bytes(&v)?),
        "memory-swap" => app.memory_swap = Some(parse_memory_swap(&v)?),
        "cpu" => app.cpu_millicores = Some(parse_millicores(&v)?),
        "cpu-period" => app.cpu_period_us = Some(number("--cpu-period", &v)?),
        "cpuset-cpus" => app.cpuset_cpus = Some(CpuSet::parse(&v)?),
        "device" => app.devices.push(parse_device(&v)?),
        "cpu-shares" => app.cpu_shares = Some(number("--cpu-shares", &v)?),
        "oom-score-adj" => app.oom_score_adj = Some(number("--oom-score-adj", &v)?),
        "pids-limit" => app.pids_limit = parse_pids_limit(&v)?,
        "environment" => app.environment.push(env_var("--environment", &v)?),
        "caps-retain" | "cap-retain" => app.caps_retain = Some(list(&v)),
        "caps-remove" | "cap-remove" => app.caps_remove = Some(list(&v)),
        "seccomp" => app.seccomp = Some(pod::seccomp::Spec::parse(&v)?),
        "mount" => app.mounts.push(mount(&v)?),
        _ => unreachable!("listed in APP_VALUE_FLAGS"),
    }
    Ok(())
}

/// `--entrypoint`: a JSON array of words (`["/bin/sh","-c"]`), or one word, as podman takes it.
pub fn entrypoint(v: &str) -> Result<Vec<String>> {
    if v.trim_start().starts_with('[') {
        let words: Vec<String> = serde_json::from_str(v).map_err(|e| {
            Error::invalid(format!(
                "--entrypoint {v:?}: not a JSON array of strings: {e}"
            ))
        })?;
        if words.is_empty() {
            bail!("--entrypoint []: give at least the program to run");
        }
        return Ok(words);
    }
    if v.is_empty() {
        bail!("--entrypoint is empty: give the program to run");
    }
    Ok(vec![v.to_string()])
}

/// `KEY=VALUE`, the key not empty.
fn key_value(flag: &str, kv: &str) -> Result<(String, String)> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{flag} {kv:?} is not KEY=VALUE"),
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| Error::invalid(format!("{flag}: {v:?} is not a number")))
}

/// `NAME=VALUE`.
pub fn env_var(flag: &str, kv: &str) -> Result<EnvVar> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(EnvVar::new(k, v)),
        _ => bail!("{flag} {kv:?} is not NAME=VALUE"),
    }
}

/// The stage1 flags: this rkt's stage1 flavours are built in, named as rkt's images were
/// (`--stage1-name=coreos.com/rkt/stage1-fly[:1.30.0]`, `--stage1-from-dir=stage1-fly.aci`);
/// stage1 images themselves (a path, a URL, a hash) cannot be used.
pub fn stage1(flag: &str, v: &str) -> Result<stage0::spec::Stage1> {
    let names = stage0::fly::NAMES;
    let found = match flag {
        "stage1-name" => {
            let (name, version) = match v.split_once(':') {
                Some((n, ver)) => (n, Some(ver)),
                None => (v, None),
            };
            if version.is_some_and(|ver| ver != stage0::fly::VERSION) {
                bail!(
                    "--stage1-name={v}: this rkt's built-in stage1 flavours are version {}",
                    stage0::fly::VERSION
                );
            }
            names.iter().find(|(n, _, _)| *n == name)
        }
        "stage1-from-dir" => names.iter().find(|(_, file, _)| *file == v),
        _ => None,
    };
    let known = || {
        names
            .iter()
            .map(|(n, f, _)| format!("--stage1-name={n} or --stage1-from-dir={f}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match found {
        Some((_, _, flavour)) => Ok(*flavour),
        None if flag == "stage1-name" || flag == "stage1-from-dir" => bail!(
            "--{flag}={v}: not one of this rkt's built-in stage1 flavours; use {}",
            known()
        ),
        None => bail!(
            "--{flag}: this rkt's stage1 flavours are built in and stage1 images cannot be used; use {}",
            known()
        ),
    }
}

/// `--ipc`: auto or private (the pod's own), or parent (the host's).
pub fn ipc(v: &str) -> Result<Ipc> {
    match v {
        "auto" | "private" => Ok(Ipc::Private),
        "parent" => Ok(Ipc::Parent),
        other => bail!("invalid --ipc {other:?}; use auto, private or parent"),
    }
}

/// `--pid`: private (the pod's own) or host.
pub fn pid(v: &str) -> Result<stage0::spec::Pid> {
    match v {
        "private" => Ok(stage0::spec::Pid::Private),
        "host" => Ok(stage0::spec::Pid::Host),
        other => bail!("invalid --pid {other:?}; use private or host"),
    }
}

/// `--hosts-entry`: `IP=HOSTNAME`, or `host` for the host's /etc/hosts.
pub fn hosts_entry(e: &str) -> Result<HostsEntry> {
    if e == "host" {
        return Ok(HostsEntry::Host);
    }
    let (ip, host) = e.split_once('=').ok_or_else(|| {
        Error::invalid(format!(
            "invalid --hosts-entry {e:?}; use IP=HOSTNAME or host"
        ))
    })?;
    let ip = ip.parse().map_err(|_| {
        Error::invalid(format!(
            "invalid --hosts-entry {e:?}: {ip:?} is not an IP address"
        ))
    })?;
    Ok(HostsEntry::Name {
        ip,
        hostname: host.to_string(),
    })
}

/// `--port=NAME:[HOSTIP:]HOSTPORT`.
pub fn port(spec: &str) -> Result<PortSpec> {
    let bad = || {
        Error::invalid(format!("invalid --port {spec:?}; use NAME:[HOSTIP:]HOSTPORT, NAME being a port of the image (such as 80-tcp)"))
    };
    let (name, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (host_ip, host_port) = match rest.rsplit_once(':') {
        Some((ip, port)) => (Some(ip.parse().map_err(|_| bad())?), port),
        None => (None, rest),
    };
    let host_port: u16 = host_port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    Ok(PortSpec {
        name: name.to_string(),
        host_ip,
        host_port,
    })
}

/// `--mount=volume=NAME,target=PATH`.
pub fn mount(m: &str) -> Result<MountSpec> {
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
        (Some(volume), Some(target)) if target.starts_with('/') => Ok(MountSpec { volume, target }),
        _ => bail!("invalid --mount {m:?}; use volume=NAME,target=PATH with an absolute target"),
    }
}

/// `NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL]` or
/// `NAME,kind=empty[,mode=0755][,uid=0][,gid=0][,readOnly=BOOL]`.
pub fn volume(s: &str) -> Result<Volume> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "invalid --volume {s:?}: {why}; use NAME,kind=host,source=PATH or NAME,kind=empty"
        ))
    };
    let mut parts = s.split(',');
    let name = parts
        .next()
        .filter(|n| !n.is_empty() && !n.contains('='))
        .ok_or_else(|| bad("no name"))?;
    let (mut kind, mut source, mut mode, mut uid, mut gid) = (None, None, None, None, None);
    let (mut read_only, mut recursive) = (None, None);
    for kv in parts {
        let (k, val) = kv
            .split_once('=')
            .ok_or_else(|| bad(&format!("{kv:?} is not key=value")))?;
        let boolean = |x: &str| parse_bool(x).map_err(|e| bad(&e));
        let id = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| bad(&format!("{k}={x} is not a number")))
        };
        match k {
            "kind" => kind = Some(val.to_string()),
            "source" => source = Some(PathBuf::from(val)),
            "readOnly" => read_only = Some(boolean(val)?),
            "recursive" => recursive = Some(boolean(val)?),
            "mode" => {
                mode = Some(
                    u32::from_str_radix(val, 8)
                        .map_err(|_| bad(&format!("mode={val} is not an octal mode")))?,
                )
            }
            "uid" => uid = Some(id(val)?),
            "gid" => gid = Some(id(val)?),
            _ => return Err(bad(&format!("unknown key {k:?}"))),
        }
    }
    let kind = match kind.as_deref() {
        Some("host") => {
            let src = source.ok_or_else(|| bad("kind=host needs source=PATH"))?;
            if !src.is_absolute() {
                return Err(bad("source must be an absolute path"));
            }
            if !src.exists() {
                return Err(bad(&format!("source {} does not exist", src.display())));
            }
            VolumeKind::Host(HostSource::Absolute(src))
        }
        Some("empty") => VolumeKind::Empty {
            mode: mode.unwrap_or(0o755),
            uid: uid.unwrap_or(0),
            gid: gid.unwrap_or(0),
        },
        _ => return Err(bad("kind must be host or empty")),
    };
    Ok(Volume {
        name: name.to_string(),
        kind,
        read_only,
        recursive,
    })
}

/// Entry point for the fuzz target (`fuzz/`): the words after `rkt run` or `rkt prepare`,
/// and the values parsed on their own. Errors are fine; panics are not. Not an API.
#[doc(hidden)]
pub fn fuzz_words(raw: &[String]) {
    let Ok((pod, _apps)) = parse(raw) else { return };
    let _ = net::conf::parse_mode(&pod.runtime.net);
    for w in raw {
        let _ = volume(w);
        let _ = port(w);
        let _ = mount(w);
        let _ = hosts_entry(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn grammar() {
        let (pod, apps) = parse(&args(
            "--net=host --set-env=A=1 img1 --exec /bin/ov --memory 64Mi -- --loglevel v --- img2 --port=p:80 -- --interval 30s",
        ))
        .unwrap();
        assert_eq!(pod.runtime.net, ["host"]);
        assert_eq!(pod.set_env, [EnvVar::new("A", "1")]);
        assert_eq!(
            pod.ports,
            [PortSpec {
                name: "p".into(),
                host_ip: None,
                host_port: 80
            }]
        );
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[0].exec.as_deref(), Some("/bin/ov"));
        assert_eq!(apps[0].memory, Some(64 << 20));
        assert_eq!(apps[0].args, ["--loglevel", "v"]);
        assert_eq!(apps[1].image, "img2");
        assert_eq!(apps[1].args, ["--interval", "30s"]);
    }

    #[test]
    fn every_flag_has_help() {
        for f in POD_VALUE_FLAGS
            .iter()
            .chain(BOOL_FLAGS)
            .chain(APP_VALUE_FLAGS)
        {
            assert!(
                FLAG_HELP.iter().any(|(n, _)| n == f),
                "--{f} has no help line"
            );
        }
        let h = help();
        assert!(
            h.contains("--cpuset-cpus") && h.contains("--cgroup-parent"),
            "{h}"
        );
    }

    #[test]
    fn resource_flags() {
        let (pod, apps) = parse(&args(
            "--cgroup-parent=/machine.slice/ img --memory=64Mi --memory-reservation=32Mi --memory-swap=-1 --cpu=500m --cpu-period=50000 --cpuset-cpus=0-1 --device=/dev/fuse:/dev/fuse:rw",
        ))
        .unwrap();
        assert_eq!(pod.runtime.cgroup_parent.as_deref(), Some("machine.slice"));
        let a = &apps[0];
        assert_eq!(a.memory_reservation, Some(32 << 20));
        assert_eq!(a.memory_swap, Some(stage0::spec::MemorySwap::Unlimited));
        assert_eq!(a.cpu_period_us, Some(50000));
        assert_eq!(a.cpuset_cpus.as_ref().unwrap().cpus(), [0, 1]);
        assert_eq!(a.devices[0].access, "rw");
        for bad in [
            "--cgroup-parent=../x img",
            "img --cpuset-cpus=x",
            "img --device=fuse",
            "img --cpu-period=soon",
            "--device=/dev/fuse img",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors() {
        assert!(parse(&args("--bogus img")).is_err());
        assert!(parse(&args("--exec /x img")).is_err());
        assert!(parse(&args("--net=host")).is_err());
        assert!(parse(&args("img --memory")).is_err());
        assert!(parse(&args("img --memory=lots")).is_err());
        assert!(parse(&args("img --pids-limit=0")).is_err());
        assert!(parse(&args("--ipc=maybe img")).is_err());
    }

    #[test]
    fn stage1_flavours_by_name_and_file() {
        use stage0::spec::Stage1;
        let (pod, _) = parse(&args("--stage1-name=coreos.com/rkt/stage1-fly:1.30.0 img")).unwrap();
        assert_eq!(pod.stage1, Some(Stage1::Fly));
        let (pod, _) = parse(&args("--stage1-from-dir=stage1-fly.aci img")).unwrap();
        assert_eq!(pod.stage1, Some(Stage1::Fly));
        let (pod, _) = parse(&args("--stage1-name=coreos.com/rkt/stage1-coreos img")).unwrap();
        assert_eq!(pod.stage1, Some(Stage1::Default));
        for bad in [
            "--stage1-name=coreos.com/rkt/stage1-kvm img",
            "--stage1-name=coreos.com/rkt/stage1-fly:1.29.0 img",
            "--stage1-path=/usr/lib/rkt/stage1-fly.aci img",
            "--stage1-url=https://example.com/s.aci img",
        ] {
            let e = parse(&args(bad)).unwrap_err().to_string();
            assert!(e.contains("stage1-fly"), "{bad}: {e}");
        }
    }

    #[test]
    fn volume_syntax() {
        let v = volume("data,kind=host,source=/tmp,readOnly=true").unwrap();
        assert_eq!(
            (v.kind, v.read_only),
            (
                VolumeKind::Host(HostSource::Absolute("/tmp".into())),
                Some(true)
            )
        );
        let v = volume("scratch,kind=empty,mode=0700,uid=5").unwrap();
        assert_eq!(
            v.kind,
            VolumeKind::Empty {
                mode: 0o700,
                uid: 5,
                gid: 0
            }
        );
        for bad in [
            "",
            "x,kind=host",
            "x,kind=host,source=rel",
            "x,kind=weird",
            "x,kind=empty,uid=a",
            "x,kind=empty,mode=9",
            "x,bogus",
        ] {
            assert!(volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_style_flags() {
        let (pod, apps) = parse(&args(
            "--user-label=team=web --user-annotation=a=b --sysctl=net.core.somaxconn=1024 --shm-size=128m --dns=1.1.1.1,8.8.8.8 --hosts-entry=10.0.0.1=db,10.0.0.2=cache img --entrypoint=[\"/bin/sh\",\"-c\"] --ulimit=nofile=4096:8192 --tmpfs=/run:size=1m --privileged --supplementary-gids=50,staff",
        ))
        .unwrap();
        assert_eq!(pod.user_labels["team"], "web");
        assert_eq!(pod.user_annotations["a"], "b");
        assert_eq!(
            pod.runtime.sysctls,
            [("net.core.somaxconn".to_string(), "1024".to_string())]
        );
        assert_eq!(pod.runtime.shm_size, Some(128 << 20));
        assert_eq!(pod.runtime.dns, ["1.1.1.1", "8.8.8.8"]);
        assert_eq!(pod.runtime.hosts_entries.len(), 2);
        let app = &apps[0];
        assert_eq!(
            app.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".to_string()][..])
        );
        assert_eq!(app.rlimits[0].hard, 8192);
        assert_eq!(app.tmpfs[0].size, Some(1 << 20));
        assert!(app.privileged);
        assert_eq!(app.supplementary_groups, ["50", "staff"]);
        assert_eq!(entrypoint("/bin/app").unwrap(), ["/bin/app"]);
        assert!(entrypoint("[]").is_err() && entrypoint("[1]").is_err());
    }

    #[test]
    fn ports_mounts_and_hosts_entries() {
        let p = port("http:127.0.0.1:8080").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port),
            (Some("127.0.0.1".parse().unwrap()), 8080)
        );
        assert!(port("http:0").is_err() && port("http").is_err());
        assert_eq!(mount("volume=v,target=/x").unwrap().target, "/x");
        assert!(mount("volume=v,target=x").is_err());
        assert_eq!(hosts_entry("host").unwrap(), HostsEntry::Host);
        assert!(hosts_entry("nope=db").is_err());
    }
}
