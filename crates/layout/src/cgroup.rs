//! Where a pod's cgroups are, and which cgroup hierarchy the host uses.
//!
//! A pod's cgroup is `<parent>/rkt-<uuid>` below each controller's root ([`pod_rel`]). The
//! parent is [`DEFAULT_PARENT`] unless `--cgroup-parent` names another; the path a pod got is
//! recorded in its plan ([`crate::plan::Plan::cgroup`]) when it runs, and everything that
//! looks for the pod's cgroups afterwards (`rkt enter`, `rm`, `gc`, the Nomad driver's
//! statistics) reads it from there, never from a constant. Pods that ran before the parent
//! was configurable recorded `rkt/<uuid>`, and are found the same way.
//!
//! Inside the pod's cgroup:
//!
//! - on a pure v2 host (one unified hierarchy), the kernel allows no process in a cgroup
//!   whose children have controllers enabled, so the pod's cgroup holds no process at all:
//!   the supervisor and the pod init live in the leaf [`INIT_LEAF`], and every app in a leaf
//!   of its own, `<pod>/<app>`, as systemd and runc lay out their units and containers. The
//!   limits of a single app are set on the pod's cgroup (they hold the init too, as on v1);
//!   in a pod of several apps, each app's on its own leaf.
//! - on cgroup v1 and hybrid hosts (the memory and cpu controllers still on v1), one directory
//!   per hierarchy: the pod init and the apps without limits of their own stay in the pod's
//!   cgroup; an app with limits of its own, in a pod of several apps, gets `<pod>/<app>`.
//!
//! Why a top-level parent of rkt's own (`rkt.slice`) rather than systemd's `machine.slice`:
//! rkt 1.x registered each pod with systemd-machined, which made it a scope unit of
//! `machine.slice`. This rkt registers nothing (its supervisor links only libc: no D-Bus), and
//! a cgroup made behind systemd's back inside a slice systemd manages is exposed to it:
//! systemd rewrites `machine.slice`'s `cgroup.subtree_control` to the controllers of its own
//! units whenever a machine or VM starts there (taking cpu and cpuset away from the pods
//! below), and `systemctl stop machine.slice` kills everything in it. A top-level cgroup that
//! no unit owns is left alone by systemd, as Docker's and podman's (`/docker`,
//! `/libpod_parent`) are; its `cgroup.subtree_control` keeps the pods' controllers enabled,
//! which also stops systemd from disabling them at the root (the kernel refuses with EBUSY).
//! It is named like a slice so that `systemd-cgls` and `systemd-cgtop` show it as one group
//! of pods, each pod a child of it. `--cgroup-parent` puts pods anywhere else (a delegated
//! subtree, `machine.slice` for those who want it there).

use std::path::{Path, PathBuf};

/// Where the host mounts its cgroup hierarchies.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup pods go below when `--cgroup-parent` is not given (see the module docs).
pub const DEFAULT_PARENT: &str = "rkt.slice";

/// The leaf of a pod's cgroup that holds its supervisor and init on a v2 host. App names are
/// appc names (`[a-z0-9-]`), so a name with a dot never collides with an app's leaf.
pub const INIT_LEAF: &str = "stage1.init";

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

/// Checks a `--cgroup-parent` and returns it in the form pods record it: relative to each
/// controller's root, without leading or trailing slashes (`/machine.slice/` and
/// `machine.slice` are the same parent). Every component must be a plain name: no `.` or
/// `..` (a parent may not climb out of the hierarchy), no empty one, nothing a cgroup name
/// cannot hold.
pub fn check_parent(parent: &str) -> Result<String, String> {
    let trimmed = parent.trim_matches('/');
    let fix =
        "give a path of cgroup names below /sys/fs/cgroup, such as rkt.slice or machine.slice/rkt";
    if trimmed.is_empty() {
        return Err(format!(
            "--cgroup-parent {parent:?} names the cgroup root itself, where no pod may go; {fix}"
        ));
    }
    for c in trimmed.split('/') {
        if c.is_empty() || c == "." || c == ".." || c.contains(['\n', '\0']) {
            return Err(format!(
                "--cgroup-parent {parent:?}: {c:?} is not a cgroup name; {fix}"
            ));
        }
    }
    Ok(trimmed.to_string())
}

