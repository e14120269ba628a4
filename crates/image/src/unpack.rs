//! Applies OCI/Docker layer tarballs onto a directory tree, safely.
//!
//! Every file-system operation is relative to a directory file descriptor obtained with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so nothing a layer says can make us write
//! outside the tree: `..` and absolute names are refused, a write through a symlink (even one
//! the same layer just created) is refused, and hardlinks may only point inside the tree.
//!
//! Whiteouts follow the OCI image spec: `.wh.<name>` deletes `<name>` from lower layers and
//! `.wh..wh..opq` empties its directory of lower-layer content. Entries created earlier in the
//! same layer survive both, whatever their order in the archive.

use crate::error::{refuse, Context, Error, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    self, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type implies; `None` for media types that are not layers.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    pub fn decoder<'a, R: Read + 'a>(self, r: R) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// A decompressing reader for a stored layer, its compression told by its first bytes
/// (gzip, zstd, or none): the store keeps layers, not their media types.
pub fn sniffed_decoder<'a, R: std::io::BufRead + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    let c = match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    };
    c.decoder(r)
}

/// A tree that layers are applied to, in order.
pub struct Tree {
    root: OwnedFd,
    path: PathBuf,
    /// The most recently opened parent directory: tar entries cluster by directory, so this
    /// saves most path resolutions.
    cached_parent: Option<(Vec<u8>, OwnedFd)>,
    /// Applying an ACI rather than a layer: entries live under `rootfs/` (the `manifest`
    /// beside it is read separately), and `.wh.` names are ordinary files (appc has no
    /// whiteouts).
    aci: bool,
    /// The SHA-256 of each regular file written, by path: the tree's digest is taken from
    /// these instead of reading every file back (see [`crate::verify`]).
    hashes: ContentHashes,
}

/// SHA-256 digests of file contents, by path relative to the tree's root.
pub type ContentHashes = std::collections::HashMap<Vec<u8>, [u8; 32]>;

