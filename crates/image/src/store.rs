//! The image store under `<dir>/cas/`.
//!
//! ```text
//! cas/blobs/sha256/<hex>            verified blobs (layers, configs), shared by all images
//! cas/blobs/sha256/<hex>.partial    a download in progress or interrupted (resumed later)
//! cas/images/<image-id>/            one directory per image, made visible by a single rename:
//!     manifest                        the appc image manifest (`rkt image cat-manifest`)
//!     info.json                       name, source, digests, times, sizes
//!     rootfs/                         the rendered tree that pods use
//! cas/locks/                        flock(2) files: one per blob and one per image
//! cas/tmp/                          renders in progress; anything here is garbage once its
//!                                   image lock is free
//! ```
//!
//! An image exists exactly when `images/<id>/info.json` exists: it is written into the
//! temporary directory before the rename, so a crash at any point leaves either a complete
//! image or nothing visible, and the next fetch redoes the missing part.

use crate::appc::ImageManifest;
use crate::error::{Context, Error, Result};
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    /// `sha512-` and 64 hex digits.
    pub id: String,
    /// appc name, e.g. `registry-1.docker.io/library/redis`.
    pub name: String,
    /// The `version` label (the tag), if any.
    pub version: Option<String>,
    /// What the user asked for, e.g. `docker://redis:3.2`.
    pub source: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<String>,
    /// Nanoseconds since the epoch.
    pub import_time: i64,
    pub last_used: i64,
    /// Bytes of the image's blobs plus its rendered tree, as rkt reported size.
    pub size: u64,
    /// The images an ACI was rendered on top of, in order (appc dependencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
}

impl ImageInfo {
    /// `name:version`, as `rkt image list` shows it. The name is the image's appc name,
    /// made a valid ACIdentifier for images stored before fetches did that.
    pub fn display_name(&self) -> String {
        let name = aci_identifier(&self.name);
        match &self.version {
            Some(v) => format!("{name}:{v}"),
            None => name,
        }
    }
}

/// `name` as a valid appc ACIdentifier (unchanged if it is one already).
pub fn aci_identifier(name: &str) -> String {
    crate::appc::sanitize_ac_identifier(name).unwrap_or_else(|_| name.to_string())
}

/// A held flock(2); released when dropped.
pub struct Lock {
    _file: File,
}

