//! rkt's global flags and the value types they take.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Print out more debug information to stderr
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool, default_value = "false")]
    pub debug: bool,
    /// rkt data directory
    #[arg(long, global = true, default_value = "/var/lib/rkt")]
    pub dir: PathBuf,
    /// Local configuration directory
    #[arg(long = "local-config", global = true, default_value = "/etc/rkt")]
    pub local_config: PathBuf,
    /// System configuration directory
    #[arg(long = "system-config", global = true, default_value = "/usr/lib/rkt")]
    pub system_config: PathBuf,
    /// User configuration directory (accepted for compatibility)
    #[arg(long = "user-config", global = true, default_value = "")]
    pub user_config: String,
    /// Comma-separated list of security features to disable: none, image, tls, ondisk, http,
    /// pubkey, capabilities, paths, seccomp, run, all-fetch, all-run, all
    #[arg(long = "insecure-options", global = true, default_value = "none", value_parser = InsecureOptions::parse)]
    pub insecure_options: InsecureOptions,
    /// Automatically trust gpg keys fetched from https (accepted for compatibility)
    #[arg(long = "trust-keys-from-https", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool, default_value = "false")]
    pub trust_keys_from_https: bool,
}

/// Go's strconv.ParseBool, which rkt's boolean flags accept.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}; use true or false")),
    }
}

/// What `--insecure-options` switched off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsecureOptions {
    pub image: bool,
    pub tls: bool,
    pub ondisk: bool,
    pub http: bool,
    pub pubkey: bool,
    pub capabilities: bool,
    pub paths: bool,
    pub seccomp: bool,
}

impl InsecureOptions {
    pub fn parse(s: &str) -> Result<InsecureOptions, String> {
        let mut o = InsecureOptions::default();
        for opt in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match opt {
                "none" => {}
                "image" => o.image = true,
                "tls" => o.tls = true,
                "ondisk" => o.ondisk = true,
                "http" => o.http = true,
                "pubkey" => o.pubkey = true,
                "capabilities" => o.capabilities = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "run" | "all-run" => {
                    o.capabilities = true;
                    o.paths = true;
                    o.seccomp = true;
                }
                "all-fetch" => {
                    o.image = true;
                    o.tls = true;
                    o.http = true;
                }
                "all" => {
                    o = InsecureOptions {
                        image: true,
                        tls: true,
                        ondisk: true,
                        http: true,
                        pubkey: true,
                        capabilities: true,
                        paths: true,
                        seccomp: true,
                    }
                }
                other => {
                    return Err(format!(
                        "unknown insecure option {other:?}; valid are none, image, tls, ondisk, http, pubkey, capabilities, paths, seccomp, run, all-fetch, all-run, all"
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// `--format` of the listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Tabbed,
    Json,
    JsonPretty,
}

pub fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "" => Ok(Format::Tabbed),
        "json" => Ok(Format::Json),
        "json-pretty" => Ok(Format::JsonPretty),
        _ => Err(format!("Invalid format option: {s}")),
    }
}

/// Go's time.ParseDuration for the common forms rkt users write (`24h0m0s`, `90s`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let err = || format!("invalid duration {s:?}; use a Go duration such as 24h0m0s or 90s");
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// Fails with rkt's message when a Docker image is fetched without `--insecure-options=image`.
pub fn require_insecure_image(opts: &InsecureOptions, image: &str) -> Result<()> {
    if image.starts_with("docker://") && !opts.image {
        bail!(
            "image {image:?}: signature verification for docker images is not supported; pass --insecure-options=image to fetch it unverified"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_options() {
        let o = InsecureOptions::parse("image,http").unwrap();
        assert!(o.image && o.http && !o.tls);
        assert!(InsecureOptions::parse("all-fetch").unwrap().tls);
        assert!(InsecureOptions::parse("bogus").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h0m0s").unwrap().as_secs(), 86400);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("0").unwrap().as_secs(), 0);
        assert!(parse_duration("ten").is_err());
    }
}
