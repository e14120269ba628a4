//! ACI images: fetched from files and URLs and by appc discovery, verified against keys that
//! `rkt trust` stored, and run. The ACIs are built by actool, the keys and signatures by gpg
//! (`tests/harness/aci_fixtures.sh`); discovery is served over HTTPS by
//! `tests/harness/discovery_server.py` for names that resolve, through `/etc/hosts` entries
//! the test adds and removes, to a loopback address.

mod common;

use common::discovery::{aci_fixtures, DiscoveryServer};
use common::Rkt;
use std::path::{Path, PathBuf};

fn fx(name: &str) -> PathBuf {
    aci_fixtures().join(name)
}

fn fxs(name: &str) -> String {
    fx(name).display().to_string()
}

/// A store whose fetches verify signatures (`--insecure-options=none`).
fn verifying() -> Rkt {
    let mut rkt = Rkt::new();
    rkt.insecure = "none".into();
    rkt
}

fn trust(rkt: &Rkt, prefix: &str, key: &str) -> String {
    rkt.ok(&[
        "trust",
        &format!("--prefix={prefix}"),
        "--skip-fingerprint-review",
        &fxs(&format!("keys/{key}.asc")),
    ])
}

fn hello_id() -> String {
    std::fs::read_to_string(fx("hello.id"))
        .unwrap()
        .trim()
        .to_string()
}

/// Nothing stored, nothing left in the store's scratch space.
fn assert_nothing_stored(rkt: &Rkt, case: &str) {
    assert!(
        rkt.image_dirs().is_empty(),
        "{case}: stored {:?}",
        rkt.image_dirs()
    );
    assert!(
        rkt.tmp_entries().is_empty(),
        "{case}: left {:?}",
        rkt.tmp_entries()
    );
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn signed_acis_in_every_compression_fetch_verified_under_one_id_and_run() {
    if !common::require_root() {
        return;
    }
    let rkt = verifying();
    let out = trust(&rkt, "aci.test/hello", "signer");
    let fpr_file = std::fs::read_dir(
        rkt.config
            .path()
            .join("trustedkeys/prefix.d/aci.test/hello"),
    )
    .unwrap()
    .next()
    .unwrap()
    .unwrap()
    .path();
    assert!(
        out.contains(&format!(
            "Added key for prefix \"aci.test/hello\" at \"{}\"",
            fpr_file.display()
        )),
        "{out}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fpr_file.metadata().unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Trusting the same key again is harmless: the same file.
    trust(&rkt, "aci.test/hello", "signer");
    assert_eq!(fpr_file.parent().unwrap().read_dir().unwrap().count(), 1);

    let id = hello_id();
    let gz = format!("file://{}", fxs("hello.aci"));
    for image in [
        gz.as_str(),
        &fxs("hello-plain.aci"),
        &fxs("hello-bz2.aci"),
        &fxs("hello-xz.aci"),
    ] {
        let out = rkt.cmd().args(["fetch", "--full", image]).output().unwrap();
        assert!(out.status.success(), "{image}: {}", stderr_of(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id, "{image}");
        assert!(
            stderr_of(&out).contains("signature verified:\n  ACI Signer <signer@aci.test>"),
            "{image}: {}",
            stderr_of(&out)
        );
    }
    // The short form is rkt's: sha512- and 32 hex digits.
    assert_eq!(rkt.ok(&["fetch", &fxs("hello.aci")]).trim(), &id[..7 + 32]);
    assert_eq!(rkt.image_dirs().len(), 1);
    let list = rkt.ok(&["image", "list", "--no-legend"]);
    assert!(list.contains("aci.test/hello:1.0"), "{list}");
    // By name from the store (the default pull policy, new, asks nobody).
    let out = rkt.ok(&["run", "aci.test/hello:1.0"]);
    assert!(out.contains("hello from aci"), "{out}");
}

#[test]
fn an_acis_mount_points_take_volumes_like_a_docker_images() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new(); // --insecure-options=image
    let vol = tempfile::tempdir().unwrap();
    rkt.ok(&[
        "run",
        &format!("--volume=data,kind=host,source={}", vol.path().display()),
        &fxs("hello.aci"),
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo written > /data/file",
    ]);
    assert_eq!(
        std::fs::read_to_string(vol.path().join("file")).unwrap(),
        "written\n"
    );
}

#[test]
fn bad_signatures_and_untrusted_keys_are_refused_and_nothing_is_stored() {
    if !common::require_root() {
        return;
    }
    let rkt = verifying();
    for key in ["signer", "expired", "revoked"] {
        trust(&rkt, "aci.test/hello", key);
    }
    let hello = fxs("hello.aci");
    let unsigned_dir = tempfile::tempdir().unwrap();
    let unsigned = unsigned_dir.path().join("hello.aci");
    std::fs::copy(fx("hello.aci"), &unsigned).unwrap();
    let unsigned = unsigned.display().to_string();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "signed by an untrusted key",
            vec![
                format!("--signature={}", fxs("hello-other.asc")),
                hello.clone(),
            ],
            "which is not a trusted key for it",
        ),
        (
            "signed by an expired key",
            vec![
                format!("--signature={}", fxs("hello-expired.asc")),
                hello.clone(),
            ],
            "the key expired at 2020-01-02",
        ),
        (
            "signed by a revoked key",
            vec![
                format!("--signature={}", fxs("hello-revoked.asc")),
                hello.clone(),
            ],
            "the key is revoked",
        ),
        (
            "tampered",
            vec![fxs("tampered.aci")],
            "does not match the image",
        ),
        (
            "another file's signature",
            vec![
                format!("--signature={}", fxs("base.aci.asc")),
                hello.clone(),
            ],
            "does not match the image",
        ),
        (
            "no signature",
            vec![unsigned.clone()],
            "no signature found (looked for",
        ),
        (
            "not a signature",
            vec![format!("--signature={}", fxs("hello.id")), hello.clone()],
            "not an OpenPGP signature",
        ),
    ];
    for (case, args, want) in &cases {
        let mut argv = vec!["fetch"];
        argv.extend(args.iter().map(String::as_str));
        let err = rkt.fails(&argv);
        assert!(err.contains(want), "{case}: {err}");
        assert!(
            err.contains("aci.test/hello") || err.contains("hello.aci"),
            "{case} names no image: {err}"
        );
        assert_nothing_stored(&rkt, case);
    }
    // A key trusted for another prefix does not count.
    let other = verifying();
    trust(&other, "aci.test/other", "signer");
    let err = other.fails(&["fetch", &hello]);
    assert!(
        err.contains("no keys are trusted for aci.test/hello"),
        "{err}"
    );
    assert!(
        err.contains("rkt trust --prefix=aci.test/hello"),
        "says how: {err}"
    );
    assert_nothing_stored(&other, "key of another prefix");
    // The store still works, and --signature checks a file that has none beside it.
    let out = rkt.ok(&[
        "fetch",
        &format!("--signature={}", fxs("hello.aci.asc")),
        &unsigned,
    ]);
    assert!(hello_id().starts_with(out.trim()), "{out}");
}

