//! `rkt trust [--prefix=PREFIX | --root] [--skip-fingerprint-review] [--insecure-allow-http]
//! [PUBKEY…]`: rkt's flags, review dialogue and messages around [`stage0::trust`].

use crate::flags::{self, GlobalArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// Prefix to limit trust to
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Add root key from filesystem without a prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    pub root: bool,
    /// Accept key without fingerprint confirmation
    #[arg(long = "skip-fingerprint-review", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    pub skip_fingerprint_review: bool,
    /// Allow HTTP use for key discovery and/or retrieval
    #[arg(long = "insecure-allow-http", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    pub insecure_allow_http: bool,
    /// Public keys: files or URLs (discovered from the prefix when none is given)
    #[arg(value_name = "PUBKEY")]
    pub keys: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: TrustArgs) -> Result<()> {
    let prefix = check_scope(&args)?;
    let config = global.config()?;
    let fetching = stage0::trust::Fetching {
        allow_http: args.insecure_allow_http,
    };
    let locations = match (&prefix, args.keys.is_empty()) {
        (Some(p), true) => stage0::trust::discover(&config, p, &fetching)?,
        _ => args.keys.clone(),
    };
    let shown = prefix.clone().unwrap_or_default();
    for location in &locations {
        let key = stage0::trust::read(&config, location, &fetching)?;
        eprintln!("prefix: {shown:?}\nkey: {location:?}");
        for line in key.review_lines() {
            println!("{line}");
        }
        if !args.skip_fingerprint_review {
            if !review(&shown)? {
                eprintln!("not trusting {location:?}");
                continue;
            }
            println!("Trusting {location:?} for prefix {shown:?} after fingerprint review.");
        } else {
            println!("Trusting {location:?} for prefix {shown:?} without fingerprint review.");
        }
        let path = stage0::trust::store(&config, prefix.as_deref(), &key)?;
        match &prefix {
            Some(p) => println!(
                "Added key for prefix {p:?} at {:?}",
                path.display().to_string()
            ),
            None => println!("Added root key at {:?}", path.display().to_string()),
        }
    }
    Ok(())
}

/// `--prefix` or `--root`, as rkt insisted: `None` for root.
fn check_scope(args: &TrustArgs) -> Result<Option<String>> {
    if args.prefix.is_empty() && !args.root {
        if args.keys.is_empty() {
            bail!("give --prefix=PREFIX (keys are discovered from it) or --root PUBKEY");
        }
        bail!(
            "aborting due to implicit unbounded trust (root domain)\nPlease provide a specific domain prefix to trust:\n    rkt trust --prefix \"example.com/foo\" [PUBKEY]\nOtherwise, trust at the root domain (not recommended) must be explicitly requested:\n    rkt trust --root PUBKEY"
        );
    }
    if !args.prefix.is_empty() && args.root {
        bail!("--root and --prefix usage mutually exclusive");
    }
    if let Some((scheme, _)) = args.prefix.split_once("://") {
        bail!("--prefix must not contain a URL scheme, omit {scheme}://");
    }
    if args.root && args.keys.is_empty() {
        bail!("--root needs the key as a file or URL: rkt trust --root PUBKEY (keys are not discovered for root)");
    }
    Ok((!args.root).then(|| args.prefix.clone()))
}

/// Asks on the terminal, as rkt did; refuses without one.
fn review(prefix: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        eprintln!("To trust the key for {prefix:?}, do one of the following:");
        eprintln!(" - run: rkt trust --prefix {prefix:?} --skip-fingerprint-review");
        bail!("error reviewing key: unable to ask user to review fingerprint due to lack of tty");
    }
    let stdin = std::io::stdin();
    loop {
        println!("Are you sure you want to trust this key (yes/no)?");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            bail!("error reviewing key: no answer (end of input)");
        }
        match line.trim_end_matches('\n') {
            "yes" => return Ok(true),
            "no" => return Ok(false),
            _ => println!("Please enter 'yes' or 'no'"),
        }
    }
}
