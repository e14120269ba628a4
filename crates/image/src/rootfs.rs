//! Reading a rendered image tree as the pod will see it: every path is resolved beneath the
//! tree's root (`openat2(RESOLVE_IN_ROOT)`), so an image whose `/etc/passwd` is a symlink to
//! the host's, or whose `/etc` is `../../../etc`, is read inside the tree and never on the host.

use rustix::fs::{Mode, OFlags, ResolveFlags, Stat};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Largest file read this way: these are small configuration files (passwd, group).
const MAX_READ: u64 = 16 << 20;

fn open_in(root: &Path, path: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let path = match path.trim_start_matches('/') {
        "" => ".",
        p => p,
    };
    Ok(rustix::fs::openat2(
        &dir,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// The contents of the regular file `path` inside the tree at `root`.
pub fn read(root: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    // O_NONBLOCK: a FIFO planted in the image must not hang us.
    let fd = open_in(root, path, OFlags::RDONLY | OFlags::NONBLOCK)?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(std::io::Error::other(format!(
            "{path} is not a regular file"
        )));
    }
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_READ)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// The status of `path` inside the tree at `root` (symlinks followed within the tree).
pub fn stat(root: &Path, path: &str) -> std::io::Result<Stat> {
    Ok(rustix::fs::fstat(open_in(root, path, OFlags::PATH)?)?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(t.path().join("secret"), b"host").unwrap();
        std::fs::write(root.join("secret"), b"image").unwrap();
        symlink(t.path().join("secret"), root.join("etc/abs")).unwrap();
        symlink("../../../../../../secret", root.join("etc/rel")).unwrap();
        // The absolute link's target, read inside the tree, does not exist there.
        assert!(super::read(&root, "/etc/abs").is_err());
        assert_eq!(super::read(&root, "/etc/rel").unwrap(), b"image");
        assert!(super::stat(&root, "/etc/abs").is_err());
        assert!(super::stat(&root, "/secret").is_ok());
    }
}