#[test]
fn insecure_image_skips_verification() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new(); // --insecure-options=image,http; no keys at all
    let dir = tempfile::tempdir().unwrap();
    let unsigned = dir.path().join("hello.aci");
    std::fs::copy(fx("hello.aci"), &unsigned).unwrap();
    let out = rkt.run(&["fetch", unsigned.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("signature verified"));
}

#[test]
fn hostile_acis_are_refused_and_write_nothing_outside_the_store() {
    if !common::require_root() {
        return;
    }
    let host = Path::new("/run/rkt-aci-host");
    std::fs::create_dir_all(host).unwrap();
    let rkt = Rkt::new(); // unverified: the archives' contents are what is tested
    let cases = [
        ("evil-dotdot.aci", "contains \"..\""),
        ("evil-abs.aci", "absolute path"),
        ("evil-symlink.aci", "passes through a symlink"),
        ("evil-badjson.aci", "the manifest is not valid JSON"),
        ("evil-badname.aci", "is not a valid AC identifier"),
    ];
    for (file, want) in cases {
        let err = rkt.fails(&["fetch", &fxs(file)]);
        assert!(err.contains(want), "{file}: {err}");
        assert!(
            err.contains(file),
            "{file}: the message names no image: {err}"
        );
        assert_nothing_stored(&rkt, file);
    }
    assert_eq!(
        host.read_dir().unwrap().count(),
        0,
        "written through the symlink"
    );
    for escaped in [
        rkt.dir.path().join("aci-escape"),
        rkt.dir.path().join("cas/aci-escape"),
        PathBuf::from("/aci-abs-escape"),
    ] {
        assert!(!escaped.exists(), "{} exists", escaped.display());
    }
    let _ = std::fs::remove_dir(host);
    rkt.ok(&["fetch", &fxs("hello.aci")]);
}

