//! The schemas Nomad validates job and agent configuration against, exactly as the rkt
//! driver declared them (`port_map` as list(map(string)), which takes both the block and the
//! list-of-maps forms; `volumes_enabled` defaulting to true).

use crate::proto::hclspec::Block as NestedBlock;
use crate::proto::hclspec::{spec::Block, Attr, Default, Literal, Object, Spec};

fn attr(name: &str, ty: &str, required: bool) -> Spec {
    Spec {
        block: Some(Block::Attr(Attr {
            name: name.into(),
            r#type: ty.into(),
            required,
        })),
    }
}

fn with_default(primary: Spec, literal: &str) -> Spec {
    Spec {
        block: Some(Block::Default(Box::new(Default {
            primary: Some(Box::new(primary)),
            default: Some(Box::new(Spec {
                block: Some(Block::Literal(Literal {
                    value: literal.into(),
                })),
            })),
        }))),
    }
}

fn object(attrs: Vec<(&str, Spec)>) -> Spec {
    Spec {
        block: Some(Block::Object(Object {
            attributes: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        })),
    }
}

/// The job's `config {}`: every field of [`crate::config::TASK_FIELDS`], the blocks as the
/// Docker driver declares them.
pub fn task_config() -> Spec {
    use crate::config::FieldType;
    let strings = |names: &[&str]| -> Spec {
        object(
            names
                .iter()
                .map(|n| (*n, attr(n, "string", false)))
                .collect(),
        )
    };
    object(
        crate::config::TASK_FIELDS
            .iter()
            .map(|f| {
                let spec = match f.ty {
                    FieldType::Auth => block(
                        f.name,
                        strings(&["username", "password", "server_address", "email"]),
                    ),
                    FieldType::Devices => block_list(
                        f.name,
                        strings(&["host_path", "container_path", "cgroup_permissions"]),
                    ),
                    FieldType::Mounts => block_list(
                        f.name,
                        object(vec![
                            (
                                "type",
                                with_default(attr("type", "string", false), "\"bind\""),
                            ),
                            ("source", attr("source", "string", false)),
                            ("target", attr("target", "string", false)),
                            (
                                "readonly",
                                with_default(attr("readonly", "bool", false), "false"),
                            ),
                            (
                                "bind_options",
                                block("bind_options", strings(&["propagation"])),
                            ),
                            (
                                "tmpfs_options",
                                block(
                                    "tmpfs_options",
                                    object(vec![
                                        ("size", attr("size", "number", false)),
                                        ("mode", attr("mode", "number", false)),
                                    ]),
                                ),
                            ),
                            ("volume_options", block("volume_options", object(vec![]))),
                        ]),
                    ),
                    ty => attr(f.name, ty.hcl(), f.required),
                };
                (f.name, spec)
            })
            .collect(),
    )
}

/// Any number of `name { … }` blocks holding `nested`.
fn block_list(name: &str, nested: Spec) -> Spec {
    Spec {
        block: Some(Block::BlockList(Box::new(
            crate::proto::hclspec::BlockList {
                name: name.into(),
                min_items: 0,
                max_items: 0,
                nested: Some(Box::new(nested)),
            },
        ))),
    }
}

/// An optional block holding `nested`.
fn block(name: &str, nested: Spec) -> Spec {
    Spec {
        block: Some(Block::BlockValue(Box::new(NestedBlock {
            name: name.into(),
            required: false,
            nested: Some(Box::new(nested)),
        }))),
    }
}

