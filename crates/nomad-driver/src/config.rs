//! The two configurations Nomad sends, decoded from cty msgpack: the job's task `config {}`
//! (into [`Options`]) and the agent's `plugin "nomad-driver-rkt" { config {} }`.

use crate::backend::start::{Auth, Device, MountOption, Options};
use crate::cty::{self, config_error};

/// The plugin's options.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Whether jobs may bind absolute host paths (`volumes`); default true.
    pub volumes_enabled: bool,
    /// Whether jobs may take away their pod's run-time isolation (`insecure_options`
    /// capabilities, paths, seccomp, run, all-run, all); default false, as the Docker
    /// driver's `allow_privileged`.
    pub allow_privileged: bool,
    /// The most processes a task may have, and the limit of a task that names none; None
    /// (the default, or 0) leaves tasks rkt's default of 2048 and lets them ask for any.
    pub pids_limit: Option<u64>,
    /// `allow_caps`: the capabilities a task may have (the Docker driver's option; default
    /// appc's, and Docker's classic, 14).
    pub allow_caps: Vec<String>,
    /// `extra_labels`: Nomad's labels every pod gets.
    pub extra_labels: Vec<String>,
    /// `auth {}` and `pull_activity_timeout`.
    pub pulls: PullConfig,
    /// `gc {}`: removing images no task uses any more (not in the original driver; shaped
    /// like Nomad's Docker driver's).
    pub gc: GcConfig,
}

/// `gc { image = true  image_delay = "3m" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct GcConfig {
    /// Remove an image once no task uses it; default true.
    pub image: bool,
    /// How long an image stays unused before it is removed; default 3 minutes.
    pub image_delay: std::time::Duration,
}

/// Nomad's Docker driver's defaults.
pub const DEFAULT_IMAGE_DELAY: std::time::Duration = std::time::Duration::from_secs(180);

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            image: true,
            image_delay: DEFAULT_IMAGE_DELAY,
        }
    }
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            volumes_enabled: true,
            allow_privileged: false,
            pids_limit: None,
            allow_caps: crate::backend::start::default_allow_caps(),
            extra_labels: Vec::new(),
            pulls: PullConfig::default(),
            gc: GcConfig::default(),
        }
    }
}

pub fn plugin_config(bytes: &[u8]) -> cty::Result<PluginConfig> {
    let v = cty::parse(bytes)?;
    let o = cty::object(&v)?;
    let pids_limit = match cty::integer("pids_limit", o.get("pids_limit"))? {
        None | Some(0) => None,
        Some(n) if n > 0 => Some(n as u64),
        Some(n) => {
            return Err(config_error!(
                "\"pids_limit\" = {n}: give the most processes a task may have (a number of 1 or more), or leave it out for no cap"
            ))
        }
    };
    Ok(PluginConfig {
        volumes_enabled: cty::boolean("volumes_enabled", o.get("volumes_enabled"))?.unwrap_or(true),
        allow_privileged: cty::boolean("allow_privileged", o.get("allow_privileged"))?
            .unwrap_or(false),
        pids_limit,
        allow_caps: match cty::strings("allow_caps", o.get("allow_caps"))? {
            caps if caps.is_empty() => crate::backend::start::default_allow_caps(),
            caps => caps,
        },
        extra_labels: cty::strings("extra_labels", o.get("extra_labels"))?,
        pulls: pull_config(&o)?,
        gc: gc_config(o.get("gc"))?,
    })
}

/// How the plugin fetches images: `auth { config helper }` and `pull_activity_timeout`.
#[derive(Debug, Clone, PartialEq)]
pub struct PullConfig {
    /// A Docker `config.json` whose `auths`, `credHelpers` and `credsStore` give credentials.
    pub auth_config: Option<std::path::PathBuf>,
    /// A credential helper, run as `docker-credential-NAME get`.
    pub auth_helper: Option<String>,
    /// A pull that makes no progress this long is cancelled (default 2m).
    pub activity_timeout: std::time::Duration,
}

