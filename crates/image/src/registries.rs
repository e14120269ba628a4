//! `registries.d`: where Docker images come from. Mirrors of a registry, tried in order before
//! the registry itself, and the default registry of short names (`redis:3.2`).
//!
//! rkt reads `registries.d/*.json` under the system config directory (`/usr/lib/rkt`), then
//! under the local one (`/etc/rkt`), files in lexical order, as it reads `auth.d`: a later
//! file's `defaultRegistry` replaces an earlier one's, and a later file's entry for a registry
//! replaces the earlier entry for it as a whole. One file, every key optional but the header:
//!
//! ```json
//! {
//!   "rktKind": "registries",
//!   "rktVersion": "v1",
//!   "defaultRegistry": "registry.internal:5000",
//!   "registries": {
//!     "docker.io": {
//!       "mirrors": [
//!         {"url": "https://mirror.internal"},
//!         {"url": "http://10.0.0.5:5000"},
//!         {"url": "https://harbor.internal/dockerhub", "skipTLSVerify": true}
//!       ],
//!       "mirrorsOnly": false
//!     }
//!   }
//! }
//! ```
//!
//! - `defaultRegistry` (`host[:port]`): where short names go; Docker Hub when no file sets
//!   it. `docker://` references without a host keep rkt's meaning, Docker Hub.
//! - `registries`: keyed by `host[:port]` as references name it (`docker.io` and
//!   `index.docker.io` are Docker Hub, `registry-1.docker.io`).
//! - `mirrors`: tried in order before the registry itself. A mirror's `url` is
//!   `http://` (plain HTTP) or `https://` (TLS, verified unless `skipTLSVerify`); a path, if
//!   any, is a repository prefix on the mirror (Harbor's proxy-cache projects).
//!   `--insecure-options=http,tls` relax mirrors as they relax registries, and a mirror's
//!   credentials are the `auth.d` entry of its `host[:port]`.
//! - `mirrorsOnly`: never contact the registry itself (a cluster that cannot reach it).
//!
//! Unknown keys, malformed JSON and values that make no sense are errors that name the file
//! and the line.

use crate::reference::{canonical_registry, classify, ImageArg, ParseError, Reference, DOCKER_HUB};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// The `rktKind` of a registries file.
pub const KIND: &str = "registries";

/// A mirror of a registry, as `registries.d` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The URL, normalized (`http://10.0.0.5:5000`, `https://harbor.internal/dockerhub`).
    pub url: String,
    /// `https://`; otherwise plain HTTP.
    pub https: bool,
    /// `host[:port]`: where to connect, and the key of its `auth.d` credentials.
    pub host: String,
    /// A repository prefix on the mirror (the URL's path), if any.
    pub prefix: Option<String>,
    pub skip_tls_verify: bool,
}

impl Mirror {
    /// The repository on this mirror for a repository of the registry.
    pub fn repository(&self, repository: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}/{repository}"),
            None => repository.to_string(),
        }
    }
}

/// What `registries.d` says about one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    pub mirrors: Vec<Mirror>,
    /// Only the mirrors are tried, never the registry itself.
    pub mirrors_only: bool,
    /// The file this came from.
    pub file: PathBuf,
}

/// Everything `registries.d` says.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    default_registry: Option<(String, PathBuf)>,
    registries: HashMap<String, RegistrySettings>,
}

