//! Plain HTTP(S) downloads for ACIs, signatures, keys and discovery pages: redirects
//! followed (at most ten), `http://` only when `--insecure-options=http` allows it, the same
//! TLS settings and timeouts as registries.

use crate::error::{Context, Error, Result};
use crate::fetch::Progress;
use crate::registry::{failed, failure_of, Failure, Options};
use futures_util::StreamExt;
use std::io::Write;
use std::path::Path;

/// The most a discovery page, key or signature may be: they are small, and read whole.
pub const MAX_SMALL_BYTES: usize = 1 << 20;

pub struct Http {
    client: reqwest::Client,
    allow_http: bool,
    /// `auth.d`'s credentials: sent to the hosts they name, as rkt sent them for ACI
    /// downloads and discovery.
    credentials: Option<crate::auth::Credentials>,
}

/// What a GET found.
pub enum Got {
    Body(Vec<u8>),
    /// An HTTP status other than 200, with the URL that answered it.
    Status(reqwest::StatusCode, String),
}

impl Http {
    pub fn new(opts: &Options) -> Result<Http> {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(opts.skip_tls_verify)
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent(concat!("rkt-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::failed(format!(
                    "building the HTTP client: {}",
                    crate::error::chain(&e)
                ))
            })?;
        Ok(Http {
            client,
            allow_http: opts.allow_http,
            credentials: None,
        })
    }

    /// Sends `credentials` to the hosts they are for.
    pub fn with_credentials(mut self, credentials: crate::auth::Credentials) -> Http {
        self.credentials = Some(credentials);
        self
    }

    /// The credential for `url`'s host (`host[:port]`, then the bare host), if any.
    fn credential_for(&self, url: &str) -> Result<Option<crate::auth::Credential>> {
        let (Some(creds), Ok(parsed)) = (&self.credentials, reqwest::Url::parse(url)) else {
            return Ok(None);
        };
        let Some(host) = parsed.host_str() else {
            return Ok(None);
        };
        if let Some(port) = parsed.port() {
            if let Some(c) = creds.get(&format!("{host}:{port}"))? {
                return Ok(Some(c));
            }
        }
        creds.get(host)
    }

    pub fn allow_http(&self) -> bool {
        self.allow_http
    }

    fn check_scheme(&self, url: &str) -> Result<()> {
        if url.starts_with("https://") {
            return Ok(());
        }
        if url.starts_with("http://") {
            if self.allow_http {
                return Ok(());
            }
            return Err(failed(
                Failure::Refused,
                format!("{url} is plain HTTP; pass --insecure-options=http to allow it"),
            ));
        }
        Err(failed(
            Failure::Refused,
            format!("{url}: only https:// (and, with --insecure-options=http, http://) URLs can be fetched"),
        ))
    }

    async fn send(&self, url: &str) -> Result<reqwest::Response> {
        self.check_scheme(url)?;
        let mut request = self.client.get(url);
        match self.credential_for(url)? {
            Some(crate::auth::Credential::Basic { user, password }) => {
                request = request.basic_auth(user, Some(password));
            }
            Some(crate::auth::Credential::Bearer(token)) => request = request.bearer_auth(token),
            None => {}
        }
        let resp = request.send().await.map_err(|e| {
            // A redirect loop stays one; an unreachable server may come back.
            let failure = if e.is_redirect() {
                Failure::Refused
            } else {
                Failure::Unavailable
            };
            failed(failure, format!("GET {url}: {}", error_chain(&e)))
        })?;
        // A redirect may not lead from HTTPS to plain HTTP unless that is allowed.
        if resp.url().scheme() == "http" && !self.allow_http {
            return Err(failed(
                Failure::Refused,
                format!(
                    "{url} redirects to plain HTTP ({}); pass --insecure-options=http to allow it",
                    resp.url()
                ),
            ));
        }
        Ok(resp)
    }

    /// A small document, read whole (at most [`MAX_SMALL_BYTES`]).
    pub async fn get_small(&self, url: &str) -> Result<Got> {
        let resp = self.send(url).await?;
        if resp.status() != reqwest::StatusCode::OK {
            return Ok(Got::Status(resp.status(), resp.url().to_string()));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| broken(url, &e))?;
            body.extend_from_slice(&chunk);
            if body.len() > MAX_SMALL_BYTES {
                return Err(failed(
                    Failure::Refused,
                    format!("{url} is larger than {MAX_SMALL_BYTES} bytes; refusing it"),
                ));
            }
        }
        Ok(Got::Body(body))
    }

    /// A small document that must be there.
    pub async fn get_required(&self, url: &str, what: &str) -> Result<Vec<u8>> {
        match self.get_small(url).await? {
            Got::Body(b) => Ok(b),
            Got::Status(s, at) => Err(failed(
                failure_of(s),
                format!("{what} {url}: the server answered {s} (at {at})"),
            )),
        }
    }

    /// Downloads `url` into `dest` (created), reporting progress as `what`.
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        progress: &dyn Progress,
        what: &str,
    ) -> Result<()> {
        let resp = self.send(url).await?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(failed(
                failure_of(resp.status()),
                format!(
                    "{url}: the server answered {} (at {})",
                    resp.status(),
                    resp.url()
                ),
            ));
        }
        let mut file =
            std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
        progress.start(what, resp.content_length());
        let mut stream = resp.bytes_stream();
        let res = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| broken(url, &e))?;
                file.write_all(&chunk).context("writing the download")?;
                progress.advance(what, chunk.len() as u64);
            }
            Ok::<_, Error>(())
        }
        .await;
        progress.finish(what);
        res
    }
}

/// A download that broke off: the server may answer in full next time.
fn broken(url: &str, e: &reqwest::Error) -> Error {
    failed(
        Failure::Unavailable,
        format!("reading {url}: {}", error_chain(e)),
    )
}

/// reqwest's error with its causes ("error sending request: … connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}
