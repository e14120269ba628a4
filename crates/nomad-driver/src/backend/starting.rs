//! Task starts in flight, on disk, so that a plugin killed in the middle of a StartTask does
//! not leave a pod running twice.
//!
//! Nomad gets a task's handle only when StartTask returns. A plugin killed before that (after
//! `rkt prepare`, or after the supervisor was launched) leaves a pod Nomad knows nothing of: it
//! can neither recover nor stop it, and it starts the task again, so the old pod would run
//! beside the new one for ever. Each start therefore holds a record,
//! `<rkt dir>/nomad-driver-rkt/starting/<unique>.json`, locked (`flock`) for the whole start;
//! `rkt prepare --uuid-file-save=<unique>.uuid` names its pod there before the pod can run
//! (stage0 saves the UUID before the pod leaves the `prepare` state, and a pod a killed
//! prepare leaves is an aborted one that `rkt gc` removes). Both go when the start returns. A record whose lock
//! is free belongs to a plugin that died: [`orphans`] hands its pod to be stopped and removed.
//! A record outlives a successful start until Nomad next names the task (the driver keeps it
//! locked meanwhile): the answer to StartTask may never reach Nomad. RecoverTask [`claim`]s a
//! dead plugin's record of the task it recovers.
//! Records are created under a temporary name, locked, then renamed into place, so that a
//! sweeper never sees a record before its owner holds it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The directory of the records, beneath the driver's state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("starting")
}

/// One start in flight. Removed (and unlocked) when dropped.
pub struct Record {
    /// Open (so locked) for as long as the start runs.
    file: File,
    path: PathBuf,
    /// Removed when dropped (false: a record left for a later sweep, only unlocked).
    remove: bool,
}

fn flock(f: &File, nonblocking: bool) -> std::io::Result<bool> {
    use rustix::fs::FlockOperation;
    let op = if nonblocking {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::LockExclusive
    };
    match rustix::fs::flock(f, op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Record {
    /// Starts a record in `dir` for the start of task `task_id`.
    pub fn begin(dir: &Path, task_id: &str) -> std::io::Result<Record> {
        std::fs::create_dir_all(dir)?;
        // Unique per process and start; the task ID itself has slashes.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{}-{nanos}-{n}", std::process::id());
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(format!("{name}.json"));
        let mut file = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&tmp)?;
        flock(&file, false)?;
        file.write_all(
            serde_json::json!({ "task": task_id })
                .to_string()
                .as_bytes(),
        )?;
        std::fs::rename(&tmp, &path)?;
        Ok(Record {
            file,
            path,
            remove: true,
        })
    }

    /// Marks the start as returned to Nomad: if its answer never arrived, Nomad starts the
    /// task again, and only then is its pod an orphan (see [`Orphan::done`]).
    pub fn mark_done(&mut self, task_id: &str) -> std::io::Result<()> {
        use std::io::Seek;
        let text = serde_json::json!({ "task": task_id, "done": true }).to_string();
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())
    }

    /// Where `rkt prepare --uuid-file-save` writes the UUID of this start's pod.
    pub fn uuid_file(&self) -> PathBuf {
        self.path.with_extension("uuid")
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.remove {
            return;
        }
        // Removed while still locked: a sweeper never takes a finished start for a dead one.
        let _ = std::fs::remove_file(self.uuid_file());
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A record left by a plugin that died, held (locked) until dropped; dropping removes it.
pub struct Orphan {
    pub task: String,
    pub pod: Option<String>,
    /// Its StartTask had returned; whether Nomad got the answer is unknown.
    pub done: bool,
    record: Record,
}

impl Orphan {
    /// Leaves the record for a later sweep: unlocked, not removed.
    pub fn keep(mut self) {
        self.record.remove = false;
    }
}

/// The allocation and task name of a Nomad task ID (`<alloc>/<task>/<n>`): Nomad never runs
/// two instances of one task of an allocation, so a StartTask for the same pair means any
/// earlier one is gone from its view.
pub fn same_task(a: &str, b: &str) -> bool {
    let pair = |id: &str| id.rsplit_once('/').map(|(p, _)| p.to_string());
    pair(a).is_some() && pair(a) == pair(b)
}

/// The records in `dir` whose owner died, each locked by the caller now. Records that cannot
/// be read are skipped (and kept).
pub fn orphans(dir: &Path) -> Vec<Orphan> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(mut file) = File::options().read(true).write(true).open(&path) else {
            continue;
        };
        if !matches!(flock(&file, true), Ok(true)) {
            continue; // a start in flight, or an error: leave it
        }
        let mut text = String::new();
        if file.read_to_string(&mut text).is_err() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let record = Record {
            file,
            path,
            remove: true,
        };
        let pod = std::fs::read_to_string(record.uuid_file())
            .ok()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        out.push(Orphan {
            task: v["task"].as_str().unwrap_or_default().to_string(),
            pod,
            done: v["done"].as_bool().unwrap_or(false),
            record,
        });
    }
    out
}

