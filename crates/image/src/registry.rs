//! A client for the Distribution (OCI registry) HTTP API: the parts `rkt fetch` needs.
//!
//! We talk to the registry with `reqwest` directly rather than through `oci-client`, because
//! fetching needs control that crate does not give: resuming an interrupted blob with a `Range`
//! request, retrying 5xx answers and connection resets with backoff, a hard cap on manifest
//! size, refusing schema1 with a message of our own, and streaming each blob through our own
//! hasher into the store.

use crate::auth::Credential;
use crate::error::{refuse, Context, Error, Result};
use crate::reference::Reference;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use std::time::Duration;
use tokio::sync::RwLock;

/// Manifests and indexes larger than this are refused before they are parsed.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MEDIA_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Why a registry could not give what was asked, for callers that decide what to do next
/// (retry later, or report bad input). Carried by [`Error::Registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Unreachable, timed out, or a 5xx/429 answer that outlasted the retries.
    Unavailable,
    /// HTTP 404: no such repository, tag or blob.
    NotFound,
    /// HTTP 401/403, or credentials the registry or its token server refused.
    Denied,
    /// Any other refusal (a 4xx answer, or not a Distribution registry at all).
    Refused,
}

/// A registry failure of a known [`Failure`]; its message names the registry and the image.
pub(crate) fn failed(failure: Failure, message: String) -> Error {
    Error::registry(failure, message)
}

/// The failure an HTTP status stands for.
pub(crate) fn failure_of(status: StatusCode) -> Failure {
    match status {
        StatusCode::NOT_FOUND => Failure::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Failure::Denied,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Failure::Unavailable,
        _ => Failure::Refused,
    }
}

/// How to reach registries: what `--insecure-options` relaxed, and how long to wait.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--insecure-options=http`: fall back to plain HTTP when HTTPS fails.
    pub allow_http: bool,
    /// `--insecure-options=tls`: accept any certificate.
    pub skip_tls_verify: bool,
    /// Longest wait for a connection or for the next bytes of an answer.
    pub timeout: Duration,
    /// Attempts per request for 5xx answers and broken connections.
    pub attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_http: false,
            skip_tls_verify: false,
            timeout: Duration::from_secs(30),
            attempts: 5,
        }
    }
}

/// Where one source of an image is and how to reach it: the image's registry, or one of its
/// mirrors (see [`crate::registries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// The image's repository there.
    pub repository: String,
    /// Plain HTTP only (an `http://` mirror).
    pub plain_http: bool,
    /// HTTPS, then plain HTTP when HTTPS fails (`--insecure-options=http`).
    pub allow_http: bool,
    pub skip_tls_verify: bool,
    /// A mirror (its probe gets one attempt: the next source is its retry).
    pub mirror: bool,
    /// How messages name it: `registry quay.io`, `mirror http://10.0.0.5:5000`.
    pub what: String,
}

impl Endpoint {
    /// The image's own registry, as `--insecure-options` allows reaching it.
    pub fn registry(r: &Reference, opts: &Options) -> Endpoint {
        Endpoint {
            host: r.registry.clone(),
            repository: r.repository.clone(),
            plain_http: false,
            allow_http: opts.allow_http,
            skip_tls_verify: opts.skip_tls_verify,
            mirror: false,
            what: format!("registry {}", r.registry),
        }
    }

    /// A mirror of the image's registry: its own scheme and TLS setting, relaxed further by
    /// `--insecure-options` as registries are.
    pub fn mirror(m: &crate::registries::Mirror, r: &Reference, opts: &Options) -> Endpoint {
        Endpoint {
            host: m.host.clone(),
            repository: m.repository(&r.repository),
            plain_http: !m.https,
            allow_http: opts.allow_http,
            skip_tls_verify: m.skip_tls_verify || opts.skip_tls_verify,
            mirror: true,
            what: format!("mirror {}", m.url),
        }
    }
}

/// A connection to one repository of one registry (or mirror), authenticated for pulling.
pub struct Registry {
    client: reqwest::Client,
    base: String,
    repository: String,
    image: String,
    credential: Option<Credential>,
    authorization: RwLock<Option<HeaderValue>>,
    attempts: u32,
}

/// A manifest or index as served, with the digest that identifies its bytes.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

