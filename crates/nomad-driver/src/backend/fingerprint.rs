//! Fingerprinting as Nomad's rkt driver did it: root, then `rkt version`, parsed with the same
//! two patterns, and rkt 1.27.0 or newer. The messages are the original's (its misspelling of
//! "Unsupported" included, since operators may match on node events).

use std::collections::BTreeMap;

/// An attribute value, as Nomad's shared `Attribute` carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Bool(bool),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Undetected,
    /// Present, but configured so that no task could start: no task is placed here.
    Unhealthy,
    Healthy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub health: Health,
    pub description: String,
    pub attributes: BTreeMap<String, Attr>,
}

pub const MIN_VERSION: [u64; 3] = [1, 27, 0];

fn undetected(description: String) -> Fingerprint {
    Fingerprint {
        health: Health::Undetected,
        description,
        attributes: BTreeMap::new(),
    }
}

/// `is_root`, the result of running `rkt version`, the plugin's `volumes_enabled`, and what
/// is wrong with the configuration (the plugin's or rkt's), if anything: that makes the
/// driver unhealthy, so that Nomad places no task here rather than fail each one.
pub fn fingerprint(
    is_root: bool,
    version_output: Result<String, super::rkt::RktError>,
    volumes_enabled: bool,
    config_problem: Option<String>,
) -> Fingerprint {
    if !is_root {
        return undetected("Driver must run as root".into());
    }
    if let Some(problem) = config_problem {
        return Fingerprint {
            health: Health::Unhealthy,
            description: problem,
            attributes: BTreeMap::new(),
        };
    }
    let out = match version_output {
        Ok(o) => o,
        Err(e) => return undetected(format!("Failed to execute rkt version: {e}")),
    };
    let (Some(rkt), Some(appc)) = (find_version(&out, "rkt"), find_version(&out, "appc")) else {
        return undetected("Unable to parse rkt version string".into());
    };
    if compare(&rkt, &MIN_VERSION) == std::cmp::Ordering::Less {
        return undetected(format!("Unsuported rkt version {rkt}"));
    }
    let mut attributes = BTreeMap::new();
    attributes.insert("driver.rkt".into(), Attr::Bool(true));
    attributes.insert("driver.rkt.version".into(), Attr::Str(rkt));
    attributes.insert("driver.rkt.appc.version".into(), Attr::Str(appc));
    if volumes_enabled {
        attributes.insert("driver.rkt.volumes.enabled".into(), Attr::Bool(true));
    }
    Fingerprint {
        health: Health::Healthy,
        description: "Healthy".into(),
        attributes,
    }
}

/// `<word> [vV]ersion[:]? (\d[.\d]+)` anywhere in the output.
fn find_version(out: &str, word: &str) -> Option<String> {
    let mut rest = out;
    while let Some(pos) = rest.find(word) {
        let after = &rest[pos + word.len()..];
        rest = after;
        let Some(after) = after.strip_prefix(' ') else {
            continue;
        };
        let Some(after) = after
            .strip_prefix("version")
            .or_else(|| after.strip_prefix("Version"))
        else {
            continue;
        };
        let after = after.strip_prefix(':').unwrap_or(after);
        let Some(after) = after.strip_prefix(' ') else {
            continue;
        };
        let v: String = after
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if v.len() >= 2 && v.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(v);
        }
    }
    None
}

/// Compares dotted versions numerically, missing parts being zero (as go-version does).
fn compare(v: &str, min: &[u64; 3]) -> std::cmp::Ordering {
    let parts: Vec<u64> = v
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    for (i, m) in min.iter().enumerate() {
        let p = parts.get(i).copied().unwrap_or(0);
        if p != *m {
            return p.cmp(m);
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    const RKT: &str = "rkt Version: 1.30.0\nappc Version: 0.8.11\nGo Version: go1.9.4\nGo OS/Arch: linux/amd64\nFeatures: -TPM +SDJOURNAL\n";

    #[test]
    fn healthy_with_attributes() {
        let f = fingerprint(true, Ok(RKT.into()), true, None);
        assert_eq!(f.health, Health::Healthy);
        assert_eq!(f.description, "Healthy");
        assert_eq!(
            f.attributes["driver.rkt.version"],
            Attr::Str("1.30.0".into())
        );
        assert_eq!(
            f.attributes["driver.rkt.appc.version"],
            Attr::Str("0.8.11".into())
        );
        assert_eq!(f.attributes["driver.rkt"], Attr::Bool(true));
        assert_eq!(f.attributes["driver.rkt.volumes.enabled"], Attr::Bool(true));
        let f = fingerprint(true, Ok(RKT.into()), false, None);
        assert!(!f.attributes.contains_key("driver.rkt.volumes.enabled"));
    }

    #[test]
    fn old_lowercase_form_parses() {
        let f = fingerprint(
            true,
            Ok("rkt version 1.27.0\nappc version 1.2.0\n".into()),
            true,
            None,
        );
        assert_eq!(
            f.attributes["driver.rkt.version"],
            Attr::Str("1.27.0".into())
        );
    }

    #[test]
    fn failures() {
        assert_eq!(
            fingerprint(false, Ok(RKT.into()), true, None).description,
            "Driver must run as root"
        );
        let f = fingerprint(
            true,
            Err(super::super::rkt::RktError::NotOnPath),
            true,
            None,
        );
        assert_eq!(
            f.description,
            "Failed to execute rkt version: failed to resolve path to \"rkt\" executable: not found in $PATH"
        );
        assert_eq!(
            fingerprint(true, Ok("nothing".into()), true, None).description,
            "Unable to parse rkt version string"
        );
        let f = fingerprint(
            true,
            Ok("rkt Version: 1.26.9\nappc Version: 0.8.11".into()),
            true,
            None,
        );
        assert_eq!(
            (f.health, f.description.as_str()),
            (Health::Undetected, "Unsuported rkt version 1.26.9")
        );
        assert!(f.attributes.is_empty());
    }

    #[test]
    fn a_bad_configuration_is_unhealthy_with_the_reason() {
        let why = "invalid plugin configuration: \"gc.image_delay\" is negative (\"-3m\")";
        let f = fingerprint(true, Ok(RKT.into()), true, Some(why.into()));
        assert_eq!((f.health, f.description.as_str()), (Health::Unhealthy, why));
        // Not being root still comes first.
        let f = fingerprint(false, Ok(RKT.into()), true, Some(why.into()));
        assert_eq!(f.health, Health::Undetected);
    }
}