pub struct Store {
    cas: PathBuf,
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens the store under `dir` (rkt's `--dir`), creating its directories.
    pub fn open(dir: &Path) -> Result<Store> {
        let cas = dir.join("cas");
        for sub in ["blobs/sha256", "blobs/sha512", "images", "locks", "tmp"] {
            let p = cas.join(sub);
            std::fs::create_dir_all(&p).with_context(|| {
                format!(
                    "cannot create the image store directory {}; check --dir and that you are root",
                    p.display()
                )
            })?;
        }
        // Rendered images hold whatever their layers carried: device nodes of mode 0666,
        // setuid-root binaries. Only root may reach them on the host (as rkt's own setup
        // made /var/lib/rkt 2750), or any local user could open the one or run the other.
        for sub in ["images", "tmp"] {
            owner_only(&cas.join(sub))?;
        }
        Ok(Store { cas })
    }

    /// Where a blob is kept: Docker layers and configs under `blobs/sha256`, ACIs (their
    /// uncompressed tar, `sha512:…`) under `blobs/sha512`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let algorithm = match digest.split_once(':') {
            Some(("sha512", _)) => "sha512",
            _ => "sha256",
        };
        self.cas
            .join("blobs")
            .join(algorithm)
            .join(crate::digest::hex_part(digest))
    }

    pub fn partial_blob_path(&self, digest: &str) -> PathBuf {
        let mut p = self.blob_path(digest).into_os_string();
        p.push(".partial");
        PathBuf::from(p)
    }

    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.cas.join("images").join(id)
    }

    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.image_dir(id).join("rootfs")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.cas.join("tmp")
    }

    /// Blocks until the named lock is held exclusively.
    pub fn lock(&self, name: &str) -> Result<Lock> {
        let path = self.cas.join("locks").join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock {}", path.display()))?;
        flock(&file, FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Lock { _file: file })
    }

    /// Takes the named lock only if nobody holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<Lock>> {
        let path = self.cas.join("locks").join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn has_image(&self, id: &str) -> bool {
        self.image_dir(id).join("info.json").exists()
    }

    pub fn info(&self, id: &str) -> Result<ImageInfo> {
        let p = self.image_dir(id).join("info.json");
        let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&text).map_err(|e| stored_json(&p.display(), e))
    }

    pub fn manifest(&self, id: &str) -> Result<ImageManifest> {
        let bytes = self.manifest_bytes(id)?;
        serde_json::from_slice(&bytes).map_err(|e| stored_json(&"the image manifest", e))
    }

    pub fn manifest_bytes(&self, id: &str) -> Result<Vec<u8>> {
        let p = self.image_dir(id).join("manifest");
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// Records that an image was used now (rkt's "last used" column).
    pub fn touch(&self, id: &str) -> Result<()> {
        let mut info = self.info(id)?;
        info.last_used = now_nanos();
        write_atomic(
            &self.image_dir(id).join("info.json"),
            &serde_json::to_vec_pretty(&info).map_err(|e| Error::failed(e.to_string()))?,
        )
    }

    /// All complete images, oldest import first.
    pub fn list(&self) -> Result<Vec<ImageInfo>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.cas.join("images"))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str() else { continue };
            // Skip ones removed meanwhile or not yet complete.
            if let Ok(info) = self.info(id) {
                out.push(info);
            }
        }
        out.sort_by_key(|i| i.import_time);
        Ok(out)
    }

    /// Finds the newest stored image of a Docker reference (`--pull-policy=new|never`): same
    /// registry, repository and tag as the `source` it was fetched from, and the same
    /// manifest digest if the reference pins one. Matching the reference rather than the
    /// appc name also finds images stored before names were made valid ACIdentifiers
    /// (`127.0.0.1:5000/app` then, `127.0.0.1_5000/app` now).
    pub fn find_docker(&self, r: &crate::reference::Reference) -> Result<Option<ImageInfo>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| r.names_same_image(&i.source))
            .filter(|i| r.digest.is_none() || r.digest.as_deref() == Some(&i.manifest_digest))
            .max_by_key(|i| i.import_time))
    }

    /// Finds the newest stored image with this appc name and, if given, `version` label (an
    /// ACI asked for by name, `--pull-policy=new|never`).
    pub fn find_by_name(&self, name: &str, version: Option<&str>) -> Result<Option<ImageInfo>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| i.name == name && (version.is_none() || i.version.as_deref() == version))
            .max_by_key(|i| i.import_time))
    }

    /// Resolves what a user typed (an ID, a unique ID prefix, `name`, `name:version`, or a
    /// `docker://` reference) to one image.
    pub fn resolve(&self, query: &str) -> Result<ImageInfo> {
        let images = self.list()?;
        if query.starts_with("sha512-") {
            let hits: Vec<_> = images.iter().filter(|i| i.id.starts_with(query)).collect();
            return match hits.len() {
                0 => Err(Error::not_found(format!(
                    "no image with ID {query:?} in the store; see `rkt image list`"
                ))),
                1 => Ok(hits[0].clone()),
                _ => Err(Error::invalid(format!(
                    "image ID prefix {query:?} matches {} images; give more of the ID",
                    hits.len()
                ))),
            };
        }
        let missing = || {
            Error::not_found(format!(
                "no image named {query:?} in the store; see `rkt image list`"
            ))
        };
        if query.starts_with("docker://") {
            let r = crate::reference::Reference::parse(query)?;
            return self.find_docker(&r)?.ok_or_else(missing);
        }
        let (name, version) = match query.rsplit_once(':') {
            Some((n, v)) if !v.contains('/') => (n, Some(v)),
            _ => (query, None),
        };
        // A name matches as the appc identifier it stands for, so the Docker spelling
        // (`127.0.0.1:5000/app:1`) finds the image `rkt image list` shows as
        // `127.0.0.1_5000/app:1`, and either finds one stored under the old spelling.
        let same = |a: &str, b: &str| aci_identifier(a) == aci_identifier(b);
        images
            .into_iter()
            .filter(|i| {
                (same(&i.name, name) && (version.is_none() || i.version.as_deref() == version))
                    || i.display_name() == query
            })
            .max_by_key(|i| i.import_time)
            .ok_or_else(missing)
    }

    /// Publishes a fully prepared image directory (with `info.json`, `manifest`, `rootfs/`)
    /// under its ID. The caller holds the image's lock.
    pub fn commit(&self, staged: &Path, id: &str) -> Result<()> {
        let dest = self.image_dir(id);
        std::fs::rename(staged, &dest)
            .with_context(|| format!("moving {} to {}", staged.display(), dest.display()))?;
        sync_dir(&self.cas.join("images"))
    }

    /// Removes an image. Its blobs go at the next `image gc`, if no other image uses them.
    pub fn remove(&self, id: &str) -> Result<()> {
        let _lock = self.lock(&format!("image-{id}"))?;
        let dir = self.image_dir(id);
        // Hide it first (one rename), then delete at leisure.
        let graveyard = self
            .tmp_dir()
            .join(format!("rm-{id}-{}", std::process::id()));
        std::fs::rename(&dir, &graveyard)
            .with_context(|| format!("removing image {id}: moving {}", dir.display()))?;
        crate::unpack::remove_tree(&graveyard)
    }

    /// Removes blobs no image refers to and leftovers of interrupted work. Partial downloads
    /// younger than `keep_partial` are kept so that a later fetch can resume them.
    pub fn sweep(&self, keep_partial: std::time::Duration) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let used: std::collections::HashSet<String> = self
            .list()?
            .into_iter()
            .flat_map(|i| {
                let mut v = i.layers;
                v.push(i.config_digest);
                v
            })
            .map(|d| crate::digest::hex_part(&d).to_string())
            .collect();
        let blobs = std::fs::read_dir(self.cas.join("blobs/sha256"))?
            .chain(std::fs::read_dir(self.cas.join("blobs/sha512"))?);
        for entry in blobs {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let (hex, partial) = match name.strip_suffix(".partial") {
                Some(h) => (h.to_string(), true),
                None => (name.clone(), false),
            };
            let Some(_lock) = self.try_lock(&format!("blob-{hex}"))? else {
                continue;
            };
            let stale = if partial {
                let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
                age >= keep_partial
            } else {
                !used.contains(&hex)
            };
            if stale {
                std::fs::remove_file(entry.path())?;
                removed.push(entry.path());
            }
        }
        for entry in std::fs::read_dir(self.tmp_dir())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // tmp entries are "<what>-<image-id>-<pid>"; a free image lock means abandoned.
            let id = name
                .split('-')
                .skip(1)
                .take(2)
                .collect::<Vec<_>>()
                .join("-");
            if let Some(_lock) = self.try_lock(&format!("image-{id}"))? {
                crate::unpack::remove_tree(&entry.path())?;
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }
}

/// A suffix for a temporary file name no other writer uses at the same time: the process
/// and a counter, since several threads of one process (the Nomad plugin prepares pods on
/// threads of its own) may write the same file at once.
pub fn tmp_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// A file the store wrote that does not parse: the store is damaged, not the caller's input.
fn stored_json(what: &dyn std::fmt::Display, e: serde_json::Error) -> Error {
    Error::failed(format!("parsing {what}: {e}"))
}

/// Writes a file by rename, so readers see the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", tmp_suffix()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Sum of the sizes of regular files under `path`, not following symlinks.
pub fn tree_size(path: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        rd.filter_map(|e| e.ok())
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => 0,
            })
            .sum()
    }
    walk(path)
}

/// Makes `dir` reachable by its owner alone (mode 0700), unless it already is.
pub fn owner_only(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("closing {} to other users", dir.display()))?;
    }
    Ok(())
}