/// `pull_activity_timeout`'s default, as the Docker driver's.
pub const DEFAULT_PULL_ACTIVITY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            auth_config: None,
            auth_helper: None,
            activity_timeout: DEFAULT_PULL_ACTIVITY_TIMEOUT,
        }
    }
}

fn pull_config(o: &std::collections::BTreeMap<String, &rmpv::Value>) -> cty::Result<PullConfig> {
    let mut p = PullConfig::default();
    if let Some(t) = cty::string("pull_activity_timeout", o.get("pull_activity_timeout"))? {
        p.activity_timeout = stage0::spec::parse_duration(&t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                config_error!("\"pull_activity_timeout\" = {t:?}: give a duration such as \"2m\"")
            })?;
    }
    if let Some(a) = cty::block("auth", o.get("auth"))? {
        for key in a.keys() {
            if key != "config" && key != "helper" {
                return Err(config_error!(
                    "\"auth.{key}\" is not an option of the plugin's auth block (it has config and helper)"
                ));
            }
        }
        p.auth_config = cty::string("auth.config", a.get("config"))?
            .filter(|c| !c.is_empty())
            .map(Into::into);
        p.auth_helper = cty::string("auth.helper", a.get("helper"))?.filter(|h| !h.is_empty());
        if let Some(h) = &p.auth_helper {
            if !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(config_error!("\"auth.helper\" = {h:?}: the helper's name (docker-credential-NAME), not a path"));
            }
        }
    }
    Ok(p)
}

/// The `gc` block: absent (null) means the defaults. Nomad sends a block as an object, or
/// (from an agent's HCL1 configuration, through JSON) as a list of one.
fn gc_config(v: Option<&&rmpv::Value>) -> cty::Result<GcConfig> {
    let mut gc = GcConfig::default();
    let Some(o) = cty::block("gc", v)? else {
        return Ok(gc);
    };
    if let Some(image) = cty::boolean("gc.image", o.get("image"))? {
        gc.image = image;
    }
    if let Some(delay) = cty::string("gc.image_delay", o.get("image_delay"))? {
        gc.image_delay = parse_delay("gc.image_delay", &delay)?;
    }
    for key in o.keys() {
        if key != "image" && key != "image_delay" {
            return Err(config_error!(
                "\"gc.{key}\" is not an option of the gc block (it has image and image_delay)"
            ));
        }
    }
    Ok(gc)
}

/// A Go duration that may not be negative.
fn parse_delay(field: &str, s: &str) -> cty::Result<std::time::Duration> {
    if s.trim_start().starts_with('-') {
        return Err(config_error!(
            "{field:?} is negative ({s:?}); give how long an unused image is kept, such as \"3m\" (or \"0s\")"
        ));
    }
    stage0::spec::parse_duration(s).map_err(|e| config_error!("{field:?}: {e}"))
}

/// A field's type: how the schema declares it and how its value is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Strings,
    Bool,
    /// `list(map(string))`, which takes both the block and the list-of-maps forms.
    Maps,
    /// A whole number (`number` in the schema; 0 when absent).
    Int,
    /// The `auth { … }` block.
    Auth,
    /// `devices = [{ … }]` blocks.
    Devices,
    /// `mount { … }` blocks.
    Mounts,
}

impl FieldType {
    /// The type in Nomad's HCL spec.
    pub fn hcl(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Strings => "list(string)",
            FieldType::Bool => "bool",
            FieldType::Maps => "list(map(string))",
            FieldType::Int => "number",
            FieldType::Auth | FieldType::Devices | FieldType::Mounts => "block",
        }
    }
}

/// A decoded field value.
enum FieldValue {
    String(String),
    Strings(Vec<String>),
    Bool(bool),
    Map(std::collections::BTreeMap<String, String>),
    Int(i64),
    Auth(Option<Auth>),
    Devices(Vec<Device>),
    Mounts(Vec<MountOption>),
}

