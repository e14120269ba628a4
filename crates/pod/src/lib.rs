//! rkt pods on disk: directories, states, locks, manifests and status.
//!
//! A pod's state is which directory under `<dir>/pods/` holds it, and whether its directory
//! lock (flock(2) on the directory itself) is held, exactly as rkt 1.30 laid it out, so that
//! `status`, `list` and `gc` work from any process at any time:
//!
//! | directory | lock held | lock free |
//! |---|---|---|
//! | `embryo/` | embryo | embryo |
//! | `prepare/` | preparing | aborted prepare |
//! | `prepared/` | prepared | prepared |
//! | `run/` | running (the stage1 supervisor holds it) | exited |
//! | `exited-garbage/` | exited deleting | exited garbage |
//! | `garbage/` | deleting | garbage |
//!
//! Transitions are `rename(2)`s of the pod directory, made while holding its lock.

#![forbid(unsafe_code)]

pub mod caps;
pub mod error;
pub mod manifest;
pub mod seccomp;
pub mod status;

use error::{invalid, Context};
pub use error::{Error, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The directories a pod moves through, in lifecycle order.
pub const STATE_DIRS: [&str; 6] = [
    "embryo",
    "prepare",
    "prepared",
    "run",
    "exited-garbage",
    "garbage",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Embryo,
    Preparing,
    AbortedPrepare,
    Prepared,
    Running,
    Exited,
    ExitedGarbage,
    ExitedDeleting,
    Garbage,
    Deleting,
}

impl State {
    /// rkt's state names, as `status` and `list` print them.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Embryo => "embryo",
            State::Preparing => "preparing",
            State::AbortedPrepare => "aborted prepare",
            State::Prepared => "prepared",
            State::Running => "running",
            State::Exited => "exited",
            State::ExitedGarbage => "exited garbage",
            State::ExitedDeleting => "exited deleting",
            State::Garbage => "garbage",
            State::Deleting => "deleting",
        }
    }

    /// The directory under `pods/` that holds a pod in this state.
    pub fn dir(self) -> &'static str {
        match self {
            State::Embryo => "embryo",
            State::Preparing | State::AbortedPrepare => "prepare",
            State::Prepared => "prepared",
            State::Running | State::Exited => "run",
            State::ExitedGarbage | State::ExitedDeleting => "exited-garbage",
            State::Garbage | State::Deleting => "garbage",
        }
    }

    /// Whether the pod ever ran (so it has a pid, exit statuses, maybe networks).
    pub fn ran(self) -> bool {
        matches!(
            self,
            State::Running | State::Exited | State::ExitedGarbage | State::ExitedDeleting
        )
    }
}

/// A pod directory found under `<dir>/pods/`.
#[derive(Debug, Clone)]
pub struct Pod {
    pub uuid: String,
    pub path: PathBuf,
    pub state: State,
}

/// A held pod lock. The descriptor is the open pod directory; released when dropped.
pub struct PodLock {
    pub dir: File,
}

impl PodLock {
    pub fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.dir.as_raw_fd()
    }
}

pub struct Pods {
    root: PathBuf,
}

