//! Removing the images that no task uses any more: the plugin's `gc { image = true
//! image_delay = "3m" }`, as Nomad's Docker driver has it.
//!
//! - Which images: those the driver's tasks used (recorded when a task's pod is prepared or
//!   recovered). Images an operator fetched and never ran through Nomad are not the driver's
//!   to remove; `rkt image gc` is there for them.
//! - When an image counts as used: while any pod of rkt's store names it, in any state, until
//!   the pod is removed (the driver removes a task's pod when Nomad destroys the task), and
//!   while a task is starting at all (its image is not named by its pod until it is
//!   prepared): a sweep never runs during a start.
//! - When it goes: once a sweep has seen it unused for `image_delay`. The record of what is
//!   tracked and since when it is unused lives in `<rkt dir>/nomad-driver-rkt/images.json`,
//!   so a plugin restarted (or upgraded) meanwhile removes it on time, and one that was
//!   stopped for longer removes it at its first sweep.

use super::rkt::Rkt;
use crate::config::GcConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What is known about one tracked image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracked {
    /// Unix nanoseconds since when no pod uses it; None while one does (or has not been
    /// looked at since it was used).
    pub unused_since: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StateFile {
    images: BTreeMap<String, Tracked>,
}

pub struct ImageGc {
    rkt: Rkt,
    /// None until the long-lived plugin instance is configured.
    config: Mutex<Option<GcConfig>>,
    /// Held (shared) by every task start; a sweep runs only when it can take it alone.
    starting: tokio::sync::RwLock<()>,
}

impl ImageGc {
    pub fn new(rkt: Rkt) -> Arc<ImageGc> {
        Arc::new(ImageGc {
            rkt,
            config: Mutex::new(None),
            starting: tokio::sync::RwLock::new(()),
        })
    }

    pub fn configure(&self, gc: GcConfig) {
        *self.config.lock().expect("gc config") = Some(gc);
    }

    pub fn config(&self) -> Option<GcConfig> {
        self.config.lock().expect("gc config").clone()
    }

    /// Held for the whole of a task start: no image is removed meanwhile.
    pub async fn starting(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.starting.read().await
    }

    fn state_dir(&self) -> PathBuf {
        self.rkt.data_dir().join("nomad-driver-rkt")
    }

    /// Records that a task used these images (and uses them now).
    pub fn track(&self, images: &[String]) -> stage0::Result<()> {
        if images.is_empty() {
            return Ok(());
        }
        let dir = self.state_dir();
        let _lock = lock(&dir, true)?
            .ok_or_else(|| stage0::Error::failed("the image state lock was not taken"))?;
        let mut state = load(&dir)?;
        for id in images {
            state.images.insert(id.clone(), Tracked::default());
        }
        save(&dir, &state)
    }

    /// The images recorded as the driver's, with what is known about them.
    pub fn tracked(&self) -> stage0::Result<BTreeMap<String, Tracked>> {
        Ok(load(&self.state_dir())?.images)
    }

    /// One collection: notes which tracked images are unused (and since when), removes those
    /// unused for the delay, and their blobs that no other image shares. Returns the
    /// removed image IDs. Does nothing while unconfigured or off, while a task starts, or
    /// while another plugin process sweeps the same store.
    pub async fn sweep(&self) -> stage0::Result<Vec<String>> {
        let Some(gc) = self.config().filter(|g| g.image) else {
            return Ok(Vec::new());
        };
        let Ok(_no_start) = self.starting.try_write() else {
            return Ok(Vec::new());
        };
        let (config, dir) = (self.rkt.stage0_config(), self.state_dir());
        tokio::task::spawn_blocking(move || sweep_store(&config, &dir, gc.image_delay))
            .await
            .map_err(|e| stage0::Error::failed(format!("the image collector failed: {e}")))?
    }

    /// How often to sweep: often enough that an image goes within a quarter of its delay
    /// after it is due, and at least every 30 s.
    pub fn period(&self) -> Duration {
        match self.config() {
            Some(g) => {
                (g.image_delay / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
            }
            None => Duration::from_secs(1),
        }
    }

    /// Sweeps for as long as the plugin runs.
    pub fn spawn(self: &Arc<Self>) {
        let gc = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(gc.period()).await;
                match gc.sweep().await {
                    Ok(removed) => {
                        for id in removed {
                            crate::log::info("removed an image no task uses", &[("image", &id)]);
                        }
                    }
                    Err(e) => crate::log::warn("image collection", &[("error", &e.to_string())]),
                }
            }
        });
    }
}

