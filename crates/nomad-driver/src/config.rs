//! The two configurations Nomad sends, decoded from cty msgpack: the job's task `config {}`
//! (into [`Options`]) and the agent's `plugin "nomad-driver-rkt" { config {} }`.

use crate::backend::start::Options;
use crate::cty;

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
            return Err(format!(
                "\"pids_limit\" = {n}: give the most processes a task may have (a number of 1 or more), or leave it out for no cap"
            ))
        }
    };
    Ok(PluginConfig {
        volumes_enabled: cty::boolean("volumes_enabled", o.get("volumes_enabled"))?.unwrap_or(true),
        allow_privileged: cty::boolean("allow_privileged", o.get("allow_privileged"))?
            .unwrap_or(false),
        pids_limit,
        gc: gc_config(o.get("gc"))?,
    })
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
            return Err(format!(
                "\"gc.{key}\" is not an option of the gc block (it has image and image_delay)"
            ));
        }
    }
    Ok(gc)
}

/// A Go duration that may not be negative.
fn parse_delay(field: &str, s: &str) -> cty::Result<std::time::Duration> {
    if s.trim_start().starts_with('-') {
        return Err(format!(
            "{field:?} is negative ({s:?}); give how long an unused image is kept, such as \"3m\" (or \"0s\")"
        ));
    }
    stage0::spec::parse_duration(s).map_err(|e| format!("{field:?}: {e}"))
}

/// A field's type: how the schema declares it and how its value is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Strings,
    Bool,
    /// `list(map(string))`, which takes both the block and the list-of-maps forms.
    PortMap,
    /// A whole number (`number` in the schema; 0 when absent).
    Int,
}

impl FieldType {
    /// The type in Nomad's HCL spec.
    pub fn hcl(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Strings => "list(string)",
            FieldType::Bool => "bool",
            FieldType::PortMap => "list(map(string))",
            FieldType::Int => "number",
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
        PortMap,
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
];

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
                    return Err(format!("Missing required attribute {:?}", f.name));
                }
                FieldValue::String(s)
            }
            FieldType::Strings => FieldValue::Strings(cty::strings(f.name, raw)?),
            FieldType::Bool => FieldValue::Bool(cty::boolean(f.name, raw)?.unwrap_or_default()),
            FieldType::PortMap => FieldValue::Map(cty::merged_maps(f.name, raw)?),
            FieldType::Int => FieldValue::Int(cty::integer(f.name, raw)?.unwrap_or_default()),
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
            .contains("\"image\" is an unknown value"));
        let b = bytes(r#"82 a5"image" a1"i" a8"port_map" 91 81 a4"http" d4 00 00"#);
        assert!(task_config(&b)
            .unwrap_err()
            .starts_with("\"port_map.http\" is an unknown value"));
        let b = bytes(r#"81 af"volumes_enabled" d4 00 00"#);
        assert!(plugin_config(&b)
            .unwrap_err()
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
            assert!(e.starts_with(want), "{payload}: {e}");
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