impl Registry {
    /// Finds how to talk to `endpoint` (HTTPS, or HTTP when it is plain or HTTP is allowed)
    /// and authenticates for pulling `image`'s repository there.
    pub async fn connect(
        endpoint: &Endpoint,
        image: &Reference,
        credential: Option<Credential>,
        opts: &Options,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(endpoint.skip_tls_verify)
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .user_agent(concat!("rkt-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::failed(format!(
                    "building the HTTP client: {}",
                    crate::error::chain(&e)
                ))
            })?;
        let scheme = if endpoint.plain_http { "http" } else { "https" };
        let mut reg = Registry {
            client,
            base: format!("{scheme}://{}", endpoint.host),
            repository: endpoint.repository.clone(),
            image: image.to_string(),
            credential,
            authorization: RwLock::new(None),
            attempts: opts.attempts.max(1),
        };
        // With plain HTTP allowed, HTTPS gets one try: a plain-HTTP registry answers a TLS
        // handshake with garbage, and retrying that only adds delay. A mirror's probe gets
        // one try too: the next source is its retry.
        let fallback = endpoint.allow_http && !endpoint.plain_http;
        if fallback || endpoint.mirror {
            reg.attempts = 1;
        }
        let probe = reg.get_with_retries(&reg.url("/v2/"), None).await;
        if !endpoint.mirror {
            reg.attempts = opts.attempts.max(1);
        }
        let probe = match probe {
            Ok(r) => r,
            Err(https_err) if fallback => {
                reg.base = format!("http://{}", endpoint.host);
                reg.get_with_retries(&reg.url("/v2/"), None)
                    .await
                    .with_context(|| {
                        format!(
                            "{} unreachable over HTTPS ({https_err:#}) and HTTP",
                            endpoint.what
                        )
                    })?
            }
            Err(e) if endpoint.plain_http => {
                return Err(e.context(format!("{} unreachable", endpoint.what)))
            }
            Err(e) if endpoint.mirror => {
                return Err(e.context(format!(
                    "{} unreachable over HTTPS; for a plain-HTTP mirror write an http:// URL in registries.d, for an untrusted certificate set skipTLSVerify",
                    endpoint.what
                )))
            }
            Err(e) => {
                return Err(e.context(format!(
                    "{} unreachable over HTTPS; for a plain-HTTP registry pass --insecure-options=http, for an untrusted certificate --insecure-options=tls",
                    endpoint.what
                )))
            }
        };
        reg.attempts = opts.attempts.max(1);
        reg.authenticate(probe).await?;
        Ok(reg)
    }

    /// Where the registry was reached: `https://host` or `http://host`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Answers the `/v2/` probe's challenge, if any, so later requests carry credentials.
    async fn authenticate(&self, probe: Response) -> Result<()> {
        let status = probe.status();
        if status.is_success() {
            if let Some(Credential::Bearer(t)) = &self.credential {
                *self.authorization.write().await = Some(bearer(t)?);
            }
            return Ok(());
        }
        if status != StatusCode::UNAUTHORIZED {
            return Err(failed(
                failure_of(status),
                format!(
                    "registry {} answered {} to its API probe (GET /v2/); is it a Distribution registry?",
                    self.base, status
                ),
            ));
        }
        let challenge = probe
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(Challenge::parse)
            .ok_or_else(|| {
                Error::registry(
                    Failure::Refused,
                    format!(
                        "registry {} demands authentication but sent no WWW-Authenticate challenge",
                        self.base
                    ),
                )
            })?;
        let header = match challenge {
            Challenge::Basic => match &self.credential {
                Some(Credential::Basic { user, password }) => basic(user, password)?,
                _ => {
                    return Err(failed(
                        Failure::Denied,
                        format!(
                            "registry {} requires a user name and password for {}; add a dockerAuth file to <local-config>/auth.d/",
                            self.base, self.image
                        ),
                    ))
                }
            },
            Challenge::Bearer { realm, service } => {
                let token = self.fetch_token(&realm, service.as_deref()).await?;
                bearer(&token)?
            }
        };
        *self.authorization.write().await = Some(header);
        Ok(())
    }

    /// The token flow of the Distribution spec: ask the realm for a pull token for our
    /// repository, presenting basic credentials when we have them.
    async fn fetch_token(&self, realm: &str, service: Option<&str>) -> Result<String> {
        let scope = format!("repository:{}:pull", self.repository);
        let mut query = vec![("scope", scope.as_str())];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let mut req = self.client.get(realm).query(&query);
        if let Some(Credential::Basic { user, password }) = &self.credential {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req.send().await.map_err(|e| {
            Error::from(e).into_registry(
                Failure::Unavailable,
                format!("requesting a token from {realm}"),
            )
        })?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(failed(
                Failure::Denied,
                format!(
                    "token server {realm} refused the credentials for {} (HTTP {}); check <local-config>/auth.d/",
                    self.image,
                    resp.status()
                ),
            ));
        }
        if !resp.status().is_success() {
            return Err(failed(
                failure_of(resp.status()),
                format!("token server {realm} answered HTTP {}", resp.status()),
            ));
        }
        let body = resp.bytes().await.context("reading the token answer")?;
        token_of(&body).with_context(|| format!("token server {realm}"))
    }

    /// GET with retries on 5xx, 429 and broken connections, backing off exponentially.
    async fn get_with_retries(&self, url: &str, headers: Option<HeaderMap>) -> Result<Response> {
        let mut delay = Duration::from_millis(100);
        let mut last_err = None;
        for attempt in 1..=self.attempts {
            let mut req = self.client.get(url);
            if let Some(h) = &headers {
                req = req.headers(h.clone());
            }
            if let Some(a) = self.authorization.read().await.clone() {
                req = req.header(AUTHORIZATION, a);
            }
            match req.send().await {
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    last_err = Some(format!("HTTP {} from {url}", r.status()));
                }
                Ok(r) => return Ok(r),
                Err(e) => last_err = Some(format!("GET {url}: {}", crate::error::chain(&e))),
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
        }
        Err(failed(
            Failure::Unavailable,
            format!(
                "giving up after {} attempts: {}",
                self.attempts,
                last_err.as_deref().unwrap_or("no attempt made")
            ),
        ))
    }

    /// Fetches a manifest or index by tag or digest, refusing oversized and schema1 answers
    /// and verifying the digest whenever one is known.
    pub async fn manifest(&self, reference: &str) -> Result<RawManifest> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(concat!(
                "application/vnd.oci.image.manifest.v1+json, ",
                "application/vnd.oci.image.index.v1+json, ",
                "application/vnd.docker.distribution.manifest.v2+json, ",
                "application/vnd.docker.distribution.manifest.list.v2+json, ",
                "application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.1"
            )),
        );
        let url = self.url(&format!("/v2/{}/manifests/{}", self.repository, reference));
        let resp = self.get_with_retries(&url, Some(headers)).await?;
        let resp = self.check_status(resp, "manifest")?;
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES)
            .await
            .with_context(|| format!("manifest of {}", self.image))?;
        let digest = crate::digest::sha256_digest(&bytes);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            header_digest
        };
        if let Some(want) = expected {
            if want.starts_with("sha256:") && want != digest {
                refuse!(
                    "manifest of {} as served by {} does not match its digest: expected {want}, got {digest}; refusing it",
                    self.image,
                    self.base
                );
            }
        }
        let media_type = media_type_of(&bytes, content_type);
        if media_type == MEDIA_DOCKER_SCHEMA1 || media_type == MEDIA_DOCKER_SCHEMA1_SIGNED {
            refuse!(
                "image {} uses the Docker schema1 manifest format, which is deprecated and not supported; push it again with a current Docker or skopeo (schema2 or OCI)",
                self.image
            );
        }
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Starts a blob download at byte `offset`. Returns the response and whether the registry
    /// honoured the range (if not, the body starts at byte 0).
    pub async fn blob(&self, digest: &str, offset: u64) -> Result<(Response, bool)> {
        let url = self.url(&format!("/v2/{}/blobs/{}", self.repository, digest));
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(
                reqwest::header::RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-")).map_err(header_error)?,
            );
        }
        let resp = self.get_with_retries(&url, Some(headers)).await?;
        if offset > 0 && resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // Our partial file is as long as the blob (or longer): start over.
            return Box::pin(self.blob(digest, 0)).await;
        }
        let resp = self.check_status(resp, &format!("blob {digest}"))?;
        let partial = resp.status() == StatusCode::PARTIAL_CONTENT;
        Ok((resp, partial))
    }

    fn check_status(&self, resp: Response, what: &str) -> Result<Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let message = match status {
            StatusCode::NOT_FOUND => format!(
                "image {} not found in registry {} ({what}: HTTP 404); check the name and tag",
                self.image, self.base
            ),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "access to {} denied by registry {} ({what}: HTTP {}); check the credentials in <local-config>/auth.d/",
                self.image,
                self.base,
                status.as_u16()
            ),
            _ => format!(
                "registry {} answered HTTP {} for the {what} of {}",
                self.base, status, self.image
            ),
        };
        Err(failed(failure_of(status), message))
    }
}

