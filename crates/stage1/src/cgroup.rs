//! The pod's cgroups: memory and CPU limits, on cgroup v1 (and hybrid hosts, where memory and
//! cpu live on v1) and on the unified v2 hierarchy.

use layout::cgroup::{self as paths, Hierarchy};
use layout::plan::{AppPlan, Plan};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct Cgroups {
    /// The pod's own directories, one per hierarchy.
    dirs: Vec<PathBuf>,
    /// The file a process writes to move in (see [`Hierarchy::member_file`]).
    member: &'static str,
    /// Per app (in plan order): its child directories, when it has limits of its own.
    app_dirs: Vec<Vec<PathBuf>>,
}

impl Cgroups {
    /// Kills whatever is left in the pod's cgroups: with the host's PID namespace
    /// (`--pid=host`) an app's processes outlive the pod's init.
    pub fn kill_members(&self) {
        let dirs: Vec<PathBuf> = self
            .app_dirs
            .iter()
            .flatten()
            .chain(&self.dirs)
            .cloned()
            .collect();
        for pid in paths::processes_in(&dirs) {
            crate::sys::kill(pid, libc::SIGKILL);
        }
    }

    /// Whether the kernel's OOM killer killed a process of the pod (v1 `memory.oom_control`,
    /// v2 `memory.events`). Read before the cgroups go.
    pub fn oom_killed(&self) -> bool {
        self.dirs
            .iter()
            .chain(self.app_dirs.iter().flatten())
            .any(|d| {
                ["memory.oom_control", "memory.events"].iter().any(|f| {
                    std::fs::read_to_string(d.join(f)).is_ok_and(|t| {
                        t.lines().any(|l| {
                            l.strip_prefix("oom_kill ")
                                .and_then(|n| n.trim().parse::<u64>().ok())
                                .is_some_and(|n| n > 0)
                        })
                    })
                })
            })
    }
}

