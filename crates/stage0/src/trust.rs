//! What `rkt trust` does, as a library: find public keys (files, URLs, or the
//! `ac-discovery-pubkeys` of a prefix), and store them in the local trust store where ACI
//! signatures are checked against them ([`image::trust`]). The caller shows each key and asks
//! (or not) before [`store`].

use crate::error::{Error, Result};
use crate::Config;
use image::aci::{discovery, http::Http};

/// Where keys may come from, as `rkt trust`'s flags allow.
#[derive(Debug, Clone, Default)]
pub struct Fetching {
    /// `--insecure-allow-http`.
    pub allow_http: bool,
}

/// A key found, not yet trusted.
pub struct Candidate {
    /// What the user gave, or what discovery found: a path or a URL.
    pub location: String,
    pub armored: Vec<u8>,
    pub key: image::trust::SignedPublicKey,
}

impl Candidate {
    pub fn fingerprint(&self) -> String {
        image::trust::fingerprint_of(&self.key)
    }
    /// rkt's review lines: the fingerprint in groups, the subkeys, the user IDs.
    pub fn review_lines(&self) -> Vec<String> {
        image::trust::review_lines(&self.key)
    }
}

/// How keys are fetched: `--insecure-options=pubkey` allows what rkt's did, keys over plain
/// HTTP and from servers whose certificates are not verified.
fn http(config: &Config, fetching: &Fetching) -> Result<Http> {
    let opts = image::registry::Options {
        allow_http: fetching.allow_http || config.insecure.pubkey,
        skip_tls_verify: config.insecure.tls || config.insecure.pubkey,
        ..Default::default()
    };
    Ok(Http::new(&opts)?)
}

/// The key URLs `ac-discovery-pubkeys` gives for `prefix`.
pub fn discover(config: &Config, prefix: &str, fetching: &Fetching) -> Result<Vec<String>> {
    image::aci::validate::ac_identifier(prefix)
        .map_err(|e| Error::invalid(format!("--prefix: {e}")))?;
    let http = http(config, fetching)?;
    let (keys, attempts) = config.block_on(discovery::pubkey_urls(&http, prefix))?;
    if keys.is_empty() {
        return Err(Error::not_found(format!(
            "meta discovery on {prefix} found no ac-discovery-pubkeys tag ({}); give the key as a file or URL: rkt trust --prefix={prefix} KEYFILE",
            attempts.describe()
        )));
    }
    Ok(keys)
}

/// Reads the key at `location` (a path, or an https:// URL; http:// with `allow_http`).
pub fn read(config: &Config, location: &str, fetching: &Fetching) -> Result<Candidate> {
    let armored = if location.starts_with("https://") || location.starts_with("http://") {
        let http = http(config, fetching)?;
        config.block_on(http.get_required(location, "public key"))?
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        std::fs::read(path)
            .map_err(|e| Error::from(e).context(format!("reading public key {path}")))?
    };
    let key = image::trust::parse_key(&armored)
        .map_err(|e| Error::invalid(format!("public key {location}: {e:#}")))?;
    Ok(Candidate {
        location: location.to_string(),
        armored,
        key,
    })
}

/// Trusts the key for `prefix` (`None`: for every image); where it was stored.
pub fn store(config: &Config, prefix: Option<&str>, key: &Candidate) -> Result<std::path::PathBuf> {
    Ok(config.keystore().store(prefix, &key.armored)?)
}