fn sweep_store(
    config: &stage0::Config,
    dir: &std::path::Path,
    delay: Duration,
) -> stage0::Result<Vec<String>> {
    let Some(_lock) = lock(dir, false)? else {
        return Ok(Vec::new());
    };
    let mut state = load(dir)?;
    if state.images.is_empty() {
        return Ok(Vec::new());
    }
    let in_use = stage0::lifecycle::images_in_use(config)?;
    let store = image::store::Store::open(&config.dir)?;
    let before = state.clone();
    let due = decide(
        &mut state.images,
        &in_use,
        |id| store.has_image(id),
        image::store::now_nanos(),
        delay,
    );
    let mut removed = Vec::new();
    for id in due {
        match store.remove(&id) {
            Ok(()) => {
                state.images.remove(&id);
                removed.push(id);
            }
            // Gone meanwhile (`rkt image rm`): nothing left to do.
            Err(_) if !store.has_image(&id) => {
                state.images.remove(&id);
            }
            Err(e) => {
                return Err(stage0::Error::from(e).context(format_args!("removing image {id}")))
            }
        }
    }
    if !removed.is_empty() {
        // The blobs no image refers to any more; interrupted downloads younger than a day
        // stay for a later fetch to resume, as `rkt image gc` keeps them.
        store
            .sweep(Duration::from_secs(24 * 3600))
            .map_err(|e| stage0::Error::from(e).context("removing unused blobs"))?;
    }
    if state != before {
        save(dir, &state)?;
    }
    Ok(removed)
}

/// What one sweep decides for the tracked images, given the images pods use now, which are
/// still in the store, and the time (Unix nanoseconds): marks the newly unused, clears the
/// used again, forgets the ones gone, and returns the ones unused for `delay` (to remove).
pub fn decide(
    tracked: &mut BTreeMap<String, Tracked>,
    in_use: &BTreeSet<String>,
    present: impl Fn(&str) -> bool,
    now: i64,
    delay: Duration,
) -> Vec<String> {
    let delay = i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX);
    let mut due = Vec::new();
    tracked.retain(|id, t| {
        if !present(id) {
            return false;
        }
        if in_use.contains(id) {
            t.unused_since = None;
            return true;
        }
        match t.unused_since {
            None => t.unused_since = Some(now),
            Some(since) if now.saturating_sub(since) >= delay => due.push(id.clone()),
            Some(_) => {}
        }
        true
    });
    due
}

/// The state directory's lock (flock on `images.lock`): waited for, or only tried.
fn lock(dir: &std::path::Path, wait: bool) -> stage0::Result<Option<std::fs::File>> {
    use rustix::fs::{flock, FlockOperation};
    std::fs::create_dir_all(dir)
        .map_err(|e| stage0::Error::from(e).context(format_args!("creating {}", dir.display())))?;
    let path = dir.join("images.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| stage0::Error::from(e).context(format_args!("opening {}", path.display())))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match flock(&file, op) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(stage0::Error::from(std::io::Error::from(e))
            .context(format_args!("locking {}", path.display()))),
    }
}

fn load(dir: &std::path::Path) -> stage0::Result<StateFile> {
    let path = dir.join("images.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            stage0::Error::from(e).context(format_args!("reading {}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
        Err(e) => Err(stage0::Error::from(e).context(format_args!("reading {}", path.display()))),
    }
}

