//! Every manifest rkt writes is valid appc, as appc's own tools read it: `actool validate`
//! (Debian's appc-spec) on each image and pod manifest, and a round trip through appc's Go
//! types (`tests/harness/appc-roundtrip`, built against Debian's golang-github-appc-spec-dev;
//! appc publishes no JSON schema, its Go types are the authority that actool and rkt used).
//!
//! Also: Docker names become valid ACIdentifiers the way docker2aci made them
//! (`127.0.0.1:5000/app` is `127.0.0.1_5000/app`), and a relative command is looked up in the
//! app's PATH inside the image at prepare time, so manifests and processes carry `/bin/sleep`.

mod common;

use common::pods::{busybox, out, pod_dirs, registry, start_pod};
use common::Rkt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `actool`, or a skip (which fails under CI) naming the package.
fn actool() -> bool {
    let found = Command::new("actool").arg("version").output().is_ok();
    if !found {
        common::skip("actool not found: install Debian's appc-spec (scripts/install-deps.sh)");
    }
    found
}

/// `actool validate --type=manifest` on `json`, which must pass as `kind`.
fn assert_actool_valid(json: &str, kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest");
    std::fs::write(&file, json).unwrap();
    let o = Command::new("actool")
        .args(["--debug", "validate", "--type=manifest"])
        .arg(&file)
        .output()
        .unwrap();
    let (stdout, stderr) = out(&o);
    assert!(
        o.status.success() && stderr.contains(&format!("valid {kind}")),
        "actool rejects our {kind}: {stdout}{stderr}\n{json}"
    );
}

/// The appc-roundtrip tool, built once per test run (seconds, offline, from Debian's Go
/// sources of appc), or None with a skip.
fn roundtrip_tool() -> Option<&'static PathBuf> {
    static TOOL: OnceLock<Option<PathBuf>> = OnceLock::new();
    TOOL.get_or_init(|| {
        let src = common::harness("appc-roundtrip/main.go");
        let gopath = Path::new("/usr/share/gocode");
        if !gopath.join("src/github.com/appc/spec/schema").is_dir() {
            common::skip("appc's Go types not found: install golang-github-appc-spec-dev (scripts/install-deps.sh)");
            return None;
        }
        let target = common::repo_root().join("target/appc-roundtrip");
        std::fs::create_dir_all(&target).unwrap();
        let bin = target.join("appc-roundtrip");
        let o = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(&src)
            .env("GOPATH", gopath)
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", target.join("gocache"))
            .output()
            .expect("go (golang-go, which appc-spec depends on)");
        assert!(o.status.success(), "building appc-roundtrip: {:?}", out(&o));
        Some(bin)
    })
    .as_ref()
}

/// Reads `json` with appc's Go types and writes it back: every value we wrote must come back
/// unchanged (a field appc does not know, or reads differently, would be lost or altered).
fn assert_roundtrip(json: &str) {
    let Some(tool) = roundtrip_tool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest");
    std::fs::write(&file, json).unwrap();
    let o = Command::new(tool).arg(&file).output().unwrap();
    let (stdout, stderr) = out(&o);
    assert!(
        o.status.success(),
        "appc's types reject it: {stderr}\n{json}"
    );
    let ours: Value = serde_json::from_str(json).unwrap();
    let theirs: Value = serde_json::from_str(&stdout).unwrap();
    let mut lost = Vec::new();
    compare(&ours, &theirs, "", &mut lost);
    assert!(
        lost.is_empty(),
        "lost or changed through appc's types: {lost:#?}\nours:   {json}\ntheirs: {stdout}"
    );
}

/// Collects the paths of `ours` whose values `theirs` does not carry. Empty values we write
/// (`[]`, `{}`, `false`, `""`) may be left out by appc's `omitempty`.
fn compare(ours: &Value, theirs: &Value, path: &str, lost: &mut Vec<String>) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    };
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => compare(v, w, &format!("{path}.{k}"), lost),
                    None if empty(v) => {}
                    None => lost.push(format!("{path}.{k} = {v}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                compare(v, w, &format!("{path}[{i}]"), lost);
            }
        }
        (v, w) if v == w || (empty(v) && empty(w)) => {}
        (v, w) => lost.push(format!("{path}: ours {v}, appc's {w}")),
    }
}

