//! `--pod-manifest=FILE`: a whole pod from an appc pod manifest (appc's `pods.md`), as rkt
//! 1.30 took it. The manifest names each app's image by ID (the image must be in the store:
//! nothing is fetched), may give each app whole (its `app` replaces the image's), and carries
//! the pod's volumes, forwarded ports and annotations. The manifests `rkt prepare` writes
//! (`rkt cat-manifest`) are valid input.
//!
//! The manifest is turned into the same typed specs the command line fills, so the pod is
//! prepared by the one path every pod takes; what stage1 needs is resolved the same way
//! (user names, commands on the PATH, empty volumes). Isolators are read into the spec's
//! limits; one this runtime cannot apply is refused, never ignored.

use crate::error::{bail, invalid, Context, Result};
use crate::spec::{AppSpec, HostSource, MountSpec, PodSpec, PortSpec, Volume, VolumeKind};
use crate::Config;
use image::appc::{App, NameValue};
use image::fetch::PullPolicy;
use layout::pod_dir::PodDir;
use serde::Deserialize;
use std::path::Path;

/// A pod manifest as given: appc lets a runtime app leave out `app` (the image's is used).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Given {
    ac_kind: String,
    ac_version: String,
    #[serde(default)]
    apps: Vec<GivenApp>,
    #[serde(default)]
    volumes: Vec<pod::manifest::Volume>,
    #[serde(default)]
    isolators: Vec<serde_json::Value>,
    #[serde(default)]
    annotations: Vec<NameValue>,
    #[serde(default)]
    ports: Vec<pod::manifest::ExposedPort>,
    /// A pod's user annotations and labels (appc 0.8.11): kept only when empty.
    #[serde(default)]
    user_annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    user_labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GivenApp {
    name: String,
    image: pod::manifest::RuntimeImage,
    #[serde(default)]
    app: Option<App>,
    #[serde(default, rename = "readOnlyRootFS")]
    read_only_root_fs: bool,
    #[serde(default)]
    mounts: Vec<pod::manifest::Mount>,
    #[serde(default)]
    annotations: Vec<NameValue>,
}

/// Prepares the pod of the manifest at `path` in `dir`. The pod flags that shape apps
/// (images, volumes, mounts, ports, environment) conflict with it, as in rkt.
pub(crate) fn prepare(
    config: &Config,
    dir: &Path,
    flags: &PodSpec,
    apps: &[AppSpec],
    path: &Path,
) -> Result<()> {
    check_no_conflicts(flags, apps)?;
    let given = read(path)?;
    let mut pod_spec = pod_spec(flags, &given)?;
    pod_spec.pod_manifest = None;
    let app_specs = given
        .apps
        .iter()
        .map(app_spec)
        .collect::<Result<Vec<_>>>()
        .map_err(|e| e.context(format!("--pod-manifest {}", path.display())))?;
    crate::prepare::prepare_pod(config, dir, &pod_spec, &app_specs)
        .map_err(|e| e.context(format!("--pod-manifest {}", path.display())))?;
    keep_annotations(dir, &given)
}

/// rkt's rule: with `--pod-manifest`, the apps and what shapes them come from the manifest
/// alone; runtime flags (--net, --dns, --hostname, --interactive, --no-overlay, …) still apply.
fn check_no_conflicts(flags: &PodSpec, apps: &[AppSpec]) -> Result<()> {
    let conflicts = [
        (!apps.is_empty(), "images"),
        (!flags.volumes.is_empty(), "--volume"),
        (!flags.mounts.is_empty(), "--mount"),
        (!flags.ports.is_empty(), "--port"),
        (!flags.set_env.is_empty(), "--set-env"),
        (!flags.set_env_file.is_empty(), "--set-env-file"),
        (flags.inherit_env, "--inherit-env"),
        (flags.pull_policy != PullPolicy::New, "--pull-policy"),
    ];
    let given: Vec<&str> = conflicts
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect();
    if !given.is_empty() {
        bail!(
            "conflicting flags set with --pod-manifest: {}; the pod manifest gives the apps, their images (by ID), volumes, ports and environment, so leave these out",
            given.join(", ")
        );
    }
    Ok(())
}

