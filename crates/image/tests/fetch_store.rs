//! The fetcher and the content store against a real Distribution registry (the test
//! harness's): a blob an interrupted fetch left half downloaded is resumed with a range
//! request, a partial blob that does not hash to its digest is refused and removed, and
//! concurrent fetches of one image into one store download each blob once and agree.

use image::fetch::{Fetcher, NoProgress, PullPolicy};
use image::store::Store;
use std::sync::Arc;

fn fetcher(dir: &std::path::Path) -> Fetcher {
    Fetcher {
        store: Arc::new(Store::open(dir).unwrap()),
        credentials: image::auth::Credentials::default(),
        registries: image::registries::Registries::default(),
        options: image::registry::Options {
            allow_http: true,
            ..Default::default()
        },
        policy: PullPolicy::New,
        progress: Arc::new(NoProgress),
        parallel: 4,
        debug: false,
        keystore: image::trust::Keystore::new(&[], &dir.join("keys")),
        verify: false,
        auth_soft_fail: false,
        trust_keys_from_https: false,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The image's largest layer: its digest and the registry's copy of it.
fn largest_layer(reg: &test_support::Registry, repo: &str) -> (String, Vec<u8>) {
    let manifest_digest = reg.manifest_digest(repo, "latest");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.blob_data(&manifest_digest)).unwrap()).unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = std::fs::read(reg.blob_data(&layer)).unwrap();
    (layer, data)
}

/// The registry's access log lines for `digest` (`"GET …" STATUS BYTES`).
fn blob_requests(reg: &test_support::Registry, digest: &str) -> Vec<String> {
    reg.log()
        .lines()
        .filter(|l| l.contains(&format!("blobs/{digest} HTTP")) && l.contains("\"GET "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_half_downloaded_blob_is_resumed_with_a_range_request() {
    if !test_support::require_root("renders image trees with their owners") {
        return;
    }
    let reg = test_support::Registry::with_fixtures("plain");
    let (layer, data) = largest_layer(&reg, "busybox");
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let half = data.len() / 2;
    std::fs::write(f.store.partial_blob_path(&layer), &data[..half]).unwrap();
    let id = runtime()
        .block_on(f.fetch(&reg.image("busybox:latest")))
        .unwrap();
    assert!(f.store.has_image(&id));
    assert_eq!(std::fs::read(f.store.blob_path(&layer)).unwrap(), data);
    let requests = blob_requests(&reg, &layer);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let sent = format!("\" 206 {}", data.len() - half);
    assert!(
        requests[0].contains(&sent),
        "only the rest, ranged: {requests:#?}"
    );
}

#[test]
fn a_partial_blob_that_does_not_match_its_digest_is_refused_and_removed() {
    if !test_support::require_root("renders image trees with their owners") {
        return;
    }
    let reg = test_support::Registry::with_fixtures("plain");
    let (layer, data) = largest_layer(&reg, "busybox");
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path());
    let partial = f.store.partial_blob_path(&layer);
    let mut wrong = data[..data.len() / 2].to_vec();
    wrong[10] ^= 0xff;
    std::fs::write(&partial, &wrong).unwrap();
    let rt = runtime();
    let e = rt
        .block_on(f.fetch(&reg.image("busybox:latest")))
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("does not match its digest"),
        "{e:#}"
    );
    assert!(!partial.exists(), "the bad partial blob is gone");
    assert!(!f.store.blob_path(&layer).exists());
    assert!(f.store.list().unwrap().is_empty(), "nothing stored");
    // The next fetch starts afresh and succeeds.
    rt.block_on(f.fetch(&reg.image("busybox:latest"))).unwrap();
}

#[test]
fn concurrent_fetches_into_one_store_download_each_blob_once() {
    if !test_support::require_root("renders image trees with their owners") {
        return;
    }
    let reg = test_support::Registry::with_fixtures("plain");
    let (layer, _) = largest_layer(&reg, "busybox");
    let dir = tempfile::tempdir().unwrap();
    let image = reg.image("busybox:latest");
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    // Each its own fetcher and runtime, as separate rkt processes have.
                    let f = fetcher(dir.path());
                    runtime().block_on(f.fetch(&image))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(blob_requests(&reg, &layer).len(), 1, "{}", reg.log());
    assert!(
        std::fs::read_dir(store.tmp_dir()).unwrap().count() == 0,
        "no render left in tmp"
    );
}