/// The supervisor removes the pod's cgroups when it ends, on every path (the pod init is a
/// clone that leaves through `process::exit`, which runs no destructors).
impl Drop for Cgroups {
    fn drop(&mut self) {
        // Children before their parent.
        for d in self.app_dirs.iter().flatten().chain(&self.dirs) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Moves the calling (single-threaded) process into the cgroups whose member files are open
/// as `fds`, by writing "0": itself.
///
/// Why the process moves itself: on v1, a thread writing "0" to `tasks` is moved without the
/// kernel taking its thread-group lock for writing, which any other write (a PID, or
/// `cgroup.procs`) takes and which waits for an RCU grace period: 10 to 20 ms of every pod
/// start on this machine.
pub fn join_self(fds: Vec<OwnedFd>) -> Result<(), String> {
    for fd in fds {
        rustix::io::write(&fd, b"0").map_err(|e| format!("joining the pod's cgroups: {e}"))?;
    }
    Ok(())
}

impl Cgroups {
    pub fn create(plan: &Plan) -> Result<Cgroups, String> {
        Cgroups::create_under(Path::new(paths::ROOT), plan)
    }

    /// Creates the pod's cgroups below `root` (a real or, in tests, a fake cgroupfs). A
    /// single-app pod's limits go on the pod's cgroups; in a pod of several apps each app with
    /// limits gets a child cgroup of its own (`<pod>/<app>`), which it joins itself.
    pub fn create_under(root: &Path, plan: &Plan) -> Result<Cgroups, String> {
        let mut cg = Cgroups {
            dirs: Vec::new(),
            member: Hierarchy::detect(root).member_file(),
            app_dirs: Vec::new(),
        };
        if plan.cgroup.is_empty() {
            return Ok(cg);
        }
        let single = plan.apps.len() == 1;
        cg.dirs = controller_dirs(root, &plan.cgroup)?;
        set_pids_limit(root, &plan.cgroup, plan.pids_limit())?;
        if single {
            set_limits(root, &cg.dirs, &plan.apps[0])?;
            cg.app_dirs.push(Vec::new());
            return Ok(cg);
        }
        for app in &plan.apps {
            if !app.has_limits() {
                cg.app_dirs.push(Vec::new());
                continue;
            }
            let dirs = controller_dirs(root, &paths::app_rel(&plan.cgroup, &app.name))?;
            set_limits(root, &dirs, app)?;
            cg.app_dirs.push(dirs);
        }
        Ok(cg)
    }

    /// The pod's member files, opened for the init to move itself in with [`join_self`].
    pub fn member_fds(&self) -> Result<Vec<OwnedFd>, String> {
        self.dirs
            .iter()
            .map(|d| crate::sys::open_write(&d.join(self.member)))
            .collect()
    }

    /// The files that move a process into app `i`'s own cgroups (empty when it has none).
    pub fn app_procs(&self, i: usize) -> Vec<PathBuf> {
        self.app_dirs
            .get(i)
            .map(|d| d.iter().map(|d| d.join(self.member)).collect())
            .unwrap_or_default()
    }
}

/// Creates the pod's (or an app's) directory in each hierarchy (see [`paths::dirs`]).
fn controller_dirs(root: &Path, rel: &str) -> Result<Vec<PathBuf>, String> {
    if Hierarchy::detect(root) == Hierarchy::V2 {
        enable_controllers(root, rel)?;
    }
    let dirs = paths::dirs(root, rel);
    for d in &dirs {
        mkdir(d)?;
    }
    Ok(dirs)
}

fn set_limits(root: &Path, dirs: &[PathBuf], app: &AppPlan) -> Result<(), String> {
    if Hierarchy::detect(root) == Hierarchy::V1 {
        let (mem, cpu) = (&dirs[0], &dirs[1]);
        if let Some(m) = app.memory_limit {
            write(&mem.join("memory.limit_in_bytes"), &m.to_string())?;
        }
        if let Some(q) = app.cpu_quota_us {
            write(&cpu.join("cpu.cfs_period_us"), "100000")?;
            write(&cpu.join("cpu.cfs_quota_us"), &q.to_string())?;
        }
        if let Some(s) = app.cpu_shares {
            write(&cpu.join("cpu.shares"), &s.to_string())?;
        }
    } else {
        let dir = &dirs[0];
        if let Some(m) = app.memory_limit {
            write(&dir.join("memory.max"), &m.to_string())?;
        }
        if let Some(q) = app.cpu_quota_us {
            write(&dir.join("cpu.max"), &format!("{q} 100000"))?;
        }
        if let Some(s) = app.cpu_shares {
            write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
        }
    }
    Ok(())
}

/// The pod's process limit, on the whole pod (a fork bomb in any app stops there). A host
/// without the pids controller gets none, with a warning: refusing to run would break pods
/// that ran before.
fn set_pids_limit(root: &Path, rel: &str, limit: Option<u64>) -> Result<(), String> {
    let value = limit.map_or("max".to_string(), |n| n.to_string());
    let file = match Hierarchy::detect(root) {
        Hierarchy::V1 => paths::v1_pids_dir(root, rel).map(|d| d.join("pids.max")),
        Hierarchy::V2 => Some(root.join(rel).join("pids.max")),
    };
    match file {
        Some(f) if f.exists() => write(&f, &value),
        _ if limit.is_some() => {
            eprintln!("rkt-stage1: warning: no pids cgroup controller on this host; the pod's limit of {value} processes is not enforced");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// v2 needs each ancestor to delegate the controllers to its children.
fn enable_controllers(root: &Path, rel: &str) -> Result<(), String> {
    let mut dir = root.to_path_buf();
    for comp in Path::new(rel)
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
    {
        delegate(&dir);
        dir.push(comp);
        mkdir(&dir)?;
    }
    delegate(&dir);
    Ok(())
}

/// Enables the controllers for `dir`'s children. The kernel takes all or none of a write:
/// when one controller is missing (pids, on some hosts), the others go one by one.
fn delegate(dir: &Path) {
    let file = dir.join("cgroup.subtree_control");
    if std::fs::write(&file, "+memory +cpu +pids").is_err() {
        for c in ["+memory", "+cpu", "+pids"] {
            let _ = std::fs::write(&file, c);
        }
    }
}

/// The conversion runc and systemd use from v1 shares (2..262144) to v2 weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262144);
    1 + ((s - 2) * 9999) / 262142
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("creating cgroup {}: {e}", p.display()))
}

fn write(p: &Path, v: &str) -> Result<(), String> {
    std::fs::write(p, v).map_err(|e| format!("writing {v} to {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            cgroup: "rkt/pod1".into(),
            apps: vec![AppPlan {
                name: "a".into(),
                memory_limit: Some(64 << 20),
                cpu_quota_us: Some(50000),
                cpu_shares: Some(1024),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn v2_limits_on_a_fake_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroups::create_under(root.path(), &plan()).unwrap();
        let dir = root.path().join("rkt/pod1");
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "50000 100000"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.weight")).unwrap(),
            "39"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("rkt/cgroup.subtree_control")).unwrap(),
            "+memory +cpu +pids"
        );
        // cgroupfs provides the member files; a fake hierarchy needs them made.
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        join_self(cg.member_fds().unwrap()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.procs")).unwrap(),
            "0"
        );
    }

    #[test]
    fn several_apps_get_child_cgroups_with_their_limits() {
        let root = tempfile::tempdir().unwrap();
        let mut p = plan();
        p.apps.push(AppPlan {
            name: "b".into(),
            ..Default::default()
        });
        let cg = Cgroups::create_under(root.path(), &p).unwrap();
        let a = root.path().join("rkt/pod1/a");
        assert_eq!(
            std::fs::read_to_string(a.join("memory.max")).unwrap(),
            "67108864"
        );
        assert!(!root.path().join("rkt/pod1/memory.max").exists());
        assert!(!root.path().join("rkt/pod1/b").exists());
        assert_eq!(cg.app_procs(0), [a.join("cgroup.procs")]);
        assert!(cg.app_procs(1).is_empty());
    }

    #[test]
    fn v1_limits_on_a_fake_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("memory")).unwrap();
        std::fs::write(root.path().join("memory/tasks"), "").unwrap();
        let cg = Cgroups::create_under(root.path(), &plan()).unwrap();
        let mem = root.path().join("memory/rkt/pod1");
        for d in ["memory", "cpu", "cpuacct"] {
            let dir = root.path().join(d).join("rkt/pod1");
            if dir.is_dir() {
                std::fs::write(dir.join("tasks"), "").unwrap();
            }
        }
        join_self(cg.member_fds().unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(mem.join("tasks")).unwrap(), "0");
        let cpu = root.path().join("cpu/rkt/pod1");
        assert_eq!(
            std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap(),
            "50000"
        );
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.shares")).unwrap(),
            "1024"
        );
    }
}