#[test]
fn dependencies_render_depth_first_with_the_path_whitelist() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let base = rkt.ok(&["fetch", "--full", &fxs("base.aci")]);
    assert_eq!(
        base.trim(),
        std::fs::read_to_string(fx("base.id")).unwrap().trim()
    );
    let out = rkt.ok(&["run", &fxs("app.aci")]);
    assert!(out.contains("from base\nfrom app\n"), "{out}");
    assert!(out.contains("/junk: No such file or directory"), "{out}");
    // /bin keeps only the whitelisted applets of the base's busybox.
    let bin: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("busybox") && !l.contains("busybox"))
        .collect();
    let joined = bin.join(" ");
    for kept in ["busybox", "cat", "ls", "sh"] {
        assert!(joined.contains(kept), "{kept} missing: {out}");
    }
    for gone in ["echo", "sleep"] {
        assert!(
            !joined.split_whitespace().any(|w| w == gone),
            "{gone} kept: {out}"
        );
    }
}

#[test]
fn rkt_trust_wants_a_scope_and_a_review() {
    if !common::require_root() {
        return;
    }
    let rkt = verifying();
    let key = fxs("keys/signer.asc");
    let err = rkt.fails(&["trust", &key]);
    assert!(
        err.contains("aborting due to implicit unbounded trust"),
        "{err}"
    );
    let err = rkt.fails(&["trust", "--prefix=aci.test/hello", "--root", &key]);
    assert!(
        err.contains("--root and --prefix usage mutually exclusive"),
        "{err}"
    );
    // No terminal to ask on: refused, saying what to do instead.
    let out = rkt
        .cmd()
        .args(["trust", "--prefix=aci.test/hello", &key])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(
        stderr_of(&out).contains("unable to ask user to review fingerprint due to lack of tty"),
        "{}",
        stderr_of(&out)
    );
    assert!(!rkt.config.path().join("trustedkeys").exists());
    let out = rkt.ok(&["trust", "--root", "--skip-fingerprint-review", &key]);
    assert!(out.contains("Added root key at \""), "{out}");
    assert!(out.contains("gpg key fingerprint is: "), "{out}");
    // A root key covers every name.
    rkt.ok(&["fetch", &fxs("hello.aci")]);
    let err = rkt.fails(&[
        "trust",
        "--prefix=aci.test/hello",
        "--skip-fingerprint-review",
        &fxs("hello.id"),
    ]);
    assert!(err.contains("not an OpenPGP public key"), "{err}");
}

