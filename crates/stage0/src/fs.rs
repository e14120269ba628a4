//! Copying trees exactly.

use crate::error::{Context, Error, Result};
use std::path::Path;

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
