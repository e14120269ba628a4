//! `rkt export UUID FILE.aci`: an exited pod's app, with what it changed in its root, as a
//! gzip-compressed ACI whose manifest is the app's image's (as rkt 1.30 wrote it).
//!
//! With overlay, the app's root is its image's tree under the pod's upper layer. Those two
//! are put together again by a read-only overlay mounted in a mount namespace of a thread of
//! its own (`lowerdir=UPPER:IMAGE`, so the upper layer's whiteouts and opaque directories
//! apply), which the kernel tears down with the thread: no mount reaches the host's table.
//! With `--no-overlay`, the app's copy is archived as it is.
//!
//! The ACI is written beside its destination and renamed into place, so a failure leaves
//! nothing half-written; the pod is held with a shared lock meanwhile, so `rm` and `gc`
//! wait for the export instead of removing the pod under it.

use crate::error::{bail, Context, Error, Result};
use crate::Config;
use layout::plan::Plan;
use pod::{Pods, State};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exports `app` (or the pod's only app) of the exited pod `uuid` to `out`.
pub fn export(
    config: &Config,
    uuid: &str,
    app: Option<&str>,
    out: &Path,
    overwrite: bool,
) -> Result<()> {
    if out.extension().is_none_or(|e| e != "aci") {
        bail!("extension must be .aci (given {})", out.display());
    }
    if out.exists() && !overwrite {
        bail!("target file {} exists (try --overwrite)", out.display());
    }
    let pods = Pods::open(&config.dir)?;
    let pod = pods.find(uuid)?;
    if !matches!(pod.state, State::Exited | State::ExitedGarbage) {
        return Err(Error::conflict(format!(
            "pod {} is {}; only exited pods can be exported (stop it first)",
            pod.uuid,
            pod.state.as_str()
        )));
    }
    let _shared = pod::lock_dir(&pod.path, rustix::fs::FlockOperation::NonBlockingLockShared)
        .map_err(|_| {
            Error::conflict(format!(
                "pod {} is busy (being removed by another rkt)",
                pod.uuid
            ))
        })?;
    let name = choose_app(&pod.manifest()?, app)?;
    let plan = Plan::load(&pod.dir().prepared()).context("reading the pod's apps")?;
    let app_plan = plan
        .apps
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| Error::failed(format!("the pod has no plan for app {name:?}")))?;
    let image_id = std::fs::read_to_string(pod.dir().tree_store_id(&name))
        .with_context(|| format!("reading app {name:?}'s image ID"))?;
    let store = image::store::Store::open(&config.dir)?;
    let manifest = store.manifest_bytes(image_id.trim())?;
    let source = if let Some((shift, _)) = crate::userns::read(&pod.dir()) {
        // --private-users: a copy owned by the pod's range, moved back for the ACI.
        Source::Shifted(pod.dir().app_rootfs(&name), shift)
    } else if app_plan.overlay {
        Source::Overlay {
            upper: pod.dir().overlay_upper(&name),
            image: PathBuf::from(&app_plan.image_rootfs),
            mount_point: pod.dir().export_scratch(std::process::id()),
        }
    } else {
        Source::Tree(pod.dir().app_rootfs(&name))
    };
    write_atomically(out, |file| write_aci(file, &manifest, &source))
}

/// rkt's rule: the app named by `--app`, or the pod's only one.
fn choose_app(manifest: &pod::manifest::PodManifest, app: Option<&str>) -> Result<String> {
    let names: Vec<&str> = manifest.apps.iter().map(|a| a.name.as_str()).collect();
    match (app, names.as_slice()) {
        (Some(a), _) if names.contains(&a) => Ok(a.to_string()),
        (Some(a), _) => bail!(
            "app {a} is not present in pod (it has {})",
            names.join(", ")
        ),
        (None, [only]) => Ok(only.to_string()),
        (None, []) => bail!("pod contains zero apps"),
        (None, many) => bail!(
            "pod contains multiple apps ({}): specify app using \"rkt export --app= ...\"",
            many.join(", ")
        ),
    }
}

/// Where the app's root is.
enum Source {
    /// The image's tree under the pod's upper layer, merged at `mount_point`.
    Overlay {
        upper: PathBuf,
        image: PathBuf,
        mount_point: PathBuf,
    },
    /// A tree of its own (the `--no-overlay` copy).
    Tree(PathBuf),
    /// A copy whose owners were moved up by the second field (`--private-users`).
    Shifted(PathBuf, u32),
}

