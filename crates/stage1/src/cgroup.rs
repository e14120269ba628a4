//! The pod's cgroups: limits, the device cgroup and the pod's process count, on cgroup v1
//! (and hybrid hosts, where memory and cpu live on v1) and on the unified v2 hierarchy. The
//! layout (where the pod, its init and its apps go, and why) is in [`layout::cgroup`].

use crate::devices;
use crate::error::{Error, Result};
use layout::cgroup::{self as paths, Hierarchy, V1Dirs};
use layout::plan::{AppPlan, DeviceRule, Plan, UNLIMITED};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct Cgroups {
    hierarchy: Hierarchy,
    root: PathBuf,
    /// The pod's own directories, one per hierarchy (v2: one).
    pod: Vec<PathBuf>,
    /// What the pod init joins: the pod's directories on v1; nothing on v2, where the init
    /// is cloned from the supervisor already in [`paths::INIT_LEAF`].
    init: Vec<PathBuf>,
    /// v2: the init leaf, once made.
    init_leaf: Option<PathBuf>,
    /// Per app (in plan order): the directories it joins (none: it stays with the init).
    apps: Vec<Vec<PathBuf>>,
    /// v2: the cgroup the supervisor came from, which it goes back to before the pod's
    /// cgroups are removed (None: it never moved).
    came_from: Option<PathBuf>,
}

impl Cgroups {
    /// Kills whatever is left in the pod's cgroups but this supervisor: with the host's PID
    /// namespace (`--pid=host`) an app's processes outlive the pod's init.
    pub fn kill_members(&self) {
        let dirs: Vec<PathBuf> = self
            .apps
            .iter()
            .flatten()
            .chain(&self.pod)
            .chain(self.init_leaf.iter())
            .cloned()
            .collect();
        let me = std::process::id() as i32;
        for pid in paths::processes_in(&dirs).into_iter().filter(|p| *p != me) {
            crate::sys::kill(pid, libc::SIGKILL);
        }
    }

    pub fn create(plan: &Plan) -> Result<Cgroups> {
        Cgroups::create_under(Path::new(paths::ROOT), plan)
    }

    /// Creates the pod's cgroups below `root` (a real or, in tests, a fake cgroupfs) and sets
    /// their limits. On v2 the calling supervisor moves into the pod's init leaf; on v1 it
    /// stays where it is and the init joins the pod with [`join_self`].
    pub fn create_under(root: &Path, plan: &Plan) -> Result<Cgroups> {
        let hierarchy = Hierarchy::detect(root);
        let mut cg = Cgroups {
            hierarchy,
            root: root.to_path_buf(),
            pod: Vec::new(),
            init: Vec::new(),
            init_leaf: None,
            apps: Vec::new(),
            came_from: None,
        };
        if plan.cgroup.is_empty() {
            cg.apps = vec![Vec::new(); plan.apps.len()];
            return Ok(cg);
        }
        match hierarchy {
            Hierarchy::V1 => cg.create_v1(plan)?,
            Hierarchy::V2 => cg.create_v2(plan)?,
        }
        Ok(cg)
    }

    fn create_v1(&mut self, plan: &Plan) -> Result<()> {
        let cpuset = plan.apps.iter().any(|a| a.cpuset_cpus.is_some());
        let dirs = V1Dirs::at(&self.root, &plan.cgroup);
        for d in dirs.list(cpuset) {
            self.mkdir_v1(&d)?;
            self.pod.push(d);
        }
        self.init = self.pod.clone();
        set_pids_limit_v1(dirs.pids.as_deref(), plan.pids_limit())?;
        match &dirs.devices {
            Some(d) => devices::apply_v1(d, &device_rules(plan))?,
            None => return Err(no_devices_controller()),
        }
        if let [app] = plan.apps.as_slice() {
            set_limits_v1(&dirs, app)?;
            self.apps.push(Vec::new());
            return Ok(());
        }
        for app in &plan.apps {
            if !app.has_limits() {
                self.apps.push(Vec::new());
                continue;
            }
            let own = V1Dirs::at(&self.root, &paths::app_rel(&plan.cgroup, &app.name));
            let list = own.list(app.cpuset_cpus.is_some());
            for d in &list {
                self.mkdir_v1(d)?;
            }
            self.apps.push(list);
            set_limits_v1(&own, app)?;
        }
        Ok(())
    }

