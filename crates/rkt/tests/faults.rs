//! Faults: fetches SIGKILLed at random points, a registry killed and restarted mid-pull, a
//! pod's init SIGKILLed, the store's filesystem full, `gc` and `image gc` racing pod starts,
//! and a power cut (everything killed, the store's filesystem unmounted and mounted again).
//! After each: nothing half-made visible, the store consistent (`image list` and a fresh run
//! work), states truthful in `status` and `list`, and everything reclaimable by `rm` or `gc`.
//!
//! Covered elsewhere, not repeated here: a SIGKILLed supervisor (pods_lifecycle.rs:
//! `pod_survives_a_killed_supervisor`, `killed_supervisor_cgroups_are_removed_by_rm_and_gc`),
//! concurrent fetches and runs (concurrency.rs).

mod common;

use common::pods::{assert_no_mounts, busybox, cgroups_of, pod_dirs, start_pod};
use common::{push_big_image, Registry, Rkt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small xorshift generator: the kill points of a run are reproducible from the seed it
/// prints (`FAULTS_SEED=…` replays them).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| common::pods::rand_suffix() as u64 | 1);
        eprintln!("FAULTS_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn kill9(pid: i32) {
    // SAFETY: kill has no memory preconditions; a pid that is gone is fine.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn partials(rkt: &Rkt) -> Vec<(PathBuf, u64)> {
    std::fs::read_dir(rkt.cas().join("blobs/sha256"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The store agrees with itself: `image list` shows exactly the published image
/// directories, and nothing half-rendered is published.
fn assert_store_consistent(rkt: &Rkt) {
    let dirs = rkt.image_dirs();
    let listed = rkt.ok(&["image", "list", "--no-legend", "--full", "--fields=id"]);
    let mut listed: Vec<String> = listed.lines().map(|l| l.trim().to_string()).collect();
    listed.sort();
    let dirs_as_ids: Vec<String> = dirs.iter().map(|d| d.trim().to_string()).collect();
    assert_eq!(
        listed.len(),
        dirs_as_ids.len(),
        "image list {listed:?} against the store's image directories {dirs_as_ids:?}"
    );
    for d in &dirs {
        let img = rkt.cas().join("images").join(d);
        for f in ["manifest", "info.json", "rootfs"] {
            assert!(img.join(f).exists(), "published image {d} has no {f}");
        }
    }
}

/// A fresh pod from the fixture registry's busybox runs in this store.
fn assert_fresh_run_works(rkt: &Rkt) {
    let out = rkt.ok(&[
        "run",
        "--net=none",
        &busybox(),
        "--exec=/bin/echo",
        "--",
        "fresh-run-ok",
    ]);
    assert!(out.contains("fresh-run-ok"), "{out}");
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert!(pod_dirs(rkt).is_empty(), "{:?}", pod_dirs(rkt));
}

#[test]
fn fetch_killed_at_random_points_then_a_fetch_completes() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::start("plain");
    push_big_image(&reg);
    let port = reg.port.to_string();
    // 16 MB/s: a whole fetch of the 48 MiB image takes about three seconds.
    let (mut proxy, port, _dir) = common::python_server("slow_proxy.py", &[&port, "16000000"]);
    let image = format!("docker://127.0.0.1:{port}/big:latest");
    // How long an uninterrupted fetch takes, and what it renders, in a store of its own.
    let reference = Rkt::new();
    let t = Instant::now();
    let ref_id = reference
        .ok(&["fetch", "--full", &image])
        .trim()
        .to_string();
    let full = t.elapsed();
    let want = sha256_of(&reference.rootfs(&ref_id).join("data/blob"));

    let rkt = Rkt::new();
    let mut rng = Rng::new();
    let mut hits = 0;
    for round in 0..8 {
        let delay = Duration::from_millis(rng.below(full.as_millis() as u64 + 200));
        let mut child = rkt
            .cmd()
            .args(["fetch", &image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok(); // SIGKILL
        let status = child.wait().unwrap();
        eprintln!(
            "round {round}: kill after {delay:?}: {}",
            if finished {
                "too late (done)"
            } else {
                "killed"
            }
        );
        assert_store_consistent(&rkt);
        if finished {
            assert!(status.success(), "the fetch failed by itself: {status}");
            // Start over from blobs alone: the next round's kill lands in the render.
            rkt.ok(&["image", "rm", &ref_id]);
        } else {
            hits += 1;
            assert!(
                rkt.image_dirs().is_empty() || rkt.image_dirs() == [ref_id.clone()],
                "{:?}",
                rkt.image_dirs()
            );
        }
    }
    assert!(hits > 0, "no kill landed during a fetch");
    // The next fetch completes what the killed ones left, with no lock left held.
    let t = Instant::now();
    let out = rkt
        .cmd()
        .args(["fetch", "--full", &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "a lock was left held"
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id, ref_id, "the same image as an uninterrupted fetch");
    assert_eq!(sha256_of(&rkt.rootfs(&id).join("data/blob")), want);
    assert_store_consistent(&rkt);
    // What the killed fetches left is reclaimed by image gc (with no grace period it also
    // removes the image itself, which no pod uses).
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(rkt.tmp_entries().is_empty(), "{:?}", rkt.tmp_entries());
    assert!(partials(&rkt).is_empty(), "{:?}", partials(&rkt));
    assert_store_consistent(&rkt);
    proxy.kill().ok();
    proxy.wait().ok();
    assert_fresh_run_works(&rkt);
}

fn registry_pid(reg: &Registry) -> i32 {
    std::fs::read_to_string(reg.state.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The registry restarted on its port with its storage (registry.sh keeps both).
fn restart_registry(reg: &Registry) {
    let out = Command::new("bash")
        .arg(common::harness("registry.sh"))
        .args(["start", "plain", reg.state.path().to_str().unwrap()])
        .env("REGISTRY_PORT", reg.port.to_string())
        .env("HARNESS_OWNER_PID", std::process::id().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restarting the registry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A registry SIGKILLed in the middle of a blob: a short outage is ridden out by the
/// fetch's retries; a long one fails the fetch with a clear error, and the next fetch resumes
/// the partial download once the registry is back.
#[test]
fn registry_killed_and_restarted_mid_pull() {
    if !common::require_root() {
        return;
    }
    let reg = Registry::start("plain");
    push_big_image(&reg);
    let (mut proxy, port, _dir) =
        common::python_server("slow_proxy.py", &[&reg.port.to_string(), "8000000"]);
    let image = format!("docker://127.0.0.1:{port}/big:latest");
    let wait_partial = |rkt: &Rkt, child: &mut std::process::Child, over: u64| {
        common::eventually(Duration::from_secs(30), "a partial download", || {
            assert!(child.try_wait().unwrap().is_none(), "fetch ended early");
            partials(rkt).iter().any(|(_, n)| *n > over).then_some(())
        })
    };

    // A short outage: killed, and back at once.
    let rkt = Rkt::new();
    let mut child = rkt
        .cmd()
        .args(["fetch", &image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_partial(&rkt, &mut child, 4 << 20);
    let t = Instant::now();
    kill9(registry_pid(&reg));
    restart_registry(&reg);
    eprintln!("registry back after {:?}", t.elapsed());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a short registry outage failed the fetch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_store_consistent(&rkt);
    assert_eq!(rkt.image_dirs().len(), 1);

    // A long outage: the fetch gives up, saying why; nothing is published.
    let rkt = Rkt::new();
    let mut child = rkt
        .cmd()
        .args(["fetch", &image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_partial(&rkt, &mut child, 4 << 20);
    kill9(registry_pid(&reg));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(254), "{stderr}");
    assert!(
        stderr.contains("big:latest"),
        "the error names the image: {stderr}"
    );
    assert!(rkt.image_dirs().is_empty());
    assert_store_consistent(&rkt);
    let (_, kept) = partials(&rkt)[0].clone();
    assert!(kept > 4 << 20, "the partial download is kept for a resume");
    restart_registry(&reg);
    let log_before = reg.log().len();
    rkt.ok(&["fetch", &image]);
    let log = reg.log();
    assert!(
        log[log_before..].contains("\"GET /v2/big/blobs/sha256:")
            && log[log_before..].contains(" 206 "),
        "the blob was resumed with a range request:\n{}",
        &log[log_before..]
    );
    assert_store_consistent(&rkt);
    proxy.kill().ok();
    proxy.wait().ok();
    assert_fresh_run_works(&rkt);
}

fn pid_line(status: &str) -> i32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .unwrap_or_else(|| panic!("no pid in {status}"))
        .parse()
        .unwrap()
}

/// SIGKILL of the pod's init (the pid `rkt status` shows): the pod ends, its supervisor
/// records it, `status` and `list` say exited, and `rm` leaves nothing.
#[test]
fn killed_pod_init_ends_the_pod_truthfully() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "600"]);
    let pid = pid_line(&rkt.ok(&["status", &uuid]));
    kill9(pid);
    let code = child.wait().unwrap();
    eprintln!("rkt run ended: {code}");
    assert!(!code.success(), "a killed pod is not a success: {code}");
    let status = rkt.ok(&["status", "--wait=10s", &uuid]);
    assert!(status.contains("state=exited"), "{status}");
    let list = rkt.ok(&["list", "--no-legend"]);
    assert!(
        list.contains("exited") && !list.contains("running"),
        "{list}"
    );
    rkt.ok(&["rm", &uuid]);
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
    assert_eq!(cgroups_of(&uuid), Vec::<PathBuf>::new());
    assert_fresh_run_works(&rkt);
}

/// A filesystem mounted over a directory for the test, unmounted (recursively: pods mount
/// beneath it) when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.0).status();
    }
}

fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-ec")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_bytes(dir: &Path) -> u64 {
    let out = sh(&format!("stat -f -c '%a %S' {}", dir.display()));
    let v: Vec<u64> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    v[0] * v[1]
}

/// The store on a 32 MiB tmpfs. A 48 MiB image cannot fit: the fetch fails naming the full
/// disk, publishes nothing, and `image gc` gives the space back. Then a pod start on a
/// nearly full store (`--no-overlay` copies the image): it fails clearly, leaves no pod that
/// `gc` cannot remove, and once there is room a pod runs.
#[test]
fn store_filesystem_full_during_fetch_and_pod_start() {
    if !common::require_root() {
        return;
    }
    let big_reg = Registry::start("plain");
    let big = push_big_image(&big_reg);
    let rkt = Rkt::new();
    let dir = rkt.dir.path().to_path_buf();
    sh(&format!(
        "mount -t tmpfs -o size=32m rkt-faults {}",
        dir.display()
    ));
    let _mounted = Mounted(dir.clone());
    let empty = free_bytes(&dir);

    let err = rkt.fails(&["fetch", &big]);
    assert!(
        err.contains("No space left on device"),
        "the error says the disk is full: {err}"
    );
    assert!(rkt.image_dirs().is_empty());
    assert_store_consistent(&rkt);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(
        free_bytes(&dir) + (1 << 20) >= empty,
        "image gc left {} bytes in use",
        empty - free_bytes(&dir)
    );

    rkt.ok(&["fetch", &busybox()]);
    // Leave 256 KiB: enough for a pod's directory, not for a copy of busybox's tree.
    let filler = dir.join("filler");
    let fill = free_bytes(&dir).saturating_sub(256 << 10);
    sh(&format!("fallocate -l {fill} {}", filler.display()));
    let out = rkt.run(&[
        "run",
        "--net=none",
        "--no-overlay",
        &busybox(),
        "--exec=/bin/true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(254), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let list = rkt.ok(&["list", "--no-legend"]);
    assert!(!list.contains("running"), "{list}");
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts_beneath(&dir);
    std::fs::remove_file(&filler).unwrap();
    assert_store_consistent(&rkt);
    assert_fresh_run_works(&rkt);
}

/// No mount of the pods of store `dir` (the store itself may be a mount).
fn assert_no_mounts_beneath(dir: &Path) {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let pods = format!("{}/pods/", dir.display());
    let left: Vec<&str> = table.lines().filter(|l| l.contains(&pods)).collect();
    assert!(left.is_empty(), "mounts left behind:\n{}", left.join("\n"));
}

/// `rkt gc` and `rkt image gc`, both with no grace period, run in a loop while pods start and
/// run: every pod runs to its end, the image they use is never collected from under them,
/// and once they are done gc removes them all.
#[test]
fn gc_and_image_gc_while_pods_start() {
    if !common::require_root() {
        return;
    }
    let rkt = std::sync::Arc::new(Rkt::new());
    let image = busybox();
    rkt.ok(&["fetch", &image]);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (rkt, done) = (rkt.clone(), done.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                rkt.ok(&["gc", "--grace-period=0s"]);
                rkt.ok(&["image", "gc", "--grace-period=0s"]);
                rounds += 1;
            }
            rounds
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (rkt, image) = (rkt.clone(), image.clone());
            std::thread::spawn(move || {
                for i in 0..5 {
                    let marker = format!("pod-{w}-{i}");
                    let out = rkt.run(&[
                        "run",
                        "--net=none",
                        "--pull-policy=never",
                        &image,
                        "--exec=/bin/sh",
                        "--",
                        "-c",
                        &format!("sleep 0.2; echo {marker}"),
                    ]);
                    let (stdout, stderr) = common::pods::out(&out);
                    assert!(
                        out.status.success() && stdout.contains(&marker),
                        "{marker}: {}\n{stdout}\n{stderr}",
                        out.status
                    );
                }
            })
        })
        .collect();
    let mut failed = Vec::new();
    for w in workers {
        if let Err(e) = w.join() {
            failed.push(e);
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = collector.join().unwrap();
    eprintln!("{rounds} gc rounds ran during the 20 pods");
    assert!(failed.is_empty(), "{} pod(s) failed", failed.len());
    assert!(rounds > 0);
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
    assert_store_consistent(&rkt);
    assert_fresh_run_works(&rkt);
}

/// SIGKILL of every process of the pod's cgroups (a power cut takes them all at once).
fn kill_cgroup_members(uuid: &str) {
    for cg in cgroups_of(uuid) {
        for f in ["cgroup.procs", "tasks"] {
            if let Ok(pids) = std::fs::read_to_string(cg.join(f)) {
                for pid in pids.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    kill9(pid);
                }
            }
        }
    }
}

/// A power cut: the store on its own ext4 filesystem (a loop device), pods running, a fetch
/// under way; everything SIGKILLed at once and the filesystem unmounted (with the pods'
/// mounts beneath it) and mounted again, as after a reboot. Then `list` and `status` say no
/// pod runs, `gc` reclaims the pods (their cgroups included, which outlive a store), and the
/// store fetches and runs again.
#[test]
fn power_cut_then_gc_and_new_runs() {
    if !common::require_root() {
        return;
    }
    let big_reg = Registry::start("plain");
    push_big_image(&big_reg);
    let (mut proxy, port, _pdir) =
        common::python_server("slow_proxy.py", &[&big_reg.port.to_string(), "8000000"]);
    let big = format!("docker://127.0.0.1:{port}/big:latest");
    let disk = tempfile::tempdir().unwrap();
    let img = disk.path().join("store.ext4");
    sh(&format!(
        "truncate -s 512M {i} && mkfs.ext4 -q -F {i}",
        i = img.display()
    ));
    let rkt = Rkt::new();
    let dir = rkt.dir.path().to_path_buf();
    let mount = format!("mount -o loop {} {}", img.display(), dir.display());
    sh(&mount);
    let _mounted = Mounted(dir.clone());

    rkt.ok(&["fetch", &busybox()]);
    let mut pods = Vec::new();
    for _ in 0..3 {
        pods.push(start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "600"]));
    }
    let mut fetch = rkt
        .cmd()
        .args(["fetch", &big])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::eventually(Duration::from_secs(30), "a partial download", || {
        partials(&rkt)
            .iter()
            .any(|(_, n)| *n > 1 << 20)
            .then_some(())
    });

    // The cut: every process at once, then the filesystem goes away.
    fetch.kill().ok();
    for (child, uuid) in &mut pods {
        child.kill().ok();
        kill_cgroup_members(uuid);
    }
    fetch.wait().ok();
    for (child, _) in &mut pods {
        child.wait().ok();
    }
    // The killed processes are gone once their parents reaped them; give the kernel a moment.
    common::eventually(Duration::from_secs(10), "the store to unmount", || {
        let ok = Command::new("umount")
            .arg("-R")
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        if !ok {
            eprintln!(
                "{}",
                sh(&format!("fuser -vm {} 2>&1 || true", dir.display()))
            );
        }
        ok.then_some(())
    });
    sh(&mount);

    let list = rkt.ok(&["list", "--no-legend"]);
    assert!(
        !list.contains("running"),
        "no pod runs after the cut:\n{list}"
    );
    for (_, uuid) in &pods {
        let status = rkt.ok(&["status", uuid]);
        assert!(!status.starts_with("state=running"), "{status}");
    }
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    for (_, uuid) in &pods {
        assert_eq!(cgroups_of(uuid), Vec::<PathBuf>::new(), "pod {uuid}");
    }
    assert_no_mounts_beneath(&dir);
    assert_store_consistent(&rkt);
    rkt.ok(&["fetch", &big]);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(rkt.tmp_entries().is_empty(), "{:?}", rkt.tmp_entries());
    assert_store_consistent(&rkt);
    proxy.kill().ok();
    proxy.wait().ok();
    assert_fresh_run_works(&rkt);
}
