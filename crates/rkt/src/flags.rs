//! rkt's global flags and the value types they take.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Print out more debug information to stderr
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool, default_value = "false")]
    pub debug: bool,
    /// rkt data directory (default: paths.d's "data", else /var/lib/rkt)
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// Local configuration directory
    #[arg(long = "local-config", global = true, default_value = layout::DEFAULT_LOCAL_CONFIG)]
    pub local_config: PathBuf,
    /// System configuration directory
    #[arg(long = "system-config", global = true, default_value = layout::DEFAULT_SYSTEM_CONFIG)]
    pub system_config: PathBuf,
    /// User configuration directory, read after the local one (auth.d, net.d, registries.d,
    /// trustedkeys, paths.d)
    #[arg(long = "user-config", global = true)]
    pub user_config: Option<PathBuf>,
    /// Comma-separated list of security features to disable: none, image, tls, ondisk, http,
    /// pubkey, capabilities, paths, seccomp, run, all-fetch, all-run, all
    #[arg(long = "insecure-options", global = true, default_value = "none", value_parser = InsecureOptions::parse)]
    pub insecure_options: InsecureOptions,
    /// Trust the keys an ACI's discovery publishes over HTTPS, without review, when none is
    /// trusted for its name
    #[arg(long = "trust-keys-from-https", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool, default_value = "false")]
    pub trust_keys_from_https: bool,
}

pub use stage0::spec::{parse_bool, parse_duration};
pub use stage0::InsecureOptions;

impl GlobalArgs {
    /// rkt's data directory: `--dir`, else `paths.d`'s `data`, else /var/lib/rkt.
    pub fn data_dir(&self) -> Result<PathBuf> {
        Ok(self.config()?.dir)
    }

    /// What stage0 works with: these flags, progress bars on stderr, and the registry
    /// timeout from `RKT_REGISTRY_TIMEOUT` (not an rkt flag: lets tests and impatient
    /// operators bound how long a silent registry is waited for; a Go duration or seconds).
    pub fn config(&self) -> Result<stage0::Config> {
        let registry_timeout = match std::env::var("RKT_REGISTRY_TIMEOUT") {
            Ok(t) => Some(
                parse_duration(&t)
                    .or_else(|_| {
                        t.parse::<u64>()
                            .map(std::time::Duration::from_secs)
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|e| anyhow::anyhow!("RKT_REGISTRY_TIMEOUT: {e}"))?,
            ),
            Err(_) => None,
        };
        let mut config = stage0::Config::new(layout::DEFAULT_DIR);
        config.local_config = self.local_config.clone();
        config.system_config = self.system_config.clone();
        config.user_config = self
            .user_config
            .clone()
            .filter(|d| !d.as_os_str().is_empty());
        config.trust_keys_from_https = self.trust_keys_from_https;
        config.dir = match &self.dir {
            Some(d) => d.clone(),
            None => stage0::config::data_dir_from_paths(&config.config_dirs())?
                .unwrap_or_else(|| layout::DEFAULT_DIR.into()),
        };
        config.insecure = self.insecure_options;
        config.debug = self.debug;
        config.progress = std::sync::Arc::from(crate::progress::for_stderr());
        config.registry_timeout = registry_timeout;
        Ok(config)
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