    fn create_v2(&mut self, plan: &Plan) -> Result<()> {
        let pod = self.root.join(&plan.cgroup);
        enable_controllers(&self.root, &plan.cgroup)?;
        self.pod.push(pod.clone());
        set_pids_limit_v2(&pod, plan.pids_limit())?;
        devices::apply_v2(&pod, &device_rules(plan))?;
        let single = plan.apps.len() == 1;
        if single {
            set_limits_v2(&pod, &plan.apps[0])?;
        }
        for app in &plan.apps {
            let leaf = self.root.join(paths::app_rel(&plan.cgroup, &app.name));
            mkdir(&leaf)?;
            self.apps.push(vec![leaf.clone()]);
            if !single {
                set_limits_v2(&leaf, app)?;
            }
        }
        let leaf = self.root.join(paths::init_rel(&plan.cgroup));
        mkdir(&leaf)?;
        self.init_leaf = Some(leaf.clone());
        self.enter_init_leaf(&leaf)
    }

    /// v2: the supervisor moves into the init leaf, so that the pod's every process is in
    /// the pod's cgroup (systemd-cgls shows the whole pod there, and stopping the unit rkt
    /// was started from does not take the pod with it), and the init it clones is born there.
    fn enter_init_leaf(&mut self, leaf: &Path) -> Result<()> {
        let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let from = paths::unified_of(&mine).map(|rel| self.root.join(rel));
        write(&leaf.join("cgroup.procs"), "0")
            .map_err(|e| e.context("moving the supervisor into the pod's cgroup"))?;
        self.came_from = Some(from.unwrap_or_else(|| self.root.clone()));
        Ok(())
    }

    /// v1 directories are made one level at a time: a new cpuset cgroup has no CPUs and no
    /// memory nodes, and takes no process until they are copied from its parent.
    fn mkdir_v1(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.mkdir_v1(parent)?;
        }
        mkdir(dir)?;
        if dir.join("cpuset.cpus").exists() {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let from = dir.parent().map(|p| p.join(f)).unwrap_or_default();
                let v =
                    std::fs::read_to_string(&from).map_err(|e| Error::at("reading", &from, e))?;
                if std::fs::read_to_string(dir.join(f)).is_ok_and(|c| c.trim().is_empty()) {
                    write(&dir.join(f), v.trim())?;
                }
            }
        }
        Ok(())
    }

    /// The pod's member files, opened for the init to move itself in with [`join_self`]
    /// (none on v2: it is born in its cgroup).
    pub fn init_member_fds(&self) -> Result<Vec<OwnedFd>> {
        let member = self.hierarchy.member_file();
        self.init
            .iter()
            .map(|d| crate::sys::open_write(&d.join(member)))
            .collect()
    }

    /// The files that move a process into app `i`'s own cgroups (empty when it has none).
    pub fn app_procs(&self, i: usize) -> Vec<PathBuf> {
        let member = self.hierarchy.member_file();
        self.apps
            .get(i)
            .map(|d| d.iter().map(|d| d.join(member)).collect())
            .unwrap_or_default()
    }

    /// Whether the kernel's OOM killer killed a process of app `i`, when its own cgroup can
    /// tell (v2, where every app has a leaf and `memory.events` counts `oom_kill` where the
    /// victim was); None where only the pod's count is known (v1).
    pub fn app_oom_killed(&self, i: usize) -> Option<bool> {
        if self.hierarchy != Hierarchy::V2 {
            return None;
        }
        self.apps
            .get(i)
            .and_then(|d| d.first())
            .map(|d| oom_kills(d) > 0)
    }

    /// Whether the kernel's OOM killer killed a process of the pod (v1 `memory.oom_control`,
    /// v2 `memory.events`). Read before the cgroups go.
    pub fn oom_killed(&self) -> bool {
        self.pod
            .iter()
            .chain(self.apps.iter().flatten())
            .any(|d| oom_kills(d) > 0)
    }

    /// v2: the supervisor goes back where it came from (or to the root, if that is gone), so
    /// that what it still runs (the network's teardown) is outside the pod's limits and
    /// device filter, and the pod's cgroups can be removed.
    pub fn leave(&mut self) {
        let Some(from) = self.came_from.take() else {
            return;
        };
        let back = from.join("cgroup.procs");
        if std::fs::write(&back, "0").is_err() {
            let _ = std::fs::write(self.root.join("cgroup.procs"), "0");
        }
    }
}

