//! Docker image references as rkt accepted them: `docker://[host[:port]/]repo[:tag|@sha256:…]`,
//! and short names (`redis:3.2`, `library/redis`), which [`classify`] tells apart from image
//! IDs and from names that are not Docker's.
//!
//! Defaults follow Docker Hub's conventions, as docker2aci applied them: no host means
//! `registry-1.docker.io`, and a single-component repository there gets the `library/` prefix.
//! A short name goes to the default registry instead ([`Reference::parse_short`]), which is
//! Docker Hub unless `registries.d` names another (see [`crate::registries`]).

use std::fmt;

pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// What an image argument of `rkt fetch`, `run` or `prepare` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageArg {
    /// `docker://…`: a Docker image, on Docker Hub unless it names a host.
    Docker,
    /// No scheme, and a first path component that is not a host: `redis:3.2`,
    /// `library/redis`, `myorg/app@sha256:…`. A Docker image on the default registry.
    ShortName,
    /// `sha512-…`: an image ID (or a prefix of one) in the store.
    ImageId,
    /// Anything else: a name whose first component looks like a host or an appc name
    /// (`example.com/app:1.0`, `localhost/app`, `quay.io/x`), a path, or a URL. Only the store
    /// is searched for these today.
    ///
    /// The hook for appc: discovery (then, failing that, Docker) is tried for the names of
    /// this kind that look like appc names, with a dot in the first component; ACI files and
    /// URLs land here too.
    Other,
}

/// Sorts an image argument into [`ImageArg`]s. The short-name rule is Docker's: the first
/// path component (for a name without `/`, the name itself, without tag or digest) is a host
/// if it contains `.` or `:` or is `localhost`; a name whose first component is not a host is
/// short. Image IDs (`sha512-…`), paths (`/…`, `.…`) and URLs (`…://…`) are never short.
pub fn classify(input: &str) -> ImageArg {
    if input.starts_with("docker://") {
        return ImageArg::Docker;
    }
    if input.starts_with("sha512-") {
        return ImageArg::ImageId;
    }
    if input.contains("://") || input.starts_with('/') || input.starts_with('.') {
        return ImageArg::Other;
    }
    let name = input.split_once('@').map_or(input, |(n, _)| n);
    let first = match name.split_once('/') {
        Some((first, _)) => first,
        None => name.split_once(':').map_or(name, |(n, _)| n),
    };
    if first.is_empty() || first.contains('.') || first.contains(':') || first == "localhost" {
        ImageArg::Other
    } else {
        ImageArg::ShortName
    }
}

/// The registry a host names: Docker Hub's aliases (`docker.io`, `index.docker.io`) are
/// [`DOCKER_HUB`], as Docker and docker2aci treat them; anything else is itself.
pub fn canonical_registry(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" => DOCKER_HUB,
        other => other,
    }
}

/// A parsed `docker://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, with port if one was given (`127.0.0.1:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/redis`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a digest.
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {why}")]
pub struct ParseError {
    pub input: String,
    pub why: String,
}

impl Reference {
    /// Parses a reference with or without the `docker://` prefix.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Reference::parse_with(input, None)
    }

    /// Parses a short name (see [`classify`]): a Docker image on `default_registry`. On
    /// Docker Hub a single-component repository gets the `library/` prefix; other registries
    /// take the repository as written (`redis` on `127.0.0.1:5000` is `127.0.0.1:5000/redis`).
    pub fn parse_short(input: &str, default_registry: &str) -> Result<Self, ParseError> {
        if classify(input) != ImageArg::ShortName {
            return Err(ParseError {
                input: input.to_string(),
                why: "not a short name: its first component names a host".into(),
            });
        }
        Reference::parse_with(input, Some(canonical_registry(default_registry)))
    }

    fn parse_with(input: &str, registry: Option<&str>) -> Result<Self, ParseError> {
        let err = |why: &str| ParseError {
            input: input.to_string(),
            why: why.to_string(),
        };
        let rest = input.strip_prefix("docker://").unwrap_or(input);
        if rest.is_empty() {
            return Err(err("empty reference; expected docker://[host/]repo[:tag]"));
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|w| err(&w))?;
                (r, Some(d.to_string()))
            }
            None => (rest, None),
        };
        // The tag is after the last ':' only if that ':' is past the last '/', so that a
        // registry port is not mistaken for a tag.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            validate_tag(t).map_err(|w| err(&w))?;
        }
        let (registry, repository) = match registry {
            Some(r) => (r.to_string(), hub_library(r, name)),
            None => split_registry(name),
        };
        validate_repository(&repository).map_err(|w| err(&w))?;
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The Docker name: registry plus repository (`127.0.0.1:5000/app`).
    pub fn image_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The appc name docker2aci gave such an image: the Docker name made a valid
    /// ACIdentifier (`127.0.0.1_5000/app`). The reference itself is kept in the image's
    /// `appc.io/docker/originalname` annotation (without `docker://`, as docker2aci had it)
    /// and in the store's `source`.
    pub fn aci_name(&self) -> String {
        let name = self.image_name();
        // A registry host always has a letter or digit, so this never fails; keep the
        // Docker name if it somehow does rather than lose the image.
        crate::appc::sanitize_ac_identifier(&name).unwrap_or(name)
    }

    /// Whether `source` (an image's `source` in the store, `docker://…` as written at fetch
    /// time) is this image: same registry and repository, and same tag when this reference
    /// has one. Found this way, images stored before names were sanitised are found too.
    pub fn names_same_image(&self, source: &str) -> bool {
        if !source.starts_with("docker://") {
            return false;
        }
        Reference::parse(source).is_ok_and(|s| {
            s.registry == self.registry
                && s.repository == self.repository
                && (self.tag.is_none() || s.tag == self.tag)
        })
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker://{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component is a registry host if it contains '.' or ':' or is
/// `localhost`.
fn split_registry(name: &str) -> (String, String) {
    if let Some((first, rest)) = name.split_once('/') {
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let registry = canonical_registry(first).to_string();
            let repository = hub_library(&registry, rest);
            return (registry, repository);
        }
    }
    (DOCKER_HUB.to_string(), hub_library(DOCKER_HUB, name))
}

