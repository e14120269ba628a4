//! Short names, mirrors and `registries.d`, against real registries on 127.0.0.1.
//!
//! Docker Hub's names (`docker://redis:3.2-alpine`, `redis:3.2`, `docker://busybox:1.29.3`)
//! come from a local registry configured as Docker Hub's mirror with `mirrorsOnly`, so that
//! nothing may go to Docker Hub itself; and every rkt here runs with the environment of
//! [`common::LOCAL_ONLY_ENV`], which sends any request for a host outside 127.0.0.0/8 to a
//! proxy port where nothing listens: a test that reached for Docker Hub would fail.

mod common;

use common::{Registry, Rkt};
use std::sync::OnceLock;

/// A registry with the standard fixtures (busybox:latest and the rest).
fn plain() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::with_fixtures("plain"))
}

/// A registry holding fixture images under Docker Hub's names, as a mirror of Docker Hub
/// would: `library/redis:3.2-alpine` (busybox, an OCI manifest), `library/redis:3.2`
/// (busybox as Docker schema2: another manifest, so another image), `library/busybox:1.29.3`
/// (`multi`, an OCI index).
fn hub_mirror() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let reg = Registry::start("plain");
        reg.push("busybox", "library/redis:3.2-alpine");
        reg.push_with("busybox", "library/redis:3.2", &["--format", "v2s2"]);
        reg.push("multi", "library/busybox:1.29.3");
        reg
    })
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn header() -> &'static str {
    r#""rktKind": "registries", "rktVersion": "v1""#
}

