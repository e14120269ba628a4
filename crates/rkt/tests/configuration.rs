//! rkt 1.30's configuration as its users knew it, nothing accepted and then ignored:
//! `--user-config` read after the local configuration, `paths.d` moving the data directory,
//! an `auth.d` file of type `aws` failing only the registries it names, `auth.d` credentials
//! sent with ACI downloads, `--trust-keys-from-https`, and `--insecure-options` `pubkey` and
//! `ondisk` with rkt's meanings.

mod common;

use common::discovery::{aci_fixtures, DiscoveryServer};
use common::Rkt;
use std::process::Command;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn user_config_is_read_after_the_local_one() {
    if !common::require_root() {
        return;
    }
    let reg = test_support::Registry::with_fixtures("basic");
    let rkt = Rkt::new();
    rkt.write_docker_auth("a.json", &reg.host(), "tester", "wrong");
    let user = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(user.path().join("auth.d")).unwrap();
    std::fs::write(
        user.path().join("auth.d/a.json"),
        format!(
            r#"{{"rktKind":"dockerAuth","rktVersion":"v1","registries":["{}"],"credentials":{{"user":"tester","password":"secret"}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let image = reg.image("busybox:latest");
    let err = rkt.fails(&["fetch", &image]);
    assert!(err.contains("denied") || err.contains("401"), "{err}");
    let user_flag = format!("--user-config={}", user.path().display());
    rkt.ok(&[&user_flag, "fetch", &image]);
}

#[test]
fn paths_d_moves_the_data_directory() {
    if !common::require_root() {
        return;
    }
    let reg = test_support::Registry::with_fixtures("plain");
    let local = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(local.path().join("paths.d")).unwrap();
    let paths = local.path().join("paths.d/data.json");
    std::fs::write(
        &paths,
        format!(
            r#"{{"rktKind":"paths","rktVersion":"v1","data":"{}"}}"#,
            data.path().display()
        ),
    )
    .unwrap();
    // No --dir: paths.d says where.
    let rkt = |args: &[&str]| {
        Command::new(test_support::bin("rkt"))
            .arg(format!("--local-config={}", local.path().display()))
            .arg("--system-config=/nonexistent")
            .arg("--insecure-options=image,http")
            .args(args)
            .envs(test_support::LOCAL_ONLY_ENV.iter().copied())
            .output()
            .unwrap()
    };
    let o = rkt(&["fetch", &reg.image("busybox:latest")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        data.path().join("cas/images").read_dir().unwrap().count() == 1,
        "the image is in paths.d's data directory"
    );
    let listed = rkt(&["image", "list", "--no-legend"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("busybox"));
    // stage1-images cannot be honoured: refused, naming the file.
    std::fs::write(
        &paths,
        r#"{"rktKind":"paths","rktVersion":"v1","stage1-images":"/usr/lib/rkt/stage1-images"}"#,
    )
    .unwrap();
    let o = rkt(&["image", "list"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains("stage1-images") && stderr(&o).contains("data.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_aws_auth_file_fails_only_the_registries_it_names() {
    if !common::require_root() {
        return;
    }
    let reg = test_support::Registry::with_fixtures("plain");
    let rkt = Rkt::new();
    rkt.write_auth(
        "ecr.json",
        r#"{"rktKind":"auth","rktVersion":"v1","domains":["123456789012.dkr.ecr.us-east-1.amazonaws.com"],"type":"aws","credentials":{"accessKeyID":"AKIA","secretAccessKey":"x"}}"#,
    );
    rkt.ok(&["fetch", &reg.image("busybox:latest")]);
    let err = rkt.fails(&[
        "fetch",
        "docker://123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
    ]);
    assert!(err.contains("ecr.json") && err.contains("AWS"), "{err}");
}

/// A discovery server with hello.aci behind basic auth, its key, and a discovery page.
fn guarded_server() -> DiscoveryServer {
    let fx = aci_fixtures();
    let srv = DiscoveryServer::start(&["aci.test"]);
    srv.route(
        "aci.test/files/hello.aci",
        serde_json::json!({"file": fx.join("hello.aci"), "authorization": "Basic dGVzdGVyOnNlY3JldA=="}),
    );
    srv.file("aci.test/files/hello.aci.asc", &fx.join("hello.aci.asc"));
    srv.file("aci.test/pubkeys.gpg", &fx.join("keys/signer.asc"));
    srv.discovery_page(
        "aci.test/",
        &[
            (
                "ac-discovery",
                "aci.test/hello",
                "https://aci.test/files/hello.{ext}",
            ),
            (
                "ac-discovery-pubkeys",
                "aci.test",
                "https://aci.test/pubkeys.gpg",
            ),
        ],
    );
    srv
}

#[test]
fn auth_d_credentials_go_with_aci_downloads_and_keys_can_be_trusted_from_https() {
    if !common::require_root() {
        return;
    }
    let srv = guarded_server();
    let mut rkt = Rkt::new();
    rkt.insecure = "none".into();
    rkt.env = srv.env();
    // Without credentials the server refuses the image.
    let err = rkt.fails(&["fetch", "https://aci.test/files/hello.aci"]);
    assert!(err.contains("401"), "{err}");
    rkt.write_auth(
        "aci.json",
        r#"{"rktKind":"auth","rktVersion":"v1","domains":["aci.test"],"type":"basic","credentials":{"user":"tester","password":"secret"}}"#,
    );
    // With them, the download works; the signature still needs a trusted key.
    let err = rkt.fails(&["fetch", "https://aci.test/files/hello.aci"]);
    assert!(
        err.contains("no keys are trusted for aci.test/hello"),
        "{err}"
    );
    // --trust-keys-from-https: the discovered key is trusted, with a warning, and kept.
    let o = rkt.run(&["--trust-keys-from-https", "fetch", "aci.test/hello:1.0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("trusting the key at https://aci.test/pubkeys.gpg"),
        "{}",
        stderr(&o)
    );
    let keys = rkt
        .config
        .path()
        .join("trustedkeys/prefix.d/aci.test/hello");
    assert_eq!(keys.read_dir().unwrap().count(), 1, "the key is stored");
}

#[test]
fn insecure_pubkey_fetches_keys_from_servers_that_are_not_verified() {
    if !common::require_root() {
        return;
    }
    let srv = guarded_server();
    let mut rkt = Rkt::new();
    rkt.insecure = "none".into();
    // The names resolve, but the test CA is not given: the certificate does not verify.
    rkt.env = srv
        .env()
        .into_iter()
        .filter(|(k, _)| k != "SSL_CERT_FILE")
        .collect();
    let args = [
        "trust",
        "--prefix=aci.test",
        "--skip-fingerprint-review",
        "https://aci.test/pubkeys.gpg",
    ];
    let err = rkt.fails(&args);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    rkt.insecure = "pubkey".into();
    rkt.ok(&args);
}

#[test]
fn the_on_disk_check_refuses_a_changed_tree_unless_ondisk() {
    if !common::require_root() {
        return;
    }
    let reg = test_support::Registry::with_fixtures("plain");
    let rkt = Rkt::new();
    let id = rkt.ok(&["fetch", &reg.image("busybox:latest")]);
    let id = id.trim();
    let full = rkt
        .image_dirs()
        .into_iter()
        .find(|d| d.starts_with(id))
        .unwrap();
    rkt.ok(&["run", "--net=none", id, "--exec=/bin/true"]);
    std::fs::write(rkt.rootfs(&full).join("www/index.html"), "changed").unwrap();
    let err = rkt.fails(&["run", "--net=none", id, "--exec=/bin/true"]);
    assert!(
        err.contains("changed on disk") && err.contains("--insecure-options=ondisk"),
        "{err}"
    );
    let mut relaxed = rkt;
    relaxed.insecure = "image,http,ondisk".into();
    relaxed.ok(&["run", "--net=none", id, "--exec=/bin/true"]);
}