/// Where a field's value goes: the stage0 spec field the driver sets
/// ([`crate::backend::start::launch`]), and the `rkt` flag an rkt user writes for the same
/// thing (README's table of options shows both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rkt {
    /// The spec field, as `PodSpec.volumes`, `AppSpec.exec`, `RuntimeSpec.dns`.
    pub spec: &'static str,
    /// The rkt command line's spelling: `prepare IMAGE --exec=CMD`.
    pub flag: &'static str,
}

const fn rkt(spec: &'static str, flag: &'static str) -> Rkt {
    Rkt { spec, flag }
}

/// One field of the job's `config {}`: its name, type, whether it is required, where its
/// value goes in [`Options`], and which spec field and rkt flag it stands for.
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub rkt: Rkt,
    set: fn(&mut Options, FieldValue),
}

macro_rules! field {
    ($name:ident, $ty:ident, $variant:ident, $rkt:expr) => {
        field!($name, $ty, $variant, $rkt, false)
    };
    ($name:ident, $ty:ident, $variant:ident, $rkt:expr, $required:expr) => {
        Field {
            name: stringify!($name),
            ty: FieldType::$ty,
            required: $required,
            rkt: $rkt,
            set: |o, v| {
                if let FieldValue::$variant(v) = v {
                    o.$name = v;
                }
            },
        }
    };
}

