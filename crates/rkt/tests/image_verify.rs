//! `rkt image verify`: a rendered tree changed on disk is noticed and rendered again from
//! what the store keeps (Docker layers, an ACI's archive and its dependencies).

mod common;

use common::discovery::aci_fixtures;
use common::pods::busybox;
use common::Rkt;

fn verify(rkt: &Rkt, image: &str) -> String {
    rkt.ok(&["image", "verify", image])
}

#[test]
fn changed_trees_are_noticed_and_rendered_again() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let docker = rkt.ok(&["fetch", "--full", &busybox()]).trim().to_string();
    rkt.ok(&[
        "fetch",
        &aci_fixtures().join("base.aci").display().to_string(),
    ]);
    let app = rkt
        .ok(&[
            "fetch",
            "--full",
            &aci_fixtures().join("app.aci").display().to_string(),
        ])
        .trim()
        .to_string();
    // (what to change, a file of the image's tree, what it holds)
    for (id, file, content) in [
        (&docker, "www/index.html", "hello from rkt"),
        (&app, "etc/base-file", "from base"),
    ] {
        let out = verify(&rkt, id);
        assert!(
            out.contains(&format!(
                "successfully verified checksum for image: \"{id}\""
            )),
            "{out}"
        );
        let path = rkt.rootfs(id).join(file);
        std::fs::write(&path, "changed behind rkt's back\n").unwrap();
        let out = verify(&rkt, id);
        assert!(
            out.contains(&format!("tree cache verification failed for image {id}")),
            "{out}"
        );
        assert!(out.contains("rebuilding..."), "{out}");
        let repaired = std::fs::read_to_string(rkt.rootfs(id).join(file)).unwrap();
        assert!(repaired.contains(content), "{file}: {repaired}");
        let out = verify(&rkt, id);
        assert!(out.contains("successfully verified checksum"), "{out}");
        assert!(rkt.tmp_entries().is_empty(), "{:?}", rkt.tmp_entries());
    }
    // The dependency's whitelist holds after the new render too.
    assert!(!rkt.rootfs(&app).join("junk").exists());
    let err = rkt.fails(&["image", "verify", "sha512-0000"]);
    assert!(
        err.contains("unable to resolve store key for image sha512-0000"),
        "{err}"
    );
}

/// The digest taken at render (from the files as they were written) is the one a full read
/// gives, also for the layer cases: whiteouts, opaque directories, hardlinks, devices,
/// files replaced by directories between layers.
#[test]
fn the_digest_taken_at_render_matches_a_full_read() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let special = common::pods::registry().image("special:latest");
    let id = rkt.ok(&["fetch", "--full", &special]).trim().to_string();
    let out = verify(&rkt, &id);
    assert!(out.contains("successfully verified checksum"), "{out}");
}