impl Pods {
    pub fn open(dir: &Path) -> Result<Pods> {
        let root = dir.join("pods");
        for d in STATE_DIRS {
            let p = root.join(d);
            std::fs::create_dir_all(&p).with_context(|| {
                format!(
                    "cannot create {}; check --dir and that you are root",
                    p.display()
                )
            })?;
        }
        // The pods' roots (their overlays' upper layers, what --no-overlay copied) hold what
        // the apps wrote, as root, setuid binaries included: only root may reach them.
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&root)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("closing {} to other users", root.display()))?;
            }
        }
        Ok(Pods { root })
    }

    /// Creates `embryo/<uuid>` and moves it to `prepare/` under its lock, as rkt did.
    pub fn create(&self) -> Result<(Pod, PodLock)> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let embryo = self.root.join("embryo").join(&uuid);
        std::fs::create_dir(&embryo).with_context(|| format!("creating {}", embryo.display()))?;
        let lock = lock_dir(&embryo, FlockOperation::LockExclusive)?;
        let prepare = self.root.join("prepare").join(&uuid);
        std::fs::rename(&embryo, &prepare).context("moving the pod to prepare")?;
        std::fs::write(layout::pod_dir::PodDir::new(&prepare).created(), b"")?;
        Ok((
            Pod {
                uuid,
                path: prepare,
                state: State::Preparing,
            },
            lock,
        ))
    }

    /// Moves a pod to another state directory. The caller holds its lock where rkt did.
    /// The directory is the one `state` lives in ([`State::dir`]), so the two cannot disagree.
    pub fn transition(&self, pod: &mut Pod, state: State) -> Result<()> {
        let to = state.dir();
        let dest = self.root.join(to).join(&pod.uuid);
        std::fs::rename(&pod.path, &dest)
            .with_context(|| format!("moving pod {} to {to}", pod.uuid))?;
        pod.path = dest;
        pod.state = state;
        Ok(())
    }

    /// Every pod, in no particular order.
    pub fn list(&self) -> Result<Vec<Pod>> {
        let mut out = Vec::new();
        for d in STATE_DIRS {
            let Ok(rd) = std::fs::read_dir(self.root.join(d)) else {
                continue;
            };
            for e in rd.filter_map(|e| e.ok()) {
                let uuid = e.file_name().to_string_lossy().into_owned();
                if let Some(state) = state_of(d, &e.path()) {
                    out.push(Pod {
                        uuid,
                        path: e.path(),
                        state,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Finds a pod by UUID or unique UUID prefix.
    pub fn find(&self, prefix: &str) -> Result<Pod> {
        if prefix.is_empty() {
            invalid!("no pod UUID given");
        }
        let mut hits: Vec<Pod> = self
            .list()?
            .into_iter()
            .filter(|p| p.uuid.starts_with(prefix))
            .collect();
        match hits.len() {
            0 => Err(Error::NotFound(format!(
                "no pod with UUID {prefix:?}; see `rkt list`"
            ))),
            1 => Ok(hits.remove(0)),
            n => Err(Error::InvalidInput(format!(
                "UUID prefix {prefix:?} matches {n} pods; give more of the UUID"
            ))),
        }
    }

    /// Reads a UUID from `--uuid-file`, or takes it from the argument.
    pub fn find_from(&self, uuid: Option<&str>, uuid_file: Option<&Path>) -> Result<Pod> {
        match (uuid, uuid_file) {
            (Some(_), Some(_)) => invalid!("give either a UUID or --uuid-file, not both"),
            (Some(u), None) => self.find(u),
            (None, Some(f)) => {
                let u = std::fs::read_to_string(f)
                    .with_context(|| format!("reading the UUID file {}", f.display()))?;
                self.find(u.trim())
            }
            (None, None) => invalid!("give a pod UUID or --uuid-file"),
        }
    }
}

/// The state of the pod at `path` in state directory `dir`, or None if it vanished.
fn state_of(dir: &str, path: &Path) -> Option<State> {
    let held = || is_locked(path);
    Some(match dir {
        "embryo" => State::Embryo,
        "prepare" => {
            if held()? {
                State::Preparing
            } else {
                State::AbortedPrepare
            }
        }
        "prepared" => State::Prepared,
        "run" => {
            if held()? {
                State::Running
            } else {
                State::Exited
            }
        }
        "exited-garbage" => {
            if held()? {
                State::ExitedDeleting
            } else {
                State::ExitedGarbage
            }
        }
        _ => {
            if held()? {
                State::Deleting
            } else {
                State::Garbage
            }
        }
    })
}

/// Whether someone holds the pod's lock; None if the directory is gone.
fn is_locked(path: &Path) -> Option<bool> {
    let f = File::open(path).ok()?;
    match flock(f.as_fd(), FlockOperation::NonBlockingLockShared) {
        Ok(()) => Some(false),
        Err(_) => Some(true),
    }
}

/// Locks a pod directory (blocking for the given operation).
pub fn lock_dir(path: &Path, op: FlockOperation) -> Result<PodLock> {
    let dir = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    flock(dir.as_fd(), op).with_context(|| format!("locking {}", path.display()))?;
    Ok(PodLock { dir })
}

/// Takes a pod's lock only if it is free.
pub fn try_lock_dir(path: &Path) -> Result<Option<PodLock>> {
    let dir = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    match flock(dir.as_fd(), FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(PodLock { dir })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Pod {
    /// The paths inside the pod's directory.
    pub fn dir(&self) -> layout::pod_dir::PodDir {
        layout::pod_dir::PodDir::new(&self.path)
    }

    pub fn created(&self) -> Option<SystemTime> {
        mtime(&self.dir().created())
    }

    /// When the pod's init started (the `pid` file is written then).
    pub fn started(&self) -> Option<SystemTime> {
        mtime(&self.dir().pid())
    }

    /// The PID of the pod's init (for `enter` and `stop --force`).
    pub fn pid(&self) -> Option<i32> {
        read_int(&self.dir().pid())
    }

    /// The PID of the supervisor (stage1), which forwards signals to the pod.
    pub fn supervisor_pid(&self) -> Option<i32> {
        read_int(&self.dir().ppid())
    }

    /// Whether `app` has started (its process runs in its root).
    pub fn app_started(&self, app: &str) -> bool {
        self.dir()
            .app_marker(app, layout::pod_dir::Marker::Started)
            .exists()
    }

    /// Each app's exit code, once it has one.
    pub fn exit_code(&self, app: &str) -> Option<i32> {
        read_int(&self.dir().app_status(app))
    }

    pub fn manifest(&self) -> Result<manifest::PodManifest> {
        let p = self.path.join("pod");
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Corrupt(format!("parsing {}: {e}", p.display())))
    }
}

/// A file's modification time: rkt keeps pod and app timestamps as marker files.
pub fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).ok()?.modified().ok()
}

fn read_int(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_through_directories_and_locks() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::open(d.path()).unwrap();
        let (mut pod, lock) = pods.create().unwrap();
        assert_eq!(pods.find(&pod.uuid[..8]).unwrap().state, State::Preparing);
        drop(lock);
        assert_eq!(pods.find(&pod.uuid).unwrap().state, State::AbortedPrepare);
        pods.transition(&mut pod, State::Prepared).unwrap();
        assert_eq!(pods.find(&pod.uuid).unwrap().state, State::Prepared);
        let lock = lock_dir(&pod.path, FlockOperation::LockExclusive).unwrap();
        pods.transition(&mut pod, State::Running).unwrap();
        assert_eq!(pods.find(&pod.uuid).unwrap().state, State::Running);
        drop(lock);
        assert_eq!(pods.find(&pod.uuid).unwrap().state, State::Exited);
        assert!(pods.find("zzz").is_err());
    }

    #[test]
    fn ambiguous_prefix_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::open(d.path()).unwrap();
        let mut seen = std::collections::HashMap::new();
        // Make pods until two share a first hex digit.
        let (a, b) = loop {
            let (p, _l) = pods.create().unwrap();
            if let Some(prev) = seen.insert(p.uuid[..1].to_string(), p.uuid.clone()) {
                break (prev, p.uuid);
            }
        };
        let err = pods.find(&a[..1]).unwrap_err().to_string();
        assert!(err.contains("matches"), "{err}");
        assert!(pods.find(&b).is_ok());
    }
}
