//! stage0 as a library: pods prepared from typed specs by many threads of one process at
//! once (as the Nomad plugin does), and the kinds its errors carry.

use stage0::{Config, Kind};
use std::sync::OnceLock;
use test_support::Registry;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::with_fixtures("plain"))
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.local_config = dir.join("config");
    c.system_config = "/nonexistent".into();
    c.insecure = stage0::InsecureOptions::parse("image,http").unwrap();
    c.registry_timeout = Some(std::time::Duration::from_secs(5));
    c
}

/// A pod of one app running `image`.
fn specs(image: &str) -> (stage0::PodSpec, Vec<stage0::AppSpec>) {
    let app = stage0::AppSpec {
        image: image.to_string(),
        ..Default::default()
    };
    (stage0::PodSpec::default(), vec![app])
}

#[test]
fn many_threads_prepare_pods_of_one_image_at_once() {
    if !test_support::require_root("prepares pods, rendering images with their owners") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let image = registry().image("busybox:latest");
    // Stored already, as for every task after the first: the threads race on the store's
    // bookkeeping (the image's last-used time), not on the download.
    config.fetch(&image, image::fetch::PullPolicy::New).unwrap();
    let uuids: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| {
                    let (pod, mut apps) = specs(&image);
                    apps[0].exec = Some("/bin/true".into());
                    stage0::prepare(&config, &pod, &apps)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<String> = uuids
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let pods = pod::Pods::open(dir.path()).unwrap();
    let prepared = pods
        .list()
        .unwrap()
        .into_iter()
        .filter(|p| p.state == pod::State::Prepared)
        .count();
    assert_eq!(prepared, 32);
}

#[test]
fn errors_say_what_kind_they_are() {
    if !test_support::require_root("prepares pods, rendering images with their owners") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let kind = |(pod, apps): (stage0::PodSpec, Vec<stage0::AppSpec>)| {
        stage0::prepare(&config, &pod, &apps).unwrap_err().kind()
    };
    // Nobody listens on port 1: worth a retry later.
    assert_eq!(kind(specs("docker://127.0.0.1:1/x/y:1")), Kind::Retryable);
    let missing = registry().image("no/such-image:1");
    assert_eq!(kind(specs(&missing)), Kind::NotFound);
    let image = registry().image("busybox:latest");
    let (pod, mut apps) = specs(&image);
    apps[0].pids_limit = stage0::spec::PidsLimit::Max(0);
    assert_eq!(kind((pod, apps)), Kind::InvalidInput);
    let (mut pod, apps) = specs(&image);
    pod.volumes.push(stage0::spec::Volume {
        name: "v".into(),
        kind: stage0::spec::VolumeKind::Host(stage0::spec::HostSource::Absolute(
            "/nonexistent/x".into(),
        )),
        read_only: None,
        recursive: None,
    });
    pod.mounts.push(stage0::spec::MountSpec {
        volume: "v".into(),
        target: "/v".into(),
    });
    assert_eq!(kind((pod, apps)), Kind::InvalidInput);
    // Nothing half-made stays behind.
    let pods = pod::Pods::open(dir.path()).unwrap();
    assert!(pods.list().unwrap().is_empty());
}

#[test]
fn aci_errors_say_what_kind_they_are() {
    if !test_support::require_root("prepares pods, rendering images with their owners") {
        return;
    }
    let fx = test_support::discovery::aci_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.insecure = stage0::InsecureOptions::parse("none").unwrap();
    let kind = |config: &Config, image: &str| {
        let (pod, apps) = specs(image);
        stage0::prepare(config, &pod, &apps).unwrap_err().kind()
    };
    let hello = fx.join("hello.aci").display().to_string();
    // No key trusted: the image cannot be used as asked; retrying changes nothing.
    assert_eq!(kind(&config, &hello), Kind::InvalidInput);
    // A hostile archive is refused the same way.
    let mut unverified = config.clone();
    unverified.insecure = stage0::InsecureOptions::parse("image").unwrap();
    let evil = fx.join("evil-dotdot.aci").display().to_string();
    assert_eq!(kind(&unverified, &evil), Kind::InvalidInput);
    // An ACI URL on a port nobody listens on: worth a retry later.
    assert_eq!(kind(&config, "https://127.0.0.1:1/x.aci"), Kind::Retryable);
    // Once trusted, the same file prepares.
    config
        .keystore()
        .store(
            Some("aci.test/hello"),
            &std::fs::read(fx.join("keys/signer.asc")).unwrap(),
        )
        .unwrap();
    let (pod, apps) = specs(&hello);
    stage0::prepare(&config, &pod, &apps).unwrap();
}
