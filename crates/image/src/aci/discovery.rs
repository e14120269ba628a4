//! appc meta discovery (spec 0.8.11, `discovery/`): from an image name such as
//! `coreos.com/etcd:v2.0.4` to the URLs of its ACI and signature, or of the public keys of a
//! prefix.
//!
//! `https://{prefix}?ac-discovery=1` is fetched for the name and then each parent path until
//! a page has what is wanted. Its `<meta name="ac-discovery" content="PREFIX TEMPLATE">` tags
//! (for names starting with PREFIX) give URL templates with `{name}`, `{version}`, `{os}`,
//! `{arch}`, any other label, and `{ext}` (`aci` or `aci.asc`); templates with a placeholder
//! left unfilled are skipped. `ac-discovery-pubkeys` tags give key URLs.

use super::http::{Got, Http};
use crate::error::{Error, Result};

/// Returns an [`Error::InvalidInput`]: the app string the caller gave is not one.
macro_rules! bad_app {
    ($($arg:tt)*) => {
        return Err(Error::invalid(format!($($arg)*)))
    };
}
use std::collections::BTreeMap;

/// An image asked for by name: `name[:version][,label=value…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl App {
    /// Parses rkt's app string. `os` and `arch` default to this host's, `version` to
    /// `latest`, as rkt filled them in.
    pub fn parse(input: &str) -> Result<App> {
        let (head, rest) = match input.split_once(',') {
            Some((h, r)) => (h, Some(r)),
            None => (input, None),
        };
        if rest.is_some_and(|r| r.contains(':')) || head.matches(':').count() > 1 {
            bad_app!("image {input:?}: a colon may appear only once, right after the name (name:version)");
        }
        let (name, version) = match head.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (head, None),
        };
        super::validate::ac_identifier(name)
            .map_err(|e| Error::invalid(format!("image {input:?}: {e}")))?;
        let mut labels = BTreeMap::new();
        if let Some(v) = version {
            if v.is_empty() {
                bad_app!("image {input:?}: empty version after ':'");
            }
            labels.insert("version".to_string(), v.to_string());
        }
        for kv in rest.into_iter().flat_map(|r| r.split(',')) {
            let Some((k, v)) = kv.split_once('=') else {
                bad_app!("image {input:?}: label {kv:?} is not name=value");
            };
            super::validate::ac_identifier(k)
                .map_err(|e| Error::invalid(format!("image {input:?}: label name {e}")))?;
            if labels.insert(k.to_string(), v.to_string()).is_some() {
                bad_app!("image {input:?}: label {k:?} given twice");
            }
        }
        let (os, arch) = crate::appc::appc_os_arch(
            crate::fetch::host_platform().0,
            crate::fetch::host_platform().1,
            None,
        );
        labels.entry("os".into()).or_insert(os);
        labels.entry("arch".into()).or_insert(arch);
        Ok(App {
            name: name.to_string(),
            labels,
        })
    }

    /// The version asked for, if any (not the `latest` default).
    pub fn version(&self) -> Option<&str> {
        self.labels.get("version").map(String::as_str)
    }
}

/// One `<meta name="ac-…" content="PREFIX URI">` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub prefix: String,
    pub uri: String,
}