/// Every field of the documentation page's `config {}`: the one list the task schema
/// ([`crate::hclspec::task_config`]), the decoder ([`task_config`]) and the rkt flags each
/// field becomes are made from.
pub const TASK_FIELDS: &[Field] = &[
    field!(
        image,
        String,
        String,
        rkt("AppSpec.image", "prepare IMAGE"),
        true
    ),
    field!(
        command,
        String,
        String,
        rkt("AppSpec.exec", "prepare IMAGE --exec=CMD")
    ),
    field!(
        args,
        Strings,
        Strings,
        rkt("AppSpec.args", "prepare IMAGE -- ARGS")
    ),
    field!(
        trust_prefix,
        String,
        String,
        rkt("(trusted first)", "trust --prefix=P")
    ),
    field!(
        dns_servers,
        Strings,
        Strings,
        rkt("RuntimeSpec.dns", "run-prepared --dns=IP")
    ),
    field!(
        dns_search_domains,
        Strings,
        Strings,
        rkt("RuntimeSpec.dns_search", "run-prepared --dns-search=D")
    ),
    field!(
        net,
        Strings,
        Strings,
        rkt("RuntimeSpec.net", "run-prepared --net=N")
    ),
    // Nomad's port label to the image's port name, with the host port Nomad allocated.
    field!(
        port_map,
        Maps,
        Map,
        rkt("PodSpec.ports", "prepare --port=NAME:HOSTPORT")
    ),
    // Host paths (relative ones beneath the allocation directory) mounted at their targets.
    field!(
        volumes,
        Strings,
        Strings,
        rkt(
            "PodSpec.volumes, PodSpec.mounts",
            "prepare --volume=… --mount=…"
        )
    ),
    field!(
        insecure_options,
        Strings,
        Strings,
        rkt("Config.insecure", "--insecure-options=O")
    ),
    field!(
        no_overlay,
        Bool,
        Bool,
        rkt("PodSpec.no_overlay", "prepare --no-overlay")
    ),
    field!(debug, Bool, Bool, rkt("Config.debug", "--debug")),
    field!(
        group,
        String,
        String,
        rkt("AppSpec.group", "prepare IMAGE --group=G")
    ),
    // Not in the original driver (rkt had no pids isolator): Docker's and podman's drivers'
    // `pids_limit`, as rkt's --pids-limit.
    field!(
        pids_limit,
        Int,
        Int,
        rkt("AppSpec.pids_limit", "prepare IMAGE --pids-limit=N")
    ),
    // Nomad's Docker driver's options (podman's where Docker has none).
    field!(
        auth,
        Auth,
        Auth,
        rkt("Config.credentials", "auth.d dockerAuth file")
    ),
    field!(
        auth_soft_fail,
        Bool,
        Bool,
        rkt("Config.auth_soft_fail", "(none)")
    ),
    field!(
        force_pull,
        Bool,
        Bool,
        rkt("PodSpec.pull_policy", "prepare --pull-policy=update")
    ),
    field!(
        image_pull_timeout,
        String,
        String,
        rkt("Config.pull_timeout", "(none)")
    ),
    field!(
        entrypoint,
        Strings,
        Strings,
        rkt("AppSpec.entrypoint", "prepare IMAGE --entrypoint=JSON")
    ),
    field!(
        work_dir,
        String,
        String,
        rkt("AppSpec.working_dir", "prepare IMAGE --working-dir=D")
    ),
    field!(
        hostname,
        String,
        String,
        rkt("RuntimeSpec.hostname", "run-prepared --hostname=H")
    ),
    field!(
        extra_hosts,
        Strings,
        Strings,
        rkt(
            "RuntimeSpec.hosts_entries",
            "run-prepared --hosts-entry=IP=NAME"
        )
    ),
    field!(
        labels,
        Maps,
        Map,
        rkt("PodSpec.user_labels", "prepare --user-label=K=V")
    ),
    field!(
        cap_add,
        Strings,
        Strings,
        rkt("AppSpec.caps_retain", "prepare IMAGE --caps-retain=SET")
    ),
    field!(
        cap_drop,
        Strings,
        Strings,
        rkt("AppSpec.caps_retain", "prepare IMAGE --caps-retain=SET")
    ),
    field!(
        privileged,
        Bool,
        Bool,
        rkt(
            "AppSpec.privileged, Config.insecure",
            "--insecure-options=all-run prepare IMAGE --privileged"
        )
    ),
    field!(
        readonly_rootfs,
        Bool,
        Bool,
        rkt("AppSpec.readonly_rootfs", "prepare IMAGE --readonly-rootfs")
    ),
    field!(
        security_opt,
        Strings,
        Strings,
        rkt("Config.insecure", "--insecure-options=seccomp")
    ),
    field!(
        ipc_mode,
        String,
        String,
        rkt("RuntimeSpec.ipc", "run-prepared --ipc=parent")
    ),
    field!(
        pid_mode,
        String,
        String,
        rkt("RuntimeSpec.pid", "run-prepared --pid=host")
    ),
    field!(
        oom_score_adj,
        Int,
        Int,
        rkt("AppSpec.oom_score_adj", "prepare IMAGE --oom-score-adj=N")
    ),
    field!(
        group_add,
        Strings,
        Strings,
        rkt(
            "AppSpec.supplementary_groups",
            "prepare IMAGE --supplementary-gids=G,…"
        )
    ),
    field!(
        devices,
        Devices,
        Devices,
        rkt(
            "AppSpec.devices",
            "prepare IMAGE --device=HOST:CONTAINER:PERMS"
        )
    ),
    field!(
        sysctl,
        Maps,
        Map,
        rkt("RuntimeSpec.sysctls", "run-prepared --sysctl=K=V")
    ),
    field!(
        ulimit,
        Maps,
        Map,
        rkt("AppSpec.rlimits", "prepare IMAGE --ulimit=NAME=SOFT:HARD")
    ),
    field!(
        shm_size,
        Int,
        Int,
        rkt("RuntimeSpec.shm_size", "run-prepared --shm-size=N")
    ),
    field!(
        mount,
        Mounts,
        Mounts,
        rkt(
            "PodSpec.volumes + mounts, AppSpec.tmpfs",
            "prepare --volume=… --mount=… / IMAGE --tmpfs=P"
        )
    ),
    field!(
        ports,
        Strings,
        Strings,
        rkt("PodSpec.ports", "prepare --port=NAME:HOSTPORT")
    ),
    field!(
        memory_hard_limit,
        Int,
        Int,
        rkt("AppSpec.memory", "prepare IMAGE --memory=N")
    ),
    field!(
        cpu_hard_limit,
        Bool,
        Bool,
        rkt("AppSpec.cpu_millicores", "prepare IMAGE --cpu=N")
    ),
    field!(
        cpu_cfs_period,
        Int,
        Int,
        rkt("AppSpec.cpu_period", "prepare IMAGE --cpu-period=US")
    ),
];

