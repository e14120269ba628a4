//! A stored image written out: as an ACI file (`rkt image export`) or as a tree on disk
//! (`rkt image extract` and `render`). Each writes beside its destination and renames into
//! place, so that a failure leaves nothing half-written.

use crate::error::{Context, Error, Result};
use crate::store::{ImageInfo, Store};
use std::path::Path;

/// Writes an uncompressed ACI of the image: `manifest` and `rootfs/` from the rendered tree.
pub fn write_aci(store: &Store, info: &ImageInfo, out: &Path, overwrite: bool) -> Result<()> {
    if out.exists() && !overwrite {
        return Err(Error::invalid(format!(
            "output ACI file {} exists (try --overwrite)",
            out.display()
        )));
    }
    let tmp = out.with_extension(format!("aci.tmp-{}", crate::store::tmp_suffix()));
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("unable to open output ACI file {}", tmp.display()))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        tar.follow_symlinks(false);
        let manifest = store.manifest_bytes(&info.id)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest.len() as u64);
        h.set_mode(0o644);
        h.set_mtime((info.import_time / 1_000_000_000) as u64);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, "manifest", &manifest[..])?;
        tar.append_dir_all("rootfs", store.rootfs(&info.id))
            .context("error writing to output ACI file")?;
        tar.into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok(())
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, out).context("moving the ACI into place"),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes the image's tree to `out`: `manifest` and `rootfs/`, or the root filesystem alone.
/// (`extract` and `render` are the same here: Docker images are stored already rendered,
/// their layers squashed, with no appc dependencies left to apply.)
pub fn write_tree(
    store: &Store,
    info: &ImageInfo,
    out: &Path,
    rootfs_only: bool,
    overwrite: bool,
) -> Result<()> {
    let out = std::path::absolute(out)?;
    if out == Path::new("/") {
        return Err(Error::invalid(
            "this would delete your root filesystem. Refusing.",
        ));
    }
    if out.exists() {
        if !overwrite {
            return Err(Error::invalid(format!(
                "output directory {} exists (try --overwrite)",
                out.display()
            )));
        }
        crate::unpack::remove_tree(&out).context("error removing existing output dir")?;
    }
    let parent = out.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    let staged = parent.join(format!(
        ".{}.rkt-tmp-{}",
        out.file_name().unwrap_or_default().to_string_lossy(),
        crate::store::tmp_suffix()
    ));
    let result = (|| -> Result<()> {
        let rootfs_dest = if rootfs_only {
            staged.clone()
        } else {
            std::fs::create_dir_all(&staged)?;
            std::fs::write(staged.join("manifest"), store.manifest_bytes(&info.id)?)?;
            staged.join("rootfs")
        };
        copy_tree(&store.rootfs(&info.id), &rootfs_dest)
    })();
    match result {
        Ok(()) => std::fs::rename(&staged, &out).context("moving the output into place"),
        Err(e) => {
            let _ = crate::unpack::remove_tree(&staged);
            Err(e)
        }
    }
}

/// `cp -a`: coreutils already copies every file type, owner, mode, time, xattr and hardlink
/// exactly, which is what an extracted tree or a `--no-overlay` root must keep.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(from)
        .arg(to)
        .status()
        .context("running cp -a")?;
    if !status.success() {
        return Err(Error::failed(format!(
            "copying {} to {}: cp -a exited with {status}",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}