/// Metadata gathered from a tar header and its PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Tree {
    /// Opens (and creates if needed) the directory to render into.
    pub fn open(path: &Path) -> Result<Tree> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let root = fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", path.display()))?;
        Ok(Tree {
            root,
            path: path.to_path_buf(),
            cached_parent: None,
            aci: false,
            hashes: ContentHashes::new(),
        })
    }

    /// Applies the `rootfs/` of an uncompressed ACI archive, with the same checks as layers:
    /// nothing outside the tree is written, through `..`, absolute names or symlinks. Entries
    /// other than `manifest` and `rootfs/…` are refused.
    pub fn apply_aci<R: Read>(&mut self, reader: R) -> Result<()> {
        self.aci = true;
        let res = self.apply_layer(reader);
        self.aci = false;
        res
    }

    /// Applies one uncompressed layer tarball. Errors name the entry and what is wrong with it.
    pub fn apply_layer<R: Read>(&mut self, reader: R) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        let mut created: HashSet<Vec<u8>> = HashSet::new();
        let mut dir_times: Vec<(Vec<u8>, Timespec)> = Vec::new();
        let entries = archive.entries().context("reading the layer archive")?;
        for entry in entries {
            let mut entry = entry.context("reading the layer archive")?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            self.apply_entry(&mut entry, &raw, &mut created, &mut dir_times)
                .with_context(|| format!("layer entry {shown:?}"))?;
        }
        // Drain what follows the end-of-archive marker, so that a truncated or corrupt
        // compressed stream (bad CRC, missing frame end) is noticed rather than ignored.
        let mut rest = archive.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).context("reading the end of the layer")?;
        // Directory times last: creating children changed them.
        for (path, mtime) in dir_times.iter().rev() {
            let ts = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            if path.is_empty() {
                fs::futimens(&self.root, &ts)?;
            } else {
                let (parent, name) = self.parent_of(path)?;
                fs::utimensat(parent, name, &ts, AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        Ok(())
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        raw: &[u8],
        created: &mut HashSet<Vec<u8>>,
        dir_times: &mut Vec<(Vec<u8>, Timespec)>,
    ) -> Result<()> {
        let path = normalize(raw)?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName
        ) {
            return Ok(());
        }
        let path = if self.aci {
            match aci_rootfs_path(&path)? {
                Some(p) => p,
                None => return Ok(()), // the manifest, or the archive's own "./"
            }
        } else {
            path
        };
        let meta = meta_of(entry)?;
        if path.is_empty() {
            // The archive's own "./" entry: attributes of the tree's root.
            if kind.is_dir() {
                set_owner_mode(self.root.as_fd(), None, &meta)?;
                dir_times.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        }
        let (parent_path, name) = split_last(&path);
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if !self.aci {
                return self.whiteout(parent_path, target, created);
            }
        }
        self.open_parent(parent_path, true)?;
        let parent = self.parent_fd(parent_path);
        let name = name.to_vec();
        let existing = fs::statat(parent, &name[..], AtFlags::SYMLINK_NOFOLLOW);
        let existing_is_dir = matches!(&existing, Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_ok() && !(kind.is_dir() && existing_is_dir) {
            remove_at(parent, &name)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !existing_is_dir {
                    fs::mkdirat(parent, &name[..], Mode::from_raw_mode(0o700))?;
                }
                let dir = open_dir_at(parent, &name)?;
                set_owner_mode(dir.as_fd(), None, &meta)?;
                set_xattrs(dir.as_fd(), &meta)?;
                dir_times.push((path.clone(), meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = fs::openat(
                    parent,
                    &name[..],
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut file = std::fs::File::from(fd);
                let digest = copy_data(entry, &mut file)?;
                self.hashes.insert(path.clone(), digest);
                set_owner_mode(file.as_fd(), None, &meta)?;
                set_xattrs(file.as_fd(), &meta)?;
                fs::futimens(&file, &times(meta.mtime))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::refused("symlink without a target"))?;
                fs::symlinkat(&target[..], parent, &name[..])?;
                fs::chownat(
                    parent,
                    &name[..],
                    Some(fs::Uid::from_raw(meta.uid)),
                    Some(fs::Gid::from_raw(meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
                set_times_at(parent, &name, meta.mtime)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::refused("hardlink without a target"))?
                    .into_owned();
                self.hardlink(&target, parent, &name)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Char => (FileType::CharacterDevice, device(entry)?),
                    tar::EntryType::Block => (FileType::BlockDevice, device(entry)?),
                    _ => (FileType::Fifo, 0),
                };
                fs::mknodat(parent, &name[..], ft, Mode::from_raw_mode(0o600), dev)?;
                set_owner_mode(parent, Some(&name), &meta)?;
                set_times_at(parent, &name, meta.mtime)?;
            }
            other => refuse!("unsupported tar entry type {other:?}"),
        }
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            self.hashes.remove(&path);
        }
        created.insert(path);
        Ok(())
    }

    /// A hardlink's target must already be in the tree, and not be a directory.
    fn hardlink(&self, target: &[u8], parent: BorrowedFd, name: &[u8]) -> Result<()> {
        let shown = String::from_utf8_lossy(target).into_owned();
        if target.starts_with(b"/") {
            refuse!("hardlink target {shown:?} is absolute: it would point outside the image");
        }
        let target = normalize(target).with_context(|| format!("hardlink target {shown:?}"))?;
        let target = match self.aci {
            true => match aci_rootfs_path(&target)? {
                Some(t) if !t.is_empty() => t,
                _ => refuse!("hardlink target {shown:?} is not a file under rootfs/"),
            },
            false => target,
        };
        if target.is_empty() {
            refuse!("hardlink to the tree's root directory");
        }
        let (tparent_path, tname) = split_last(&target);
        // Resolved afresh (not through the cache, which holds the entry's own parent).
        let tparent = if tparent_path.is_empty() {
            None
        } else {
            Some(
                open_beneath(self.root.as_fd(), tparent_path)
                    .map_err(|e| resolve_error(tparent_path, e))
                    .with_context(|| format!("hardlink target {shown:?}"))?,
            )
        };
        let tparent = tparent.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
        fs::linkat(tparent, tname, parent, name, AtFlags::empty())
            .with_context(|| format!("linking to {shown:?}"))?;
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent_path: &[u8],
        target: &[u8],
        created: &HashSet<Vec<u8>>,
    ) -> Result<()> {
        if self.open_parent(parent_path, false).is_err() {
            return Ok(()); // nothing below to hide
        }
        let parent = self.parent_fd(parent_path);
        if target == &OPAQUE_WHITEOUT.as_bytes()[WHITEOUT_PREFIX.len()..] {
            let dir = open_dir_at(parent, b".")?;
            for child in list_dir(dir.as_fd())? {
                if !created.contains(&join(parent_path, &child)) {
                    remove_at(parent, &child)?;
                }
            }
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            refuse!("malformed whiteout");
        }
        if !created.contains(&join(parent_path, target)) {
            match remove_at(parent, target) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes the directory `path` (relative, normalized) beneath the root the cached parent,
    /// creating missing components when `create` is set. Never follows a symlink.
    fn open_parent(&mut self, path: &[u8], create: bool) -> Result<()> {
        if path.is_empty() || self.cached_parent.as_ref().is_some_and(|(p, _)| p == path) {
            return Ok(());
        }
        let fd = match open_beneath(self.root.as_fd(), path) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => self.create_dirs(path)?,
            Err(e) => return Err(resolve_error(path, e)),
        };
        self.cached_parent = Some((path.to_vec(), fd));
        Ok(())
    }

    /// The directory last opened by [`Self::open_parent`] for `path`.
    fn parent_fd(&self, path: &[u8]) -> BorrowedFd<'_> {
        match &self.cached_parent {
            Some((p, fd)) if !path.is_empty() && p == path => fd.as_fd(),
            _ => self.root.as_fd(),
        }
    }

    /// Creates the missing directories of `path`, component by component, like umoci does for
    /// entries whose parents the archive never listed (mode 0755, owned by root).
    fn create_dirs(&self, path: &[u8]) -> Result<OwnedFd> {
        let mut cur = fs::openat(
            self.root.as_fd(),
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut so_far = Vec::new();
        for comp in path.split(|b| *b == b'/') {
            so_far = join(&so_far, comp);
            match fs::mkdirat(cur.as_fd(), comp, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(resolve_error(&so_far, e)),
            }
            cur =
                open_dir_at(cur.as_fd(), comp).map_err(|_| resolve_error(&so_far, Errno::LOOP))?;
        }
        Ok(cur)
    }

    fn parent_of(&mut self, path: &[u8]) -> Result<(BorrowedFd<'_>, Vec<u8>)> {
        let (p, n) = split_last(path);
        self.open_parent(p, false)?;
        Ok((self.parent_fd(p), n.to_vec()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The contents' digests of the regular files this tree wrote (see [`ContentHashes`]).
    pub fn content_hashes(&self) -> &ContentHashes {
        &self.hashes
    }

    pub fn into_content_hashes(self) -> ContentHashes {
        self.hashes
    }
}

fn open_beneath(root: BorrowedFd, path: &[u8]) -> std::result::Result<OwnedFd, Errno> {
    fs::openat2(
        root,
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

fn open_dir_at(dir: BorrowedFd, name: &[u8]) -> std::result::Result<OwnedFd, Errno> {
    fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
}

fn resolve_error(path: &[u8], e: Errno) -> Error {
    let shown = String::from_utf8_lossy(path);
    match e {
        Errno::LOOP | Errno::XDEV | Errno::NOTDIR => Error::refused(format!(
            "path {shown:?} passes through a symlink or a non-directory; writing through it could escape the image, refusing"
        )),
        other => Error::from(other).context(format!("cannot open directory {shown:?}")),
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
}

/// Turns a tar path into a normalized relative path: no leading "./", no "." components.
/// Absolute paths and ".." are refused, not cleaned: a layer that uses them is malformed or
/// hostile.
fn normalize(raw: &[u8]) -> Result<Vec<u8>> {
    let shown = String::from_utf8_lossy(raw);
    if raw.starts_with(b"/") {
        refuse!("absolute path {shown:?} in layer; layer paths must be relative, refusing");
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => refuse!("path {shown:?} contains \"..\"; it could escape the image, refusing"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// Where an (already normalized) ACI archive path goes in the tree: `rootfs/x` is `x` and
/// `rootfs` the tree's root; `manifest` and the archive's root are not part of the tree
/// (`None`); anything else is refused, since appc allows only those two top-level entries.
fn aci_rootfs_path(path: &[u8]) -> Result<Option<Vec<u8>>> {
    match path {
        b"" | b"manifest" => Ok(None),
        b"rootfs" => Ok(Some(Vec::new())),
        p => match p.strip_prefix(b"rootfs/") {
            Some(rest) => Ok(Some(rest.to_vec())),
            None => refuse!(
                "{:?} is outside rootfs/: an ACI holds only \"manifest\" and \"rootfs/\"",
                String::from_utf8_lossy(p)
            ),
        },
    }
}

fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut v = a.to_vec();
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

fn list_dir(dir: BorrowedFd) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for ent in fs::Dir::read_from(dir)? {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
    }
    Ok(out)
}

/// Removes `name` in `parent`, recursively for directories, never following symlinks.
fn remove_at(parent: BorrowedFd, name: &[u8]) -> Result<()> {
    let st = fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let dir = open_dir_at(parent, name)?;
        for child in list_dir(dir.as_fd())? {
            remove_at(dir.as_fd(), &child)?;
        }
        fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    } else {
        fs::unlinkat(parent, name, AtFlags::empty())?;
    }
    Ok(())
}

fn meta_of<R: Read>(entry: &mut tar::Entry<R>) -> Result<Meta> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode()? & 0o7777,
        uid: h.uid()? as u32,
        gid: h.gid()? as u32,
        mtime: Timespec {
            tv_sec: h.mtime()? as i64,
            tv_nsec: 0,
        },
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let key = ext
                .key()
                .map_err(|_| Error::refused("PAX key is not UTF-8"))?;
            let value = ext.value_bytes();
            if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs.push((attr.to_string(), value.to_vec()));
            } else if key == "uid" || key == "gid" {
                let v: u32 = pax_text(value)?.trim().parse().map_err(bad_pax)?;
                if key == "uid" {
                    meta.uid = v;
                } else {
                    meta.gid = v;
                }
            } else if key == "mtime" {
                meta.mtime = parse_pax_time(pax_text(value)?)?;
            }
        }
    }
    Ok(meta)
}

fn pax_text(value: &[u8]) -> Result<&str> {
    std::str::from_utf8(value).map_err(bad_pax)
}

/// A PAX record whose value is not what its key says it is.
fn bad_pax(e: impl std::fmt::Display) -> Error {
    Error::refused(e.to_string())
}

fn parse_pax_time(s: &str) -> Result<Timespec> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().map_err(bad_pax)?;
    let mut nanos = frac.chars().take(9).collect::<String>();
    while nanos.len() < 9 {
        nanos.push('0');
    }
    let tv_nsec: i64 = if frac.is_empty() {
        0
    } else {
        nanos.parse().map_err(bad_pax)?
    };
    Ok(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

fn device<R: Read>(entry: &tar::Entry<R>) -> Result<fs::Dev> {
    let h = entry.header();
    let major = h.device_major()?.unwrap_or(0);
    let minor = h.device_minor()?.unwrap_or(0);
    Ok(fs::makedev(major, minor))
}

/// Sets an entry's times without following it (symlinks keep their own).
fn set_times_at(parent: BorrowedFd, name: &[u8], mtime: Timespec) -> Result<()> {
    fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn times(mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

/// chown first, then chmod: chown clears setuid/setgid bits.
fn set_owner_mode(fd: BorrowedFd, name: Option<&[u8]>, meta: &Meta) -> Result<()> {
    let uid = Some(fs::Uid::from_raw(meta.uid));
    let gid = Some(fs::Gid::from_raw(meta.gid));
    let mode = Mode::from_raw_mode(meta.mode);
    match name {
        None => {
            fs::fchown(fd, uid, gid)?;
            fs::fchmod(fd, mode)?;
        }
        Some(n) => {
            fs::chownat(fd, n, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
            fs::chmodat(fd, n, mode, AtFlags::empty())?;
        }
    }
    Ok(())
}

fn set_xattrs(fd: BorrowedFd, meta: &Meta) -> Result<()> {
    for (name, value) in &meta.xattrs {
        fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty())
            .with_context(|| format!("setting xattr {name}"))?;
    }
    Ok(())
}

/// Copies an entry's data into `out`; the SHA-256 of what was written.
fn copy_data<R: Read>(entry: &mut tar::Entry<R>, out: &mut std::fs::File) -> Result<[u8; 32]> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = entry
            .read(&mut buf)
            .context("reading file data from the layer")?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        out.write_all(&buf[..n]).context("writing file data")?;
        hasher.update(&buf[..n]);
    }
}

/// Removes a tree written by [`Tree`], tolerating odd modes (like a 0000 directory).
pub fn remove_tree(path: &Path) -> Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| Error::invalid("cannot remove /"))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("no file name in {}", path.display())))?;
    let dir = fs::open(
        parent,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match remove_at(dir.as_fd(), name.as_encoded_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.context(format!("removing {}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(b"./a/./b/").unwrap(), b"a/b");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert!(normalize(b"../x").is_err());
        assert!(normalize(b"a/../../x").is_err());
        assert!(normalize(b"/etc/passwd").is_err());
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time("981158400.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (981158400, 500_000_000));
    }

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, link: &str) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }

    #[test]
    fn whiteouts_respect_same_layer_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tree::open(&dir.path().join("root")).unwrap();
        t.apply_layer(
            &layer(|b| {
                file(b, "d/old", b"1");
                file(b, "gone", b"2");
            })[..],
        )
        .unwrap();
        t.apply_layer(
            &layer(|b| {
                file(b, "d/new", b"3");
                file(b, "d/.wh..wh..opq", b"");
                file(b, ".wh.gone", b"");
            })[..],
        )
        .unwrap();
        let root = dir.path().join("root");
        assert!(root.join("d/new").exists());
        assert!(!root.join("d/old").exists());
        assert!(!root.join("gone").exists());
    }

    #[test]
    fn refuses_write_through_symlink_and_escaping_hardlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let mut t = Tree::open(&dir.path().join("root")).unwrap();
        let e = t
            .apply_layer(
                &layer(|b| {
                    raw_entry(
                        b,
                        "link",
                        tar::EntryType::Symlink,
                        outside.to_str().unwrap(),
                    );
                    file(b, "link/pwned", b"x");
                })[..],
            )
            .unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert!(!outside.join("pwned").exists());
        let e = t
            .apply_layer(&layer(|b| raw_entry(b, "h", tar::EntryType::Link, "../outside/x"))[..])
            .unwrap_err();
        assert!(format!("{e:#}").contains(".."), "{e:#}");
    }
}