/// A registries file that cannot be used, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not at one place in the file.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid registries file {}", self.file.display())?;
        if self.line > 0 {
            write!(f, ", line {} column {}", self.line, self.column)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Registries {
    /// Loads `registries.d` from each configuration directory in `dirs` (system, local,
    /// user: a later one wins).
    pub fn load(dirs: &[std::path::PathBuf]) -> Result<Registries, ConfigError> {
        let mut r = Registries::default();
        for dir in dirs {
            r.load_dir(&dir.join("registries.d"))?;
        }
        Ok(r)
    }

    fn load_dir(&mut self, dir: &Path) -> Result<(), ConfigError> {
        let unreadable = |file: &Path, e: std::io::Error| ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read it: {e}"),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(unreadable(dir, e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| unreadable(&file, e))?;
            self.add_file(&text, &file)?;
        }
        Ok(())
    }

    /// Adds one file's settings (`text`, read from `file`) over what is already known.
    pub fn add_file(&mut self, text: &str, file: &Path) -> Result<(), ConfigError> {
        let parsed: FileV1 = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            // serde_json appends the position; it is said once, in front.
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let (line, column) = match e.classify() {
                serde_json::error::Category::Data => value_position(text, e.line(), e.column()),
                _ => (e.line(), e.column()),
            };
            ConfigError {
                file: file.to_path_buf(),
                line,
                column,
                message: message
                    .strip_suffix(&suffix)
                    .unwrap_or(&message)
                    .to_string(),
            }
        })?;
        if let Some(Host(h)) = parsed.default_registry {
            self.default_registry = Some((h, file.to_path_buf()));
        }
        for (Host(host), entry) in parsed.registries {
            self.registries.insert(
                host,
                RegistrySettings {
                    mirrors: entry.mirrors,
                    mirrors_only: entry.mirrors_only,
                    file: file.to_path_buf(),
                },
            );
        }
        Ok(())
    }

    /// The registry of short names: `defaultRegistry`, or Docker Hub.
    pub fn default_registry(&self) -> &str {
        self.default_registry
            .as_ref()
            .map_or(DOCKER_HUB, |(h, _)| h.as_str())
    }

    /// The file that set the default registry, if one did.
    pub fn default_registry_file(&self) -> Option<&Path> {
        self.default_registry.as_ref().map(|(_, f)| f.as_path())
    }

    /// The settings of a registry (`host[:port]`, Docker Hub's aliases included), if any.
    pub fn settings(&self, registry: &str) -> Option<&RegistrySettings> {
        self.registries.get(canonical_registry(registry))
    }

    /// The Docker reference an image argument names: a `docker://` reference, or a short
    /// name on the default registry. Anything else is refused, saying what to write instead.
    pub fn reference(&self, image: &str) -> Result<Reference, ParseError> {
        match classify(image) {
            ImageArg::Docker => Reference::parse(image),
            ImageArg::ShortName => Reference::parse_short(image, self.default_registry()),
            // The ACI issue hooks appc discovery in here, for names that look like appc's.
            ImageArg::ImageId | ImageArg::Other => Err(ParseError {
                input: image.to_string(),
                why: format!(
                    "only Docker images can be fetched by this rkt so far: docker:// references and short names such as redis:3.2 (ACI files, URLs and appc discovery are not supported yet); for a registry image write docker://{image}"
                ),
            }),
        }
    }

    /// What rkt says about a short name it resolved to `reference`.
    pub fn describe_short(&self, input: &str, reference: &Reference) -> String {
        let origin = match self.default_registry_file() {
            Some(f) => format!("defaultRegistry of {}", f.display()),
            None => "the default registry; registries.d can set another".to_string(),
        };
        format!("image {input:?} is a short name: resolved to {reference} ({origin})")
    }
}

/// Where the value that a data error is about ends. serde_json reports such an error at the
/// last character it read, which may be past the value: the `}` or `]` that closes its
/// object or list, after whitespace (so on the next line). Back over those, to the value.
fn value_position(text: &str, line: usize, column: usize) -> (usize, usize) {
    // Everything read, up to the character at (line, column), 1-based.
    let mut read: Vec<char> = Vec::new();
    let (mut l, mut c) = (1, 0);
    for ch in text.chars() {
        if ch == '\n' {
            if l == line {
                break;
            }
            l += 1;
            c = 0;
        } else {
            c += 1;
        }
        read.push(ch);
        if l == line && c >= column {
            break;
        }
    }
    if matches!(read.last(), Some('}' | ']')) {
        read.pop();
    }
    while read.last().is_some_and(|c| c.is_whitespace()) {
        read.pop();
    }
    if read.is_empty() {
        return (line, column);
    }
    let line = 1 + read.iter().filter(|c| **c == '\n').count();
    let column = read.iter().rev().take_while(|c| **c != '\n').count();
    (line, column)
}

