//! Content digests: `sha256:<hex>` for OCI content, `sha512-<hex>` for rkt image IDs.

use sha2::{Digest, Sha256, Sha512};

/// The OCI digest string of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// rkt's image key: `sha512-` followed by the first 64 hex digits (256 bits) of the SHA-512.
pub fn image_id(bytes: &[u8]) -> String {
    let full = hex::encode(Sha512::digest(bytes));
    format!("sha512-{}", &full[..64])
}

/// The form rkt prints by default: `sha512-` and 32 hex digits.
pub fn short_image_id(id: &str) -> &str {
    const SHORT: usize = "sha512-".len() + 32;
    &id[..id.len().min(SHORT)]
}

/// The hex part of a `sha256:<hex>` digest, for use as a file name.
pub fn hex_part(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let id = image_id(b"");
        assert_eq!(
            id,
            "sha512-cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        );
        assert_eq!(
            short_image_id(&id),
            "sha512-cf83e1357eefb8bdf1542850d66d8007"
        );
    }
}
