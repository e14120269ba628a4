//! rkt's trust store and the check of an ACI's detached OpenPGP signature.
//!
//! Keys live where rkt kept them, under both the system and the local configuration
//! directory: `trustedkeys/root.d/<fingerprint>` (trusted for every image) and
//! `trustedkeys/prefix.d/<prefix>/<fingerprint>` (trusted for images whose name is `<prefix>`
//! or lies below it, by path component). Each file is an ASCII-armoured public key named by
//! its lowercase hex fingerprint; an empty local file masks the system key of that name.
//!
//! rpgp checks the cryptography; the policy is ours (rpgp has none): the signing key (or
//! signing subkey) must be trusted for the image, validly self-signed, not revoked, not
//! expired, and the signature must be valid now.

use crate::error::{refuse, Context, Error, Result};
pub use pgp::composed::SignedPublicKey;
use pgp::composed::{Deserializable, DetachedSignature};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Timestamp};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The trusted keys of one rkt configuration.
#[derive(Debug, Clone)]
pub struct Keystore {
    /// Where keys are read, lowest precedence first (system, local, user).
    dirs: Vec<PathBuf>,
    /// Where `rkt trust` stores keys: the local configuration.
    local_config: PathBuf,
}

/// A key from the store.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Lowercase hex, as the file is named.
    pub fingerprint: String,
    pub key: SignedPublicKey,
    pub path: PathBuf,
}

/// Who signed an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub fingerprint: String,
    pub user_ids: Vec<String>,
}

impl Verified {
    /// rkt's message on success.
    pub fn message(&self) -> String {
        let mut lines = vec!["signature verified:".to_string()];
        lines.extend(self.user_ids.iter().map(|u| format!("  {u}")));
        lines.join("\n")
    }
}

impl Keystore {
    /// Keys read from `dirs` (lowest precedence first), stored into `local_config`.
    pub fn new(dirs: &[PathBuf], local_config: &Path) -> Keystore {
        Keystore {
            dirs: dirs.to_vec(),
            local_config: local_config.to_path_buf(),
        }
    }

    fn dir(config: &Path) -> PathBuf {
        config.join("trustedkeys")
    }

    /// Where `rkt trust --prefix=P` (or `--root` when `prefix` is `None`) stores a key.
    pub fn local_dir(&self, prefix: Option<&str>) -> Result<PathBuf> {
        let base = Self::dir(&self.local_config);
        match prefix {
            None => Ok(base.join("root.d")),
            Some(p) => {
                crate::aci::validate::ac_identifier(p)
                    .map_err(|e| Error::invalid(format!("trust prefix: {e}")))?;
                Ok(base.join("prefix.d").join(p))
            }
        }
    }

    /// Every key trusted for images named `name`: root keys and the keys of each prefix that
    /// is `name` or one of its parents, system keys first so that a local file (or an empty
    /// local file, which masks) wins.
    pub fn keys_for(&self, name: &str) -> Result<Vec<TrustedKey>> {
        crate::aci::validate::ac_identifier(name)
            .map_err(|e| Error::refused(format!("image name: {e}")))?;
        let mut dirs = Vec::new();
        for config in &self.dirs {
            let base = Self::dir(config);
            dirs.push(base.join("root.d"));
            let mut prefix = PathBuf::new();
            for comp in name.split('/') {
                prefix.push(comp);
                dirs.push(base.join("prefix.d").join(&prefix));
            }
        }
        let mut keys: Vec<TrustedKey> = Vec::new();
        for dir in dirs {
            for (fingerprint, path) in key_files(&dir)? {
                keys.retain(|k| k.fingerprint != fingerprint);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("reading trusted key {}", path.display()))?;
                if bytes.is_empty() {
                    continue; // masks the system key of this fingerprint
                }
                let key = parse_key(&bytes)
                    .map_err(|e| Error::config(format!("trusted key {}: {e}", path.display())))?;
                let actual = fingerprint_of(&key);
                if actual != fingerprint {
                    return Err(Error::config(format!(
                        "trusted key {} is named {fingerprint} but its fingerprint is {actual}; rename or remove it",
                        path.display()
                    )));
                }
                keys.push(TrustedKey {
                    fingerprint,
                    key,
                    path,
                });
            }
        }
        Ok(keys)
    }

    /// Stores an armoured public key for `prefix` (or as a root key); its path. Storing the
    /// same key again rewrites the same file.
    pub fn store(&self, prefix: Option<&str>, armored: &[u8]) -> Result<PathBuf> {
        let key = parse_key(armored)?;
        let dir = self.local_dir(prefix)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(fingerprint_of(&key));
        crate::store::write_atomic(&path, armored)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        Ok(path)
    }
}