/// The `auth` block: absent, or username, password and server_address.
fn auth(v: Option<&&rmpv::Value>) -> cty::Result<Option<Auth>> {
    let Some(o) = cty::block("auth", v)? else {
        return Ok(None);
    };
    only_keys(
        "auth",
        &o,
        &["username", "password", "server_address", "email"],
    )?;
    let get = |k: &str| -> cty::Result<String> {
        Ok(cty::string(&format!("auth.{k}"), o.get(k))?.unwrap_or_default())
    };
    Ok(Some(Auth {
        username: get("username")?,
        password: get("password")?,
        server_address: get("server_address")?,
    }))
}

/// The objects of a list of blocks (`devices = [{…}]`, several `mount {…}`).
fn block_list<'a>(
    field: &str,
    v: Option<&&'a rmpv::Value>,
) -> cty::Result<Vec<std::collections::BTreeMap<String, &'a rmpv::Value>>> {
    match v.map(|v| &**v) {
        None | Some(rmpv::Value::Nil) => Ok(Vec::new()),
        Some(rmpv::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                cty::block(&format!("{field}[{i}]"), Some(&item))?
                    .ok_or_else(|| config_error!("{field}[{i}] is empty"))
            })
            .collect(),
        Some(_) => Ok(cty::block(field, v)?.into_iter().collect()),
    }
}