/// Writes through a file beside `out`, renamed over it only once complete and synced.
fn write_atomically(out: &Path, write: impl FnOnce(&std::fs::File) -> Result<()>) -> Result<()> {
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let tmp = out.with_file_name(format!(".{name}.rkt-tmp-{}", std::process::id()));
    let result = std::fs::File::create(&tmp)
        .with_context(|| format!("unable to open target {}", tmp.display()))
        .and_then(|file| {
            write(&file)?;
            file.sync_all()?;
            Ok(())
        })
        .and_then(|()| {
            std::fs::rename(&tmp, out)
                .with_context(|| format!("moving the ACI to {}", out.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A gzip-compressed ACI: `manifest`, then `rootfs/` from `source`.
fn write_aci(file: &std::fs::File, manifest: &[u8], source: &Source) -> Result<()> {
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    tar.append_data(&mut h, "manifest", manifest)?;
    let tar = match source {
        Source::Tree(root) => {
            tar.append_dir_all("rootfs", root)
                .with_context(|| format!("archiving {}", root.display()))?;
            tar
        }
        Source::Overlay {
            upper,
            image,
            mount_point,
        } => archive_merged(tar, upper, image, mount_point)?,
        Source::Shifted(root, shift) => {
            let mut tar = tar;
            append_unshifted(&mut tar, root, Path::new("rootfs"), *shift)
                .with_context(|| format!("archiving {}", root.display()))?;
            tar
        }
    };
    tar.into_inner()?.finish()?.flush()?;
    Ok(())
}

type Archive<'a> = tar::Builder<flate2::write::GzEncoder<std::io::BufWriter<&'a std::fs::File>>>;

/// Archives the overlay of `upper` on `image` from a thread in a mount namespace of its own.
fn archive_merged<'a>(
    tar: Archive<'a>,
    upper: &Path,
    image: &Path,
    mount_point: &Path,
) -> Result<Archive<'a>> {
    std::fs::create_dir_all(mount_point)?;
    let result = std::thread::scope(|s| {
        s.spawn(|| -> Result<Archive<'a>> {
            let mut tar = tar;
            private_mount_namespace()?;
            let opts = format!("lowerdir={}:{}", upper.display(), image.display());
            let data = std::ffi::CString::new(opts.clone())
                .map_err(|_| Error::failed("a NUL byte in the app's layer paths"))?;
            rustix::mount::mount(
                "overlay",
                mount_point,
                "overlay",
                rustix::mount::MountFlags::RDONLY,
                Some(data.as_c_str()),
            )
            .map_err(|e| Error::failed(format!("mounting the app's root ({opts}): {e}")))?;
            tar.append_dir_all("rootfs", mount_point)
                .context("archiving the app's root")?;
            Ok(tar)
        })
        .join()
        .unwrap_or_else(|_| Err(Error::failed("the export thread panicked")))
    });
    // The mount went with the thread's namespace.
    let _ = std::fs::remove_dir(mount_point);
    result
}

/// Archives the tree at `path` (our own copy: symlinks are archived, never followed) as
/// `name`, each owner and group moved back down by `shift` (those outside the pod's range
/// become nobody, as the pod saw them).
fn append_unshifted<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    shift: u32,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let back = |id: u32| {
        id.checked_sub(shift)
            .filter(|i| *i < crate::userns::COUNT)
            .unwrap_or(65534)
    };
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    h.set_uid(back(meta.uid()).into());
    h.set_gid(back(meta.gid()).into());
    let kind = meta.file_type();
    if kind.is_symlink() {
        tar.append_link(&mut h, name, std::fs::read_link(path)?)?;
    } else if kind.is_file() {
        tar.append_data(&mut h, name, std::fs::File::open(path)?)?;
    } else {
        h.set_size(0);
        tar.append_data(&mut h, name, std::io::empty())?;
    }
    if kind.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            append_unshifted(tar, &e.path(), &name.join(e.file_name()), shift)?;
        }
    }
    Ok(())
}

/// This thread alone in a new mount namespace whose mounts propagate nowhere.
fn private_mount_namespace() -> Result<()> {
    use rustix::thread::{unshare_unsafe, UnshareFlags};
    // SAFETY: unsharing the mount namespace (and the fs struct it implies) changes only this
    // thread's view of mounts, root and working directory; no other thread depends on them.
    unsafe { unshare_unsafe(UnshareFlags::NEWNS) }
        .map_err(|e| Error::failed(format!("a mount namespace for the export: {e}")))?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::REC | rustix::mount::MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| Error::failed(format!("making the export's mounts private: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(apps: &[&str]) -> pod::manifest::PodManifest {
        let json = serde_json::json!({
            "acKind": "PodManifest", "acVersion": "0.8.11",
            "apps": apps.iter().map(|n| serde_json::json!({
                "name": n, "image": {"name": "x", "id": "sha512-0"},
                "app": {"user": "0", "group": "0"}
            })).collect::<Vec<_>>()
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_only_app_or_the_one_named() {
        assert_eq!(choose_app(&manifest(&["a"]), None).unwrap(), "a");
        assert_eq!(choose_app(&manifest(&["a", "b"]), Some("b")).unwrap(), "b");
        let e = choose_app(&manifest(&["a", "b"]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--app") && e.contains("a, b"), "{e}");
        assert!(choose_app(&manifest(&["a"]), Some("z")).is_err());
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("x.aci");
        let e = write_atomically(&out, |_| Err(Error::failed("boom"))).unwrap_err();
        assert!(e.to_string().contains("boom"));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