fn hub_library(registry: &str, repo: &str) -> String {
    if registry == DOCKER_HUB && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo.to_string()
    }
}

fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("missing repository name".into());
    }
    for component in repo.split('/') {
        let ok = !component.is_empty()
            && component.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            && component
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "repository component {component:?} must be lowercase letters, digits, '.', '_' or '-'"
            ));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {tag:?}"))
    }
}

/// Only sha256 digests are accepted: every registry serves them, and we verify them.
pub fn validate_digest(d: &str) -> Result<(), String> {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) => {
            Ok(())
        }
        _ => Err(format!(
            "invalid digest {d:?}; expected sha256: followed by 64 lowercase hex digits"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn hub_defaults() {
        let r = p("docker://redis:3.2");
        assert_eq!(r.registry, DOCKER_HUB);
        assert_eq!(r.repository, "library/redis");
        assert_eq!(r.tag.as_deref(), Some("3.2"));
        assert_eq!(r.image_name(), "registry-1.docker.io/library/redis");
        assert_eq!(r.aci_name(), "registry-1.docker.io/library/redis");
        assert_eq!(p("docker://busybox").tag.as_deref(), Some("latest"));
        assert_eq!(p("docker://user/app").repository, "user/app");
        assert_eq!(p("docker://docker.io/redis").registry, DOCKER_HUB);
    }

    #[test]
    fn host_port_is_not_a_tag() {
        let r = p("docker://registry.internal:5000/app");
        assert_eq!(r.registry, "registry.internal:5000");
        assert_eq!(r.repository, "app");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = p("127.0.0.1:5000/a/b:1.4");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("1.4"));
        assert_eq!(r.aci_name(), "127.0.0.1_5000/a/b");
        // Stored sources are matched by registry, repository and tag, not by name.
        assert!(r.names_same_image("docker://127.0.0.1:5000/a/b:1.4"));
        assert!(!r.names_same_image("docker://127.0.0.1:5000/a/b:1.5"));
        assert!(!r.names_same_image("docker://127.0.0.1_5000/a/b:1.4"));
        assert!(!r.names_same_image("/srv/a.aci"));
        let pinned = format!("docker://127.0.0.1:5000/a/b@sha256:{}", "a".repeat(64));
        assert!(p(&pinned).names_same_image("docker://127.0.0.1:5000/a/b:1.4"));
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("docker://localhost/x@{d}"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), d);
        assert!(Reference::parse("docker://x@sha256:abc").is_err());
    }

    #[test]
    fn classification() {
        use ImageArg::*;
        for (input, want) in [
            ("docker://redis", Docker),
            ("redis", ShortName),
            ("redis:3.2", ShortName),
            ("library/redis", ShortName),
            ("library/redis:3.2-alpine", ShortName),
            ("myorg/team/app@sha256:abc", ShortName),
            ("Redis", ShortName), // and then refused by the parser, naming the component
            ("example.com/app:1.0", Other),
            ("registry-1.docker.io/library/redis:3.2", Other),
            ("127.0.0.1:5000/busybox", Other),
            ("localhost/app", Other),
            ("localhost", Other),
            ("app.aci", Other),
            ("./app.aci", Other),
            ("/srv/app.aci", Other),
            ("https://example.com/app.aci", Other),
            ("sha512-0123abcd", ImageId),
            ("", Other),
        ] {
            assert_eq!(classify(input), want, "{input:?}");
        }
    }

    #[test]
    fn short_names_go_to_the_default_registry() {
        let r = Reference::parse_short("redis:3.2", DOCKER_HUB).unwrap();
        assert_eq!(
            r.to_string(),
            "docker://registry-1.docker.io/library/redis:3.2"
        );
        assert_eq!(
            r,
            p("docker://redis:3.2"),
            "the same image as docker://redis:3.2"
        );
        let r = Reference::parse_short("library/redis", "docker.io").unwrap();
        assert_eq!(
            r.to_string(),
            "docker://registry-1.docker.io/library/redis:latest"
        );
        // Elsewhere the repository is taken as written: library/ is Docker Hub's convention.
        let r = Reference::parse_short("redis:3.2", "127.0.0.1:5000").unwrap();
        assert_eq!(r.to_string(), "docker://127.0.0.1:5000/redis:3.2");
        let r = Reference::parse_short("team/app", "registry.internal").unwrap();
        assert_eq!(r.image_name(), "registry.internal/team/app");
        let d = format!("sha256:{}", "b".repeat(64));
        let r = Reference::parse_short(&format!("busybox@{d}"), DOCKER_HUB).unwrap();
        assert_eq!((r.tag, r.digest), (None, Some(d)));
        let e = Reference::parse_short("Redis", DOCKER_HUB).unwrap_err();
        assert!(e.to_string().contains("\"Redis\" must be lowercase"), "{e}");
        assert!(Reference::parse_short("example.com/app", DOCKER_HUB).is_err());
        assert!(Reference::parse_short("docker://redis", DOCKER_HUB).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "docker://",
            "docker://Upper/case",
            "docker://a//b",
            "docker://a:b@c",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
