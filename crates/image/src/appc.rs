//! The docker2aci mapping from a Docker/OCI image config to an appc image manifest (whose
//! types live in the `appc-schema` crate and are re-exported here).
//!
//! Nomad's `port_map` and `rkt cat-manifest` users depend on the names this mapping produces:
//! ports are named `<port>-<proto>` (`8080-tcp`), volumes `volume-<path>` (`volume-var-tmp`).

use serde::Deserialize;
use std::collections::BTreeMap;

pub use appc_schema::{App, Dependency, ImageManifest, MountPoint, NameValue, Port, AC_VERSION};

/// The parts of a Docker/OCI image config that docker2aci read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<DockerRunConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerRunConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Where an image came from, for the `appc.io/docker/*` provenance annotations.
pub struct Provenance<'a> {
    pub original_name: &'a str,
    pub registry: &'a str,
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub config_digest: &'a str,
    pub manifest_digest: &'a str,
}

/// Builds the appc manifest docker2aci produced for a schema2/OCI image.
pub fn from_docker(
    name: &str,
    cfg: &DockerImageConfig,
    prov: &Provenance,
) -> Result<ImageManifest, String> {
    let mut labels = Vec::new();
    if let Some(tag) = prov.tag {
        labels.push(nv("version", tag));
    }
    let (os, arch) = appc_os_arch(&cfg.os, &cfg.architecture, cfg.variant.as_deref());
    labels.push(nv("os", &os));
    labels.push(nv("arch", &arch));
    labels.sort_by(|a, b| a.name.cmp(&b.name));

    let mut annotations = Vec::new();
    let mut annotate = |k: &str, v: &str| {
        if !v.is_empty() {
            annotations.push(nv(k, v));
        }
    };
    annotate("author", cfg.author.as_deref().unwrap_or(""));
    annotate("created", cfg.created.as_deref().unwrap_or(""));
    annotate("appc.io/docker/originalname", prov.original_name);
    annotate("appc.io/docker/registryurl", prov.registry);
    annotate("appc.io/docker/repository", prov.repository);
    annotate("appc.io/docker/imageid", prov.config_digest);
    annotate("appc.io/docker/manifesthash", prov.manifest_digest);

    let app = match &cfg.config {
        Some(rc) => {
            let entrypoint = rc.entrypoint.clone().unwrap_or_default();
            let cmd = rc.cmd.clone().unwrap_or_default();
            if !entrypoint.is_empty() {
                annotate(
                    "appc.io/docker/entrypoint",
                    &serde_json::to_string(&entrypoint).unwrap_or_default(),
                );
            }
            if !cmd.is_empty() {
                annotate(
                    "appc.io/docker/cmd",
                    &serde_json::to_string(&cmd).unwrap_or_default(),
                );
            }
            Some(app_from(rc, entrypoint, cmd)?)
        }
        None => None,
    };
    Ok(ImageManifest {
        ac_kind: "ImageManifest".into(),
        ac_version: AC_VERSION.into(),
        name: name.to_string(),
        labels,
        app,
        annotations,
        dependencies: Vec::new(),
        path_whitelist: Vec::new(),
    })
}

fn app_from(
    rc: &DockerRunConfig,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
) -> Result<App, String> {
    let (user, group) = docker_user(rc.user.as_deref().unwrap_or(""));
    let environment = rc
        .env
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| valid_env_name(k).map(|()| (k, v)))
        .collect::<Result<Vec<_>, String>>()?
        .into_iter()
        .fold(Vec::<NameValue>::new(), |mut env, (k, v)| {
            // appc's Environment.Set replaces an earlier value of the same name.
            match env.iter_mut().find(|e| e.name == k) {
                Some(e) => e.value = v.to_string(),
                None => env.push(nv(k, v)),
            }
            env
        });
    Ok(App {
        exec: entrypoint.into_iter().chain(cmd).collect(),
        user,
        group,
        supplementary_gids: Vec::new(),
        working_directory: absolute_workdir(rc.working_dir.as_deref().unwrap_or_default()),
        environment,
        isolators: Vec::new(),
        mount_points: mount_points(rc.volumes.iter().flat_map(|v| v.keys()))?,
        ports: ports(rc.exposed_ports.iter().flat_map(|p| p.keys()))?,
        user_labels: rc.labels.clone().unwrap_or_default(),
    })
}