/// One file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileV1 {
    #[allow(dead_code)]
    rkt_kind: Kind,
    #[allow(dead_code)]
    rkt_version: Version,
    #[serde(default)]
    default_registry: Option<Host>,
    #[serde(default)]
    registries: BTreeMap<Host, Entry>,
}

struct Kind;

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == KIND {
            Ok(Kind)
        } else {
            Err(D::Error::custom(format!(
                "rktKind is {s:?}; a registries file says \"rktKind\": \"{KIND}\""
            )))
        }
    }
}

struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "v1" {
            Ok(Version)
        } else {
            Err(D::Error::custom(format!(
                "unsupported rktVersion {s:?}; this rkt reads \"v1\""
            )))
        }
    }
}

/// A registry's `host[:port]`, Docker Hub's aliases made one.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Host(String);

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_host(&s).map_err(D::Error::custom)?;
        Ok(Host(canonical_registry(&s).to_string()))
    }
}

fn check_host(s: &str) -> Result<(), String> {
    if s.contains("://") {
        return Err(format!(
            "registry {s:?} is a URL; registries are named host[:port] (as in docker://host[:port]/repo)"
        ));
    }
    let (host, port) = match s.strip_prefix('[') {
        // An IPv6 address, in brackets as in URLs.
        Some(rest) => match rest.split_once(']') {
            Some((v6, "")) => (v6, None),
            Some((v6, port)) => (v6, Some(port.strip_prefix(':').unwrap_or("x"))),
            None => ("", None),
        },
        None => match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        },
    };
    let v6 = s.starts_with('[');
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-') || (v6 && c == ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !host_ok || !port_ok {
        return Err(format!(
            "registry {s:?} is not a host[:port] (such as registry.internal:5000)"
        ));
    }
    Ok(())
}

/// One registry's entry.
#[derive(Deserialize)]
#[serde(try_from = "RawEntry")]
struct Entry {
    mirrors: Vec<Mirror>,
    mirrors_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    mirrors: Vec<MirrorEntry>,
    #[serde(default)]
    mirrors_only: bool,
}

impl TryFrom<RawEntry> for Entry {
    type Error = String;
    fn try_from(raw: RawEntry) -> Result<Entry, String> {
        if raw.mirrors_only && raw.mirrors.is_empty() {
            return Err(
                "mirrorsOnly is true but there are no mirrors: nothing could be fetched from this registry"
                    .into(),
            );
        }
        Ok(Entry {
            mirrors: raw.mirrors.into_iter().map(|m| m.0).collect(),
            mirrors_only: raw.mirrors_only,
        })
    }
}

#[derive(Deserialize)]
#[serde(try_from = "RawMirror")]
struct MirrorEntry(Mirror);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    url: MirrorUrl,
    #[serde(default, rename = "skipTLSVerify")]
    skip_tls_verify: bool,
}

/// A mirror's URL, checked where it is read (so that an error names its line).
struct MirrorUrl(Mirror);

impl<'de> Deserialize<'de> for MirrorUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_mirror(&s, false)
            .map(MirrorUrl)
            .map_err(D::Error::custom)
    }
}

impl TryFrom<RawMirror> for MirrorEntry {
    type Error = String;
    fn try_from(raw: RawMirror) -> Result<MirrorEntry, String> {
        parse_mirror(&raw.url.0.url, raw.skip_tls_verify).map(MirrorEntry)
    }
}