/// Registries often send `application/json` or nothing; the document's own `mediaType` says
/// what it is, and failing that its shape does.
fn media_type_of(bytes: &[u8], content_type: Option<String>) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Option<Probe> = serde_json::from_slice(bytes).ok();
    if let Some(p) = &probe {
        if let Some(m) = &p.media_type {
            return m.clone();
        }
        if p.schema_version == Some(1) {
            return MEDIA_DOCKER_SCHEMA1.to_string();
        }
    }
    match content_type {
        Some(ct) if !ct.is_empty() && ct != "application/json" => ct,
        _ if probe.as_ref().is_some_and(|p| p.manifests.is_some()) => MEDIA_OCI_INDEX.into(),
        _ => MEDIA_OCI_MANIFEST.into(),
    }
}

async fn read_limited(resp: Response, limit: usize) -> Result<Vec<u8>> {
    use futures_util::StreamExt;
    if let Some(len) = resp.content_length() {
        if len as usize > limit {
            refuse!("it is {len} bytes, over the {limit}-byte limit; refusing it");
        }
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("reading the answer")?;
        if out.len() + chunk.len() > limit {
            refuse!("it is over the {limit}-byte limit; refusing it");
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn basic(user: &str, password: &str) -> Result<HeaderValue> {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {b}")).map_err(header_error)
}

fn bearer(token: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(header_error)
}

/// Credentials (from auth.d, or a token server) that cannot be sent in a header.
fn header_error(e: reqwest::header::InvalidHeaderValue) -> Error {
    Error::config(e.to_string())
}

/// The token of a token server's answer: `token`, or OAuth2's `access_token`.
fn token_of(body: &[u8]) -> Result<String> {
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| failed(Failure::Refused, format!("parsing the token answer: {e}")))?;
    body.get("token")
        .or_else(|| body.get("access_token"))
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| failed(Failure::Refused, "the answer holds no token".to_string()))
}

/// Entry points for the fuzz targets (`fuzz/`): what a registry or token server sends, through
/// the same functions the client uses. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// A manifest answer's media type, from its bytes and `Content-Type`.
    pub fn media_type(bytes: &[u8], content_type: Option<String>) -> String {
        super::media_type_of(bytes, content_type)
    }

    /// A `WWW-Authenticate` header; a Bearer challenge's realm and service, if any.
    pub fn www_authenticate(header: &str) -> Option<(String, Option<String>)> {
        match super::Challenge::parse(header) {
            super::Challenge::Basic => None,
            super::Challenge::Bearer { realm, service } => Some((realm, service)),
        }
    }

    /// A token server's answer; a token that cannot go into an `Authorization` header is an
    /// error, as it is for the client.
    pub fn token_answer(body: &[u8]) -> crate::Result<()> {
        let token = super::token_of(body)?;
        super::bearer(&token)?;
        Ok(())
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    fn parse(header: &str) -> Challenge {
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Challenge::Basic;
        }
        let mut realm = String::new();
        let mut service = None;
        for (k, v) in auth_params(params) {
            match k.as_str() {
                "realm" => realm = v,
                "service" => service = Some(v),
                _ => {}
            }
        }
        Challenge::Bearer { realm, service }
    }
}

/// Splits `k="v",k2="v,2",k3=v3` honouring quotes.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(',').trim();
        out.push((key, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a,b:pull""#,
        );
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            }
        );
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), Challenge::Basic);
    }

    #[test]
    fn media_type_detection() {
        assert_eq!(
            media_type_of(br#"{"schemaVersion":1,"name":"x"}"#, None),
            MEDIA_DOCKER_SCHEMA1
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#, None),
            MEDIA_OCI_INDEX
        );
        assert_eq!(
            media_type_of(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#,
                Some("application/json".into())
            ),
            MEDIA_DOCKER_MANIFEST
        );
    }
}
