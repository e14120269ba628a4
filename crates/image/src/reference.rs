//! Docker image references as rkt accepted them: `docker://[host[:port]/]repo[:tag|@sha256:…]`.
//!
//! Defaults follow Docker Hub's conventions, as docker2aci applied them: no host means
//! `registry-1.docker.io`, and a single-component repository there gets the `library/` prefix.

use std::fmt;

pub const DOCKER_HUB: &str = "registry-1.docker.io";

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
        let (registry, repository) = split_registry(name);
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

    /// The appc image name docker2aci gave such an image: registry plus repository.
    pub fn image_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
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
            let registry = if first == "docker.io" || first == "index.docker.io" {
                DOCKER_HUB.to_string()
            } else {
                first.to_string()
            };
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
