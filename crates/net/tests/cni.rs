//! The CNI verbs against the real plugins (root only): ADD through `setup`, CHECK noticing
//! an interface that disappeared, DEL through `teardown`.

use std::path::Path;
use std::process::Command;

#[test]
fn check_notices_a_missing_interface_and_teardown_undoes_add() {
    if !test_support::require_root("creates network namespaces and runs CNI plugins") {
        return;
    }
    if !Path::new("/usr/lib/cni/ptp").exists() {
        test_support::skip("needs containernetworking-plugins (/usr/lib/cni/ptp)");
        return;
    }
    let pod = tempfile::tempdir().unwrap();
    let uuid = format!("c0ffee00-0000-4000-8000-{:012x}", std::process::id());
    let conf = net::NetConf {
        name: "checknet".into(),
        source: "test".into(),
        plugin: "ptp".into(),
        json: serde_json::json!({"cniVersion": "1.0.0", "name": "checknet", "type": "ptp",
            "ipam": {"type": "host-local", "subnet": "10.214.9.0/24"}}),
        args: String::new(),
        builtin: false,
    };
    let done = net::setup(&uuid, pod.path(), &[conf], &[]).unwrap();
    let ip = done.infos[0].ip.unwrap();
    assert_eq!(ip.octets()[..3], [10, 214, 9]);
    net::check(&uuid, pod.path()).unwrap();

    let ns = format!("rkt-{uuid}");
    let del = Command::new("ip")
        .args(["-n", &ns, "link", "del", "eth0"])
        .status()
        .unwrap();
    assert!(del.success());
    let e = net::check(&uuid, pod.path()).unwrap_err().to_string();
    assert!(e.contains("network \"checknet\": CNI CHECK"), "{e}");

    net::teardown(&uuid, pod.path()).unwrap();
    assert!(!net::is_set_up(pod.path()));
    assert!(!Path::new("/run/netns").join(&ns).exists());
    let ipam = std::fs::read_dir("/var/lib/cni/networks/checknet").unwrap();
    for f in ipam.flatten() {
        let body = std::fs::read_to_string(f.path()).unwrap_or_default();
        assert!(
            !body.contains(&uuid),
            "IPAM still holds {}",
            f.path().display()
        );
    }
    // Teardown again is a no-op.
    net::teardown(&uuid, pod.path()).unwrap();
}
