//! appc's naming and manifest rules (spec 0.8.11, `schema/types`), checked before an ACI is
//! stored: a manifest that breaks them is refused with the rule it breaks, so that nothing
//! downstream (pod manifests, `rkt cat-manifest` readers using appc's own types) meets it.

use crate::appc::ImageManifest;

/// An AC identifier: lowercase letters and digits, in runs joined by one of `-._~/`
/// (`coreos.com/etcd`, `example.com/app-v2`).
pub fn ac_identifier(s: &str) -> Result<(), String> {
    check_runs(s, b"-._~/").map_err(|why| {
        format!("{s:?} is not a valid AC identifier ({why}): use lowercase letters and digits joined by single '-', '.', '_', '~' or '/'")
    })
}

/// An AC name: lowercase letters and digits in runs joined by single `-` (`volume-data`).
pub fn ac_name(s: &str) -> Result<(), String> {
    check_runs(s, b"-").map_err(|why| {
        format!("{s:?} is not a valid AC name ({why}): use lowercase letters and digits joined by single '-'")
    })
}

fn check_runs(s: &str, separators: &[u8]) -> Result<(), &'static str> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err("it is empty");
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("it must start and end with a lowercase letter or digit");
    }
    for w in b.windows(2) {
        if separators.contains(&w[0]) && separators.contains(&w[1]) {
            return Err("two separators in a row");
        }
    }
    if b.iter().any(|&c| !alnum(c) && !separators.contains(&c)) {
        return Err("it has a character outside the allowed set");
    }
    Ok(())
}

/// The operating systems and architectures appc knows (`schema/types/labels.go`).
fn valid_os_arch(os: &str, arch: &str) -> bool {
    let arches: &[&str] = match os {
        "linux" => &[
            "amd64",
            "i386",
            "aarch64",
            "aarch64_be",
            "armv6l",
            "armv7l",
            "armv7b",
            "ppc64",
            "ppc64le",
            "s390x",
        ],
        "freebsd" => &["amd64", "i386", "arm"],
        "darwin" => &["x86_64", "i386"],
        _ => return false,
    };
    arches.contains(&arch)
}

/// Parses and checks an image manifest as appc's schema does. Errors say which field breaks
/// which rule.
pub fn image_manifest(bytes: &[u8]) -> Result<ImageManifest, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
    match value.get("acKind").and_then(|k| k.as_str()) {
        Some("ImageManifest") => {}
        Some(other) => return Err(format!("acKind is {other:?}, not \"ImageManifest\"")),
        None => return Err("the manifest has no acKind".into()),
    }
    let m: ImageManifest = serde_json::from_value(value)
        .map_err(|e| format!("the manifest does not match appc's ImageManifest: {e}"))?;
    semver(&m.ac_version).map_err(|e| format!("acVersion {:?}: {e}", m.ac_version))?;
    ac_identifier(&m.name).map_err(|e| format!("name: {e}"))?;
    check_labels(&m)?;
    if let Some(app) = &m.app {
        // A relative exec[0] is let through, as appc's own types let it through (and images
        // exported from Docker ones carry them): prepare looks it up in the app's PATH.
        if app.user.is_empty() || app.group.is_empty() {
            return Err("app.user and app.group are required".into());
        }
        for mp in &app.mount_points {
            ac_name(&mp.name).map_err(|e| format!("mount point name: {e}"))?;
            if !mp.path.starts_with('/') {
                return Err(format!(
                    "mount point {:?}: path {:?} must be absolute",
                    mp.name, mp.path
                ));
            }
        }
        for p in &app.ports {
            ac_name(&p.name).map_err(|e| format!("port name: {e}"))?;
            if p.protocol != "tcp" && p.protocol != "udp" {
                return Err(format!(
                    "port {:?}: protocol {:?} is not tcp or udp",
                    p.name, p.protocol
                ));
            }
            if p.port == 0 || p.count == 0 || u32::from(p.port) + p.count - 1 > 65535 {
                return Err(format!(
                    "port {:?}: {} (count {}) is out of range",
                    p.name, p.port, p.count
                ));
            }
        }
    }
    for d in &m.dependencies {
        ac_identifier(&d.image_name).map_err(|e| format!("dependency imageName: {e}"))?;
        if let Some(id) = &d.image_id {
            image_id(id).map_err(|e| format!("dependency {:?}: imageID {e}", d.image_name))?;
        }
    }
    for p in &m.path_whitelist {
        if !p.starts_with('/') {
            return Err(format!(
                "pathWhitelist entry {p:?} must be an absolute path"
            ));
        }
    }
    Ok(m)
}

fn check_labels(m: &ImageManifest) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for l in &m.labels {
        ac_identifier(&l.name).map_err(|e| format!("label name: {e}"))?;
        if !seen.insert(l.name.as_str()) {
            return Err(format!("label {:?} is given twice", l.name));
        }
    }
    if let (Some(os), Some(arch)) = (m.label("os"), m.label("arch")) {
        if !valid_os_arch(os, arch) {
            return Err(format!(
                "labels os={os:?}, arch={arch:?} are not a combination appc knows"
            ));
        }
    }
    Ok(())
}

/// `sha512-` and hex digits (a full or shortened image ID).
pub fn image_id(id: &str) -> Result<(), String> {
    match id.strip_prefix("sha512-") {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()) => Ok(()),
        _ => Err(format!(
            "{id:?} is not an image ID (sha512- and hex digits)"
        )),
    }
}

fn semver(v: &str) -> Result<(), String> {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err("not a semantic version (such as 0.8.11)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_appc() {
        for ok in ["coreos.com/etcd", "example.com/app-v2", "a", "x~y_z.w/v"] {
            assert!(ac_identifier(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Coreos.com",
            "127.0.0.1:5000/app",
            "a//b",
            "-a",
            "a-",
            "a b",
        ] {
            assert!(ac_identifier(bad).is_err(), "{bad}");
        }
        assert!(ac_name("volume-data").is_ok());
        assert!(ac_name("volume.data").is_err());
    }

    #[test]
    fn manifests_are_checked() {
        let good = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",
            "labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
            "app":{"exec":["/bin/sh"],"user":"0","group":"0"}}"#;
        assert!(image_manifest(good).is_ok());
        let rel = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",
            "app":{"exec":["sh"],"user":"0","group":"0"}}"#;
        assert!(image_manifest(rel).is_ok());
        let no_group = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",
            "app":{"exec":["/bin/sh"],"user":"0","group":""}}"#;
        assert!(image_manifest(no_group).unwrap_err().contains("required"));
        let kind = br#"{"acKind":"PodManifest","acVersion":"0.8.11","name":"example.com/app"}"#;
        assert!(image_manifest(kind).unwrap_err().contains("acKind"));
        assert!(image_manifest(b"{not json").unwrap_err().contains("JSON"));
        let arch = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",
            "labels":[{"name":"os","value":"linux"},{"name":"arch","value":"x86_64"}]}"#;
        assert!(image_manifest(arch).unwrap_err().contains("arch"));
    }
}