/// The key files of a directory (not its subdirectories): files named like fingerprints.
fn key_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Parses an ASCII-armoured (or binary) public key and checks its self-signatures.
pub fn parse_key(bytes: &[u8]) -> Result<SignedPublicKey> {
    let key = match SignedPublicKey::from_armor_single(bytes) {
        Ok((key, _)) => key,
        Err(armored) => SignedPublicKey::from_bytes(bytes).map_err(|_| {
            Error::refused(format!(
                "not an OpenPGP public key (armoured or binary): {armored}"
            ))
        })?,
    };
    key.verify_bindings().map_err(|e| {
        Error::refused(format!(
            "public key {}: its self-signatures do not verify: {e}",
            fingerprint_of(&key)
        ))
    })?;
    Ok(key)
}

/// The primary key's fingerprint, lowercase hex (the store's file name).
pub fn fingerprint_of(key: &SignedPublicKey) -> String {
    hex::encode(key.primary_key.fingerprint().as_bytes())
}

/// The fingerprint as rkt showed it for review: groups of four, a wider gap in the middle.
pub fn fingerprint_for_review(key: &SignedPublicKey) -> String {
    let hex = fingerprint_of(key).to_uppercase();
    let groups: Vec<&str> = (0..hex.len())
        .step_by(4)
        .map(|i| &hex[i..(i + 4).min(hex.len())])
        .collect();
    let half = groups.len() / 2;
    format!("{}  {}", groups[..half].join(" "), groups[half..].join(" "))
}

/// rkt's lines for reviewing a key: the fingerprint in groups, the subkeys, the user IDs.
pub fn review_lines(key: &SignedPublicKey) -> Vec<String> {
    let mut lines = vec![format!(
        "gpg key fingerprint is: {}",
        fingerprint_for_review(key)
    )];
    for sk in &key.public_subkeys {
        let hex = hex::encode(sk.key.fingerprint().as_bytes()).to_uppercase();
        lines.push(format!("    Subkey fingerprint: {hex}"));
    }
    lines.extend(user_ids(key).iter().map(|u| format!("\t{u}")));
    lines
}

/// The key's user IDs, as text.
pub fn user_ids(key: &SignedPublicKey) -> Vec<String> {
    key.details
        .users
        .iter()
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
        .collect()
}

/// Checks the detached signature `signature` (armoured or binary) of `data` against `keys`.
/// `now` is the time validity is judged at.
pub fn verify(
    keys: &[TrustedKey],
    mut data: impl Read,
    signature: &[u8],
    now: std::time::SystemTime,
) -> Result<Verified> {
    let sig = parse_signature(signature)?;
    let (trusted, signer) = find_signer(keys, &sig)?;
    let now = Timestamp::try_from(now).map_err(|_| Error::failed("the clock is out of range"))?;
    check_key_usable(&trusted.key, now)
        .with_context(|| format!("signing key {}", trusted.fingerprint))?;
    if let Signer::Subkey(i) = signer {
        check_subkey_usable(&trusted.key, i, now)
            .with_context(|| format!("signing subkey of key {}", trusted.fingerprint))?;
    }
    check_signature_time(&sig, signer_created(&trusted.key, signer), now)?;
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes)
        .context("reading the signed data")?;
    let res = match signer {
        Signer::Primary => sig.verify(&trusted.key.primary_key, &bytes[..]),
        Signer::Subkey(i) => sig.verify(&trusted.key.public_subkeys[i].key, &bytes[..]),
    };
    res.map_err(|e| {
        Error::refused(format!(
            "the signature by key {} does not match the image: the image or the signature was altered ({e})",
            trusted.fingerprint
        ))
    })?;
    Ok(Verified {
        fingerprint: trusted.fingerprint.clone(),
        user_ids: user_ids(&trusted.key),
    })
}