/// The agent's `plugin "nomad-driver-rkt" { config {} }`: the original's `volumes_enabled`;
/// `allow_privileged`, `pids_limit` and `gc { image = true  image_delay = "3m" }` as Nomad's
/// Docker driver has them (left out, `gc` is null and the decoder applies the same defaults).
pub fn plugin_config() -> Spec {
    object(vec![
        (
            "volumes_enabled",
            with_default(attr("volumes_enabled", "bool", false), "true"),
        ),
        (
            "allow_privileged",
            with_default(attr("allow_privileged", "bool", false), "false"),
        ),
        ("pids_limit", attr("pids_limit", "number", false)),
        ("allow_caps", attr("allow_caps", "list(string)", false)),
        ("extra_labels", attr("extra_labels", "list(string)", false)),
        (
            "pull_activity_timeout",
            with_default(attr("pull_activity_timeout", "string", false), "\"2m\""),
        ),
        (
            "auth",
            block(
                "auth",
                object(vec![
                    ("config", attr("config", "string", false)),
                    ("helper", attr("helper", "string", false)),
                ]),
            ),
        ),
        (
            "gc",
            block(
                "gc",
                object(vec![
                    ("image", with_default(attr("image", "bool", false), "true")),
                    (
                        "image_delay",
                        with_default(attr("image_delay", "string", false), "\"3m\""),
                    ),
                ]),
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_schema_has_the_documented_fields() {
        let Some(Block::Object(o)) = task_config().block else {
            panic!()
        };
        let mut keys: Vec<&str> = o.attributes.keys().map(String::as_str).collect();
        keys.sort();
        // The page's fields, pids_limit, and the Docker driver's options.
        let page = [
            "args",
            "command",
            "debug",
            "dns_search_domains",
            "dns_servers",
            "group",
            "image",
            "insecure_options",
            "net",
            "no_overlay",
            "port_map",
            "trust_prefix",
            "volumes",
        ];
        let docker = [
            "auth",
            "auth_soft_fail",
            "cap_add",
            "cap_drop",
            "cpu_cfs_period",
            "cpu_hard_limit",
            "devices",
            "entrypoint",
            "extra_hosts",
            "force_pull",
            "group_add",
            "hostname",
            "image_pull_timeout",
            "ipc_mode",
            "labels",
            "memory_hard_limit",
            "mount",
            "oom_score_adj",
            "pid_mode",
            "pids_limit",
            "ports",
            "privileged",
            "readonly_rootfs",
            "security_opt",
            "shm_size",
            "sysctl",
            "ulimit",
            "work_dir",
        ];
        let mut want: Vec<&str> = page.iter().chain(&docker).copied().collect();
        want.sort();
        assert_eq!(keys, want);
        for (name, kind) in [
            ("auth", "block"),
            ("devices", "block list"),
            ("mount", "block list"),
        ] {
            let got = match &o.attributes[name].block {
                Some(Block::BlockValue(_)) => "block",
                Some(Block::BlockList(_)) => "block list",
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(got, kind, "{name}");
        }
        let Some(Block::Attr(image)) = &o.attributes["image"].block else {
            panic!()
        };
        assert!(image.required && image.r#type == "string");
        let Some(Block::Attr(pm)) = &o.attributes["port_map"].block else {
            panic!()
        };
        assert_eq!(pm.r#type, "list(map(string))");
    }

    #[test]
    fn plugin_schema_defaults_volumes_to_true() {
        let Some(Block::Object(o)) = plugin_config().block else {
            panic!()
        };
        let Some(Block::Default(d)) = &o.attributes["volumes_enabled"].block else {
            panic!()
        };
        let Some(Block::Attr(a)) = &d.primary.as_ref().unwrap().block else {
            panic!()
        };
        assert_eq!(
            (a.name.as_str(), a.r#type.as_str()),
            ("volumes_enabled", "bool")
        );
        let Some(Block::Literal(l)) = &d.default.as_ref().unwrap().block else {
            panic!()
        };
        assert_eq!(l.value, "true");
    }

    #[test]
    fn plugin_schema_has_an_optional_gc_block() {
        let Some(Block::Object(o)) = plugin_config().block else {
            panic!()
        };
        let Some(Block::BlockValue(b)) = &o.attributes["gc"].block else {
            panic!()
        };
        assert_eq!((b.name.as_str(), b.required), ("gc", false));
        let Some(Block::Object(gc)) = &b.nested.as_ref().unwrap().block else {
            panic!()
        };
        let mut keys: Vec<&str> = gc.attributes.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["image", "image_delay"]);
        let Some(Block::Default(d)) = &gc.attributes["image_delay"].block else {
            panic!()
        };
        let Some(Block::Literal(l)) = &d.default.as_ref().unwrap().block else {
            panic!()
        };
        assert_eq!(l.value, "\"3m\"", "an HCL string literal");
    }
}