fn save(dir: &std::path::Path, state: &StateFile) -> stage0::Result<()> {
    let path = dir.join("images.json");
    let bytes = serde_json::to_vec_pretty(state).expect("serializable");
    Ok(image::store::write_atomic(&path, &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_image_goes_only_after_the_delay_unused() {
        let mut t: BTreeMap<String, Tracked> = [("a", None), ("b", None), ("gone", None)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Tracked { unused_since: v }))
            .collect();
        let present = |id: &str| id != "gone";
        let delay = Duration::from_secs(3);
        // a is used, b is not: b's clock starts; gone is forgotten.
        assert!(decide(&mut t, &ids(&["a"]), present, 100 * S, delay).is_empty());
        assert_eq!(t["a"].unused_since, None);
        assert_eq!(t["b"].unused_since, Some(100 * S));
        assert!(!t.contains_key("gone"));
        // Not yet: 2 s later.
        assert!(decide(&mut t, &ids(&["a"]), present, 102 * S, delay).is_empty());
        // Used again at 102.5 s: its clock stops, and starts again when it is unused.
        assert!(decide(&mut t, &ids(&["a", "b"]), present, 102 * S + S / 2, delay).is_empty());
        assert_eq!(t["b"].unused_since, None);
        assert!(decide(&mut t, &ids(&["a"]), present, 104 * S, delay).is_empty());
        assert!(decide(&mut t, &ids(&["a"]), present, 106 * S, delay).is_empty());
        assert_eq!(decide(&mut t, &ids(&["a"]), present, 107 * S, delay), ["b"]);
        // a, in use all along, never goes.
        assert!(decide(&mut t, &ids(&["a"]), present, 1_000 * S, delay) == ["b"]);
        assert_eq!(t["a"].unused_since, None);
        // A zero delay removes at the second sweep that finds it unused.
        let mut t: BTreeMap<String, Tracked> = [("c".to_string(), Tracked::default())]
            .into_iter()
            .collect();
        assert!(decide(&mut t, &ids(&[]), present, S, Duration::ZERO).is_empty());
        assert_eq!(decide(&mut t, &ids(&[]), present, S, Duration::ZERO), ["c"]);
    }

    /// A store with one image in it, as `rkt fetch` leaves it (the parts the store reads).
    fn store_with_image(dir: &std::path::Path, id: &str) {
        let store = image::store::Store::open(dir).unwrap();
        let img = store.image_dir(id);
        std::fs::create_dir_all(img.join("rootfs/bin")).unwrap();
        std::fs::write(img.join("rootfs/bin/app"), b"x").unwrap();
        let info = image::store::ImageInfo {
            id: id.into(),
            name: "127.0.0.1:5000/app".into(),
            version: Some("1".into()),
            source: "docker://127.0.0.1:5000/app:1".into(),
            manifest_digest: format!("sha256:{}", "1".repeat(64)),
            config_digest: format!("sha256:{}", "2".repeat(64)),
            layers: Vec::new(),
            import_time: 0,
            last_used: 0,
            size: 1,
            dependencies: Vec::new(),
        };
        std::fs::write(img.join("info.json"), serde_json::to_vec(&info).unwrap()).unwrap();
    }

    #[tokio::test]
    async fn no_sweep_while_a_task_starts_and_state_outlives_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let id = format!("sha512-{}", "a".repeat(64));
        store_with_image(dir.path(), &id);
        let rkt = Rkt {
            path: "/nonexistent/rkt".into(),
            dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let gc = ImageGc::new(rkt.clone());
        gc.track(std::slice::from_ref(&id)).unwrap();
        // Unconfigured (or not the long-lived instance): nothing happens.
        assert!(gc.sweep().await.unwrap().is_empty());
        assert_eq!(gc.tracked().unwrap()[&id].unused_since, None);
        gc.configure(GcConfig {
            image: true,
            image_delay: Duration::ZERO,
        });
        // A start in progress holds every sweep off.
        let starting = gc.starting().await;
        assert!(gc.sweep().await.unwrap().is_empty());
        assert!(gc.sweep().await.unwrap().is_empty());
        assert_eq!(gc.tracked().unwrap()[&id].unused_since, None);
        drop(starting);
        // The first sweep notes it unused; a new plugin process knows it.
        assert!(gc.sweep().await.unwrap().is_empty());
        assert!(gc.tracked().unwrap()[&id].unused_since.is_some());
        let store = image::store::Store::open(dir.path()).unwrap();
        assert!(store.has_image(&id));
        let restarted = ImageGc::new(rkt);
        restarted.configure(GcConfig {
            image: true,
            image_delay: Duration::ZERO,
        });
        assert_eq!(restarted.sweep().await.unwrap(), std::slice::from_ref(&id));
        assert!(!store.has_image(&id));
        assert!(restarted.tracked().unwrap().is_empty());
        // Turned off: tracked images stay.
        store_with_image(dir.path(), &id);
        restarted.track(std::slice::from_ref(&id)).unwrap();
        restarted.configure(GcConfig {
            image: false,
            image_delay: Duration::ZERO,
        });
        for _ in 0..3 {
            assert!(restarted.sweep().await.unwrap().is_empty());
        }
        assert!(store.has_image(&id));
    }
}
