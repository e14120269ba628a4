//! Copying trees exactly.

use crate::error::Result;
use std::path::Path;

/// `cp -a` of `from` to `to` (see [`image::export::copy_tree`]).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    Ok(image::export::copy_tree(from, to)?)
}
