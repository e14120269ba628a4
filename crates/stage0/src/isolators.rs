//! An image's own isolators (appc's `app.isolators`): limits and security settings the image
//! asks for, applied as rkt applied them, with the command line's flags taking precedence.
//!
//! Understood: `resource/memory` and `resource/cpu` (their `limit`),
//! `os/linux/capabilities-retain-set` and `-remove-set`, `os/linux/seccomp-retain-set` and
//! `-remove-set` (with `errno`), `os/linux/no-new-privileges`, `os/linux/oom-score-adj` and
//! `os/linux/cpu-shares`. Any other isolator is refused by name: an image that asks for
//! isolation this rkt cannot give does not run without it.

use crate::error::{bail, invalid, Result};
use crate::spec::AppSpec;
use serde_json::Value;

/// `app` with what the image's isolators ask for wherever `app` does not say.
pub(crate) fn with_image(app: &AppSpec, isolators: &[Value]) -> Result<AppSpec> {
    let mut out = app.clone();
    let flags_set_caps = app.caps_retain.is_some() || app.caps_remove.is_some();
    for iso in isolators {
        let name = iso["name"].as_str().unwrap_or_default();
        let value = &iso["value"];
        let bad = |why: &str| invalid!("image {}: isolator {name:?}: {why}", app.image);
        match name {
            "resource/memory" => {
                if out.memory.is_none() {
                    out.memory = limit(value, crate::spec::parse_bytes).map_err(|e| bad(&e))?;
                }
            }
            "resource/cpu" => {
                if out.cpu_millicores.is_none() {
                    out.cpu_millicores =
                        limit(value, crate::spec::parse_millicores).map_err(|e| bad(&e))?;
                }
            }
            "os/linux/capabilities-retain-set" if !flags_set_caps => {
                out.caps_retain = Some(set(value).map_err(|e| bad(&e))?);
            }
            "os/linux/capabilities-remove-set" if !flags_set_caps => {
                out.caps_remove = Some(set(value).map_err(|e| bad(&e))?);
            }
            "os/linux/capabilities-retain-set" | "os/linux/capabilities-remove-set" => {}
            "os/linux/seccomp-retain-set" | "os/linux/seccomp-remove-set" => {
                if out.seccomp.is_none() {
                    let mode = if name.ends_with("retain-set") {
                        pod::seccomp::Mode::Retain
                    } else {
                        pod::seccomp::Mode::Remove
                    };
                    out.seccomp = Some(pod::seccomp::Spec {
                        mode,
                        errno: value["errno"].as_str().map(str::to_string),
                        set: set(value).map_err(|e| bad(&e))?,
                    });
                }
            }
            "os/linux/no-new-privileges" => {
                let on = value
                    .as_bool()
                    .ok_or_else(|| bad("its value must be true or false"))?;
                out.no_new_privs = out.no_new_privs.or(Some(on));
            }
            "os/linux/oom-score-adj" => {
                let adj = value
                    .as_i64()
                    .filter(|a| (-1000..=1000).contains(a))
                    .ok_or_else(|| bad("its value must be a number from -1000 to 1000"))?;
                out.oom_score_adj = out.oom_score_adj.or(Some(adj as i32));
            }
            "os/linux/cpu-shares" => {
                let shares = value
                    .as_u64()
                    .filter(|s| *s >= 2)
                    .ok_or_else(|| bad("its value must be a number of 2 or more"))?;
                out.cpu_shares = out.cpu_shares.or(Some(shares));
            }
            other => bail!(
                "image {}: isolator {other:?} is not supported by this rkt; the image cannot run with the isolation it asks for",
                app.image
            ),
        }
    }
    Ok(out)
}

/// A resource isolator's `limit` (a quantity string), parsed by `parse`.
fn limit(
    value: &Value,
    parse: fn(&str) -> Result<u64>,
) -> std::result::Result<Option<u64>, String> {
    match &value["limit"] {
        Value::Null => Ok(None),
        Value::String(s) => parse(s).map(Some).map_err(|e| e.to_string()),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("limit {n} is not a quantity")),
        other => Err(format!("limit {other} is not a quantity")),
    }
}

/// A set isolator's `set`, a list of names.
fn set(value: &Value) -> std::result::Result<Vec<String>, String> {
    value["set"]
        .as_array()
        .ok_or("its value needs a \"set\" list")?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{v} in \"set\" is not a name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app() -> AppSpec {
        AppSpec {
            image: "img".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_images_isolators_fill_what_the_flags_leave() {
        let isolators = vec![
            json!({"name": "resource/memory", "value": {"limit": "64Mi"}}),
            json!({"name": "resource/cpu", "value": {"limit": "500m"}}),
            json!({"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_CHOWN"]}}),
            json!({"name": "os/linux/seccomp-remove-set", "value": {"set": ["uname"], "errno": "ENOSYS"}}),
            json!({"name": "os/linux/no-new-privileges", "value": true}),
            json!({"name": "os/linux/oom-score-adj", "value": 100}),
            json!({"name": "os/linux/cpu-shares", "value": 512}),
        ];
        let got = with_image(&app(), &isolators).unwrap();
        assert_eq!(got.memory, Some(64 << 20));
        assert_eq!(got.cpu_millicores, Some(500));
        assert_eq!(
            got.caps_retain.as_deref(),
            Some(&["CAP_CHOWN".to_string()][..])
        );
        assert_eq!(got.seccomp.unwrap().errno.as_deref(), Some("ENOSYS"));
        assert_eq!(got.no_new_privs, Some(true));
        assert_eq!((got.oom_score_adj, got.cpu_shares), (Some(100), Some(512)));
        // The command line wins.
        let mut flags = app();
        flags.memory = Some(1 << 20);
        flags.caps_remove = Some(vec!["CAP_KILL".into()]);
        let got = with_image(&flags, &isolators).unwrap();
        assert_eq!(got.memory, Some(1 << 20));
        assert!(got.caps_retain.is_none() && got.caps_remove.is_some());
    }

    #[test]
    fn unknown_or_malformed_isolators_are_refused() {
        for bad in [
            json!({"name": "resource/network-bandwidth", "value": {"limit": "1M"}}),
            json!({"name": "resource/memory", "value": {"limit": "lots"}}),
            json!({"name": "os/linux/oom-score-adj", "value": 5000}),
            json!({"name": "os/linux/capabilities-retain-set", "value": {}}),
        ] {
            assert!(
                with_image(&app(), std::slice::from_ref(&bad)).is_err(),
                "{bad}"
            );
        }
    }
}
