//! `rkt fetch [--full] [--pull-policy=new|update|never] [--signature=FILE] IMAGE…`: prints
//! each image's ID on stdout, progress (and `signature verified:`) on stderr.

use crate::flags::{self, GlobalArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use image::fetch::PullPolicy;

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Print the full image hash after fetching
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    pub full: bool,
    /// When to fetch from the remote: new (only if not stored), update (always check), never
    #[arg(long = "pull-policy", default_value = "update")]
    pub pull_policy: PullPolicy,
    /// Local signature file to use in validating the preceding image (ACI images only)
    #[arg(long)]
    pub signature: Vec<String>,
    /// Deprecated: same as --pull-policy=never
    #[arg(long = "store-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    pub store_only: bool,
    /// Deprecated: same as --pull-policy=update
    #[arg(long = "no-store", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    pub no_store: bool,
    /// Images to fetch: docker://[host[:port]/]repo[:tag|@sha256:…]; a short name
    /// (repo[:tag|@sha256:…], such as redis:3.2) on the default registry; an ACI file, a
    /// file:// or https:// URL; or an appc name (coreos.com/etcd:v2.0.4) found by discovery
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: FetchArgs) -> Result<()> {
    if args.store_only && args.no_store {
        bail!("both --store-only and --no-store specified");
    }
    let policy = match (args.store_only, args.no_store) {
        (true, _) => PullPolicy::Never,
        (_, true) => PullPolicy::Update,
        _ => args.pull_policy,
    };
    if args.signature.len() > args.images.len() {
        bail!("more --signature files than images; each signature belongs to one image, in order");
    }
    let fetcher = global.config()?.fetcher(policy)?;
    for img in &args.images {
        use image::reference::{classify, ImageArg};
        if matches!(classify(img), ImageArg::Docker | ImageArg::ShortName) {
            // Says plainly what is wrong with a reference before anything is fetched.
            fetcher.registries.reference(img)?;
            global.insecure_options.require_image(img)?;
        }
    }
    let rt = runtime()?;
    for (i, img) in args.images.iter().enumerate() {
        let signature = args.signature.get(i).map(std::path::Path::new);
        let id = rt.block_on(fetcher.fetch_image(img, signature))?;
        if args.full {
            println!("{id}");
        } else {
            println!("{}", image::digest::short_image_id(&id));
        }
    }
    Ok(())
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
