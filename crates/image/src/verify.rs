//! `rkt image verify`: a digest of each rendered tree, taken when the image is stored and
//! compared later, so that a tree changed on disk (corruption, or someone writing into the
//! store) is noticed; and the repair, a fresh render from what the store keeps (the Docker
//! layers, or the ACI's uncompressed tar), as rkt's tree store re-rendered.
//!
//! The digest covers every entry's path, type, mode, owner, size, contents (by their
//! SHA-256), symlink target and device number, in name order; not times, which reading a
//! tree may change. When an image is stored, the contents' digests come from the render,
//! which hashed each file as it wrote it ([`crate::unpack::ContentHashes`]), so storing an
//! image does not read its tree back; `verify` reads everything.

use crate::error::{Context, Error, Result};
use crate::fetch::Fetcher;
use crate::store::{ImageInfo, Store};
use crate::unpack::{ContentHashes, Tree};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Where the digest of an image's tree is kept, beside its `rootfs/`.
pub const DIGEST_FILE: &str = "rootfs.digest";

/// The digest of the tree at `root` (`sha256:` and hex), reading every file.
pub fn tree_digest(root: &Path) -> Result<String> {
    tree_digest_with(root, &ContentHashes::new())
}

/// The digest of the tree at `root`, taking the contents' digests of the files in `known`
/// (paths relative to `root`) from there rather than reading them.
pub fn tree_digest_with(root: &Path, known: &ContentHashes) -> Result<String> {
    let mut h = Sha256::new();
    // One read buffer for the whole tree: a fresh 256 KiB per file costs an mmap, its page
    // faults and a munmap each, which were most of the check's time on small files.
    let mut buf = vec![0u8; 256 * 1024];
    walk(root, b"", known, &mut h, &mut buf)
        .with_context(|| format!("reading {}", root.display()))?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn walk(
    dir: &Path,
    rel: &[u8],
    known: &ContentHashes,
    h: &mut Sha256,
    buf: &mut [u8],
) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let mut path = rel.to_vec();
        path.push(b'/');
        path.extend_from_slice(e.file_name().as_bytes());
        let md = e.path().symlink_metadata()?;
        h.update(&path);
        h.update([0]);
        h.update(md.mode().to_le_bytes());
        h.update(md.uid().to_le_bytes());
        h.update(md.gid().to_le_bytes());
        let ft = md.file_type();
        if ft.is_dir() {
            walk(&e.path(), &path, known, h, buf)?;
        } else if ft.is_file() {
            h.update(md.len().to_le_bytes());
            match known.get(&path[1..]) {
                Some(digest) => h.update(digest),
                None => h.update(file_digest(&e.path(), buf)?),
            }
        } else if ft.is_symlink() {
            h.update(std::fs::read_link(e.path())?.as_os_str().as_bytes());
        } else {
            h.update(md.rdev().to_le_bytes());
        }
        h.update([0xff]);
    }
    Ok(())
}

fn file_digest(path: &Path, buf: &mut [u8]) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// Records the digest of a staged image's tree (`staged/rootfs`), before it is published;
/// `known` are the contents' digests its render took.
pub fn record(staged: &Path, known: &ContentHashes) -> Result<()> {
    let d = tree_digest_with(&staged.join("rootfs"), known)?;
    std::fs::write(staged.join(DIGEST_FILE), d)?;
    Ok(())
}

/// What [`check`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The tree is as it was stored.
    Intact,
    /// No digest was recorded (an image stored before digests were).
    NotRecorded,
    /// The tree changed.
    Changed { recorded: String, now: String },
}

pub fn check(store: &Store, id: &str) -> Result<Check> {
    let recorded = match std::fs::read_to_string(store.image_dir(id).join(DIGEST_FILE)) {
        Ok(d) => d.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Check::NotRecorded),
        Err(e) => return Err(e.into()),
    };
    let now = tree_digest(&store.rootfs(id))?;
    Ok(if now == recorded {
        Check::Intact
    } else {
        Check::Changed { recorded, now }
    })
}

impl Fetcher {
    /// Renders the image's tree afresh from what the store keeps, and puts it in place of
    /// the old one.
    pub fn rerender(&self, info: &ImageInfo) -> Result<()> {
        let _lock = self.store.lock(&format!("image-{}", info.id))?;
        let staged =
            self.store
                .tmp_dir()
                .join(format!("render-{}-{}", info.id, std::process::id()));
        crate::unpack::remove_tree(&staged)?;
        let res = (|| -> Result<()> {
            let mut tree = Tree::open(&staged.join("rootfs"))?;
            if info.config_digest.is_empty() {
                self.render_aci_again(info, &mut tree, &staged)?;
            } else {
                for layer in &info.layers {
                    let blob = self.store.blob_path(layer);
                    let file = std::fs::File::open(&blob).with_context(|| {
                        format!("layer {layer} is no longer in the store; remove the image and fetch it again")
                    })?;
                    let reader = crate::unpack::sniffed_decoder(std::io::BufReader::new(file))?;
                    tree.apply_layer(reader)
                        .with_context(|| format!("applying layer {layer}"))?;
                }
            }
            record(&staged, tree.content_hashes())
        })();
        if let Err(e) = res {
            let _ = crate::unpack::remove_tree(&staged);
            return Err(e);
        }
        // Swap the trees: the old one out of the way first, then the new one in.
        let dir = self.store.image_dir(&info.id);
        let old = staged.with_extension("old");
        std::fs::rename(dir.join("rootfs"), &old)?;
        std::fs::rename(staged.join("rootfs"), dir.join("rootfs"))?;
        crate::store::write_atomic(
            &dir.join(DIGEST_FILE),
            &std::fs::read(staged.join(DIGEST_FILE))?,
        )?;
        crate::unpack::remove_tree(&old)?;
        crate::unpack::remove_tree(&staged)
    }

    fn render_aci_again(&self, info: &ImageInfo, tree: &mut Tree, staged: &Path) -> Result<()> {
        let Some(blob) = info.layers.first() else {
            return Err(Error::not_found(format!(
                "the store keeps no archive of image {}; remove it and fetch it again",
                info.id
            )));
        };
        let manifest = self.store.manifest(&info.id)?;
        let archive = std::fs::File::open(self.store.blob_path(blob)).with_context(|| {
            format!("the archive of image {} is no longer in the store; remove the image and fetch it again", info.id)
        })?;
        self.render_aci(
            tree,
            staged,
            &info.dependencies,
            archive,
            &manifest.path_whitelist,
        )
    }
}
