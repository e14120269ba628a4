//! Paths inside an app's root, resolved beneath that root and never on the host.
//!
//! Everything an image ships is hostile: a directory in it may be a symlink to `/etc` or to
//! `../../..`. Before pivot_root, the host's `/` is still this process's root, so joining an
//! image path to the root's host path and handing the result to `mkdir` or `mount` would follow
//! such a symlink out of the pod and act on the host. Here every lookup starts at a descriptor
//! of the app's root and goes through `openat2(RESOLVE_IN_ROOT)` (symlinks, absolute or
//! relative, and `..` stay inside the root), every directory is created with `mkdirat`
//! relative to a descriptor of its parent, and mounts target `/proc/self/fd/N` of a descriptor
//! resolved this way, so the kernel mounts onto exactly the inode we checked.

use crate::error::{Error, Result};
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Symlinks followed while creating one path, as the kernel's own limit (ELOOP past it).
const MAX_SYMLINKS: usize = 40;

/// An app's root directory, open.
pub struct Root {
    fd: OwnedFd,
    /// For messages only.
    what: String,
}

/// How a path inside the root came to be refused.
fn refused(what: &str, path: &str, why: Error) -> Error {
    why.context(format!("{what}: {path:?}"))
}

impl Root {
    /// Opens `dir` (a directory stage0 made, such as the app's overlay mount) as the root that
    /// paths are resolved in. `what` names the app and image in messages.
    pub fn open(dir: &Path, what: &str) -> Result<Root> {
        let fd = fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::at("opening", dir, e))?;
        Ok(Root {
            fd,
            what: what.to_string(),
        })
    }

    /// The root's own descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// An `O_PATH` descriptor of `path` (absolute or relative, inside the root), following
    /// symlinks inside the root.
    pub fn resolve(&self, path: &str) -> Result<OwnedFd, Errno> {
        resolve_in(self.fd.as_fd(), path)
    }

    /// Creates `path` and its missing parents as directories, following the image's symlinks
    /// within the root (a link to `/data` leads to the root's `data`), and returns the
    /// directory. Refuses a component that is not a directory, and symlink loops.
    pub fn mkdir_all(&self, path: &str) -> Result<OwnedFd> {
        self.mkdir_all_inner(path)
            .map_err(|why| refused(&self.what, path, why))
    }

    fn mkdir_all_inner(&self, path: &str) -> Result<OwnedFd> {
        let mut pending: Vec<String> = components(path).rev().map(String::from).collect();
        let mut here: Vec<String> = Vec::new(); // real directories from the root to `cur`
        let mut cur = self
            .resolve(".")
            .map_err(|e| Error::os("opening the root", e))?;
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                here.pop();
                cur = self
                    .resolve(&here.join("/"))
                    .map_err(|e| Error::os("going up to the parent", e))?;
                continue;
            }
            match fs::statat(&cur, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Error::msg(
                            "too many levels of symbolic links (a symlink loop in the image)",
                        ));
                    }
                    let target = fs::readlinkat(&cur, name.as_str(), Vec::new())
                        .map_err(|e| Error::os(format!("reading symlink {name:?}"), e))?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        here.clear();
                        cur = self
                            .resolve(".")
                            .map_err(|e| Error::os("opening the root", e))?;
                    }
                    pending.extend(components(&target).rev().map(String::from));
                    continue;
                }
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                Ok(_) => {
                    return Err(Error::msg(format!(
                        "{name:?} exists and is not a directory"
                    )))
                }
                Err(Errno::NOENT) => {
                    match fs::mkdirat(&cur, name.as_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Error::os(format!("creating {name:?}"), e)),
                    }
                }
                Err(e) => return Err(Error::os(format!("looking up {name:?}"), e)),
            }
            cur = child_dir(cur.as_fd(), &name)?;
            here.push(name);
        }
        Ok(cur)
    }

    /// A regular file at `path` to bind a file over: its parent directories are made as by
    /// [`Root::mkdir_all`]; a symlink in its place is replaced (it is the pod's own copy of the
    /// image), an existing file is kept, anything else is refused.
    pub fn file_for_bind(&self, path: &str) -> Result<OwnedFd> {
        let (parent, name) = split_last(path)
            .ok_or_else(|| refused(&self.what, path, Error::msg("not a file path")))?;
        let dir = self.mkdir_all(&parent)?;
        let fail = |why: Error| refused(&self.what, path, why);
        match fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => fs::unlinkat(&dir, name.as_str(), AtFlags::empty())
                    .map_err(|e| fail(Error::os("replacing the image's symlink", e)))?,
                FileType::Directory => return Err(fail(Error::msg("is a directory, not a file"))),
                _ => {}
            },
            Err(Errno::NOENT) => {}
            Err(e) => return Err(fail(Error::os("looking it up", e))),
        }
        match fs::openat2(
            &dir,
            name.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            Ok(_) | Err(Errno::EXIST) => {}
            Err(e) => return Err(fail(Error::os("creating", e))),
        }
        fs::openat2(
            &dir,
            name.as_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| fail(Error::os("opening", e)))
    }
}

