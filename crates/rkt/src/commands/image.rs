//! `rkt image list|rm|gc|cat-manifest|export|extract|render`.

use crate::flags::{self, Format, GlobalArgs};
use crate::output;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use image::store::{ImageInfo, Store};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images in the local store
    List(ListArgs),
    /// Remove one or more images with the given IDs or image names from the local store
    Rm {
        #[arg(required = true, value_name = "IMAGEID")]
        images: Vec<String>,
    },
    /// Garbage collect local store
    Gc {
        /// Duration to wait since an image was last used before removing it
        #[arg(long = "grace-period", default_value = "24h0m0s", value_parser = flags::parse_duration)]
        grace_period: std::time::Duration,
    },
    /// Inspect and print the image manifest
    CatManifest {
        /// Apply indent to format the output
        #[arg(long = "pretty-print", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "true")]
        pretty_print: bool,
        #[arg(value_name = "IMAGE")]
        image: String,
    },
    /// Verify one or more rendered images in the local store
    Verify {
        #[arg(value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Export a stored image to an ACI file
    Export {
        /// Overwrite output ACI
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
        overwrite: bool,
        #[arg(value_name = "IMAGE")]
        image: String,
        #[arg(value_name = "OUTPUT_ACI_FILE")]
        output: PathBuf,
    },
    /// Extract a stored image to a directory
    Extract(TreeArgs),
    /// Render a stored image to a directory with all its dependencies
    Render(TreeArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Comma-separated list of fields to display: id, name, importtime, lastused, size
    #[arg(long, default_value = "id,name,size,importtime,lastused")]
    fields: String,
    /// Sort the output by: name, importtime, lastused, size
    #[arg(long, default_value = "importtime")]
    sort: String,
    /// Sorting order: asc or desc
    #[arg(long, default_value = "asc")]
    order: String,
    /// Suppress a legend with the list
    #[arg(long = "no-legend", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    no_legend: bool,
    /// Use long output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    full: bool,
    /// Output format: json or json-pretty; tabbed columns when empty
    #[arg(long, default_value = "", value_parser = flags::parse_format)]
    format: Format,
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    /// Write only the root filesystem
    #[arg(long = "rootfs-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    rootfs_only: bool,
    /// Overwrite the output directory
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
    overwrite: bool,
    #[arg(value_name = "IMAGE")]
    image: String,
    #[arg(value_name = "OUTPUT_DIR")]
    output: PathBuf,
}

pub fn run(global: &GlobalArgs, cmd: ImageCommand) -> Result<()> {
    let store = Store::open(&global.data_dir()?).context("cannot open store")?;
    match cmd {
        ImageCommand::List(args) => list(&store, &args),
        ImageCommand::Rm { images } => rm(&store, &images),
        ImageCommand::Gc { grace_period } => gc(global, &store, grace_period),
        ImageCommand::CatManifest {
            pretty_print,
            image,
        } => cat_manifest(&store, &image, pretty_print),
        ImageCommand::Export {
            overwrite,
            image,
            output,
        } => export(&store, &image, &output, overwrite),
        ImageCommand::Extract(a) | ImageCommand::Render(a) => render(&store, &a),
        ImageCommand::Verify { images } => verify(global, &store, &images),
    }
}

/// rkt's `v1.ImageListEntry`, the JSON form of a listing row.
#[derive(Serialize)]
struct ListEntry {
    id: String,
    name: String,
    import_time: i64,
    last_used_time: i64,
    size: u64,
}

const FIELDS: [&str; 5] = ["id", "name", "importtime", "lastused", "size"];

fn list(store: &Store, args: &ListArgs) -> Result<()> {
    let fields = option_list(&args.fields, &FIELDS, "--fields")?;
    let sort = option_list(
        &args.sort,
        &["name", "importtime", "lastused", "size"],
        "--sort",
    )?;
    let desc = match args.order.as_str() {
        "asc" => false,
        "desc" => true,
        _ => bail!("wrong sort order {:?}; use asc or desc", args.order),
    };
    let mut images = store.list()?;
    images.sort_by(|a, b| {
        let ord = sort
            .iter()
            .map(|f| match f.as_str() {
                "name" => a.display_name().cmp(&b.display_name()),
                "lastused" => a.last_used.cmp(&b.last_used),
                "size" => a.size.cmp(&b.size),
                _ => a.import_time.cmp(&b.import_time),
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal);
        if desc {
            ord.reverse()
        } else {
            ord
        }
    });
    let entries: Vec<ListEntry> = images
        .iter()
        .map(|i| ListEntry {
            id: i.id.clone(),
            name: i.display_name(),
            import_time: i.import_time,
            last_used_time: i.last_used,
            size: i.size,
        })
        .collect();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&entries)?),
        Format::JsonPretty => println!("{}", go_indent(&entries)),
        Format::Tabbed => {
            let mut rows = Vec::new();
            if !args.no_legend {
                rows.push(fields.iter().map(|f| header(f).to_string()).collect());
            }
            for e in &entries {
                rows.push(fields.iter().map(|f| cell(e, f, args.full)).collect());
            }
            print!("{}", output::tabwrite(&rows));
        }
    }
    Ok(())
}

fn header(field: &str) -> &'static str {
    match field {
        "id" => "ID",
        "name" => "NAME",
        "importtime" => "IMPORT TIME",
        "lastused" => "LAST USED",
        _ => "SIZE",
    }
}