/// Discovery, one scenario after another: the names resolve to this test's server only
/// while it runs, and two servers for one name cannot coexist.
#[test]
fn appc_discovery_finds_keys_and_images_and_refuses_what_is_wrong() {
    if !common::require_root() {
        return;
    }
    let srv = DiscoveryServer::start(&["aci.test"]);
    // The name's own page does not exist; its parent's has the tags (the retry on the
    // parent path).
    srv.discovery_page(
        "aci.test/",
        &[
            (
                "ac-discovery",
                "aci.test/hello",
                "https://aci.test/images/{name}-{version}-{os}-{arch}.{ext}",
            ),
            (
                "ac-discovery",
                "aci.test/cycle",
                "https://aci.test/images/{name}.{ext}",
            ),
            (
                "ac-discovery",
                "aci.test/loop",
                "https://aci.test/loop.{ext}",
            ),
            (
                "ac-discovery-pubkeys",
                "aci.test",
                "https://aci.test/pubkeys.gpg",
            ),
        ],
    );
    srv.file("aci.test/pubkeys.gpg", &fx("keys/signer.asc"));
    // The image is a redirect away.
    srv.route(
        "aci.test/images/aci.test/hello-1.0-linux-amd64.aci",
        serde_json::json!({ "redirect": "https://aci.test/files/hello.aci" }),
    );
    srv.file("aci.test/files/hello.aci", &fx("hello.aci"));
    srv.file(
        "aci.test/images/aci.test/hello-1.0-linux-amd64.aci.asc",
        &fx("hello.aci.asc"),
    );
    for x in ["a", "b"] {
        srv.file(
            &format!("aci.test/images/aci.test/cycle-{x}.aci"),
            &fx(&format!("cycle-{x}.aci")),
        );
        srv.file(
            &format!("aci.test/images/aci.test/cycle-{x}.aci.asc"),
            &fx(&format!("cycle-{x}.aci.asc")),
        );
    }
    srv.route(
        "aci.test/loop.aci",
        serde_json::json!({ "redirect": "https://aci.test/loop.aci" }),
    );
    let mut rkt = verifying();
    rkt.env = srv.env();

    // rkt trust without a key: discovered from the prefix.
    let out = rkt.ok(&["trust", "--prefix=aci.test", "--skip-fingerprint-review"]);
    assert!(
        out.contains("Trusting \"https://aci.test/pubkeys.gpg\" for prefix \"aci.test\""),
        "{out}"
    );
    assert!(out.contains("Added key for prefix \"aci.test\""), "{out}");

    let out = rkt
        .cmd()
        .args(["fetch", "--full", "aci.test/hello:1.0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hello_id());
    assert!(
        stderr_of(&out).contains("signature verified:"),
        "{}",
        stderr_of(&out)
    );
    let log = srv.log();
    let own = log
        .find("aci.test/hello?ac-discovery=1")
        .expect("the name's page first");
    let parent = log
        .rfind("aci.test/?ac-discovery=1")
        .expect("then its parent's");
    assert!(own < parent, "{log}");
    // The same image by URL, its signature beside it.
    let url = "https://aci.test/images/aci.test/hello-1.0-linux-amd64.aci";
    assert_eq!(rkt.ok(&["fetch", "--full", url]).trim(), hello_id());
    // Plain HTTP only when allowed.
    let err = rkt.fails(&["fetch", "http://aci.test/files/hello.aci"]);
    assert!(err.contains("pass --insecure-options=http"), "{err}");

    // What is wrong is refused, naming the image; nothing new is stored.
    let stored = rkt.image_dirs();
    let cases = [
        (
            "aci.test/notags:1.0",
            "appc discovery found no ACI for aci.test/notags:1.0",
        ),
        ("aci.test/loop:1.0", "redirect"),
        (
            "aci.test/cycle-a:1.0",
            "dependency cycle: aci.test/cycle-a -> aci.test/cycle-b -> aci.test/cycle-a",
        ),
        ("aci.test/hello:2.0", "404"),
    ];
    for (image, want) in cases {
        let err = rkt.fails(&["fetch", image]);
        assert!(err.contains(want), "{image}: {err}");
        assert!(
            err.contains(image.split(':').next().unwrap()),
            "{image}: {err}"
        );
        assert_eq!(rkt.image_dirs(), stored, "{image}");
        assert!(
            rkt.tmp_entries().is_empty(),
            "{image}: {:?}",
            rkt.tmp_entries()
        );
    }
    // And the store still serves and runs what it has.
    let out = rkt.ok(&["run", "aci.test/hello:1.0"]);
    assert!(out.contains("hello from aci"), "{out}");
}

#[test]
fn an_acis_ports_are_forwarded_like_a_docker_images() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let port = 20000 + (std::process::id() % 20000) as u16;
    let uuid_file = rkt.config.path().join("uuid");
    let mut child = rkt
        .cmd()
        .args([
            "run",
            "--net=default",
            &format!("--uuid-file-save={}", uuid_file.display()),
            &format!("--port=www:{port}"),
            &fxs("hello.aci"),
            "--exec=/bin/sh",
            "--",
            "-c",
            "echo served from an aci > /index.html; exec /bin/busybox httpd -f -p 8080 -h /",
        ])
        .spawn()
        .unwrap();
    let uuid = common::eventually(std::time::Duration::from_secs(30), "the pod's UUID", || {
        std::fs::read_to_string(&uuid_file).ok()
    });
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    let page = common::eventually(std::time::Duration::from_secs(10), "the page", || {
        let out = std::process::Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/index.html")])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(page, "served from an aci\n");
    rkt.ok(&["stop", "--force", &uuid]);
    let _ = child.wait();
    rkt.ok(&["rm", &uuid]);
}

/// Keys under the system configuration count too; an empty local file of the same name
/// masks one, as rkt's keystore did.
#[test]
fn system_keys_are_trusted_and_an_empty_local_file_masks_one() {
    if !common::require_root() {
        return;
    }
    let rkt = verifying();
    let system = tempfile::tempdir().unwrap();
    // rkt trust into the system directory: the same layout, as an operator would ship it.
    let installer = verifying();
    let added = trust(&installer, "aci.test", "signer");
    let src = installer.config.path().join("trustedkeys");
    let fpr = std::fs::read_dir(src.join("prefix.d/aci.test"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    assert!(
        added.contains(&fpr.to_string_lossy().to_string()),
        "{added}"
    );
    let dest = system.path().join("trustedkeys/prefix.d/aci.test");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(src.join("prefix.d/aci.test").join(&fpr), dest.join(&fpr)).unwrap();
    let fetch = |rkt: &Rkt| {
        std::process::Command::new(common::bin("rkt"))
            .arg(format!("--dir={}", rkt.dir.path().display()))
            .arg(format!("--local-config={}", rkt.config.path().display()))
            .arg(format!("--system-config={}", system.path().display()))
            .arg("--insecure-options=none")
            .envs(common::LOCAL_ONLY_ENV)
            .args(["fetch", &fxs("hello.aci")])
            .output()
            .unwrap()
    };
    let out = fetch(&rkt);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // Masked: an empty local file named after the key.
    let other = verifying();
    let mask = other.config.path().join("trustedkeys/prefix.d/aci.test");
    std::fs::create_dir_all(&mask).unwrap();
    std::fs::write(mask.join(&fpr), "").unwrap();
    let out = fetch(&other);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("no keys are trusted for aci.test/hello"),
        "{}",
        stderr_of(&out)
    );
}

/// An ACI's own isolators (`isolated.aci`: memory, CPU, capabilities, seccomp,
/// no_new_privs, OOM score, CPU shares) reach the app; the command line's flags win.
#[test]
fn an_acis_isolators_apply_and_the_flags_win() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new(); // --insecure-options=image
    let script = "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; \
                  echo oom=$(cat /proc/self/oom_score_adj); echo uname=$(uname -s)";
    let run = |flags: &[&str]| {
        let image = fxs("isolated.aci");
        let mut args = vec!["run", "--net=none", image.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--exec=/bin/sh", "--", "-c", script]);
        let o = rkt.run(&args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{out}\n{}", stderr_of(&o));
        let uuid = rkt.ok(&["list", "--no-legend", "--full"]);
        let uuid = uuid
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let manifest: serde_json::Value =
            serde_json::from_str(&rkt.ok(&["cat-manifest", &uuid])).unwrap();
        rkt.ok(&["rm", &uuid]);
        (out, manifest["apps"][0]["app"]["isolators"].to_string())
    };
    let (out, isolators) = run(&[]);
    // CAP_CHOWN (0) and CAP_KILL (5).
    assert!(out.contains("CapEff:\t0000000000000021"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("oom=300"), "{out}");
    // uname(2) fails (ENOSYS, not a kill), so busybox prints nothing for it.
    assert!(out.contains("uname=\n"), "uname refused: {out}");
    assert!(isolators.contains("50331648"), "48Mi recorded: {isolators}");
    assert!(isolators.contains("300m"), "{isolators}");
    let (out, isolators) = run(&[
        "--memory=32Mi",
        "--caps-retain=CAP_KILL",
        "--oom-score-adj=100",
        "--seccomp=mode=retain,@rkt/default-whitelist",
    ]);
    assert!(out.contains("uname=Linux"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000020"), "{out}");
    assert!(out.contains("oom=100"), "{out}");
    assert!(isolators.contains("33554432"), "{isolators}");
}

/// `--signature` after an image of `run` and `prepare`, as on `fetch`: the signature file
/// that image is checked against.
#[test]
fn run_and_prepare_take_a_signature_file() {
    if !common::require_root() {
        return;
    }
    let rkt = verifying();
    trust(&rkt, "aci.test/hello", "signer");
    // The ACI alone, its signature elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let aci = dir.path().join("hello.aci");
    std::fs::copy(fx("hello.aci"), &aci).unwrap();
    let aci = aci.display().to_string();
    let err = rkt.fails(&["run", "--net=none", &aci]);
    assert!(err.contains("no signature found"), "{err}");
    let wrong = format!("--signature={}", fxs("hello-other.asc"));
    let err = rkt.fails(&["prepare", &aci, &wrong]);
    assert!(err.contains("signature"), "{err}");
    let right = format!("--signature={}", fxs("hello.aci.asc"));
    let o = rkt.run(&["run", "--net=none", &aci, &right]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("hello from aci"));
    let err = rkt.fails(&["run", "docker://127.0.0.1:1/x:1", &right]);
    assert!(
        err.contains("signatures are checked for ACI images"),
        "{err}"
    );
}