/// Both checks, and appc's rule that an app's `exec[0]` is absolute (which actool 0.8.11
/// does not check).
fn assert_valid_appc(json: &str, kind: &str) {
    assert_actool_valid(json, kind);
    assert_roundtrip(json);
    let v: Value = serde_json::from_str(json).unwrap();
    let apps: Vec<&Value> = match kind {
        "PodManifest" => v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["app"])
            .collect(),
        _ => vec![&v["app"]],
    };
    for app in apps {
        if let Some(exec0) = app["exec"][0].as_str() {
            assert!(exec0.starts_with('/'), "exec[0] {exec0:?} is not absolute");
        }
    }
}

/// The registry's host (`127.0.0.1:PORT`) and its appc spelling (`127.0.0.1_PORT`).
fn hosts() -> (String, String) {
    let host = registry().host();
    let aci = host.replace(':', "_");
    (host, aci)
}

fn cat_image_manifest(rkt: &Rkt, image: &str) -> String {
    rkt.ok(&["image", "cat-manifest", image])
}

#[test]
fn docker_names_become_valid_acidentifiers() {
    if !common::require_root() || !actool() {
        return;
    }
    let rkt = Rkt::new();
    let (host, aci_host) = hosts();
    let image = busybox();
    rkt.ok(&["fetch", &image]);
    let m: Value = serde_json::from_str(&cat_image_manifest(&rkt, &image)).unwrap();
    assert_eq!(m["name"], format!("{aci_host}/busybox"));
    let annotation = |name: &str| {
        m["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["value"].as_str().unwrap().to_string())
    };
    assert_eq!(
        annotation("appc.io/docker/originalname").as_deref(),
        image.strip_prefix("docker://"),
        "the reference, as docker2aci was given it"
    );
    assert_eq!(
        annotation("appc.io/docker/registryurl").as_deref(),
        Some(host.as_str())
    );
    // rkt's image list: the appc name and the version label.
    let list = rkt.ok(&["image", "list", "--no-legend", "--fields=name"]);
    assert_eq!(list.trim(), format!("{aci_host}/busybox:latest"));
    // The image answers to the name shown, to its Docker spelling and to the reference.
    for query in [
        format!("{aci_host}/busybox:latest"),
        format!("{host}/busybox:latest"),
        format!("{host}/busybox"),
    ] {
        let again: Value = serde_json::from_str(&cat_image_manifest(&rkt, &query)).unwrap();
        assert_eq!(again["name"], m["name"], "{query}");
    }
    // `rkt list` shows a pod's image as rkt did: name:version.
    let uuid = rkt.ok(&["prepare", "--quiet", &image, "--exec=/bin/true"]);
    let row = rkt.ok(&["list", "--no-legend", "--full"]);
    assert!(
        row.contains(uuid.trim()) && row.contains(&format!("{aci_host}/busybox:latest")),
        "{row}"
    );
    rkt.ok(&["rm", uuid.trim()]);
}

/// Images fetched before names were sanitised are stored under the Docker spelling; a run by
/// reference still finds them (no fetch: --pull-policy=never), and what it writes is valid.
#[test]
fn images_stored_before_sanitising_are_still_found() {
    if !common::require_root() || !actool() {
        return;
    }
    let rkt = Rkt::new();
    let (host, aci_host) = hosts();
    let image = busybox();
    rkt.ok(&["fetch", &image]);
    // The store as the previous version left it: both the record and the manifest carry
    // the Docker name.
    let id = rkt.image_dirs().pop().unwrap();
    let dir = rkt.cas().join("images").join(&id);
    let old_name = format!("{host}/busybox");
    for file in ["info.json", "manifest"] {
        let mut v: Value = serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap();
        v["name"] = Value::String(old_name.clone());
        std::fs::write(dir.join(file), serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let uuid = rkt.ok(&[
        "prepare",
        "--quiet",
        "--pull-policy=never",
        &image,
        "--exec=/bin/true",
    ]);
    let pm = rkt.ok(&["cat-manifest", uuid.trim()]);
    assert_valid_appc(&pm, "PodManifest");
    let v: Value = serde_json::from_str(&pm).unwrap();
    assert_eq!(v["apps"][0]["image"]["id"], id);
    assert_eq!(v["apps"][0]["image"]["name"], format!("{aci_host}/busybox"));
    // Shown as rkt shows it, and found by every spelling.
    let list = rkt.ok(&["image", "list", "--no-legend", "--fields=name"]);
    assert_eq!(list.trim(), format!("{aci_host}/busybox:latest"));
    for query in [
        format!("{aci_host}/busybox:latest"),
        format!("{old_name}:latest"),
    ] {
        let m: Value = serde_json::from_str(&cat_image_manifest(&rkt, &query)).unwrap();
        assert_eq!(m["name"], old_name, "{query}");
    }
    // A plain fetch of the reference uses it too: the store still has one image.
    rkt.ok(&["fetch", "--pull-policy=new", &image]);
    assert_eq!(rkt.image_dirs(), [id]);
}

/// The fixture image's manifest (ports, volumes, labels, environment, user, annotations),
/// and the same image exported as an ACI, pass appc's checks.
#[test]
fn docker_image_manifests_are_valid_appc() {
    if !common::require_root() || !actool() {
        return;
    }
    let rkt = Rkt::new();
    for tag in ["latest", "v2s2"] {
        let image = registry().image(&format!("busybox:{tag}"));
        rkt.ok(&["fetch", &image]);
        let m = cat_image_manifest(&rkt, &image);
        let v: Value = serde_json::from_str(&m).unwrap();
        for part in ["ports", "mountPoints", "environment", "userLabels"] {
            assert!(
                !v["app"][part]
                    .as_array()
                    .map_or(v["app"][part].is_null(), |a| a.is_empty()),
                "the fixture should exercise {part}: {m}"
            );
        }
        assert_valid_appc(&m, "ImageManifest");
        let aci = rkt.config.path().join(format!("{tag}.aci"));
        rkt.ok(&["image", "export", &image, aci.to_str().unwrap()]);
        let o = Command::new("actool")
            .args(["--debug", "validate", "--type=appimage"])
            .arg(&aci)
            .output()
            .unwrap();
        assert!(o.status.success(), "actool rejects the ACI: {:?}", out(&o));
    }
}

/// A pod of two apps with limits, volumes of each kind, --mount, a forwarded port and a
/// relative command: its manifest passes appc's checks.
#[test]
fn pod_manifests_are_valid_appc() {
    if !common::require_root() || !actool() {
        return;
    }
    let mut rkt = Rkt::new();
    // Inherited by the app, but a name appc cannot record.
    rkt.env.push(("BASH_FUNC_f%%".into(), "() { :; }".into()));
    let image = busybox();
    let host_dir = tempfile::tempdir().unwrap();
    let host_vol = format!(
        "--volume=data,kind=host,source={}",
        host_dir.path().display()
    );
    let uuid = rkt.ok(&[
        "prepare",
        "--quiet",
        &host_vol,
        "--volume=scratch,kind=empty,mode=0700,uid=1000,gid=1000",
        "--volume=ro,kind=host,source=/etc,readOnly=true",
        "--port=8080-tcp:18080",
        "--port=53-udp:127.0.0.1:10053",
        "--set-env=POD=1",
        "--inherit-env",
        &image,
        "--memory=64Mi",
        "--cpu=500m",
        "--environment=APP=1",
        "--supplementary-gids=50,7",
        "--mount=volume=ro,target=/hostetc",
        "---",
        &image,
        "--name=second",
        "--exec=sleep",
        "--caps-retain=CAP_NET_BIND_SERVICE",
        "--readonly-rootfs=true",
        "--mount=volume=scratch,target=/scratch",
        "--",
        "1",
    ]);
    let pm = rkt.ok(&["cat-manifest", uuid.trim()]);
    assert_valid_appc(&pm, "PodManifest");
    let v: Value = serde_json::from_str(&pm).unwrap();
    assert_eq!(
        v["apps"][1]["app"]["exec"],
        serde_json::json!(["/bin/sleep", "1"])
    );
    assert_eq!(
        v["apps"][0]["app"]["supplementaryGIDs"],
        serde_json::json!([50, 7])
    );
    // The environment rkt's stage0 recorded: the image's, then the pod's and the app's.
    let env: Vec<(String, String)> = v["apps"][0]["app"]["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (name, value) in [("FOO", "bar"), ("POD", "1"), ("APP", "1")] {
        assert!(
            env.contains(&(name.into(), value.into())),
            "{name}: {env:?}"
        );
    }
    assert!(!env.iter().any(|(n, _)| n.contains('%')), "{env:?}");
    // The forwards, as rkt wrote them into the manifest.
    assert_eq!(
        v["ports"],
        serde_json::json!([
            {"name": "8080-tcp", "hostPort": 18080},
            {"name": "53-udp", "hostPort": 10053, "hostIP": "127.0.0.1"}
        ])
    );
    let isolators = v["apps"][0]["app"]["isolators"].to_string();
    assert!(
        isolators.contains("resource/memory") && isolators.contains("resource/cpu"),
        "{isolators}"
    );
    let (_, aci_host) = hosts();
    let rows = rkt.ok(&["list", "--no-legend"]);
    assert_eq!(
        rows.matches(&format!("{aci_host}/busybox:latest")).count(),
        2,
        "{rows}"
    );
}

/// The fixture busybox image with its config changed by `umoci config ARGS`, pushed to the
/// registry under a fresh name; returns its reference.
fn push_variant(name: &str, umoci_args: &[&str]) -> String {
    let layout = tempfile::tempdir().unwrap();
    let oci = layout.path().join("layout");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(common::fixtures())
        .arg(&oci)
        .status()
        .unwrap();
    assert!(copy.success());
    let o = Command::new("umoci")
        .arg("config")
        .arg(format!("--image={}:busybox", oci.display()))
        .arg(format!("--tag={name}"))
        .args(umoci_args)
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci config: {:?}", out(&o));
    let repo = format!("{name}-{}", common::pods::rand_suffix());
    let dest = format!("docker://{}/{repo}:1", registry().host());
    common::run_script(
        "push.sh",
        &[&format!("oci:{}:{name}", oci.display()), &dest],
    );
    registry().image(&format!("{repo}:1"))
}

/// `--exec=sleep` runs as /bin/sleep: in the pod manifest and in the pod's process table.
#[test]
fn relative_exec_is_looked_up_in_the_images_path() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(&rkt, &[], &["--exec=sleep", "--", "600"]);
    let pm: Value = serde_json::from_str(&rkt.ok(&["cat-manifest", &uuid])).unwrap();
    assert_eq!(
        pm["apps"][0]["app"]["exec"],
        serde_json::json!(["/bin/sleep", "600"])
    );
    let ps = rkt.ok(&[
        "enter",
        &uuid,
        "/bin/sh",
        "-c",
        "for p in /proc/[0-9]*; do /bin/busybox tr '\\0' ' ' < $p/cmdline; echo; done",
    ]);
    assert!(
        ps.lines().any(|l| l == "/bin/sleep 600 "),
        "the app's command line in the pod: {ps}"
    );
    rkt.ok(&["stop", "--force", &uuid]);
    let _ = child.wait();
}

/// An image whose Cmd is relative (`["true"]`, no Entrypoint) keeps it in its image
/// manifest, as docker2aci did, and runs as /bin/true.
#[test]
fn relative_image_command_is_looked_up_in_the_images_path() {
    if !common::require_root() || !actool() {
        return;
    }
    let image = push_variant(
        "relcmd",
        &["--clear=config.entrypoint", "--config.cmd=true"],
    );
    let rkt = Rkt::new();
    let save = rkt.config.path().join("uuid");
    rkt.ok(&[
        "run",
        "--net=none",
        &format!("--uuid-file-save={}", save.display()),
        &image,
    ]);
    let im: Value = serde_json::from_str(&cat_image_manifest(&rkt, &image)).unwrap();
    assert_eq!(im["app"]["exec"], serde_json::json!(["true"]));
    let uuid = std::fs::read_to_string(&save).unwrap();
    let pm = rkt.ok(&["cat-manifest", &uuid]);
    assert_valid_appc(&pm, "PodManifest");
    let v: Value = serde_json::from_str(&pm).unwrap();
    assert_eq!(
        v["apps"][0]["app"]["exec"],
        serde_json::json!(["/bin/true"])
    );
    // Exported as an ACI, the relative command goes with it; fetched back as an ACI (appc's
    // types let a relative exec[0] through, and so does rkt), it runs the same way.
    let dir = tempfile::tempdir().unwrap();
    let aci = dir.path().join("relcmd.aci");
    rkt.ok(&["image", "export", &image, aci.to_str().unwrap()]);
    let other = Rkt::new();
    let id = other.ok(&["fetch", "--full", aci.to_str().unwrap()]);
    other.ok(&["run", "--net=none", id.trim()]);
}

/// A command the image does not have is refused at prepare time, naming the command, the
/// image and the PATH searched; no pod is left behind.
#[test]
fn command_not_in_the_images_path_is_refused_at_prepare() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    rkt.ok(&["fetch", &image]);
    let err = rkt.fails(&["prepare", &image, "--exec=no-such-tool"]);
    for part in ["\"no-such-tool\"", image.as_str(), "/usr/bin:/bin"] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
}

/// A Docker config appc cannot express is refused at fetch, naming the image and the
/// problem, as rkt (through docker2aci) refused it; nothing is stored. A relative
/// WorkingDir is taken from the root instead, which appc can express.
#[test]
fn docker_configs_appc_cannot_express() {
    if !common::require_root() || !actool() {
        return;
    }
    let rkt = Rkt::new();
    for (name, args, named) in [
        ("badenv", ["--config.env=1X=a"], "\"1X\""),
        ("port0", ["--config.exposedports=0/tcp"], "\"0/tcp\""),
    ] {
        let image = push_variant(name, &args);
        let err = rkt.fails(&["fetch", &image]);
        assert!(err.contains(named) && err.contains(&image), "{err}");
        assert!(rkt.image_dirs().is_empty(), "{:?}", rkt.image_dirs());
    }
    let image = push_variant("relwd", &["--config.workingdir=www"]);
    rkt.ok(&["fetch", &image]);
    let m = cat_image_manifest(&rkt, &image);
    assert_valid_appc(&m, "ImageManifest");
    let v: Value = serde_json::from_str(&m).unwrap();
    assert_eq!(v["app"]["workingDirectory"], "/www");
}

/// An app that keeps no capability: appc's capability sets must not be empty, so the
/// manifest says it removes every default one.
#[test]
fn app_without_capabilities_is_valid_appc() {
    if !common::require_root() || !actool() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let uuid = rkt.ok(&["prepare", "--quiet", &image, "--exec=/bin/true"]);
    let v: Value = serde_json::from_str(&rkt.ok(&["cat-manifest", uuid.trim()])).unwrap();
    let caps = |v: &Value, kind: &str| -> Vec<String> {
        v["apps"][0]["app"]["isolators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == format!("os/linux/capabilities-{kind}-set"))
            .map(|i| serde_json::from_value(i["value"]["set"].clone()).unwrap())
            .unwrap_or_default()
    };
    let defaults = caps(&v, "retain");
    assert!(!defaults.is_empty());
    let remove = format!("--caps-remove={}", defaults.join(","));
    let uuid = rkt.ok(&["prepare", "--quiet", &image, "--exec=/bin/true", &remove]);
    let pm = rkt.ok(&["cat-manifest", uuid.trim()]);
    assert_valid_appc(&pm, "PodManifest");
    let v: Value = serde_json::from_str(&pm).unwrap();
    assert!(caps(&v, "retain").is_empty(), "{pm}");
    let mut removed = caps(&v, "remove");
    removed.sort();
    let mut want = defaults;
    want.sort();
    assert_eq!(removed, want);
}