/// The `ac-*` meta tags of an HTML page, in order. Malformed HTML is read as browsers read
/// it; tags without both a prefix and a URI are ignored, as appc ignores them.
pub fn meta_tags(html: &[u8]) -> Vec<Meta> {
    use html5gum::{Token, Tokenizer};
    let mut out = Vec::new();
    for token in Tokenizer::new(html).flatten() {
        let Token::StartTag(tag) = token else {
            continue;
        };
        if !tag.name.eq_ignore_ascii_case(b"meta") {
            continue;
        }
        let attr = |k: &[u8]| {
            tag.attributes
                .get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let (Some(name), Some(content)) = (attr(b"name"), attr(b"content")) else {
            continue;
        };
        let mut parts = content.trim().splitn(2, ' ');
        let prefix = parts.next().unwrap_or("").to_string();
        let uri = parts.next().unwrap_or("").trim().to_string();
        if name.starts_with("ac-") && !prefix.is_empty() && !uri.is_empty() {
            out.push(Meta { name, prefix, uri });
        }
    }
    out
}

/// Fills a template's placeholders from `vars`; `None` when one is left unfilled.
pub fn render(template: &str, vars: &[(String, String)]) -> Option<String> {
    let s = fill(template, vars);
    match s.find('{') {
        Some(i) if s[i..].contains('}') => None,
        _ => Some(s),
    }
}

fn fill(template: &str, vars: &[(String, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Where an image and its signature are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub aci: String,
    pub asc: String,
}

/// What was tried, for messages.
#[derive(Debug, Default)]
pub struct Attempts(pub Vec<String>);

impl Attempts {
    pub fn describe(&self) -> String {
        self.0.join("; ")
    }
}

/// The discovery pages of `name` and its parents, nearest first, each read until `found`
/// returns something.
async fn walk<T>(
    http: &Http,
    name: &str,
    attempts: &mut Attempts,
    mut found: impl FnMut(&str, Vec<Meta>) -> Option<T>,
) -> Result<Option<T>> {
    let parts: Vec<&str> = name.split('/').collect();
    for end in (1..=parts.len()).rev() {
        let prefix = parts[..end].join("/");
        let mut urls = vec![format!("https://{prefix}?ac-discovery=1")];
        if http.allow_http() {
            urls.push(format!("http://{prefix}?ac-discovery=1"));
        }
        for url in urls {
            match http.get_small(&url).await {
                Ok(Got::Body(body)) => {
                    let metas = meta_tags(&body);
                    if let Some(t) = found(&prefix, metas) {
                        return Ok(Some(t));
                    }
                    attempts.0.push(format!("{url}: no matching meta tag"));
                    break;
                }
                Ok(Got::Status(s, _)) => attempts.0.push(format!("{url}: {s}")),
                Err(e) => attempts.0.push(format!("{e:#}")),
            }
        }
    }
    Ok(None)
}

/// The ACI endpoints for `app`, from the first page that has any.
pub async fn aci_endpoints(http: &Http, app: &App) -> Result<(Vec<Endpoint>, Attempts)> {
    let mut vars = vec![("name".to_string(), app.name.clone())];
    let mut labels = app.labels.clone();
    labels
        .entry("version".into())
        .or_insert_with(|| "latest".into());
    vars.extend(labels);
    let mut attempts = Attempts::default();
    let found = walk(http, &app.name, &mut attempts, |_, metas| {
        let eps: Vec<Endpoint> = metas
            .iter()
            .filter(|m| m.name == "ac-discovery" && app.name.starts_with(&m.prefix))
            .filter_map(|m| {
                // `{ext}` is filled below, once for the image and once for its signature.
                let uri = fill(&m.uri, &vars);
                let ext = |e: &str| render(&uri, &[("ext".to_string(), e.to_string())]);
                Some(Endpoint {
                    aci: ext("aci")?,
                    asc: ext("aci.asc")?,
                })
            })
            .collect();
        (!eps.is_empty()).then_some(eps)
    })
    .await?;
    Ok((found.unwrap_or_default(), attempts))
}

/// The public key URLs for `prefix`, from the first page that has any.
pub async fn pubkey_urls(http: &Http, prefix: &str) -> Result<(Vec<String>, Attempts)> {
    let mut attempts = Attempts::default();
    let found = walk(http, prefix, &mut attempts, |_, metas| {
        let keys: Vec<String> = metas
            .into_iter()
            .filter(|m| m.name == "ac-discovery-pubkeys" && prefix.starts_with(&m.prefix))
            .map(|m| m.uri)
            .collect();
        (!keys.is_empty()).then_some(keys)
    })
    .await?;
    Ok((found.unwrap_or_default(), attempts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_strings_parse_like_rkt() {
        let a = App::parse("coreos.com/etcd:v2.0.4").unwrap();
        assert_eq!(a.name, "coreos.com/etcd");
        assert_eq!(a.version(), Some("v2.0.4"));
        assert_eq!(a.labels.get("os").map(String::as_str), Some("linux"));
        let b = App::parse("example.com/app,version=1.0,channel=beta").unwrap();
        assert_eq!(b.version(), Some("1.0"));
        assert_eq!(b.labels["channel"], "beta");
        assert!(App::parse("example.com/app,x=1:2").is_err());
        assert!(App::parse("Example.com/app").is_err());
    }

    #[test]
    fn meta_tags_and_templates() {
        let html = br#"<html><head>
            <meta name="ac-discovery" content="example.com https://example.com/{name}-{version}-{os}-{arch}.{ext}">
            <META NAME="ac-discovery-pubkeys" CONTENT="example.com https://example.com/key.gpg"/>
            <meta name="ac-discovery" content="broken">
            <meta name="description" content="x y">
            </head>"#;
        let tags = meta_tags(html);
        assert_eq!(tags.len(), 2, "{tags:?}");
        assert_eq!(tags[1].uri, "https://example.com/key.gpg");
        let vars = vec![
            ("name".into(), "example.com/app".into()),
            ("version".into(), "1".into()),
        ];
        assert_eq!(render("{name}-{version}.{ext}", &vars), None);
        assert_eq!(
            render("{name}-{version}.aci", &vars).as_deref(),
            Some("example.com/app-1.aci")
        );
    }
}