/// appc's rule for environment names: `[A-Za-z_][A-Za-z_0-9.-]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// docker2aci's manifests failed appc's own checks on other names, so rkt refused such
/// images; so do we, by name.
fn valid_env_name(name: &str) -> Result<(), String> {
    if is_env_name(name) {
        Ok(())
    } else {
        Err(format!(
            "environment variable {name:?} in the image config is not a valid appc name (letters, digits, '_', '.' and '-', not starting with a digit)"
        ))
    }
}

/// appc requires an absolute working directory; a relative one in a Docker config is taken
/// from the root, which is where the app would start in it anyway.
fn absolute_workdir(dir: &str) -> String {
    if dir.is_empty() || dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("/{dir}")
    }
}

/// `"u[:g]"` → (u, g), (u, u) without a group, ("0", "0") when empty.
pub fn docker_user(user: &str) -> (String, String) {
    if user.is_empty() {
        return ("0".into(), "0".into());
    }
    match user.split_once(':') {
        Some((u, g)) => (u.to_string(), g.to_string()),
        None => (user.to_string(), user.to_string()),
    }
}

/// appc's SanitizeACName: lowercase, runs of invalid characters become '-', no '-' at the edges.
pub fn sanitize_ac_name(s: &str) -> Result<String, String> {
    // Each invalid character becomes one '-', as appc's regexp replacement does.
    let out: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        Err(format!("{s:?} has no character valid in an appc name"))
    } else {
        Ok(out)
    }
}

/// appc's SanitizeACIdentifier, which docker2aci applied to `<registry>/<repository>`:
/// lowercase, each character outside `a-z0-9-._~/` becomes `_`, and separators at the edges
/// go. So `127.0.0.1:5000/app` is named `127.0.0.1_5000/app`: appc rejects `:` in a name.
pub fn sanitize_ac_identifier(s: &str) -> Result<String, String> {
    let separator = |c: char| matches!(c, '-' | '.' | '_' | '~' | '/');
    let out: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || separator(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_matches(separator).to_string();
    if out.is_empty() {
        Err(format!(
            "{s:?} has no character valid in an appc identifier"
        ))
    } else {
        Ok(out)
    }
}

fn mount_points<'a>(paths: impl Iterator<Item = &'a String>) -> Result<Vec<MountPoint>, String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut mps = Vec::new();
    for p in paths {
        let mut name = sanitize_ac_name(&format!("volume/{}", p.trim_start_matches('/')))?;
        let n = seen.entry(name.clone()).or_insert(0);
        if *n > 0 {
            name = format!("{name}-{n}");
        }
        *n += 1;
        mps.push(MountPoint {
            name,
            path: p.clone(),
            read_only: false,
        });
    }
    mps.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(mps)
}

