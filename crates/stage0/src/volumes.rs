//! A pod's volumes: the pod's volumes, its `--mount`s and the images' mount points matched
//! into bind mounts, host sources resolved at prepare time, empty volumes made in the pod.

use crate::error::{bail, invalid, Result};
use crate::spec::{AppSpec, HostSource, MountSpec, PodSpec, Volume, VolumeKind};
use layout::plan::Mount as PlanMount;
use std::path::{Path, PathBuf};

/// One mount of an app: the volume it comes from (for the pod manifest) and the bind
/// stage1 makes.
pub(crate) struct AppMount {
    pub volume: String,
    pub bind: PlanMount,
}

/// Checks a pod's volumes before anything is fetched, so bad input fails fast and says why.
pub(crate) fn check(pod: &PodSpec) -> Result<()> {
    for (i, v) in pod.volumes.iter().enumerate() {
        image::aci::validate::ac_name(&v.name).map_err(|e| invalid!("volume name {e}"))?;
        if pod.volumes[..i].iter().any(|o| o.name == v.name) {
            bail!("volume {:?} is defined twice", v.name);
        }
        if let VolumeKind::Host(HostSource::Absolute(p)) = &v.kind {
            if !p.is_absolute() {
                bail!(
                    "volume {}: source {} must be an absolute path",
                    v.name,
                    p.display()
                );
            }
        }
    }
    for m in pod.mounts.iter() {
        check_mount(m)?;
    }
    Ok(())
}

fn check_mount(m: &MountSpec) -> Result<()> {
    if !m.target.starts_with('/') {
        bail!(
            "mount of volume {:?}: target {:?} must be an absolute path inside the app",
            m.volume,
            m.target
        );
    }
    Ok(())
}

/// Matches volumes to mount points and mounts. Returns the manifest's volumes and the app's
/// mounts.
pub(crate) fn volumes(
    dir: &Path,
    pod: &PodSpec,
    app: &AppSpec,
    mount_points: &[image::appc::MountPoint],
) -> Result<(Vec<pod::manifest::Volume>, Vec<AppMount>)> {
    let mut vols: Vec<Volume> = pod.volumes.clone();
    let mut wanted: Vec<(String, String)> = Vec::new(); // (volume, target)
    for m in pod.mounts.iter().chain(&app.mounts) {
        check_mount(m)?;
        wanted.retain(|(_, old)| *old != m.target); // a per-app mount wins over a global one
        wanted.push((m.volume.clone(), m.target.clone()));
    }
    for mp in mount_points {
        if !wanted.iter().any(|(_, t)| *t == mp.path) {
            wanted.push((mp.name.clone(), mp.path.clone()));
        }
    }
    let mut mounts = Vec::new();
    for (vol, target) in wanted {
        if !vols.iter().any(|v| v.name == vol) {
            let from_mount_point = mount_points.iter().any(|m| m.name == vol);
            if !from_mount_point {
                bail!("--mount names volume {vol:?}, but no --volume defines it");
            }
            vols.push(Volume {
                name: vol.clone(),
                kind: VolumeKind::Empty {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                },
                read_only: None,
                recursive: None,
            });
        }
        let v = vols.iter().find(|v| v.name == vol).expect("just ensured");
        let source = match &v.kind {
            VolumeKind::Host(source) => host_source(&v.name, source)?,
            VolumeKind::Empty { mode, uid, gid } => {
                // Relative to the pod directory, which moves between state directories.
                make_empty_volume(
                    &layout::pod_dir::PodDir::new(dir).volume(&v.name),
                    *mode,
                    *uid,
                    *gid,
                )?;
                layout::pod_dir::volume_rel(&v.name)
            }
        };
        mounts.push(AppMount {
            volume: vol,
            bind: PlanMount {
                source,
                target,
                read_only: v.read_only.unwrap_or(false),
                // rkt's defaults: recursive binds, but not for fly (where a volume of `/` would
                // bring every host mount).
                recursive: v
                    .recursive
                    .unwrap_or(pod.stage1 != Some(crate::spec::Stage1::Fly)),
            },
        });
    }
    Ok((vols.iter().map(manifest_volume).collect(), mounts))
}