/// A mirror from its URL and `skipTLSVerify`.
pub fn parse_mirror(url: &str, skip_tls_verify: bool) -> Result<Mirror, String> {
    let bad = |why: &str| format!("mirror URL {url:?} {why}");
    let u = reqwest::Url::parse(url).map_err(|e| bad(&format!("does not parse: {e}")))?;
    let https = match u.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(bad(&format!(
                "has scheme {other:?}; use http:// (plain HTTP) or https://"
            )))
        }
    };
    let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
        return Err(bad("has no host"));
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "carries credentials; put them in auth.d under the mirror's host[:port]",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad(
            "has a query or fragment; a mirror is scheme://host[:port][/prefix]",
        ));
    }
    if !https && skip_tls_verify {
        return Err(bad(
            "is plain HTTP, so skipTLSVerify means nothing for it; remove it, or use https://",
        ));
    }
    let host = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let path = u.path().trim_matches('/');
    let prefix = if path.is_empty() {
        None
    } else {
        let ok = path.split('/').all(|c| {
            !c.is_empty()
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        });
        if !ok {
            return Err(bad(&format!(
                "has path {:?}, which is not a repository prefix (lowercase letters, digits, '.', '_', '-', separated by '/')",
                u.path()
            )));
        }
        Some(path.to_string())
    };
    let scheme = if https { "https" } else { "http" };
    let url = match &prefix {
        Some(p) => format!("{scheme}://{host}/{p}"),
        None => format!("{scheme}://{host}"),
    };
    Ok(Mirror {
        url,
        https,
        host,
        prefix,
        skip_tls_verify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#""rktKind": "registries", "rktVersion": "v1""#;

    fn parse(text: &str) -> Result<Registries, ConfigError> {
        let mut r = Registries::default();
        r.add_file(text, Path::new("/etc/rkt/registries.d/10-test.json"))?;
        Ok(r)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_file() {
        let r = parse(&format!(
            r#"{{ {HEAD},
  "defaultRegistry": "index.docker.io",
  "registries": {{
    "docker.io": {{
      "mirrors": [
        {{"url": "https://mirror.internal/"}},
        {{"url": "http://10.0.0.5:5000"}},
        {{"url": "https://Harbor.Internal:8443/dockerhub/", "skipTLSVerify": true}}
      ]
    }},
    "127.0.0.1:5000": {{"mirrors": [{{"url": "http://127.0.0.1:5001"}}], "mirrorsOnly": true}},
    "quay.io": {{}}
  }}
}}"#
        ))
        .unwrap();
        assert_eq!(r.default_registry(), DOCKER_HUB);
        let hub = r.settings("docker.io").unwrap();
        assert_eq!(r.settings(DOCKER_HUB), Some(hub));
        assert!(!hub.mirrors_only);
        let urls: Vec<&str> = hub.mirrors.iter().map(|m| m.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://mirror.internal",
                "http://10.0.0.5:5000",
                "https://harbor.internal:8443/dockerhub"
            ]
        );
        let harbor = &hub.mirrors[2];
        assert!(harbor.https && harbor.skip_tls_verify);
        assert_eq!(harbor.host, "harbor.internal:8443");
        assert_eq!(
            harbor.repository("library/redis"),
            "dockerhub/library/redis"
        );
        assert_eq!(hub.mirrors[1].repository("library/redis"), "library/redis");
        assert!(!hub.mirrors[1].https);
        assert!(r.settings("127.0.0.1:5000").unwrap().mirrors_only);
        assert!(r.settings("quay.io").unwrap().mirrors.is_empty());
        assert!(r.settings("elsewhere").is_none());
    }

    #[test]
    fn later_files_win_and_local_overrides_system() {
        let sys = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let write = |dir: &Path, name: &str, body: &str| {
            std::fs::create_dir_all(dir.join("registries.d")).unwrap();
            std::fs::write(
                dir.join("registries.d").join(name),
                format!("{{ {HEAD}, {body} }}"),
            )
            .unwrap();
        };
        write(
            sys.path(),
            "a.json",
            r#""defaultRegistry": "sys.example", "registries": {"q.io": {"mirrors": [{"url": "http://sys-mirror"}]}}"#,
        );
        write(
            sys.path(),
            "b.json",
            r#""registries": {"docker.io": {"mirrors": [{"url": "http://m1"}]}}"#,
        );
        write(
            local.path(),
            "a.json",
            r#""defaultRegistry": "127.0.0.1:5000", "registries": {"q.io": {"mirrors": [{"url": "http://local-mirror"}]}}"#,
        );
        // Not JSON by name: ignored.
        std::fs::write(local.path().join("registries.d/notes.txt"), "{").unwrap();
        let r = Registries::load(&[sys.path().into(), local.path().into()]).unwrap();
        assert_eq!(r.default_registry(), "127.0.0.1:5000");
        assert_eq!(
            r.default_registry_file(),
            Some(local.path().join("registries.d/a.json").as_path())
        );
        assert_eq!(r.settings("q.io").unwrap().mirrors[0].host, "local-mirror");
        assert_eq!(r.settings("docker.io").unwrap().mirrors[0].host, "m1");
        let none = Registries::load(&["/nonexistent".into(), "/nonexistent".into()]).unwrap();
        assert_eq!(none.default_registry(), DOCKER_HUB);
    }

    #[test]
    fn short_names_and_what_is_said_about_them() {
        let r = parse(&format!(
            r#"{{ {HEAD}, "defaultRegistry": "127.0.0.1:5000" }}"#
        ))
        .unwrap();
        let got = r.reference("busybox:latest").unwrap();
        assert_eq!(got.to_string(), "docker://127.0.0.1:5000/busybox:latest");
        assert_eq!(
            r.describe_short("busybox:latest", &got),
            "image \"busybox:latest\" is a short name: resolved to docker://127.0.0.1:5000/busybox:latest (defaultRegistry of /etc/rkt/registries.d/10-test.json)"
        );
        // docker:// keeps rkt's meaning whatever the default registry.
        assert_eq!(
            r.reference("docker://busybox").unwrap().registry,
            DOCKER_HUB
        );
        let hub = Registries::default();
        let got = hub.reference("redis:3.2").unwrap();
        assert_eq!(
            got.to_string(),
            "docker://registry-1.docker.io/library/redis:3.2"
        );
        assert!(hub
            .describe_short("redis:3.2", &got)
            .ends_with("(the default registry; registries.d can set another)"));
        for not_docker in ["example.com/app:1.0", "sha512-abc", "./x.aci"] {
            let e = hub.reference(not_docker).unwrap_err().to_string();
            assert!(
                e.contains("short names such as redis:3.2")
                    && e.contains(&format!("docker://{not_docker}")),
                "{e}"
            );
        }
    }

    #[test]
    fn errors_name_the_line() {
        // Malformed JSON.
        let e = err(&format!(
            "{{ {HEAD},\n  \"registries\": {{\n    \"docker.io\": {{,\n"
        ));
        assert!(
            e.starts_with(
                "invalid registries file /etc/rkt/registries.d/10-test.json, line 3 column"
            ),
            "{e}"
        );
        // An unknown key, at any depth.
        let e = err(&format!("{{ {HEAD},\n  \"mirrors\": []\n}}"));
        assert!(
            e.contains("line 2 column") && e.contains("unknown field `mirrors`"),
            "{e}"
        );
        let e = err(&format!(
            "{{ {HEAD},\n  \"registries\": {{\n    \"docker.io\": {{\n      \"mirorrs\": []\n    }}\n  }}\n}}"
        ));
        assert!(
            e.contains("line 4 column") && e.contains("unknown field `mirorrs`"),
            "{e}"
        );
        let e = err(&format!(
            "{{ {HEAD},\n  \"registries\": {{\"docker.io\": {{\"mirrors\": [\n    {{\"url\": \"http://m\", \"insecure\": true}}\n  ]}}}}\n}}"
        ));
        assert!(
            e.contains("line 3 column") && e.contains("unknown field `insecure`"),
            "{e}"
        );
        // A mirror URL that does not parse, or is not a mirror's.
        let e = err(&format!(
            "{{ {HEAD},\n  \"registries\": {{\"docker.io\": {{\"mirrors\": [\n    {{\"url\": \"http://[::1\"}}\n  ]}}}}\n}}"
        ));
        assert!(
            e.contains("line 3 column") && e.contains("mirror URL \"http://[::1\" does not parse"),
            "{e}"
        );
        for (url, why) in [
            ("ftp://m", "has scheme \"ftp\""),
            ("mirror.internal:5000", "has scheme \"mirror.internal\""),
            ("mirror.internal", "does not parse"),
            ("https://u:p@m", "carries credentials"),
            ("https://m/Upper", "is not a repository prefix"),
            ("https://m/?x=1", "has a query"),
        ] {
            let e = err(&format!(
                r#"{{ {HEAD}, "registries": {{"docker.io": {{"mirrors": [{{"url": "{url}"}}]}}}} }}"#
            ));
            assert!(e.contains(why) && e.contains("line 1 column"), "{url}: {e}");
        }
        let e = err(&format!(
            r#"{{ {HEAD}, "registries": {{"docker.io": {{"mirrors": [{{"url": "http://m", "skipTLSVerify": true}}]}}}} }}"#
        ));
        assert!(e.contains("skipTLSVerify means nothing"), "{e}");
        let e = err(&format!(
            r#"{{ {HEAD}, "registries": {{"docker.io": {{"mirrorsOnly": true}}}} }}"#
        ));
        assert!(e.contains("no mirrors"), "{e}");
        // Registry names and the header.
        let e = err(&format!(
            "{{ {HEAD},\n \"registries\": {{\"https://docker.io\": {{}}}} }}"
        ));
        assert!(e.contains("line 2 column") && e.contains("is a URL"), "{e}");
        let e = err(&format!(r#"{{ {HEAD}, "defaultRegistry": "a b" }}"#));
        assert!(e.contains("not a host[:port]"), "{e}");
        let e = err(r#"{"rktKind": "dockerAuth", "rktVersion": "v1"}"#);
        assert!(e.contains("rktKind is \"dockerAuth\""), "{e}");
        let e = err(r#"{"rktKind": "registries", "rktVersion": "v2"}"#);
        assert!(e.contains("unsupported rktVersion \"v2\""), "{e}");
        let e = err(r#"{"rktVersion": "v1"}"#);
        assert!(e.contains("missing field `rktKind`"), "{e}");
        let e = err(&format!(
            r#"{{ {HEAD}, "registries": {{"docker.io": {{"mirrors": "http://m"}}}} }}"#
        ));
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn a_bad_value_is_placed_on_its_own_line() {
        // serde_json reports a data error at the last character it read; the value may be
        // before the `}` or `]` that closes its object or list, and before whitespace.
        assert_eq!(
            value_position("{\"a\": \"bad\",\n \"c\": 1\n}", 1, 11),
            (1, 11)
        );
        assert_eq!(
            value_position("{\"c\": 1,\n \"a\": \"bad\"\n}", 3, 1),
            (2, 11)
        );
        assert_eq!(value_position("{\"a\": \"bad\"}", 1, 12), (1, 11));
        assert_eq!(
            value_position("{\"b\": [\"ok\",\n  \"bad\"\n ]\n}", 3, 2),
            (2, 7)
        );
        let e = err(&format!(
            "{{ {HEAD},\n  \"defaultRegistry\": \"https://r\"\n}}"
        ));
        assert!(e.contains("line 2 column") && e.contains("is a URL"), "{e}");
    }

    #[test]
    fn load_names_the_bad_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("registries.d")).unwrap();
        std::fs::write(
            d.path().join("registries.d/20-bad.json"),
            format!("{{ {HEAD},\n  \"defaultRegistry\": 5000\n}}"),
        )
        .unwrap();
        let e = Registries::load(&["/nonexistent".into(), d.path().into()]).unwrap_err();
        assert_eq!(e.file, d.path().join("registries.d/20-bad.json"));
        assert_eq!(e.line, 2);
        assert!(e.message.contains("invalid type: integer `5000`"), "{e}");
    }
}