/// Removes the records a dead plugin left for task `task_id` (RecoverTask shows Nomad got its
/// handle), without touching the pods they name. Records of other tasks are left as they are.
pub fn claim(dir: &Path, task_id: &str) {
    for o in orphans(dir) {
        if o.task == task_id {
            drop(o); // removed, its pod left alone
        } else {
            o.keep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_record_is_not_an_orphan_and_a_dropped_one_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let r = Record::begin(d.path(), "a/b/c").unwrap();
        std::fs::write(r.uuid_file(), "1234").unwrap();
        // flock locks are per open file description: another open of the file is refused.
        assert!(orphans(d.path()).is_empty());
        drop(r);
        assert!(orphans(d.path()).is_empty());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_record_whose_owner_died_is_an_orphan_naming_its_pod() {
        let d = tempfile::tempdir().unwrap();
        // What a dead owner leaves: the record, its lock gone with the process.
        let path = d.path().join("x.json");
        std::fs::write(&path, r#"{"task":"t1"}"#).unwrap();
        std::fs::write(d.path().join("x.uuid"), "5678\n").unwrap();
        let o = orphans(d.path());
        assert_eq!(o.len(), 1);
        assert_eq!(
            (o[0].task.as_str(), o[0].pod.as_deref()),
            ("t1", Some("5678"))
        );
        drop(o);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn recovering_a_task_claims_only_its_own_record() {
        let d = tempfile::tempdir().unwrap();
        for (name, task) in [("x", "t1"), ("y", "t2")] {
            std::fs::write(
                d.path().join(format!("{name}.json")),
                format!(r#"{{"task":"{task}"}}"#),
            )
            .unwrap();
            std::fs::write(d.path().join(format!("{name}.uuid")), "5678\n").unwrap();
        }
        let held = Record::begin(d.path(), "t1").unwrap();
        claim(d.path(), "t1");
        assert!(!d.path().join("x.json").exists() && !d.path().join("x.uuid").exists());
        assert!(held.path.exists(), "a start in flight is not claimed");
        let o = orphans(d.path());
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].task, "t2");
    }

    #[test]
    fn a_done_record_is_kept_until_the_same_task_starts_again() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Record::begin(d.path(), "a1/web/1").unwrap();
        r.mark_done("a1/web/1").unwrap();
        r.remove = false;
        drop(r); // its plugin dies: unlocked, left behind
        let o = orphans(d.path());
        assert_eq!((o.len(), o[0].done), (1, true));
        o.into_iter().for_each(Orphan::keep);
        assert_eq!(orphans(d.path()).len(), 1, "kept for a later sweep");
        assert!(same_task("a1/web/1", "a1/web/2"));
        assert!(!same_task("a1/web/1", "a1/db/2") && !same_task("a1", "a1"));
    }
}
