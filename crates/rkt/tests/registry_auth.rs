//! TLS, basic auth and token auth against real registries.

mod common;

use common::{Registry, Rkt};

#[test]
fn tls_registry_trusted_through_ssl_cert_file() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::with_fixtures("tls");
    let image = reg.image("busybox:latest");

    let mut rkt = Rkt::new();
    rkt.insecure = "image".into();
    // Without our CA the certificate is not trusted, and the error says what to do.
    let err = rkt.fails(&["fetch", &image]);
    assert!(err.contains("--insecure-options=tls"), "{err}");
    assert!(rkt.image_dirs().is_empty());

    rkt.env
        .push(("SSL_CERT_FILE".into(), reg.ca().display().to_string()));
    let id = rkt.ok(&["fetch", &image]);
    assert!(rkt.rootfs(&id).join("bin/busybox").exists());

    let mut rkt = Rkt::new();
    rkt.insecure = "image,tls".into();
    rkt.ok(&["fetch", &image]);
}

#[test]
fn basic_auth_with_docker_auth_file() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::with_fixtures("basic");
    let image = reg.image("busybox:latest");
    let rkt = Rkt::new();
    let err = rkt.fails(&["fetch", &image]);
    assert!(err.contains("auth.d"), "{err}");

    rkt.write_docker_auth("reg.json", &reg.host(), "tester", "wrong");
    let err = rkt.fails(&["fetch", &image]);
    assert!(err.contains("denied") || err.contains("401"), "{err}");

    rkt.write_auth(
        "reg.json",
        &format!(
            r#"{{"rktKind":"auth","rktVersion":"v1","domains":["{}"],"type":"basic","credentials":{{"user":"tester","password":"secret"}}}}"#,
            reg.host()
        ),
    );
    rkt.ok(&["fetch", &image]);
}

#[test]
fn token_auth_anonymous_and_credentialed() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::with_fixtures("token");
    let rkt = Rkt::new();
    // Anonymous tokens grant pull on public/*.
    rkt.ok(&["fetch", &reg.image("public/busybox:latest")]);
    // Not on the rest.
    let err = rkt.fails(&["fetch", &reg.image("busybox:latest")]);
    assert!(err.contains("denied"), "{err}");

    rkt.write_docker_auth("bad.json", &reg.host(), "tester", "nope");
    let err = rkt.fails(&["fetch", &reg.image("busybox:latest")]);
    assert!(err.contains("token server"), "{err}");

    rkt.write_docker_auth("bad.json", &reg.host(), "tester", "secret");
    let id = rkt.ok(&["fetch", &reg.image("busybox:latest")]);
    assert!(rkt.rootfs(&id).join("www/index.html").exists());
}