fn read(path: &Path) -> Result<Given> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading --pod-manifest {}", path.display()))?;
    let given: Given = serde_json::from_slice(&bytes).map_err(|e| {
        invalid!(
            "--pod-manifest {}: not an appc pod manifest: {e}",
            path.display()
        )
    })?;
    validate(&given).map_err(|e| e.context(format!("--pod-manifest {}", path.display())))?;
    Ok(given)
}

/// What appc requires of a pod manifest, and what this runtime cannot do with one.
fn validate(given: &Given) -> Result<()> {
    if given.ac_kind != "PodManifest" {
        bail!(
            "acKind is {:?}; a pod manifest says \"PodManifest\"",
            given.ac_kind
        );
    }
    if given.ac_version.is_empty() {
        bail!("acVersion is missing");
    }
    if given.apps.is_empty() {
        bail!("it has no apps; give at least one");
    }
    if let Some(i) = given.isolators.first() {
        bail!(
            "pod-level isolators ({}) are not supported; give isolators to each app",
            i["name"].as_str().unwrap_or("(no name)")
        );
    }
    for (i, a) in given.apps.iter().enumerate() {
        image::aci::validate::ac_name(&a.name).map_err(|e| invalid!("app name {e}"))?;
        if given.apps[..i].iter().any(|o| o.name == a.name) {
            bail!("two apps are named {:?}; app names must differ", a.name);
        }
        if a.image.id.is_empty() {
            bail!(
                "app {:?} has no image ID; a pod manifest names each image by its ID (rkt image list --full)",
                a.name
            );
        }
        image::aci::validate::image_id(&a.image.id)
            .map_err(|e| invalid!("app {:?}: image ID {e}", a.name))?;
    }
    Ok(())
}

/// The pod's volumes and ports, with the runtime flags of the command line.
fn pod_spec(flags: &PodSpec, given: &Given) -> Result<PodSpec> {
    let mut spec = flags.clone();
    // Images are named by ID: the store has them or the pod cannot be made.
    spec.pull_policy = PullPolicy::Never;
    spec.volumes = given.volumes.iter().map(volume).collect::<Result<_>>()?;
    spec.ports = given.ports.iter().map(port).collect::<Result<_>>()?;
    spec.user_annotations.extend(given.user_annotations.clone());
    spec.user_labels.extend(given.user_labels.clone());
    Ok(spec)
}

fn volume(v: &pod::manifest::Volume) -> Result<Volume> {
    let kind = match v.kind.as_str() {
        "host" => {
            let source = v.source.as_deref().unwrap_or_default();
            if !source.starts_with('/') {
                bail!(
                    "volume {:?}: a host volume needs an absolute \"source\", not {source:?}",
                    v.name
                );
            }
            VolumeKind::Host(HostSource::Absolute(source.into()))
        }
        "empty" => VolumeKind::Empty {
            mode: match v.mode.as_deref() {
                None => 0o755,
                Some(m) => u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        invalid!("volume {:?}: mode {m:?} is not an octal mode", v.name)
                    })?,
            },
            uid: v.uid.unwrap_or(0),
            gid: v.gid.unwrap_or(0),
        },
        other => bail!(
            "volume {:?}: kind {other:?}; use \"host\" or \"empty\"",
            v.name
        ),
    };
    Ok(Volume {
        name: v.name.clone(),
        kind,
        read_only: v.read_only,
        recursive: v.recursive,
    })
}

fn port(p: &pod::manifest::ExposedPort) -> Result<PortSpec> {
    let host_ip = p
        .host_ip
        .as_deref()
        .map(|ip| {
            ip.parse()
                .map_err(|_| invalid!("port {:?}: hostIP {ip:?} is not an IPv4 address", p.name))
        })
        .transpose()?;
    Ok(PortSpec {
        name: p.name.clone(),
        host_ip,
        host_port: p.host_port,
    })
}