/// A volume as the appc pod manifest records it.
fn manifest_volume(v: &Volume) -> pod::manifest::Volume {
    let mut m = pod::manifest::Volume {
        name: v.name.clone(),
        kind: String::new(),
        source: None,
        read_only: v.read_only,
        recursive: v.recursive,
        mode: None,
        uid: None,
        gid: None,
    };
    match &v.kind {
        VolumeKind::Host(source) => {
            m.kind = "host".into();
            m.source = Some(match source {
                HostSource::Absolute(p) => p.display().to_string(),
                HostSource::Beneath { root, path } => root.join(path).display().to_string(),
            });
        }
        VolumeKind::Empty { mode, uid, gid } => {
            m.kind = "empty".into();
            m.mode = Some(format!("{mode:04o}"));
            m.uid = Some(*uid);
            m.gid = Some(*gid);
        }
    }
    m
}

/// A host volume's source with every symlink resolved now, at prepare time: stage1 refuses to
/// follow a symlink in it later, so a path swapped for a symlink between `prepare` and
/// `run-prepared` (by whoever owns the directory) cannot redirect the bind.
fn host_source(name: &str, source: &HostSource) -> Result<String> {
    let real = match source {
        HostSource::Absolute(p) => std::fs::canonicalize(p).map_err(|e| {
            invalid!(
                "volume {name}: source {}: {e}; host volumes bind an existing path",
                p.display()
            )
        })?,
        HostSource::Beneath { root, path } => beneath(root, path).map_err(|e| {
            invalid!(
                "volume {name}: source {} (inside {}): {e}",
                path.display(),
                root.display()
            )
        })?,
    };
    Ok(real.display().to_string())
}

/// The real path of `path` resolved beneath `root` (openat2 `RESOLVE_BENEATH`): symlinks are
/// followed only while they stay beneath it, and `..` may not climb out. What it names must
/// exist.
pub(crate) fn beneath(root: &Path, path: &Path) -> std::result::Result<PathBuf, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = std::fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let dir = rustix::fs::open(
        &root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("{}: {e}", root.display()))?;
    let rel = match path.to_str().map(|p| p.trim_start_matches('/')) {
        Some("") => Path::new("."),
        _ if path.is_absolute() => {
            return Err("the path must be relative to the directory".into());
        }
        _ => path,
    };
    let fd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        rustix::io::Errno::XDEV => {
            "it leads outside that directory (through \"..\" or a symlink); only paths inside it may be bound".to_string()
        }
        rustix::io::Errno::NOENT => "no such file or directory; bind an existing path".into(),
        e => e.to_string(),
    })?;
    let real = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        rustix::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(|e| format!("finding where it leads: {e}"))?;
    // The kernel confined the walk; this says the same in another way, should a mount have
    // been made beneath the directory meanwhile.
    if !real.starts_with(&root) {
        return Err(format!(
            "it leads to {}, outside the directory",
            real.display()
        ));
    }
    Ok(real)
}

fn make_empty_volume(p: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn beneath_follows_links_inside_and_refuses_the_way_out() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("alloc");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        symlink("data/sub", root.join("inner")).unwrap();
        symlink(t.path().join("outside"), root.join("abs")).unwrap();
        symlink("../outside", root.join("rel")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        let real = |p: &str| beneath(&root, Path::new(p));
        let canon = std::fs::canonicalize(&root).unwrap();
        assert_eq!(real("data").unwrap(), canon.join("data"));
        assert_eq!(real("inner").unwrap(), canon.join("data/sub"));
        assert_eq!(real("data/sub/..").unwrap(), canon.join("data"));
        for out in ["abs", "rel", "etc", "..", "data/../..", "etc/passwd"] {
            let e = real(out).unwrap_err();
            assert!(e.contains("outside that directory"), "{out}: {e}");
        }
        assert!(real("missing").unwrap_err().contains("no such file"));
        assert!(real("/data").is_err());
    }
}