fn ports<'a>(exposed: impl Iterator<Item = &'a String>) -> Result<Vec<Port>, String> {
    let mut out = Vec::new();
    for spec in exposed {
        let (num, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        // appc's ports are 1-65535.
        let port: u16 = num
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("exposed port {spec:?} is not a port number (1-65535)"))?;
        out.push(Port {
            name: sanitize_ac_name(spec)?,
            protocol: proto.to_string(),
            port,
            count: 1,
            socket_activated: false,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Go's (os, arch, variant) → appc's (os, arch), as appc's ToAppcOSArch maps them.
pub fn appc_os_arch(os: &str, arch: &str, variant: Option<&str>) -> (String, String) {
    let os = if os.is_empty() { "linux" } else { os };
    let arch = match (arch, variant.unwrap_or("")) {
        ("386", _) => "i386",
        ("arm64", _) => "aarch64",
        ("arm", "7") | ("arm", "v7") => "armv7l",
        ("arm", _) => "armv6l",
        ("", _) => "amd64",
        (a, _) => a,
    };
    (os.to_string(), arch.to_string())
}

fn nv(name: &str, value: &str) -> NameValue {
    NameValue {
        name: name.to_string(),
        value: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DockerImageConfig {
        serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{
                "User":"1000","Env":["PATH=/bin","FOO=a=b"],"Entrypoint":["/bin/sh","-c"],
                "Cmd":["echo hi"],"WorkingDir":"/www",
                "ExposedPorts":{"8080/tcp":{},"53/udp":{},"6379":{}},
                "Volumes":{"/data":{},"/var/tmp":{}},"Labels":{"a":"b"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn docker2aci_mapping() {
        let prov = Provenance {
            original_name: "docker://r:5000/app:1.4",
            registry: "r:5000",
            repository: "app",
            tag: Some("1.4"),
            config_digest: "sha256:c",
            manifest_digest: "sha256:m",
        };
        let m = from_docker("r:5000/app", &config(), &prov).unwrap();
        assert_eq!(m.label("version"), Some("1.4"));
        assert_eq!(m.label("arch"), Some("amd64"));
        let app = m.app.clone().unwrap();
        assert_eq!(app.exec, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!((app.user.as_str(), app.group.as_str()), ("1000", "1000"));
        assert_eq!(app.environment[1], nv("FOO", "a=b"));
        let names: Vec<_> = app.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["53-udp", "6379", "8080-tcp"]);
        assert_eq!(app.ports[0].protocol, "udp");
        let mps: Vec<_> = app.mount_points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(mps, ["volume-data", "volume-var-tmp"]);
        assert_eq!(m.annotation("appc.io/docker/cmd"), Some(r#"["echo hi"]"#));
    }

    #[test]
    fn users_and_names() {
        assert_eq!(docker_user(""), ("0".into(), "0".into()));
        assert_eq!(docker_user("app:staff"), ("app".into(), "staff".into()));
        assert_eq!(
            sanitize_ac_name("volume/var/lib/my_data").unwrap(),
            "volume-var-lib-my-data"
        );
        assert_eq!(appc_os_arch("linux", "arm64", None).1, "aarch64");
    }

    #[test]
    fn identifiers_as_docker2aci_sanitised_them() {
        for (docker, aci) in [
            ("127.0.0.1:5000/app", "127.0.0.1_5000/app"),
            (
                "registry-1.docker.io/library/redis",
                "registry-1.docker.io/library/redis",
            ),
            (
                "Registry.Example:443/team/my_app",
                "registry.example_443/team/my_app",
            ),
            ("/-x:", "x"),
        ] {
            assert_eq!(sanitize_ac_identifier(docker).unwrap(), aci, "{docker}");
        }
        assert!(sanitize_ac_identifier(":::").is_err());
    }

    #[test]
    fn what_appc_would_reject_is_fixed_or_refused() {
        let with = |rc: &str| -> DockerImageConfig {
            serde_json::from_str(&format!(r#"{{"config":{rc}}}"#)).unwrap()
        };
        let prov = Provenance {
            original_name: "docker://r/app:1",
            registry: "r",
            repository: "app",
            tag: Some("1"),
            config_digest: "sha256:c",
            manifest_digest: "sha256:m",
        };
        let m = from_docker("r/app", &with(r#"{"WorkingDir":"srv/www"}"#), &prov).unwrap();
        assert_eq!(m.app.unwrap().working_directory, "/srv/www");
        for (rc, named) in [
            (r#"{"Env":["1X=a"]}"#, "\"1X\""),
            (r#"{"Env":["MY VAR=a"]}"#, "\"MY VAR\""),
            (r#"{"ExposedPorts":{"0/tcp":{}}}"#, "\"0/tcp\""),
        ] {
            let e = from_docker("r/app", &with(rc), &prov).unwrap_err();
            assert!(e.contains(named), "{e}");
        }
        let ok = from_docker("r/app", &with(r#"{"Env":["_a.b-c=1"]}"#), &prov).unwrap();
        assert_eq!(ok.app.unwrap().environment[0].name, "_a.b-c");
    }
}
