//! `rkt fetch` and `rkt image …` against a real Distribution registry, with fixture images
//! built by umoci and pushed by skopeo (see tests/harness/).

mod common;

use common::{Registry, Rkt};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::OnceLock;

/// One plain-HTTP registry with every fixture, shared by the tests of this file.
fn plain() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::with_fixtures("plain"))
}

fn is_short_id(s: &str) -> bool {
    let s = s.trim();
    s.len() == "sha512-".len() + 32
        && s.starts_with("sha512-")
        && s[7..].chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn fetches_every_manifest_and_compression_format() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    for tag in [
        "busybox:latest",
        "busybox:zstd",
        "busybox:plain",
        "busybox:v2s2",
    ] {
        let id = rkt.ok(&["fetch", &reg.image(tag)]);
        assert!(is_short_id(&id), "{tag}: fetch printed {id:?}");
        let rootfs = rkt.rootfs(&id);
        let index = std::fs::read_to_string(rootfs.join("www/index.html")).unwrap();
        assert_eq!(index.trim(), "hello from rkt", "{tag}");
        assert!(rootfs.join("bin/busybox").is_file(), "{tag}");
    }
    // Same content pushed four ways is four manifests, so four images.
    assert_eq!(rkt.image_dirs().len(), 4);
    // Indexes and manifest lists resolve to this host's platform.
    for tag in ["multi:oci", "multi:list"] {
        let id = rkt.ok(&["fetch", &reg.image(tag)]);
        let platform = std::fs::read_to_string(rkt.rootfs(&id).join("platform")).unwrap();
        assert_eq!(platform.trim(), "amd64", "{tag}");
    }
}

#[test]
fn full_flag_and_refetch_reuse() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    let short = rkt.ok(&["fetch", &reg.image("busybox:latest")]);
    let full = rkt.ok(&["fetch", "--full", &reg.image("busybox:latest")]);
    assert_eq!(full.trim().len(), "sha512-".len() + 64);
    assert!(full.starts_with(short.trim()));
    assert_eq!(
        rkt.image_dirs().len(),
        1,
        "a second fetch must reuse the image"
    );
}

#[test]
fn docker_config_becomes_docker2aci_manifest() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    let id = rkt.ok(&["fetch", &reg.image("busybox:latest")]);
    let text = rkt.ok(&["image", "cat-manifest", id.trim()]);
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["acKind"], "ImageManifest");
    // docker2aci's ACIdentifier: appc allows no ':' in a name.
    assert_eq!(
        m["name"],
        format!("{}/busybox", reg.host().replace(':', "_"))
    );
    let labels: BTreeMap<String, String> = m["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().into(),
                l["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(labels["version"], "latest");
    assert_eq!(labels["os"], "linux");
    assert_eq!(labels["arch"], "amd64");
    let app = &m["app"];
    assert_eq!(
        app["exec"],
        serde_json::json!(["/bin/sh", "-c", "echo hello"])
    );
    assert_eq!(app["user"], "1000");
    assert_eq!(app["group"], "1000");
    assert_eq!(app["workingDirectory"], "/www");
    let ports: Vec<(&str, &str, u64)> = app["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["protocol"].as_str().unwrap(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [("53-udp", "udp", 53), ("8080-tcp", "tcp", 8080)]);
    let mps: Vec<(&str, &str)> = app["mountPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        mps,
        [("volume-data", "/data"), ("volume-var-tmp", "/var/tmp")]
    );
    let env: Vec<String> = app["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap()
            )
        })
        .collect();
    assert!(env.contains(&"FOO=bar".to_string()), "{env:?}");
    // rkt's pretty printing is Go's MarshalIndent with tabs, fields in schema order.
    assert!(
        text.starts_with(
            "{\n\t\"acKind\": \"ImageManifest\",\n\t\"acVersion\": \"0.8.11\",\n\t\"name\""
        ),
        "{text}"
    );
}

