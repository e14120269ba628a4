//! Where a pod's cgroups are, and which cgroup hierarchy the host uses.
//!
//! A pod's cgroup is `rkt/<uuid>` below each controller's root, and an app with limits of its
//! own (in a pod of several apps) gets `rkt/<uuid>/<app>`. On cgroup v1, and on hybrid hosts
//! where the memory and cpu controllers are still on v1, that is one directory per
//! controller (memory, cpu, and cpuacct when mounted on its own); on a pure v2 host, one
//! directory in the unified hierarchy.

use std::path::{Path, PathBuf};

/// Where the host mounts its cgroup hierarchies.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The hierarchy that holds the memory and cpu controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1, or a hybrid host (v2 mounted too, but without these controllers).
    V1,
    /// The unified cgroup v2 hierarchy.
    V2,
}

impl Hierarchy {
    /// The one detection every part of rkt uses, for the hierarchies mounted at `root`.
    pub fn detect(root: &Path) -> Hierarchy {
        let memory = root.join("memory");
        if memory.join("memory.limit_in_bytes").exists() || memory.join("tasks").exists() {
            Hierarchy::V1
        } else {
            Hierarchy::V2
        }
    }

    /// The file a process writes to join a cgroup: `tasks` on v1 (a thread writing "0" there
    /// moves without the thread-group lock that `cgroup.procs` takes), `cgroup.procs` on v2.
    pub fn member_file(self) -> &'static str {
        match self {
            Hierarchy::V1 => "tasks",
            Hierarchy::V2 => "cgroup.procs",
        }
    }
}

/// A pod's cgroup, relative to each controller's root.
pub fn pod_rel(uuid: &str) -> String {
    format!("rkt/{uuid}")
}

/// An app's own cgroup inside its pod's.
pub fn app_rel(pod_rel: &str, app: &str) -> String {
    format!("{pod_rel}/{app}")
}

/// The directories a cgroup `rel` has for limits and accounting: on v1 memory, cpu,
/// cpuacct when that is a hierarchy of its own (co-mounted with cpu, the cpu directory
/// already is it) and pids when mounted (see [`v1_pids_dir`]); on v2 the one unified
/// directory. Paths only: nothing is created.
pub fn dirs(root: &Path, rel: &str) -> Vec<PathBuf> {
    match Hierarchy::detect(root) {
        Hierarchy::V1 => {
            let mut dirs = vec![root.join("memory").join(rel), root.join("cpu").join(rel)];
            if root.join("cpuacct/cpuacct.usage").exists()
                && !root.join("cpu/cpuacct.usage").exists()
            {
                dirs.push(root.join("cpuacct").join(rel));
            }
            dirs.extend(v1_pids_dir(root, rel));
            dirs
        }
        Hierarchy::V2 => vec![root.join(rel)],
    }
}

/// Where a v1 (or hybrid) host counts a cgroup's processes: the pids hierarchy, when it is
/// mounted. Always last in [`dirs`].
pub fn v1_pids_dir(root: &Path, rel: &str) -> Option<PathBuf> {
    root.join("pids/tasks")
        .exists()
        .then(|| root.join("pids").join(rel))
}

/// Where CPU usage is accounted for a v1 cgroup `rel`: cpuacct's own directory, or the
/// co-mounted `cpu,cpuacct` one.
pub fn v1_cpuacct_dir(root: &Path, rel: &str) -> PathBuf {
    let own = root.join("cpuacct").join(rel);
    if own.is_dir() {
        own
    } else {
        root.join("cpu,cpuacct").join(rel)
    }
}

/// Every directory of pod `uuid` in every hierarchy mounted at `root` (its apps' included),
/// children before their parents, so that they can be removed in this order.
pub fn pod_dirs_everywhere(root: &Path, uuid: &str) -> Vec<PathBuf> {
    let rel = pod_rel(uuid);
    let mut hierarchies = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        // Symlinks (cpu -> cpu,cpuacct on some hosts) name a hierarchy listed anyway.
        hierarchies.extend(
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    let mut out = Vec::new();
    for h in hierarchies {
        let dir = h.join(&rel);
        if dir.is_dir() {
            post_order(&dir, &mut out);
        }
    }
    out
}

fn post_order(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                post_order(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// The processes in the cgroups `dirs` (their `cgroup.procs`; a directory that is gone has
/// none).
pub fn processes_in(dirs: &[PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Removes every cgroup directory of pod `uuid` (see [`pod_dirs_everywhere`]). The pod's
/// processes must be gone: the kernel refuses to remove a cgroup with members. Returns the
/// directories that could not be removed, with why.
pub fn remove_pod(root: &Path, uuid: &str) -> Vec<(PathBuf, std::io::Error)> {
    pod_dirs_everywhere(root, uuid)
        .into_iter()
        .filter_map(|d| match std::fs::remove_dir(&d) {
            Ok(()) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some((d, e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_v1() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu", "cpuacct", "pids"] {
            std::fs::create_dir_all(t.path().join(c)).unwrap();
        }
        std::fs::write(t.path().join("memory/tasks"), "").unwrap();
        std::fs::write(t.path().join("cpuacct/cpuacct.usage"), "0").unwrap();
        t
    }

    #[test]
    fn detection_and_directories() {
        let v1 = fake_v1();
        assert_eq!(Hierarchy::detect(v1.path()), Hierarchy::V1);
        let got = dirs(v1.path(), &pod_rel("u"));
        let want: Vec<PathBuf> = ["memory", "cpu", "cpuacct"]
            .iter()
            .map(|c| v1.path().join(c).join("rkt/u"))
            .collect();
        assert_eq!(got, want);
        let v2 = tempfile::tempdir().unwrap();
        assert_eq!(Hierarchy::detect(v2.path()), Hierarchy::V2);
        assert_eq!(dirs(v2.path(), "rkt/u"), [v2.path().join("rkt/u")]);
        assert_eq!(Hierarchy::V2.member_file(), "cgroup.procs");
    }

    #[test]
    fn every_directory_of_a_pod_children_first() {
        let root = fake_v1();
        let r = root.path();
        for d in [
            "memory/rkt/u/a",
            "memory/rkt/u/b",
            "cpu/rkt/u/a",
            "pids/rkt/u",
            "rkt/u/x",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::create_dir_all(r.join("memory/rkt/other")).unwrap();
        let all = pod_dirs_everywhere(r, "u");
        assert_eq!(all.len(), 8, "{all:?}");
        let pos = |p: &str| all.iter().position(|d| *d == r.join(p)).unwrap();
        assert!(pos("memory/rkt/u/a") < pos("memory/rkt/u"));
        assert!(pos("rkt/u/x") < pos("rkt/u"));
        assert!(remove_pod(r, "u").is_empty());
        assert!(pod_dirs_everywhere(r, "u").is_empty());
        assert!(r.join("memory/rkt/other").is_dir());
    }
}