fn only_keys(
    field: &str,
    o: &std::collections::BTreeMap<String, &rmpv::Value>,
    known: &[&str],
) -> cty::Result<()> {
    for key in o.keys() {
        if !known.contains(&key.as_str()) {
            return Err(config_error!(
                "\"{field}.{key}\" is not an option of {field} (it has {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

fn devices(v: Option<&&rmpv::Value>) -> cty::Result<Vec<Device>> {
    block_list("devices", v)?
        .into_iter()
        .map(|o| {
            only_keys(
                "devices",
                &o,
                &["host_path", "container_path", "cgroup_permissions"],
            )?;
            let get = |k: &str| -> cty::Result<String> {
                Ok(cty::string(&format!("devices.{k}"), o.get(k))?.unwrap_or_default())
            };
            Ok(Device {
                host_path: get("host_path")?,
                container_path: get("container_path")?,
                cgroup_permissions: get("cgroup_permissions")?,
            })
        })
        .collect()
}

fn mounts(v: Option<&&rmpv::Value>) -> cty::Result<Vec<MountOption>> {
    block_list("mount", v)?
        .into_iter()
        .map(|o| {
            only_keys(
                "mount",
                &o,
                &["type", "source", "target", "readonly", "tmpfs_options", "bind_options", "volume_options"],
            )?;
            let get = |k: &str| -> cty::Result<String> {
                Ok(cty::string(&format!("mount.{k}"), o.get(k))?.unwrap_or_default())
            };
            let mut m = MountOption {
                kind: get("type")?,
                source: get("source")?,
                target: get("target")?,
                readonly: cty::boolean("mount.readonly", o.get("readonly"))?.unwrap_or(false),
                ..Default::default()
            };
            if cty::block("mount.volume_options", o.get("volume_options"))?.is_some() {
                return Err("\"mount.volume_options\": Docker volumes do not exist here; use type = \"bind\" with a host path, or a Nomad host volume".into());
            }
            if let Some(b) = cty::block("mount.bind_options", o.get("bind_options"))? {
                only_keys("mount.bind_options", &b, &["propagation"])?;
                let p = cty::string("mount.bind_options.propagation", b.get("propagation"))?;
                if p.as_deref().is_some_and(|p| p != "rprivate" && !p.is_empty()) {
                    return Err(config_error!("\"mount.bind_options.propagation\" = {p:?}: only rprivate (the default) is supported; a pod's mounts never propagate"));
                }
            }
            if let Some(t) = cty::block("mount.tmpfs_options", o.get("tmpfs_options"))? {
                only_keys("mount.tmpfs_options", &t, &["size", "mode"])?;
                m.tmpfs_size = cty::integer("mount.tmpfs_options.size", t.get("size"))?.unwrap_or(0);
                // Written as operators read modes (`mode = 1777`): the digits are octal.
                let mode = cty::integer("mount.tmpfs_options.mode", t.get("mode"))?.unwrap_or(0);
                m.tmpfs_mode = u32::from_str_radix(&mode.to_string(), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| config_error!("\"mount.tmpfs_options.mode\" = {mode}: give a file mode in octal digits, such as 1777 or 755"))?;
            }
            Ok(m)
        })
        .collect()
}

/// The job's `config {}`, decoded field by field as [`TASK_FIELDS`] says.
pub fn task_config(bytes: &[u8]) -> cty::Result<Options> {
    let v = cty::parse(bytes)?;
    let o = cty::object(&v)?;
    let mut options = Options::default();
    for f in TASK_FIELDS {
        let raw = o.get(f.name);
        let value = match f.ty {
            FieldType::String => {
                let s = cty::string(f.name, raw)?.unwrap_or_default();
                if f.required && s.is_empty() {
                    return Err(config_error!("Missing required attribute {:?}", f.name));
                }
                FieldValue::String(s)
            }
            FieldType::Strings => FieldValue::Strings(cty::strings(f.name, raw)?),
            FieldType::Bool => FieldValue::Bool(cty::boolean(f.name, raw)?.unwrap_or_default()),
            FieldType::Maps => FieldValue::Map(cty::merged_maps(f.name, raw)?),
            FieldType::Int => FieldValue::Int(cty::integer(f.name, raw)?.unwrap_or_default()),
            FieldType::Auth => FieldValue::Auth(auth(raw)?),
            FieldType::Devices => FieldValue::Devices(devices(raw)?),
            FieldType::Mounts => FieldValue::Mounts(mounts(raw)?),
        };
        (f.set)(&mut options, value);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cty::bytes;

    #[test]
    fn payload_seen_from_real_agents() {
        // Section 11 of the protocol reference: identical on 0.10.9, 0.11.8 and 1.0.18.
        let b = bytes(
            r#"88 a4"args" 92 a1"a" a1"b" a5"count" c0 a5"debug" c2 a5"image" ae"docker://x/y:1" a6"labels" c0 a5"mount" 90 a8"port_map" 91 81 a4"http" a8"8080-tcp" a5"ratio" c0"#,
        );
        let o = task_config(&b).unwrap();
        assert_eq!(o.image, "docker://x/y:1");
        assert_eq!(o.args, ["a", "b"]);
        assert!(!o.debug);
        assert_eq!(o.port_map.get("http").map(String::as_str), Some("8080-tcp"));
        assert_eq!(o.command, "");
    }

    #[test]
    fn raw_exec_style_example_with_nulls() {
        // 5.5 (a), with our field names: command and args, args null.
        let b = bytes(r#"83 a4"args" c0 a7"command" a1"x" a5"image" a3"img""#);
        let o = task_config(&b).unwrap();
        assert_eq!(
            (o.command.as_str(), o.args.len(), o.image.as_str()),
            ("x", 0, "img")
        );
        let b = bytes(r#"82 a4"args" 91 a2"10" a7"command" aa"/bin/sleep""#);
        assert_eq!(
            task_config(&b).unwrap_err(),
            "Missing required attribute \"image\""
        );
    }

    #[test]
    fn every_field_and_port_map_lists() {
        let b = bytes(concat!(
            r#"8d a4"args" 91 a2"-v" a7"command" a2"/x" a5"debug" c3 "#,
            r#"ab"dns_servers" 91 a7"8.8.8.8" b2"dns_search_domains" 91 a3"svc" a5"group" a3"www" "#,
            r#"a5"image" a1"i" b0"insecure_options" 91 a5"image" a3"net" 91 a4"host" "#,
            r#"aa"no_overlay" c3 a8"port_map" 92 81 a1"a" a6"80-tcp" 81 a1"b" a6"53-udp" "#,
            r#"ac"trust_prefix" a5"x.com" a7"volumes" 91 a5"/a:/b""#
        ));
        let o = task_config(&b).unwrap();
        assert!(o.debug && o.no_overlay);
        assert_eq!(o.dns_servers, ["8.8.8.8"]);
        assert_eq!(o.dns_search_domains, ["svc"]);
        assert_eq!(o.group, "www");
        assert_eq!(o.insecure_options, ["image"]);
        assert_eq!(o.net, ["host"]);
        assert_eq!(o.port_map.len(), 2);
        assert_eq!(o.port_map["b"], "53-udp");
        assert_eq!(o.trust_prefix, "x.com");
        assert_eq!(o.volumes, ["/a:/b"]);
    }

    #[test]
    fn unknown_values_are_refused() {
        let b = bytes(r#"81 a5"image" d4 00 00"#);
        assert!(task_config(&b)
            .unwrap_err()
            .to_string()
            .contains("\"image\" is an unknown value"));
        let b = bytes(r#"82 a5"image" a1"i" a8"port_map" 91 81 a4"http" d4 00 00"#);
        assert!(task_config(&b)
            .unwrap_err()
            .to_string()
            .starts_with("\"port_map.http\" is an unknown value"));
        let b = bytes(r#"81 af"volumes_enabled" d4 00 00"#);
        assert!(plugin_config(&b)
            .unwrap_err()
            .to_string()
            .starts_with("\"volumes_enabled\" is an unknown value"));
    }

    #[test]
    fn missing_image_and_wrong_types_are_named() {
        let missing = "Missing required attribute \"image\"";
        assert_eq!(task_config(&[]).unwrap_err(), missing, "no config at all");
        assert_eq!(task_config(&bytes("c0")).unwrap_err(), missing);
        assert_eq!(
            task_config(&bytes(r#"81 a5"image" c0"#)).unwrap_err(),
            missing
        );
        assert_eq!(
            task_config(&bytes(r#"82 a5"image" a1"i" a5"debug" a3"yes""#)).unwrap_err(),
            "\"debug\" must be true or false"
        );
        assert_eq!(
            task_config(&bytes(r#"82 a4"args" a2"-v" a5"image" a1"i""#)).unwrap_err(),
            "\"args\" must be a list of strings, not a string"
        );
        assert_eq!(
            task_config(&bytes(
                r#"82 a5"image" a1"i" a8"port_map" 91 81 a4"http" c3"#
            ))
            .unwrap_err(),
            "\"port_map.http\" must be a string, not a bool"
        );
        assert_eq!(
            plugin_config(&bytes(r#"81 af"volumes_enabled" 01"#)).unwrap_err(),
            "\"volumes_enabled\" must be a bool, not a number"
        );
    }

    #[test]
    fn port_map_in_block_list_and_bare_map_forms() {
        // `port_map { app = "8080-tcp" }` arrives as a one-element list of maps; HCL1's
        // `port_map = [{...}, {...}]` as several, merged in order (a later label wins).
        let block = bytes(r#"82 a5"image" a1"i" a8"port_map" 91 81 a3"app" a8"8080-tcp""#);
        assert_eq!(task_config(&block).unwrap().port_map["app"], "8080-tcp");
        let lists = bytes(concat!(
            r#"82 a5"image" a1"i" a8"port_map" 92 "#,
            r#"82 a1"a" a6"80-tcp" a1"b" a6"81-tcp" 81 a1"a" a6"90-tcp""#
        ));
        let pm = task_config(&lists).unwrap().port_map;
        assert_eq!((pm["a"].as_str(), pm["b"].as_str()), ("90-tcp", "81-tcp"));
        let bare = bytes(r#"82 a5"image" a1"i" a8"port_map" 81 a3"app" a6"53-udp""#);
        assert_eq!(task_config(&bare).unwrap().port_map["app"], "53-udp");
        let absent = bytes(r#"82 a5"image" a1"i" a8"port_map" 90"#);
        assert!(task_config(&absent).unwrap().port_map.is_empty());
    }

    #[test]
    fn a_dynamic_wrapped_value_reads_like_a_plain_one() {
        let b = bytes(r#"81 a5"image" 92 c4 08 22 73 74 72 69 6e 67 22 a2"hi""#);
        assert_eq!(task_config(&b).unwrap().image, "hi");
    }

    #[test]
    fn gc_block_defaults_values_and_errors() {
        assert_eq!(plugin_config(&[]).unwrap().gc, GcConfig::default());
        let d = GcConfig::default();
        assert!(d.image && d.image_delay == std::time::Duration::from_secs(180));
        // The block absent (null), as an object, and as a list of one object.
        let b = bytes(r#"82 a2"gc" c0 af"volumes_enabled" c3"#);
        assert_eq!(plugin_config(&b).unwrap().gc, GcConfig::default());
        let b = bytes(r#"81 a2"gc" 82 a5"image" c2 ab"image_delay" a2"2s""#);
        let gc = plugin_config(&b).unwrap().gc;
        assert!(!gc.image);
        assert_eq!(gc.image_delay, std::time::Duration::from_secs(2));
        let b = bytes(r#"81 a2"gc" 91 82 a5"image" c3 ab"image_delay" a5"1h30m""#);
        assert_eq!(
            plugin_config(&b).unwrap().gc.image_delay,
            std::time::Duration::from_secs(5400)
        );
        // Attributes left out (or null) keep their defaults.
        let b = bytes(r#"81 a2"gc" 82 a5"image" c0 ab"image_delay" c0"#);
        assert_eq!(plugin_config(&b).unwrap().gc, GcConfig::default());
        for (payload, want) in [
            (
                r#"81 a2"gc" 81 ab"image_delay" a3"-3m""#,
                "\"gc.image_delay\" is negative (\"-3m\")",
            ),
            (
                r#"81 a2"gc" 81 ab"image_delay" a5"soon!""#,
                "\"gc.image_delay\": invalid duration \"soon!\"",
            ),
            (
                r#"81 a2"gc" 81 a5"image" a3"yes""#,
                "\"gc.image\" must be true or false",
            ),
            (
                r#"81 a2"gc" 81 a9"container" c3"#,
                "\"gc.container\" is not an option of the gc block",
            ),
            (r#"81 a2"gc" a2"on""#, "\"gc\" must be a block"),
            (r#"81 a2"gc" 92 80 80"#, "\"gc\" may appear once"),
        ] {
            let e = plugin_config(&bytes(payload)).unwrap_err();
            assert!(e.to_string().starts_with(want), "{payload}: {e}");
        }
    }

    #[test]
    fn plugin_config_defaults_and_values() {
        assert!(
            plugin_config(&[]).unwrap().volumes_enabled,
            "no config block"
        );
        let b = bytes(r#"81 af"volumes_enabled" c2"#);
        assert!(!plugin_config(&b).unwrap().volumes_enabled);
        let b = bytes(r#"81 af"volumes_enabled" c0"#);
        assert!(
            plugin_config(&b).unwrap().volumes_enabled,
            "null means the default"
        );
    }
}