/// What a tree entry is, for comparing two renders of the same image.
fn describe(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = md.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("symlink->{}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!(
                    "file size={} sum={:x} nlink={}",
                    data.len(),
                    simple_sum(&data),
                    md.nlink()
                )
            } else if ft.is_fifo() {
                "fifo".into()
            } else if ft.is_char_device() {
                format!("char {}", md.rdev())
            } else if ft.is_block_device() {
                format!("block {}", md.rdev())
            } else {
                "other".into()
            };
            // Directory mtimes depend on when children were written; everything else's must
            // match the layer.
            let mtime = if ft.is_dir() {
                String::new()
            } else {
                format!(" mtime={}", md.mtime())
            };
            let xattrs = list_xattrs(&p);
            out.insert(
                rel,
                format!(
                    "{what} mode={:o} uid={} gid={}{mtime} xattrs={xattrs:?}",
                    md.mode() & 0o7777,
                    md.uid(),
                    md.gid()
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn simple_sum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

fn list_xattrs(p: &Path) -> Vec<String> {
    let o = std::process::Command::new("getfattr")
        .args(["-h", "-d", "-m", "user\\."])
        .arg(p)
        .output()
        .expect("getfattr (package attr) runs");
    // getfattr exits 0 with nothing printed for a file without user.* attributes.
    assert!(
        o.status.success(),
        "getfattr {}: {}",
        p.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("user."))
        .map(str::to_string)
        .collect()
}

#[test]
fn rendered_tree_equals_umoci_unpack() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    for tag in ["special", "busybox"] {
        let id = rkt.ok(&["fetch", &reg.image(&format!("{tag}:latest"))]);
        let ours = describe(&rkt.rootfs(&id));
        let bundle = tempfile::tempdir().unwrap();
        let bundle_dir = bundle.path().join("bundle");
        let out = std::process::Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", common::fixtures().display()))
            .arg(&bundle_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "umoci unpack: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = describe(&bundle_dir.join("rootfs"));
        let only_ours: Vec<_> = ours
            .iter()
            .filter(|(k, v)| theirs.get(*k) != Some(v))
            .collect();
        let only_theirs: Vec<_> = theirs
            .iter()
            .filter(|(k, v)| ours.get(*k) != Some(v))
            .collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "{tag}: trees differ\nours:   {only_ours:#?}\numoci:  {only_theirs:#?}"
        );
        assert!(ours.len() > 10, "{tag}: suspiciously small tree: {ours:#?}");
    }
}

#[test]
fn image_list_formats() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    let id = rkt.ok(&["fetch", "--full", &reg.image("busybox:latest")]);
    let id = id.trim();
    let out = rkt.ok(&["image", "list"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split('\t')
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"]);
    let row: Vec<&str> = lines
        .next()
        .unwrap()
        .split('\t')
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(row[0], &id[..19], "short IDs are sha512- and 12 hex digits");
    assert_eq!(
        row[1],
        format!("{}/busybox:latest", reg.host().replace(':', "_"))
    );
    assert!(row[2].ends_with("iB"), "size is humanized: {row:?}");

    let out = rkt.ok(&["image", "list", "--no-legend", "--full", "--fields=id,size"]);
    let row: Vec<&str> = out.trim().split('\t').filter(|s| !s.is_empty()).collect();
    assert_eq!(row[0], id);
    assert!(
        row[1].parse::<u64>().unwrap() > 1_000_000,
        "full size is bytes: {row:?}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["image", "list", "--format=json"])).unwrap();
    assert_eq!(json[0]["id"], id);
    assert!(json[0]["import_time"].as_i64().unwrap() > 1_600_000_000_000_000_000);
    assert!(json[0]["size"].as_u64().unwrap() > 0);
    let pretty = rkt.ok(&["image", "list", "--format=json-pretty"]);
    assert!(pretty.starts_with("[\n\t{\n\t\t\"id\""), "{pretty}");

    let err = rkt.fails(&["image", "list", "--fields=id,bogus"]);
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn image_rm_export_extract_render_gc() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    let id = rkt.ok(&["fetch", "--full", &reg.image("busybox:latest")]);
    let id = id.trim().to_string();
    let work = tempfile::tempdir().unwrap();

    // export: an uncompressed ACI with manifest and rootfs/ that actool accepts.
    let aci = work.path().join("bb.aci");
    rkt.ok(&["image", "export", &id, aci.to_str().unwrap()]);
    let listing = std::process::Command::new("tar")
        .arg("tf")
        .arg(&aci)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.lines().any(|l| l == "manifest"), "{listing}");
    assert!(
        listing.lines().any(|l| l == "rootfs/bin/busybox"),
        "{listing}"
    );
    let err = rkt.fails(&["image", "export", &id, aci.to_str().unwrap()]);
    assert!(err.contains("--overwrite"), "{err}");
    rkt.ok(&["image", "export", "--overwrite", &id, aci.to_str().unwrap()]);

    // extract / render: manifest + rootfs, or the rootfs alone.
    let ex = work.path().join("ex");
    rkt.ok(&["image", "extract", &id, ex.to_str().unwrap()]);
    assert!(ex.join("manifest").is_file() && ex.join("rootfs/bin/busybox").is_file());
    let rd = work.path().join("rd");
    rkt.ok(&[
        "image",
        "render",
        "--rootfs-only",
        &id[..20],
        rd.to_str().unwrap(),
    ]);
    assert!(rd.join("bin/busybox").is_file() && !rd.join("manifest").exists());
    let err = rkt.fails(&["image", "render", &id, rd.to_str().unwrap()]);
    assert!(err.contains("exists"), "{err}");

    // gc with a long grace period keeps a fresh image; rm removes it by name (the Docker
    // spelling of the name finds it too).
    rkt.ok(&["image", "gc"]);
    assert_eq!(rkt.image_dirs().len(), 1);
    let out = rkt.ok(&["image", "rm", &format!("{}/busybox:latest", reg.host())]);
    assert_eq!(
        out.trim(),
        format!("successfully removed aci for image: {id:?}")
    );
    assert!(rkt.image_dirs().is_empty());
    let err = rkt.fails(&["image", "rm", &id]);
    assert!(err.contains("no image"), "{err}");
    // gc then drops the blobs nothing refers to any more.
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    let blobs = std::fs::read_dir(rkt.cas().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "unreferenced blobs must be collected");
}

#[test]
fn image_gc_removes_images_unused_past_grace_period() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    rkt.ok(&["fetch", &reg.image("busybox:latest")]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    rkt.ok(&["image", "gc", "--grace-period=1s"]);
    assert!(rkt.image_dirs().is_empty());
    assert_eq!(
        std::fs::read_dir(rkt.cas().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn pull_policies() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::start("plain");
    reg.push_fixtures();
    let rkt = Rkt::new();
    let image = reg.image("busybox:latest");
    let err = rkt.fails(&["fetch", "--pull-policy=never", &image]);
    assert!(err.contains("--pull-policy=never"), "{err}");
    let id = rkt.ok(&["fetch", &image]);
    let port = reg.port;
    drop(reg); // the registry is gone now
    assert_eq!(rkt.ok(&["fetch", "--pull-policy=new", &image]), id);
    assert_eq!(rkt.ok(&["fetch", "--pull-policy=never", &image]), id);
    let err = rkt.fails(&["fetch", "--pull-policy=update", &image]);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    let err = rkt.fails(&["fetch", "--pull-policy=sometimes", &image]);
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn docker_images_need_insecure_image() {
    let mut rkt = Rkt::new();
    rkt.insecure = "http".into();
    let err = rkt.fails(&["fetch", "docker://127.0.0.1:1/x"]);
    assert!(err.contains("--insecure-options=image"), "{err}");
    let err = rkt.fails(&["fetch", "example.com/app:1.0"]);
    assert!(err.contains("docker://"), "{err}");
}

#[test]
fn retries_server_errors_and_resets() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    // Two 503 answers, then two connections reset, then the real registry.
    let target = reg.port.to_string();
    let (mut proxy, port, _dir) = common::python_server("flaky_proxy.py", &[&target, "2", "2"]);
    let rkt = Rkt::new();
    let out = rkt.run(&[
        "fetch",
        &format!("docker://127.0.0.1:{port}/busybox:latest"),
    ]);
    proxy.kill().ok();
    proxy.wait().ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rkt.image_dirs().len(), 1);
}