/// A pod's cgroup, relative to each controller's root, below `parent` (already checked with
/// [`check_parent`]).
pub fn pod_rel(parent: &str, uuid: &str) -> String {
    format!("{parent}/rkt-{uuid}")
}

/// An app's own cgroup inside its pod's.
pub fn app_rel(pod_rel: &str, app: &str) -> String {
    format!("{pod_rel}/{app}")
}

/// The cgroup of the pod's supervisor and init on a v2 host (see [`INIT_LEAF`]).
pub fn init_rel(pod_rel: &str) -> String {
    format!("{pod_rel}/{INIT_LEAF}")
}

/// A cgroup's directory in each v1 hierarchy a pod uses (paths only: nothing is created).
/// The controllers that are not mounted on this host are None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Dirs {
    pub memory: PathBuf,
    /// `cpu`, or `cpu,cpuacct` where only the co-mounted name exists.
    pub cpu: PathBuf,
    /// cpuacct when it is a hierarchy of its own (co-mounted with cpu, `cpu` already is it).
    pub cpuacct: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    pub devices: Option<PathBuf>,
    pub cpuset: Option<PathBuf>,
}

impl V1Dirs {
    pub fn at(root: &Path, rel: &str) -> V1Dirs {
        let mounted = |c: &str| root.join(c).join("tasks").exists();
        let cpu = if root.join("cpu").is_dir() || !root.join("cpu,cpuacct").is_dir() {
            root.join("cpu")
        } else {
            root.join("cpu,cpuacct")
        };
        let own_cpuacct =
            root.join("cpuacct/cpuacct.usage").exists() && !cpu.join("cpuacct.usage").exists();
        V1Dirs {
            memory: root.join("memory").join(rel),
            cpu: cpu.join(rel),
            cpuacct: own_cpuacct.then(|| root.join("cpuacct").join(rel)),
            pids: mounted("pids").then(|| root.join("pids").join(rel)),
            devices: mounted("devices").then(|| root.join("devices").join(rel)),
            cpuset: mounted("cpuset").then(|| root.join("cpuset").join(rel)),
        }
    }

    /// The directories, memory first; cpuset only when asked for (a v1 cpuset cgroup needs
    /// its CPUs and memory nodes written before anyone joins it: pods that set none stay out).
    pub fn list(&self, with_cpuset: bool) -> Vec<PathBuf> {
        let mut v = vec![self.memory.clone(), self.cpu.clone()];
        v.extend(self.cpuacct.iter().cloned());
        v.extend(self.pids.iter().cloned());
        v.extend(self.devices.iter().cloned());
        if with_cpuset {
            v.extend(self.cpuset.iter().cloned());
        }
        v
    }
}

/// The directories a cgroup `rel` has for limits and accounting: on v1 those of
/// [`V1Dirs::list`] (cpuset included), on v2 the one unified directory. Paths only: nothing
/// is created; a process joining them joins those that exist.
pub fn dirs(root: &Path, rel: &str) -> Vec<PathBuf> {
    match Hierarchy::detect(root) {
        Hierarchy::V1 => V1Dirs::at(root, rel).list(true),
        Hierarchy::V2 => vec![root.join(rel)],
    }
}