/// Docker Hub's mirrors, and nothing else: Docker Hub itself is never tried.
fn hub_mirrors(mirrors: &[String]) -> String {
    let list: Vec<String> = mirrors
        .iter()
        .map(|m| format!(r#"{{"url": "{m}"}}"#))
        .collect();
    format!(
        r#"{{ {}, "registries": {{ "docker.io": {{ "mirrors": [{}], "mirrorsOnly": true }} }} }}"#,
        header(),
        list.join(", ")
    )
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The name and manifest digest the store recorded for the image with this (short) ID.
fn stored(rkt: &Rkt, id: &str) -> (String, String) {
    let info = rkt.rootfs(id).parent().unwrap().join("info.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(info).unwrap()).unwrap();
    (
        format!(
            "{}:{}",
            v["name"].as_str().unwrap(),
            v["version"].as_str().unwrap_or_default()
        ),
        v["manifestDigest"].as_str().unwrap().to_string(),
    )
}

#[test]
fn short_names_go_to_the_default_registry_and_say_so() {
    if !common::require_root() {
        return;
    }
    let reg = plain();
    let rkt = Rkt::new();
    rkt.write_registries(
        "10-default.json",
        &format!(r#"{{ {}, "defaultRegistry": "{}" }}"#, header(), reg.host()),
    );
    let file = rkt.config.path().join("registries.d/10-default.json");
    let o = rkt.run(&["fetch", "busybox:latest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        stderr(&o).contains(&format!(
            "image \"busybox:latest\" is a short name: resolved to docker://{}/busybox:latest (defaultRegistry of {})",
            reg.host(),
            file.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        stored(&rkt, &id).0,
        format!("{}/busybox:latest", reg.host().replace(':', "_")),
        "on a registry other than Docker Hub the name is taken as written (no library/)"
    );
    // No tag is :latest; the same image, found in the store this time.
    assert_eq!(
        rkt.ok(&["fetch", "--pull-policy=new", "busybox"]).trim(),
        id
    );

    // run and prepare take short names too; the image is the stored one.
    let o = rkt.run(&[
        "run",
        "--net=host",
        "busybox",
        "--exec=/bin/cat",
        "--",
        "/www/index.html",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello from rkt");
    let uuid = rkt.ok(&["prepare", "busybox:latest"]);
    let manifest = rkt.ok(&["cat-manifest", uuid.trim()]);
    assert!(manifest.contains(&id), "{manifest}");
    rkt.ok(&["rm", uuid.trim()]);
    assert_eq!(rkt.image_dirs().len(), 1);

    // Docker images need --insecure-options=image, short names as much as docker://.
    let mut strict = Rkt::new();
    strict.insecure = "http".into();
    strict.write_registries(
        "10-default.json",
        &format!(r#"{{ {}, "defaultRegistry": "{}" }}"#, header(), reg.host()),
    );
    for args in [
        &["fetch", "busybox:latest"][..],
        &["run", "--net=host", "busybox:latest"][..],
        &["prepare", "busybox:latest"][..],
    ] {
        let err = strict.fails(args);
        assert!(err.contains("--insecure-options=image"), "{args:?}: {err}");
    }
    assert!(strict.image_dirs().is_empty());
}

#[test]
fn without_configuration_a_short_name_is_docker_hubs() {
    // Nothing may be fetched (the image is Docker Hub's): the pull policy forbids it, and
    // rkt still says where the name went.
    let rkt = Rkt::new();
    let err = rkt.fails(&["fetch", "--pull-policy=never", "redis:3.2"]);
    assert!(
        err.contains(
            "resolved to docker://registry-1.docker.io/library/redis:3.2 (the default registry"
        ),
        "{err}"
    );
    assert!(
        err.contains("--pull-policy=never forbids fetching"),
        "{err}"
    );
    // Names whose first component is a host are not short: appc's names, found by appc
    // discovery (here nothing answers: the test's dead proxy keeps it off the network).
    let err = rkt.fails(&["fetch", "example.com/app:1.0"]);
    assert!(
        err.contains("appc discovery found no ACI for example.com/app:1.0")
            && err.contains("docker://example.com/app:1.0"),
        "{err}"
    );
    let err = rkt.fails(&["run", "example.com/app:1.0"]);
    assert!(
        err.contains("appc discovery found no ACI for example.com/app:1.0"),
        "{err}"
    );
    // An invalid short name is refused by the parser, naming the problem.
    let err = rkt.fails(&["fetch", "Redis:3.2"]);
    assert!(err.contains("must be lowercase"), "{err}");
}

#[test]
fn docker_hub_names_come_from_the_mirror() {
    if !common::require_root() {
        return;
    }
    let mirror = hub_mirror();
    let rkt = Rkt::new();
    let url = format!("http://{}", mirror.host());
    rkt.write_registries("10-hub.json", &hub_mirrors(std::slice::from_ref(&url)));
    for (image, name, file, content) in [
        (
            "docker://redis:3.2-alpine",
            "registry-1.docker.io/library/redis:3.2-alpine",
            "www/index.html",
            "hello from rkt",
        ),
        (
            "redis:3.2",
            "registry-1.docker.io/library/redis:3.2",
            "www/index.html",
            "hello from rkt",
        ),
        (
            "docker://busybox:1.29.3",
            "registry-1.docker.io/library/busybox:1.29.3",
            "platform",
            "amd64",
        ),
    ] {
        let o = rkt.run(&["fetch", image]);
        assert!(o.status.success(), "{image}: {}", stderr(&o));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        // Stored under Docker Hub's name: the mirror is only where the bytes came from.
        assert_eq!(stored(&rkt, &id).0, name, "{image}");
        assert!(
            stderr(&o).contains(&format!("from mirror {url}")),
            "{image}: {}",
            stderr(&o)
        );
        let got = std::fs::read_to_string(rkt.rootfs(&id).join(file)).unwrap();
        assert_eq!(got.trim(), content, "{image}");
    }
    let log = mirror.log();
    for path in [
        "/v2/library/redis/manifests/3.2-alpine",
        "/v2/library/redis/manifests/3.2",
        "/v2/library/busybox/manifests/1.29.3",
    ] {
        assert!(log.contains(path), "the mirror never served {path}");
    }
    // A short name runs from the store.
    assert_eq!(rkt.image_dirs().len(), 3);
    let o = rkt.run(&[
        "run",
        "--net=host",
        "redis:3.2",
        "--exec=/bin/cat",
        "--",
        "/www/index.html",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello from rkt");

    // rkt run fetches through the mirror too.
    let fresh = Rkt::new();
    fresh.write_registries("10-hub.json", &hub_mirrors(std::slice::from_ref(&url)));
    let o = fresh.run(&[
        "run",
        "--net=host",
        "redis:3.2-alpine",
        "--exec=/bin/cat",
        "--",
        "/www/index.html",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello from rkt");
    assert!(
        stderr(&o).contains(&format!("from mirror {url}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_dead_mirror_falls_through_to_the_next_source() {
    if !common::require_root() {
        return;
    }
    let mirror = hub_mirror();
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let good = format!("http://{}", mirror.host());

    // Docker Hub's mirrors: the dead one first.
    let rkt = Rkt::new();
    rkt.write_registries("10-hub.json", &hub_mirrors(&[dead.clone(), good.clone()]));
    let o = rkt.run(&["fetch", "docker://busybox:1.29.3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "mirror {dead} failed for docker://registry-1.docker.io/library/busybox:1.29.3"
        )) && err.contains(&format!("trying mirror {good}"))
            && err.contains(&format!("from mirror {good}")),
        "{err}"
    );

    // Only dead mirrors, and mirrorsOnly: the fetch fails, saying what was tried and that
    // Docker Hub itself was not.
    let rkt = Rkt::new();
    let dead2 = format!("http://127.0.0.1:{}", dead_port());
    rkt.write_registries("10-hub.json", &hub_mirrors(&[dead.clone(), dead2.clone()]));
    let err = rkt.fails(&["fetch", "redis:3.2"]);
    assert!(
        err.contains(&format!(
            "no source could serve docker://registry-1.docker.io/library/redis:3.2: mirror {dead} failed ("
        )) && err.contains(&format!("the last, mirror {dead2}, said: mirror {dead2} unreachable"))
            && err.contains("registry registry-1.docker.io itself is not tried (mirrorsOnly"),
        "{err}"
    );
    assert!(rkt.image_dirs().is_empty());

    // Without mirrorsOnly, the registry itself comes after its mirrors.
    let reg = plain();
    let rkt = Rkt::new();
    rkt.write_registries(
        "10-local.json",
        &format!(
            r#"{{ {}, "registries": {{ "{}": {{ "mirrors": [{{"url": "{dead}"}}] }} }} }}"#,
            header(),
            reg.host()
        ),
    );
    let o = rkt.run(&["fetch", &reg.image("busybox:latest")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("trying registry {}", reg.host())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_mirror_serving_another_manifest_for_a_digest_is_refused() {
    if !common::require_root() {
        return;
    }
    let honest = hub_mirror();
    // A real registry whose storage was tampered with: asked for busybox's manifest by its
    // digest, it serves the manifest of another image.
    let liar = Registry::start("plain");
    liar.push("busybox", "library/redis:3.2-alpine");
    liar.push("special", "library/special:latest");
    let digest = honest.manifest_digest("library/redis", "3.2-alpine");
    assert_eq!(
        liar.manifest_digest("library/redis", &digest),
        digest,
        "both registries hold the same manifest"
    );
    let other = liar.manifest_digest("library/special", "latest");
    std::fs::copy(liar.blob_data(&other), liar.blob_data(&digest)).unwrap();
    let pinned = format!("docker://redis@{digest}");
    let liar_url = format!("http://{}", liar.host());
    let honest_url = format!("http://{}", honest.host());

    let rkt = Rkt::new();
    rkt.write_registries("10-hub.json", &hub_mirrors(std::slice::from_ref(&liar_url)));
    let err = rkt.fails(&["fetch", &pinned]);
    assert!(
        err.contains(&format!(
            "as served by {liar_url} does not match its digest: expected {digest}"
        )) && err.contains("refusing it"),
        "{err}"
    );
    assert!(rkt.image_dirs().is_empty() && rkt.tmp_entries().is_empty());
    assert!(
        liar.log()
            .contains(&format!("/v2/library/redis/manifests/{digest}")),
        "the test must have reached the tampered registry"
    );

    // With an honest mirror after it, the image comes from that one, and is the pinned one.
    let rkt = Rkt::new();
    rkt.write_registries(
        "10-hub.json",
        &hub_mirrors(&[liar_url.clone(), honest_url.clone()]),
    );
    let o = rkt.run(&["fetch", &pinned]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("mirror {liar_url} failed"))
            && err.contains("does not match its digest"),
        "{err}"
    );
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(stored(&rkt, &id).1, digest);
}

#[test]
fn bad_registries_files_are_refused_naming_file_and_line() {
    let rkt = Rkt::new();
    let file = rkt.config.path().join("registries.d/50-bad.json");
    for (body, line, why) in [
        (
            format!("{{ {},\n  \"registries\": {{\n    \"docker.io\": {{ \"mirrors\": [,] }}\n  }}\n}}", header()),
            3,
            "expected value",
        ),
        (
            format!("{{ {},\n  \"registries\": {{\n    \"docker.io\": {{\n      \"mirorrs\": []\n    }}\n  }}\n}}", header()),
            4,
            "unknown field `mirorrs`, expected `mirrors` or `mirrorsOnly`",
        ),
        (
            format!("{{ {},\n  \"registries\": {{\n    \"docker.io\": {{ \"mirrors\": [\n      {{\"url\": \"http://mirror:99999\"}}\n    ] }}\n  }}\n}}", header()),
            4,
            "mirror URL \"http://mirror:99999\" does not parse: invalid port number",
        ),
        (
            format!("{{ {},\n  \"defaultRegistry\": \"https://registry.internal\"\n}}", header()),
            2,
            "is a URL",
        ),
    ] {
        rkt.write_registries("50-bad.json", &body);
        let want = format!(
            "invalid registries file {}, line {line} column",
            file.display()
        );
        for args in [
            &["fetch", "redis:3.2"][..],
            &["fetch", "docker://127.0.0.1:1/x"][..],
            &["prepare", "redis:3.2"][..],
        ] {
            let err = rkt.fails(args);
            assert!(err.contains(&want) && err.contains(why), "{args:?}: {err}");
        }
    }
    assert!(rkt.image_dirs().is_empty());
}