/// The `oom_kill` count of a memory cgroup (`memory.events` on v2, `memory.oom_control` on
/// v1); 0 where there is none.
fn oom_kills(dir: &Path) -> u64 {
    ["memory.events", "memory.oom_control"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The supervisor removes the pod's cgroups when it ends, on every path (the pod init is a
/// clone that leaves through `process::exit`, which runs no destructors).
impl Drop for Cgroups {
    fn drop(&mut self) {
        self.leave();
        // Children before their parent.
        for d in self
            .apps
            .iter()
            .flatten()
            .chain(&self.init_leaf)
            .chain(&self.pod)
        {
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
pub fn join_self(fds: Vec<OwnedFd>) -> Result<()> {
    for fd in fds {
        rustix::io::write(&fd, b"0").map_err(|e| Error::os("joining the pod's cgroups", e))?;
    }
    Ok(())
}

/// The pod's device rules: the standard devices and every app's own.
fn device_rules(plan: &Plan) -> Vec<DeviceRule> {
    let mut rules = devices::standard();
    for r in plan.apps.iter().flat_map(|a| &a.devices) {
        if !rules.contains(r) {
            rules.push(r.clone());
        }
    }
    rules
}

fn no_devices_controller() -> Error {
    Error::msg("this host mounts no devices cgroup controller (/sys/fs/cgroup/devices), so a pod's devices cannot be restricted; mount it (cgroup v1) or boot with the unified hierarchy")
}

fn set_limits_v1(dirs: &V1Dirs, app: &AppPlan) -> Result<()> {
    let (mem, cpu) = (&dirs.memory, &dirs.cpu);
    if let Some(m) = app.memory_limit {
        write(&mem.join("memory.limit_in_bytes"), &m.to_string())?;
    }
    if let Some(s) = app.memory_swap {
        // After the memory limit: the kernel keeps memsw at or above it.
        let v = if s == UNLIMITED {
            "-1".into()
        } else {
            s.to_string()
        };
        let f = mem.join("memory.memsw.limit_in_bytes");
        if !f.exists() {
            return Err(Error::msg("--memory-swap: this kernel does not account swap on cgroup v1 (no memory.memsw.limit_in_bytes); boot it with swapaccount=1, or leave --memory-swap out"));
        }
        write(&f, &v)?;
    }
    if let Some(r) = app.memory_reservation {
        write(&mem.join("memory.soft_limit_in_bytes"), &r.to_string())?;
    }
    if let Some(q) = app.cpu_quota_us {
        let period = app.cpu_period_us.unwrap_or(100_000);
        write(&cpu.join("cpu.cfs_period_us"), &period.to_string())?;
        write(&cpu.join("cpu.cfs_quota_us"), &q.to_string())?;
    }
    if let Some(s) = app.cpu_shares {
        write(&cpu.join("cpu.shares"), &s.to_string())?;
    }
    if let Some(cpus) = &app.cpuset_cpus {
        let dir = dirs.cpuset.as_ref().ok_or_else(|| Error::msg(
            "--cpuset-cpus: this host mounts no cpuset cgroup controller (/sys/fs/cgroup/cpuset); mount it or leave --cpuset-cpus out",
        ))?;
        write(&dir.join("cpuset.cpus"), cpus)?;
    }
    Ok(())
}

fn set_limits_v2(dir: &Path, app: &AppPlan) -> Result<()> {
    if let Some(m) = app.memory_limit {
        write(&dir.join("memory.max"), &m.to_string())?;
    }
    if let Some(s) = app.memory_swap {
        // v2 limits swap alone; the flag (as Docker's and podman's) is memory and swap.
        let swap = match (s, app.memory_limit) {
            (UNLIMITED, _) => "max".to_string(),
            (s, Some(m)) => s.saturating_sub(m).to_string(),
            (s, None) => s.to_string(),
        };
        write_controller(
            &dir.join("memory.swap.max"),
            &swap,
            "--memory-swap",
            "swap accounting (CONFIG_MEMCG_SWAP)",
        )?;
    }
    if let Some(r) = app.memory_reservation {
        write(&dir.join("memory.low"), &r.to_string())?;
    }
    if let Some(q) = app.cpu_quota_us {
        let period = app.cpu_period_us.unwrap_or(100_000);
        write(&dir.join("cpu.max"), &format!("{q} {period}"))?;
    }
    if let Some(s) = app.cpu_shares {
        write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    if let Some(cpus) = &app.cpuset_cpus {
        write_controller(
            &dir.join("cpuset.cpus"),
            cpus,
            "--cpuset-cpus",
            "the cpuset controller",
        )?;
    }
    Ok(())
}

/// Writes a controller's file; when the file is not there, says which flag needs what.
fn write_controller(file: &Path, v: &str, flag: &str, what: &str) -> Result<()> {
    if !file.exists() {
        return Err(Error::msg(format!(
            "{flag}: this host's cgroups lack {what} ({} does not exist); leave {flag} out on this host",
            file.display()
        )));
    }
    write(file, v)
}

/// The pod's process limit, on the whole pod (a fork bomb in any app stops there). A host
/// without the pids controller gets none, with a warning: refusing to run would break pods
/// that ran before.
fn set_pids_limit_v1(dir: Option<&Path>, limit: Option<u64>) -> Result<()> {
    set_pids_limit(dir.map(|d| d.join("pids.max")), limit)
}

fn set_pids_limit_v2(dir: &Path, limit: Option<u64>) -> Result<()> {
    set_pids_limit(Some(dir.join("pids.max")), limit)
}

fn set_pids_limit(file: Option<PathBuf>, limit: Option<u64>) -> Result<()> {
    let value = limit.map_or("max".to_string(), |n| n.to_string());
    match file {
        Some(f) if f.exists() => write(&f, &value),
        _ if limit.is_some() => {
            eprintln!("rkt-stage1: warning: no pids cgroup controller on this host; the pod's limit of {value} processes is not enforced");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// v2 needs each ancestor, and the pod itself, to delegate the controllers to its children.
fn enable_controllers(root: &Path, rel: &str) -> Result<()> {
    let mut dir = root.to_path_buf();
    for comp in Path::new(rel).components() {
        delegate(&dir);
        dir.push(comp);
        mkdir(&dir)?;
    }
    delegate(&dir);
    Ok(())
}

/// The controllers a pod's cgroups use.
const CONTROLLERS: [&str; 4] = ["+memory", "+cpu", "+pids", "+cpuset"];

/// Enables the controllers for `dir`'s children. The kernel takes all or none of a write:
/// when one controller is missing (pids or cpuset, on some hosts), the others go one by one.
fn delegate(dir: &Path) {
    let file = dir.join("cgroup.subtree_control");
    if std::fs::write(&file, CONTROLLERS.join(" ")).is_err() {
        for c in CONTROLLERS {
            let _ = std::fs::write(&file, c);
        }
    }
}

/// The conversion runc and systemd use from v1 shares (2..262144) to v2 weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262144);
    1 + ((s - 2) * 9999) / 262142
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::at("creating cgroup", p, e))
}

pub(crate) fn write(p: &Path, v: &str) -> Result<()> {
    std::fs::write(p, v).map_err(|e| Error::at(format!("writing {v} to"), p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            cgroup: "rkt.slice/rkt-pod1".into(),
            apps: vec![AppPlan {
                name: "a".into(),
                memory_limit: Some(64 << 20),
                memory_reservation: Some(32 << 20),
                cpu_quota_us: Some(25000),
                cpu_period_us: Some(50000),
                cpu_shares: Some(1024),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    /// A fake v1 root with the hierarchies mounted here (`tasks` marks one as mounted).
    fn fake_v1() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu", "pids", "devices", "cpuset"] {
            std::fs::create_dir_all(root.path().join(c)).unwrap();
            std::fs::write(root.path().join(c).join("tasks"), "").unwrap();
        }
        root
    }

    #[test]
    fn v1_limits_on_a_fake_hierarchy() {
        let root = fake_v1();
        let cg = Cgroups::create_under(root.path(), &plan()).unwrap();
        let rel = "rkt.slice/rkt-pod1";
        let mem = root.path().join("memory").join(rel);
        let cpu = root.path().join("cpu").join(rel);
        let dev = root.path().join("devices").join(rel);
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(&mem.join("memory.soft_limit_in_bytes")), "33554432");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "25000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "50000");
        assert_eq!(read(&cpu.join("cpu.shares")), "1024");
        // A fake file keeps the last write: the last allow rule, after the deny of all.
        assert_eq!(read(&dev.join("devices.deny")), "a");
        assert_eq!(read(&dev.join("devices.allow")), "c 136:* rw");
        assert!(
            !root.path().join("cpuset").join(rel).exists(),
            "no cpuset asked for"
        );
        for d in ["memory", "cpu", "pids", "devices"] {
            std::fs::write(root.path().join(d).join(rel).join("tasks"), "").unwrap();
        }
        join_self(cg.init_member_fds().unwrap()).unwrap();
        assert_eq!(read(&mem.join("tasks")), "0");
        assert_eq!(read(&dev.join("tasks")), "0");
    }

    #[test]
    fn v1_cpuset_only_when_asked_for() {
        let root = fake_v1();
        let mut p = plan();
        p.apps[0].cpuset_cpus = Some("1".into());
        let cg = Cgroups::create_under(root.path(), &p).unwrap();
        let made = root.path().join("cpuset/rkt.slice/rkt-pod1");
        assert_eq!(read(&made.join("cpuset.cpus")), "1");
        drop(cg);
    }

    #[test]
    fn v2_limits_and_leaves_on_a_fake_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        let mut p = plan();
        p.apps[0].memory_swap = Some(96 << 20);
        p.apps[0].cpuset_cpus = Some("0".into());
        let dir = root.path().join("rkt.slice/rkt-pod1");
        // Files cgroupfs would have.
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["memory.swap.max", "cpuset.cpus", "pids.max"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        // The device filter is loaded by the real bpf(2), but a fake directory is no cgroup
        // to attach it to: creation stops there (its program is checked in devices.rs).
        let err = Cgroups::create_under(root.path(), &p).err();
        assert_eq!(read(&dir.join("pids.max")), "max");
        assert!(
            err.is_none()
                || err
                    .as_ref()
                    .is_some_and(|e| e.to_string().contains("device filter")),
            "{err:?}"
        );
        assert_eq!(
            read(&root.path().join("rkt.slice/cgroup.subtree_control")),
            "+memory +cpu +pids +cpuset"
        );
        let limits = AppPlan {
            name: "a".into(),
            ..p.apps[0].clone()
        };
        set_limits_v2(&dir, &limits).unwrap();
        assert_eq!(read(&dir.join("memory.max")), "67108864");
        assert_eq!(read(&dir.join("memory.low")), "33554432");
        assert_eq!(read(&dir.join("memory.swap.max")), "33554432", "swap alone");
        assert_eq!(read(&dir.join("cpu.max")), "25000 50000");
        assert_eq!(read(&dir.join("cpu.weight")), "39");
        assert_eq!(read(&dir.join("cpuset.cpus")), "0");
        let e = set_limits_v2(
            &root.path().join("rkt.slice"),
            &AppPlan {
                cpuset_cpus: Some("0".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--cpuset-cpus") && e.contains("leave"), "{e}");
    }

    #[test]
    fn device_rules_are_the_standard_ones_and_the_apps() {
        let mut p = plan();
        let fuse = DeviceRule::parse("c 10:229 rw").unwrap();
        p.apps[0].devices = vec![fuse.clone(), fuse.clone()];
        let rules = device_rules(&p);
        assert_eq!(rules.len(), devices::standard().len() + 1);
        assert!(rules.contains(&fuse));
    }
}