fn cell(e: &ListEntry, field: &str, full: bool) -> String {
    match field {
        // rkt's short form: the algorithm and the first 12 hex digits.
        "id" if full => e.id.clone(),
        "id" => e.id.chars().take("sha512-".len() + 12).collect(),
        "name" => e.name.clone(),
        "importtime" if full => output::go_time(e.import_time),
        "importtime" => output::reltime(e.import_time),
        "lastused" if full => output::go_time(e.last_used_time),
        "lastused" => output::reltime(e.last_used_time),
        _ if full => e.size.to_string(),
        _ => output::ibytes(e.size),
    }
}

/// rkt's OptionList: comma-separated, case-insensitive, each at most once.
fn option_list(s: &str, allowed: &[&str], flag: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for f in s.split(',').map(|f| f.trim().to_lowercase()) {
        if !allowed.contains(&f.as_str()) {
            bail!(
                "{flag}: unknown field {f:?}; accepted values: {}",
                allowed.join(", ")
            );
        }
        if out.contains(&f) {
            bail!("{flag}: duplicated field {f:?}");
        }
        out.push(f);
    }
    Ok(out)
}

/// Go's json.MarshalIndent(v, "", "\t").
pub fn go_indent<T: Serialize>(v: &T) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("serializing a JSON value");
    String::from_utf8(buf).expect("JSON is UTF-8")
}

fn rm(store: &Store, queries: &[String]) -> Result<()> {
    let mut removed = 0;
    let mut failed = 0;
    for q in queries {
        match store.resolve(q).and_then(|info| {
            store.remove(&info.id)?;
            Ok(info)
        }) {
            Ok(info) => {
                println!("successfully removed aci for image: {:?}", info.id);
                removed += 1;
            }
            Err(e) => {
                eprintln!("image rm: {e}");
                failed += 1;
            }
        }
    }
    if removed > 0 {
        eprintln!("{removed} image(s) successfully removed");
    }
    if failed > 0 {
        eprintln!("{failed} image(s) cannot be removed");
        bail!("error(s) found while removing images");
    }
    Ok(())
}

/// Removes images unused for the grace period, then blobs no image refers to. An image a
/// pod still uses (in any state, until the pod is removed) stays, as rkt kept the tree
/// stores of its pods: its rendered tree is below the pod's overlay.
fn gc(global: &GlobalArgs, store: &Store, grace: std::time::Duration) -> Result<()> {
    let now = image::store::now_nanos();
    let in_use = stage0::lifecycle::images_in_use(&global.config()?)?;
    let expired: Vec<ImageInfo> = store
        .list()?
        .into_iter()
        .filter(|i| now.saturating_sub(i.last_used) > grace.as_nanos() as i64)
        .filter(|i| !in_use.contains(&i.id))
        .collect();
    for info in &expired {
        store
            .remove(&info.id)
            .with_context(|| format!("removing image {:?}", info.id))?;
        println!("successfully removed aci for image: {:?}", info.id);
    }
    if !expired.is_empty() {
        eprintln!("{} image(s) successfully removed", expired.len());
    }
    for path in store.sweep(grace)? {
        eprintln!("removed {:?}", path.display().to_string());
    }
    Ok(())
}

fn cat_manifest(store: &Store, query: &str, pretty: bool) -> Result<()> {
    let info = store.resolve(query)?;
    // Through the typed manifest, so that fields come in the appc schema's order as rkt's Go
    // structs printed them.
    let v = store.manifest(&info.id)?;
    if pretty {
        println!("{}", go_indent(&v));
    } else {
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(())
}

/// `rkt image export`: an uncompressed ACI of the stored image.
fn export(store: &Store, query: &str, out: &Path, overwrite: bool) -> Result<()> {
    let info = store.resolve(query)?;
    Ok(image::export::write_aci(store, &info, out, overwrite)?)
}

/// `rkt image verify`: each image's tree against the digest taken when it was stored; a
/// changed tree is rendered again from the store's layers or archive, as rkt repaired its
/// tree store.
fn verify(global: &GlobalArgs, store: &Store, images: &[String]) -> Result<()> {
    use image::verify::{check, Check};
    if images.is_empty() {
        bail!("must provide at least one image ID");
    }
    for img in images {
        let info = store
            .resolve(img)
            .with_context(|| format!("unable to resolve store key for image {img}"))?;
        match check(store, &info.id)? {
            Check::Intact => println!(
                "successfully verified checksum for image: {img:?} ({:?})",
                info.id
            ),
            Check::NotRecorded => {
                println!("image {img:?} not rendered; no verification needed")
            }
            Check::Changed { recorded, now } => {
                println!(
                    "tree cache verification failed for image {img}: the tree's digest is {now}, not the {recorded} it had when stored;  rebuilding..."
                );
                let fetcher = global.config()?.fetcher(image::fetch::PullPolicy::Never)?;
                fetcher
                    .rerender(&info)
                    .with_context(|| format!("unable to repair cache for image {img}"))?;
            }
        }
    }
    Ok(())
}

/// `rkt image extract` and `render`.
fn render(store: &Store, args: &TreeArgs) -> Result<()> {
    let info = store.resolve(&args.image)?;
    Ok(image::export::write_tree(
        store,
        &info,
        &args.output,
        args.rootfs_only,
        args.overwrite,
    )?)
}
