//! One path from a job to a pod: the driver and `rkt prepare`, given the same options, prepare
//! the same pod (its appc manifest and stage1's plan records, byte for byte). The driver sets
//! stage0's typed specs from the job ([`nomad_driver_rkt::backend::start::launch`]); the
//! command line below is what an rkt user writes for the same task, as README's table of
//! options says.

use nomad_driver_rkt::backend::start::{launch, HostPath, Options, Plugin, Spec};
use std::path::Path;

fn read_pod(store: &Path, uuid: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = store.join("pods/prepared").join(uuid);
    (
        std::fs::read(dir.join("pod")).unwrap(),
        std::fs::read(dir.join("stage1/prepared")).unwrap(),
    )
}

#[test]
fn the_driver_and_rkt_prepare_make_the_same_pod() {
    if !test_support::require_root("prepares pods, rendering images with their owners") {
        return;
    }
    let registry = test_support::Registry::with_fixtures("plain");
    let image = registry.image("busybox:latest");
    let alloc = tempfile::tempdir().unwrap();
    let a = std::fs::canonicalize(alloc.path()).unwrap();
    for d in ["alloc", "web/local", "web/secrets", "data", "dev-like"] {
        std::fs::create_dir_all(a.join(d)).unwrap();
    }
    let opts = Options {
        image: image.clone(),
        command: "/bin/sh".into(),
        args: vec!["-c".into(), "echo $A".into()],
        port_map: [("http".to_string(), "8080-tcp".to_string())].into(),
        volumes: vec!["data:/data".into(), "/tmp:/hosttmp:readOnly".into()],
        group: "50".into(),
        pids_limit: 100,
        ..Default::default()
    };
    let spec = Spec {
        id: "a1/web/1".into(),
        name: "web".into(),
        alloc_id: "a1".into(),
        alloc_dir: a.clone(),
        env: [("A".to_string(), "1".to_string())].into(),
        user: "1000".into(),
        memory_bytes: 64 << 20,
        cpu_shares: 256,
        task_ports: Some(vec![("http".into(), 20000)]),
        mounts: vec![HostPath {
            host_path: a.join("dev-like").display().to_string(),
            task_path: "/srv".into(),
            read_only: true,
        }],
        ..Default::default()
    };
    let l = launch(&opts, &spec, &Plugin::default()).unwrap();

    // The driver's way: stage0 from the typed specs, in this process.
    let rkt = test_support::Rkt::new();
    let mut config = stage0::Config::new(rkt.dir.path());
    config.local_config = rkt.config.path().to_path_buf();
    config.system_config = "/nonexistent".into();
    config.insecure = l.insecure;
    let from_driver = stage0::prepare(&config, &l.pod, std::slice::from_ref(&l.app)).unwrap();

    // An rkt user's way, for the same task.
    let host = |name: &str, source: &Path, ro: Option<bool>, target: &str| {
        let ro = ro.map(|r| format!(",readOnly={r}")).unwrap_or_default();
        [
            format!(
                "--volume=a1-web-{name},kind=host,source={}{ro}",
                source.display()
            ),
            format!("--mount=volume=a1-web-{name},target={target}"),
        ]
    };
    let mut args: Vec<String> = vec!["prepare".into(), "--quiet".into()];
    args.extend(host("alloc", &a.join("alloc"), None, "/alloc"));
    args.extend(host("local", &a.join("web/local"), None, "/local"));
    args.extend(host("secrets", &a.join("web/secrets"), None, "/secrets"));
    args.extend(host("0", &a.join("data"), Some(false), "/data"));
    args.extend(host("1", Path::new("/tmp"), Some(true), "/hosttmp"));
    args.extend(host(
        "taskmounts-0",
        &a.join("dev-like"),
        Some(true),
        "/srv",
    ));
    args.extend([
        "--set-env=A=1".to_string(),
        // Every task's pod says which allocation it is.
        "--user-label=com.hashicorp.nomad.alloc_id=a1".into(),
        image,
        "--exec=/bin/sh".into(),
        format!("--memory={}", 64 << 20),
        "--cpu-shares=256".into(),
        "--port=8080-tcp:20000".into(),
        "--user=1000".into(),
        "--group=50".into(),
        "--pids-limit=100".into(),
        "--".into(),
        "-c".into(),
        "echo $A".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let from_rkt = rkt.ok(&args).trim().to_string();

    let (driver_manifest, driver_plan) = read_pod(rkt.dir.path(), &from_driver);
    let (rkt_manifest, rkt_plan) = read_pod(rkt.dir.path(), &from_rkt);
    assert_eq!(
        String::from_utf8_lossy(&driver_manifest),
        String::from_utf8_lossy(&rkt_manifest),
        "pod manifests"
    );
    assert_eq!(
        String::from_utf8_lossy(&driver_plan).replace('\0', "\n"),
        String::from_utf8_lossy(&rkt_plan).replace('\0', "\n"),
        "stage1 plans"
    );
    test_support::remove_all_pods(rkt.dir.path());
}