/// `path` resolved from `dir` as if `dir` were `/`.
pub fn resolve_in(dir: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, Errno> {
    let path = if path.trim_matches('/').is_empty() {
        "."
    } else {
        path
    };
    fs::openat2(
        dir,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// The directory `name` directly in `dir`, refusing a symlink put there since we looked.
fn child_dir(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd> {
    fs::openat2(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| Error::os(format!("opening {name:?}"), e))
}

/// A host path that must still be what stage0 saw when it prepared the pod: opened with no
/// symlink anywhere in it, so one swapped in since (say, by the task that owns the directory)
/// is refused instead of followed.
pub fn open_source(path: &Path) -> Result<OwnedFd> {
    fs::openat2(
        fs::CWD,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        Errno::LOOP => Error::msg(format!(
            "volume source {}: a symlink now stands in its path, which was not there when the pod was prepared; refusing to follow it (prepare the pod again)",
            path.display()
        )),
        e => Error::at("volume source", path, e),
    })
}

/// The path through which the kernel reaches exactly `fd`'s inode (for mount(2)).
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The parts of a path that name something: no empty or `.` components.
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// A path's parent and last name; None when the last part is not a plain name.
fn split_last(path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = components(path).collect();
    let (name, parent) = parts.split_last()?;
    (*name != "..").then(|| (parent.join("/"), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let host = t.path().join("host");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        (t, root, host)
    }

    fn real(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(fd_path(fd)).unwrap()
    }

    #[test]
    fn absolute_symlinks_stay_in_the_root() {
        let (_t, root, host) = fixture();
        symlink(&host, root.join("evil")).unwrap();
        let r = Root::open(&root, "app").unwrap();
        let d = r.mkdir_all("/evil/vol").unwrap();
        assert_eq!(
            real(&d),
            root.join(host.strip_prefix("/").unwrap()).join("vol")
        );
        assert!(!host.join("vol").exists(), "created on the host");
    }

    #[test]
    fn relative_symlinks_and_dotdot_stay_in_the_root() {
        let (_t, root, host) = fixture();
        symlink("../../../../../host", root.join("up")).unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        symlink("../../..", root.join("a/b")).unwrap();
        let r = Root::open(&root, "app").unwrap();
        assert_eq!(real(&r.mkdir_all("/up/x").unwrap()), root.join("host/x"));
        assert_eq!(real(&r.mkdir_all("a/b/y").unwrap()), root.join("y"));
        assert_eq!(real(&r.mkdir_all("/../../z").unwrap()), root.join("z"));
        assert!(!host.join("x").exists());
    }

    #[test]
    fn loops_and_files_are_refused() {
        let (_t, root, _host) = fixture();
        symlink("/l2", root.join("l1")).unwrap();
        symlink("/l1", root.join("l2")).unwrap();
        std::fs::write(root.join("f"), b"").unwrap();
        let r = Root::open(&root, "app").unwrap();
        let e = r.mkdir_all("/l1/x").unwrap_err().to_string();
        assert!(e.contains("symlink loop"), "{e}");
        let e = r.mkdir_all("/f/x").unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn files_for_binds_replace_symlinks_in_the_root_only() {
        let (_t, root, host) = fixture();
        std::fs::write(host.join("hosts"), b"host's").unwrap();
        std::fs::create_dir(root.join("etc")).unwrap();
        symlink(host.join("hosts"), root.join("etc/hosts")).unwrap();
        symlink(&host, root.join("etc2")).unwrap();
        let r = Root::open(&root, "app").unwrap();
        let f = r.file_for_bind("/etc/hosts").unwrap();
        assert_eq!(real(&f), root.join("etc/hosts"));
        assert!(!root.join("etc/hosts").is_symlink());
        let f = r.file_for_bind("/etc2/resolv.conf").unwrap();
        assert_eq!(
            real(&f),
            root.join(host.strip_prefix("/").unwrap())
                .join("resolv.conf")
        );
        assert_eq!(std::fs::read(host.join("hosts")).unwrap(), b"host's");
        assert!(!host.join("resolv.conf").exists());
        assert!(r.file_for_bind("/etc/..").is_err());
    }

    #[test]
    fn sources_with_a_symlink_are_refused() {
        let (_t, root, host) = fixture();
        symlink(&host, root.join("link")).unwrap();
        assert!(open_source(&host).is_ok());
        let e = open_source(&root.join("link")).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
    }
}