/// One app: its image by ID, the app given whole (or the image's), its mounts.
fn app_spec(a: &GivenApp) -> Result<AppSpec> {
    let mut spec = AppSpec {
        image: a.image.id.clone(),
        name: Some(a.name.clone()),
        readonly_rootfs: a.read_only_root_fs,
        mounts: a
            .mounts
            .iter()
            .map(|m| MountSpec {
                volume: m.volume.clone(),
                target: m.path.clone(),
            })
            .collect(),
        ..Default::default()
    };
    if let Some(app) = &a.app {
        if app.exec.is_empty() {
            bail!("app {:?} has an empty \"exec\"", a.name);
        }
        spec.supplementary_groups = app
            .supplementary_gids
            .iter()
            .map(|g| g.to_string())
            .collect();
        // Its isolators apply when the app is prepared, as an image's do (crate::isolators).
        spec.app = Some(app.clone());
    }
    Ok(spec)
}

/// The written manifest keeps the given pod's and apps' annotations (the metadata service
/// serves them), beside the ones this rkt writes itself.
fn keep_annotations(dir: &Path, given: &Given) -> Result<()> {
    let path = PodDir::new(dir).manifest();
    let mut written: pod::manifest::PodManifest = serde_json::from_slice(&std::fs::read(&path)?)?;
    for a in &given.annotations {
        if !written.annotations.iter().any(|w| w.name == a.name) {
            written.annotations.push(a.clone());
        }
    }
    for app in &mut written.apps {
        if let Some(g) = given.apps.iter().find(|g| g.name == app.name) {
            app.annotations = g.annotations.clone();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&written)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Given> {
        let g: Given = serde_json::from_str(json).map_err(|e| invalid!("{e}"))?;
        validate(&g)?;
        Ok(g)
    }

    const ID: &str = "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minimal_manifest_names_its_images_by_id() {
        let g = parse(&format!(
            r#"{{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{{"name":"web","image":{{"name":"x","id":"{ID}"}}}}]}}"#
        ))
        .unwrap();
        let spec = app_spec(&g.apps[0]).unwrap();
        assert_eq!(
            (spec.image.as_str(), spec.name.as_deref()),
            (ID, Some("web"))
        );
        assert!(spec.app.is_none(), "the image's app is used");
        let no_id = r#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"web","image":{"name":"x","id":""}}]}"#;
        assert!(parse(no_id)
            .unwrap_err()
            .to_string()
            .contains("no image ID"));
        let kind = r#"{"acKind":"ImageManifest","acVersion":"0.8.11","apps":[]}"#;
        assert!(parse(kind).unwrap_err().to_string().contains("acKind"));
    }

    #[test]
    fn flags_that_shape_apps_conflict() {
        let flags = PodSpec {
            set_env: vec![crate::spec::EnvVar::new("A", "1")],
            ..Default::default()
        };
        let e = check_no_conflicts(&flags, &[]).unwrap_err().to_string();
        assert!(e.contains("--set-env"), "{e}");
        let flags = PodSpec {
            runtime: crate::spec::RuntimeSpec {
                net: vec!["host".into()],
                ..Default::default()
            },
            no_overlay: true,
            ..Default::default()
        };
        assert!(check_no_conflicts(&flags, &[]).is_ok());
    }

    #[test]
    fn volumes_and_ports_as_this_rkt_writes_them() {
        let v = volume(&pod::manifest::Volume {
            name: "data".into(),
            kind: "empty".into(),
            source: None,
            read_only: Some(true),
            recursive: None,
            mode: Some("0700".into()),
            uid: Some(5),
            gid: Some(6),
        })
        .unwrap();
        assert_eq!(
            v.kind,
            VolumeKind::Empty {
                mode: 0o700,
                uid: 5,
                gid: 6
            }
        );
        let bad = pod::manifest::Volume {
            name: "h".into(),
            kind: "host".into(),
            source: Some("rel".into()),
            read_only: None,
            recursive: None,
            mode: None,
            uid: None,
            gid: None,
        };
        assert!(volume(&bad).is_err());
        let p = port(&pod::manifest::ExposedPort {
            name: "80-tcp".into(),
            host_port: 8080,
            host_ip: Some("127.0.0.1".into()),
        })
        .unwrap();
        assert_eq!(p.host_port, 8080);
    }
}
