//! A pod's volumes: `--volume` definitions, `--mount`s and the images' mount points matched
//! into bind mounts, host sources resolved at prepare time, empty volumes made in the pod.

use crate::error::{bail, invalid, Result};
use crate::spec::{AppSpec, PodSpec};
use pod::manifest::Volume;
use std::path::Path;

/// Matches volumes to mount points and `--mount`s. Returns the manifest's volumes and the
/// mounts as (volume, target, host source, read-only, recursive).
#[allow(clippy::type_complexity)]
pub(crate) fn volumes(
    dir: &Path,
    pod: &PodSpec,
    app: &AppSpec,
    mount_points: &[image::appc::MountPoint],
) -> Result<(Vec<Volume>, Vec<(String, String, String, bool, bool)>)> {
    let mut vols: Vec<Volume> = pod
        .volumes
        .iter()
        .map(|v| parse_volume(v))
        .collect::<Result<_>>()?;
    let mut wanted: Vec<(String, String)> = Vec::new(); // (volume, target)
    for m in pod.mounts.iter().chain(&app.mounts) {
        let mut volume = None;
        let mut target = None;
        for kv in m.split(',') {
            match kv.split_once('=') {
                Some(("volume", v)) => volume = Some(v.to_string()),
                Some(("target", t)) => target = Some(t.to_string()),
                _ => bail!("invalid --mount {m:?}; use volume=NAME,target=PATH"),
            }
        }
        match (volume, target) {
            (Some(v), Some(t)) if t.starts_with('/') => {
                wanted.retain(|(_, old)| *old != t); // a per-app mount wins over a global one
                wanted.push((v, t));
            }
            _ => {
                bail!("invalid --mount {m:?}; use volume=NAME,target=PATH with an absolute target")
            }
        }
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
                kind: "empty".into(),
                source: None,
                read_only: None,
                recursive: None,
                mode: Some("0755".into()),
                uid: Some(0),
                gid: Some(0),
            });
        }
        let v = vols.iter().find(|v| v.name == vol).expect("just ensured");
        let source = match v.kind.as_str() {
            "host" => host_source(v)?,
            _ => {
                // Relative to the pod directory, which moves between state directories.
                make_empty_volume(&dir.join("volumes").join(&v.name), v)?;
                format!("volumes/{}", v.name)
            }
        };
        // rkt's default (its coreos flavour): recursive binds.
        mounts.push((
            vol,
            target,
            source,
            v.read_only.unwrap_or(false),
            v.recursive.unwrap_or(true),
        ));
    }
    Ok((vols, mounts))
}

/// A host volume's source with every symlink resolved now, at prepare time: stage1 refuses to
/// follow a symlink in it later, so a path swapped for a symlink between `prepare` and
/// `run-prepared` (by whoever owns the directory) cannot redirect the bind.
fn host_source(v: &Volume) -> Result<String> {
    let source = v.source.as_deref().expect("host volumes have a source");
    let real = std::fs::canonicalize(source).map_err(|e| {
        invalid!(
            "volume {}: source {source}: {e}; host volumes bind an existing path",
            v.name
        )
    })?;
    Ok(real.display().to_string())
}

fn make_empty_volume(p: &Path, v: &Volume) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p)?;
    let mode = u32::from_str_radix(v.mode.as_deref().unwrap_or("0755"), 8)
        .map_err(|_| invalid!("volume {}: invalid mode {:?}", v.name, v.mode))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    std::os::unix::fs::chown(p, v.uid, v.gid)?;
    Ok(())
}

/// `NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL]` or
/// `NAME,kind=empty[,mode=0755][,uid=0][,gid=0]`.
pub(crate) fn parse_volume(s: &str) -> Result<Volume> {
    let bad = |why: &str| {
        invalid!("invalid --volume {s:?}: {why}; use NAME,kind=host,source=PATH or NAME,kind=empty")
    };
    let mut parts = s.split(',');
    let name = parts
        .next()
        .filter(|n| !n.is_empty() && !n.contains('='))
        .ok_or_else(|| bad("no name"))?;
    let mut v = Volume {
        name: name.to_string(),
        kind: String::new(),
        source: None,
        read_only: None,
        recursive: None,
        mode: None,
        uid: None,
        gid: None,
    };
    for kv in parts {
        let (k, val) = kv
            .split_once('=')
            .ok_or_else(|| bad(&format!("{kv:?} is not key=value")))?;
        let boolean = |x: &str| crate::spec::parse_bool(x).map_err(|e| bad(&e));
        let number = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| bad(&format!("{k}={x} is not a number")))
        };
        match k {
            "kind" => v.kind = val.to_string(),
            "source" => v.source = Some(val.to_string()),
            "readOnly" => v.read_only = Some(boolean(val)?),
            "recursive" => v.recursive = Some(boolean(val)?),
            "mode" => v.mode = Some(val.to_string()),
            "uid" => v.uid = Some(number(val)?),
            "gid" => v.gid = Some(number(val)?),
            _ => return Err(bad(&format!("unknown key {k:?}"))),
        }
    }
    match v.kind.as_str() {
        "host" => {
            let src = v
                .source
                .as_deref()
                .ok_or_else(|| bad("kind=host needs source=PATH"))?;
            if !src.starts_with('/') {
                return Err(bad("source must be an absolute path"));
            }
            if !Path::new(src).exists() {
                return Err(bad(&format!("source {src} does not exist")));
            }
        }
        "empty" => {
            v.mode.get_or_insert_with(|| "0755".into());
            v.uid.get_or_insert(0);
            v.gid.get_or_insert(0);
        }
        _ => return Err(bad("kind must be host or empty")),
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_syntax() {
        let v = parse_volume("data,kind=host,source=/tmp,readOnly=true").unwrap();
        assert_eq!((v.kind.as_str(), v.read_only), ("host", Some(true)));
        let v = parse_volume("scratch,kind=empty,mode=0700,uid=5").unwrap();
        assert_eq!(
            (v.mode.as_deref(), v.uid, v.gid),
            (Some("0700"), Some(5), Some(0))
        );
        for bad in [
            "",
            "x,kind=host",
            "x,kind=host,source=rel",
            "x,kind=weird",
            "x,kind=empty,uid=a",
            "x,bogus",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }
}
