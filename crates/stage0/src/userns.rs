//! `--private-users`: the pod's apps run in a user namespace of the pod's own, whose 65536
//! IDs (rkt's shift per pod) map to a range of host IDs no other pod of this store uses, so
//! that root in one pod is an unprivileged stranger to the host and to every other pod.
//!
//! The range is chosen under a lock from systemd-nspawn's band for such ranges
//! (0x00080000..0x6fffffff, above the host's own users and the usual subordinate IDs), the
//! lowest one no pod directory records, and recorded in the pod (`stage1/private-users`)
//! before the lock is let go; it is free again when the pod is removed. The apps' roots are
//! copies (as with `--no-overlay`) whose owners are moved into the range, as rkt's
//! `--no-overlay` with `--private-users` did, and so are the pod's empty volumes: inside,
//! root owns what the image's root owned. (Idmapped mounts, which would spare the copy, are
//! not used yet.) Stage1 makes the namespace once the pod's root is built.

use crate::error::{bail, Context, Error, Result};
use crate::spec::{PodSpec, Stage1};
use layout::plan::AppPlan;
use layout::pod_dir::PodDir;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// IDs per pod: rkt's shift.
pub const COUNT: u32 = 0x1_0000;
/// The band ranges are taken from (systemd-nspawn's for its private users).
const FIRST: u32 = 0x0008_0000;
const LAST: u32 = 0x6fff_0000;

/// What the pod's flags must be for it.
pub(crate) fn check(pod: &PodSpec) -> Result<()> {
    if pod.stage1 == Some(Stage1::Fly) {
        bail!("--private-users: the fly stage1 runs its app as the host's users; use the default stage1");
    }
    Ok(())
}

/// Chooses the pod's range, records it in the pod, and moves the apps' roots and the pod's
/// empty volumes into it. Returns the range's first host ID.
pub(crate) fn own(store_dir: &Path, pod: &Path, apps: &[AppPlan]) -> Result<u32> {
    let shift = allocate(store_dir, pod)?;
    let dir = PodDir::new(pod);
    for app in apps {
        shift_tree(&dir.app_rootfs(&app.name), shift)
            .with_context(|| format!("moving app {:?}'s root into the pod's user IDs", app.name))?;
    }
    let volumes = dir.volumes_dir();
    if volumes.exists() {
        for v in std::fs::read_dir(&volumes)? {
            let v = v?;
            shift_entry(
                open_dir(&volumes)?.as_fd(),
                &v.file_name().to_string_lossy(),
                shift,
            )?;
        }
    }
    Ok(shift)
}

/// The pod's range, if it has one.
pub(crate) fn read(pod: &PodDir) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(pod.private_users()).ok()?;
    let (s, c) = text.trim().split_once(':')?;
    Some((s.parse().ok()?, c.parse().ok()?))
}

/// The lowest free range, recorded in `pod` while the store's lock is held.
fn allocate(store_dir: &Path, pod: &Path) -> Result<u32> {
    let pods = store_dir.join("pods");
    let lock = std::fs::File::create(pods.join("private-users.lock"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::failed(format!("locking the pods' user ID ranges: {e}")))?;
    let used = used_shifts(&pods);
    let shift = (FIRST..=LAST)
        .step_by(COUNT as usize)
        .find(|s| !used.contains(s))
        .ok_or_else(|| {
            Error::conflict(
                "every user ID range for --private-users is taken; remove pods (rkt gc)",
            )
        })?;
    let record = PodDir::new(pod).private_users();
    std::fs::create_dir_all(record.parent().expect("stage1/"))?;
    std::fs::write(&record, format!("{shift}:{COUNT}"))?;
    Ok(shift)
}

/// Every range a pod of the store records, in any state.
fn used_shifts(pods: &Path) -> Vec<u32> {
    let mut used = Vec::new();
    for state in pod::STATE_DIRS {
        let Ok(rd) = std::fs::read_dir(pods.join(state)) else {
            continue;
        };
        for p in rd.flatten() {
            if let Some((s, _)) = read(&PodDir::new(p.path())) {
                used.push(s);
            }
        }
    }
    used
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::failed(format!("opening {}: {e}", p.display())))
}

/// Moves a tree stage0 made (an app's copied root) into the range: every entry's owner and
/// group plus `shift`, set on the entry itself, symlinks included and never followed, each
/// directory opened relative to its parent's descriptor.
fn shift_tree(root: &Path, shift: u32) -> Result<()> {
    let parent = root.parent().expect("an app root has a parent");
    let name = root.file_name().expect("an app root has a name");
    shift_entry(open_dir(parent)?.as_fd(), &name.to_string_lossy(), shift)
}

fn shift_entry(dir: rustix::fd::BorrowedFd<'_>, name: &str, shift: u32) -> Result<()> {
    let fail = |what: &str, e: rustix::io::Errno| Error::failed(format!("{what} {name:?}: {e}"));
    let st =
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail("stat", e))?;
    let moved = |id: u32| {
        id.checked_add(shift)
            .ok_or_else(|| Error::failed(format!("{name:?}: ID {id} cannot be moved by {shift}")))
    };
    let (uid, gid) = (moved(st.st_uid)?, moved(st.st_gid)?);
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| fail("chown", e))?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    // chown clears the set-user-ID and set-group-ID bits: they are the image's, put back.
    if kind != rustix::fs::FileType::Symlink && st.st_mode & 0o6000 != 0 {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| fail("chmod", e))?;
    }
    if kind == rustix::fs::FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail("open", e))?;
        let names: Vec<String> = rustix::fs::Dir::read_from(&sub)
            .map_err(|e| fail("read", e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        for n in names {
            shift_entry(sub.as_fd(), &n, shift)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn ranges_are_the_lowest_free_and_recorded() {
        let store = tempfile::tempdir().unwrap();
        let pods = store.path().join("pods");
        for state in pod::STATE_DIRS {
            std::fs::create_dir_all(pods.join(state)).unwrap();
        }
        let a = pods.join("run/a");
        let b = pods.join("prepared/b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        assert_eq!(allocate(store.path(), &a).unwrap(), FIRST);
        assert_eq!(allocate(store.path(), &b).unwrap(), FIRST + COUNT);
        assert_eq!(read(&PodDir::new(&a)), Some((FIRST, COUNT)));
        std::fs::remove_dir_all(&a).unwrap();
        let c = pods.join("run/c");
        std::fs::create_dir_all(&c).unwrap();
        assert_eq!(
            allocate(store.path(), &c).unwrap(),
            FIRST,
            "a removed pod's range is free"
        );
    }

    #[test]
    fn trees_move_without_following_symlinks_and_keep_setuid() {
        if !rustix::process::geteuid().is_root() {
            return; // chown needs root; the integration tests run as root
        }
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/su"), b"").unwrap();
        std::fs::set_permissions(root.join("bin/su"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        let outside = t.path().join("outside");
        std::fs::write(&outside, b"").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        shift_tree(&root, 100_000).unwrap();
        let su = std::fs::metadata(root.join("bin/su")).unwrap();
        assert_eq!(
            (su.uid(), su.gid(), su.mode() & 0o7777),
            (100_000, 100_000, 0o4755)
        );
        assert_eq!(
            std::fs::symlink_metadata(root.join("link")).unwrap().uid(),
            100_000
        );
        assert_eq!(
            std::fs::metadata(&outside).unwrap().uid(),
            0,
            "a symlink was followed"
        );
        assert_eq!(std::fs::metadata(&root).unwrap().uid(), 100_000);
    }
}
