//! The schemas Nomad validates job and agent configuration against, exactly as the rkt
//! driver declared them (`port_map` as list(map(string)), which takes both the block and the
//! list-of-maps forms; `volumes_enabled` defaulting to true).

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

/// The job's `config {}`: every field of [`crate::config::TASK_FIELDS`].
pub fn task_config() -> Spec {
    object(
        crate::config::TASK_FIELDS
            .iter()
            .map(|f| (f.name, attr(f.name, f.ty.hcl(), f.required)))
            .collect(),
    )
}

/// The agent's `plugin "nomad-driver-rkt" { config {} }`.
pub fn plugin_config() -> Spec {
    object(vec![(
        "volumes_enabled",
        with_default(attr("volumes_enabled", "bool", false), "true"),
    )])
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
        assert_eq!(
            keys,
            [
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
                "volumes"
            ]
        );
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
}