/// Where a v1 (or hybrid) host counts a cgroup's processes: the pids hierarchy, when it is
/// mounted.
pub fn v1_pids_dir(root: &Path, rel: &str) -> Option<PathBuf> {
    V1Dirs::at(root, rel).pids
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

/// Every directory of the pod cgroup `rel` in every hierarchy mounted at `root` (its apps'
/// and its init's leaves included), children before their parents, so that they can be
/// removed in this order.
pub fn pod_dirs_everywhere(root: &Path, rel: &str) -> Vec<PathBuf> {
    if check_parent(rel).is_err() {
        // A recorded path that climbs out (a damaged plan) names nothing of the pod's.
        return Vec::new();
    }
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
        let dir = h.join(rel);
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

/// Removes every cgroup directory of the pod cgroup `rel` (see [`pod_dirs_everywhere`]). The
/// pod's processes must be gone: the kernel refuses to remove a cgroup with members. Returns
/// the directories that could not be removed, with why.
pub fn remove_pod(root: &Path, rel: &str) -> Vec<(PathBuf, std::io::Error)> {
    pod_dirs_everywhere(root, rel)
        .into_iter()
        .filter_map(|d| match std::fs::remove_dir(&d) {
            Ok(()) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some((d, e)),
        })
        .collect()
}

/// The cgroup path the pod in directory `pod` recorded in its plan when it ran (None: it
/// never ran, or ran without cgroups).
pub fn of_pod(pod: &Path) -> Option<String> {
    let plan = crate::plan::Plan::load(&crate::pod_dir::PodDir::new(pod).plan()).ok()?;
    Some(plan.cgroup).filter(|c| !c.is_empty())
}

/// The cgroup (relative to the root, `0::/…`) that `/proc/PID/cgroup` text places a process
/// in on the unified hierarchy, or None without one.
pub fn unified_of(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_start_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_v1() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu", "cpuacct", "pids", "devices"] {
            std::fs::create_dir_all(t.path().join(c)).unwrap();
            std::fs::write(t.path().join(c).join("tasks"), "").unwrap();
        }
        std::fs::write(t.path().join("cpuacct/cpuacct.usage"), "0").unwrap();
        t
    }

    #[test]
    fn detection_and_directories() {
        let v1 = fake_v1();
        assert_eq!(Hierarchy::detect(v1.path()), Hierarchy::V1);
        let rel = pod_rel(DEFAULT_PARENT, "u");
        assert_eq!(rel, "rkt.slice/rkt-u");
        let got = dirs(v1.path(), &rel);
        let want: Vec<PathBuf> = ["memory", "cpu", "cpuacct", "pids", "devices"]
            .iter()
            .map(|c| v1.path().join(c).join(&rel))
            .collect();
        assert_eq!(got, want);
        let v2 = tempfile::tempdir().unwrap();
        assert_eq!(Hierarchy::detect(v2.path()), Hierarchy::V2);
        assert_eq!(dirs(v2.path(), &rel), [v2.path().join(&rel)]);
        assert_eq!(Hierarchy::V2.member_file(), "cgroup.procs");
        assert_eq!(init_rel(&rel), "rkt.slice/rkt-u/stage1.init");
    }

    #[test]
    fn parents_are_plain_relative_paths() {
        assert_eq!(check_parent("/machine.slice/").unwrap(), "machine.slice");
        assert_eq!(check_parent("a/b").unwrap(), "a/b");
        for bad in ["", "/", "../x", "a/../../b", "a//b", "a/./b", "a\nb"] {
            let e = check_parent(bad).unwrap_err();
            assert!(e.contains("--cgroup-parent"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn every_directory_of_a_pod_children_first() {
        let root = fake_v1();
        let r = root.path();
        let rel = pod_rel("p", "u");
        for d in [
            "memory/p/rkt-u/a",
            "memory/p/rkt-u/b",
            "cpu/p/rkt-u/a",
            "pids/p/rkt-u",
            "p/rkt-u/x",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::create_dir_all(r.join("memory/p/rkt-other")).unwrap();
        let all = pod_dirs_everywhere(r, &rel);
        assert_eq!(all.len(), 8, "{all:?}");
        let pos = |p: &str| all.iter().position(|d| *d == r.join(p)).unwrap();
        assert!(pos("memory/p/rkt-u/a") < pos("memory/p/rkt-u"));
        assert!(pos("p/rkt-u/x") < pos("p/rkt-u"));
        assert!(remove_pod(r, &rel).is_empty());
        assert!(pod_dirs_everywhere(r, &rel).is_empty());
        assert!(r.join("memory/p/rkt-other").is_dir());
        assert!(pod_dirs_everywhere(r, "../etc").is_empty());
    }

    #[test]
    fn unified_cgroup_of_a_process() {
        let text = "12:memory:/x\n0::/system.slice/nomad.service\n";
        assert_eq!(unified_of(text).unwrap(), "system.slice/nomad.service");
        assert_eq!(unified_of("0::/\n").unwrap(), "");
        assert_eq!(unified_of("4:memory:/\n"), None);
    }
}