fn parse_signature(bytes: &[u8]) -> Result<Signature> {
    let sig = match DetachedSignature::from_armor_single(bytes) {
        Ok((s, _)) => s,
        Err(armored) => DetachedSignature::from_bytes(bytes).map_err(|_| {
            Error::refused(format!(
                "not an OpenPGP signature (armoured or binary): {armored}"
            ))
        })?,
    };
    match sig.signature.typ() {
        Some(SignatureType::Binary) | Some(SignatureType::Text) => Ok(sig.signature),
        other => refuse!("the signature is of type {other:?}, not a signature of a file"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Signer {
    Primary,
    Subkey(usize),
}

/// The trusted key (and which of its keys) that issued `sig`.
fn find_signer<'a>(keys: &'a [TrustedKey], sig: &Signature) -> Result<(&'a TrustedKey, Signer)> {
    let fps: Vec<Vec<u8>> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| f.as_bytes().to_vec())
        .collect();
    let ids: Vec<Vec<u8>> = sig
        .issuer_key_id()
        .iter()
        .map(|k| k.as_ref().to_vec())
        .collect();
    let matches = |fp: &[u8], id: &[u8]| fps.iter().any(|f| f == fp) || ids.iter().any(|i| i == id);
    for k in keys {
        let p = &k.key.primary_key;
        if matches(p.fingerprint().as_bytes(), p.legacy_key_id().as_ref()) {
            return Ok((k, Signer::Primary));
        }
        for (i, sk) in k.key.public_subkeys.iter().enumerate() {
            if matches(
                sk.key.fingerprint().as_bytes(),
                sk.key.legacy_key_id().as_ref(),
            ) {
                return Ok((k, Signer::Subkey(i)));
            }
        }
    }
    let issuer = fps
        .first()
        .or(ids.first())
        .map(hex::encode)
        .unwrap_or_else(|| "an unnamed key".into());
    refuse!("the image is signed by {issuer}, which is not a trusted key for it")
}

fn signer_created(key: &SignedPublicKey, signer: Signer) -> Timestamp {
    match signer {
        Signer::Primary => key.primary_key.created_at(),
        Signer::Subkey(i) => key.public_subkeys[i].key.created_at(),
    }
}

/// Not revoked, and not expired by its newest self-signature.
fn check_key_usable(key: &SignedPublicKey, now: Timestamp) -> Result<()> {
    for rev in &key.details.revocation_signatures {
        if rev.verify_key(&key.primary_key).is_ok() {
            refuse!("the key is revoked{}", reason(rev));
        }
    }
    let newest = key
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter())
        .max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0));
    if let Some(sig) = newest {
        check_expiry(key.primary_key.created_at(), sig, now)?;
    }
    Ok(())
}

fn check_subkey_usable(key: &SignedPublicKey, i: usize, now: Timestamp) -> Result<()> {
    let sk = &key.public_subkeys[i];
    for s in &sk.signatures {
        if s.typ() == Some(SignatureType::SubkeyRevocation)
            && s.verify_subkey_binding(&key.primary_key, &sk.key).is_ok()
        {
            refuse!("the subkey is revoked{}", reason(s));
        }
    }
    let binding = sk
        .signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
        .max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
        .ok_or_else(|| Error::refused("the subkey has no binding signature"))?;
    if !binding.key_flags().sign() {
        refuse!("the subkey is not a signing key");
    }
    check_expiry(sk.key.created_at(), binding, now)
}

fn check_expiry(created: Timestamp, self_sig: &Signature, now: Timestamp) -> Result<()> {
    if let Some(d) = self_sig.key_expiration_time() {
        let expires = u64::from(created.as_secs()) + u64::from(d.as_secs());
        if d.as_secs() > 0 && expires <= u64::from(now.as_secs()) {
            refuse!("the key expired at {}", utc(expires));
        }
    }
    Ok(())
}

fn check_signature_time(sig: &Signature, key_created: Timestamp, now: Timestamp) -> Result<()> {
    let created = sig
        .created()
        .ok_or_else(|| Error::refused("the signature has no creation time"))?;
    if created.as_secs() < key_created.as_secs() {
        refuse!("the signature is older than the key that made it");
    }
    if let Some(d) = sig.signature_expiration_time() {
        let expires = u64::from(created.as_secs()) + u64::from(d.as_secs());
        if d.as_secs() > 0 && expires <= u64::from(now.as_secs()) {
            refuse!("the signature expired at {}", utc(expires));
        }
    }
    Ok(())
}

fn reason(sig: &Signature) -> String {
    match sig.revocation_reason_string() {
        Some(r) if !r.is_empty() => format!(" ({})", String::from_utf8_lossy(r)),
        _ => String::new(),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`, without a date crate: days from the epoch by the civil
/// calendar algorithm.
fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86400, secs % 86400);
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_print_in_utc() {
        assert_eq!(super::utc(1_600_000_000), "2020-09-13 12:26:40 UTC");
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
    }
}
