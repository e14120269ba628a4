//! The pod's cgroups as the kernel sees them, on whatever hierarchy this host has: cgroup v1
//! or hybrid here, pure v2 in the guest of `tests/guest/lane.sh`. Every limit a flag sets is
//! read back from the cgroup's own files while the pod runs; what an app can see or do is
//! tried from inside it (its CPUs, its devices).

mod common;

use common::pods::{busybox, cgroups_of, start_pod};
use common::Rkt;
use layout::cgroup::{self, Hierarchy, DEFAULT_PARENT};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(cgroup::ROOT)
}

fn v2() -> bool {
    Hierarchy::detect(root()) == Hierarchy::V2
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// File `name` of controller `v1` (its v2 name the same file in the unified directory) for
/// the cgroup `rel`.
fn file(v1: &str, rel: &str, name: &str) -> PathBuf {
    if v2() {
        root().join(rel).join(name)
    } else {
        root().join(v1).join(rel).join(name)
    }
}

fn pod_rel(uuid: &str) -> String {
    cgroup::pod_rel(DEFAULT_PARENT, uuid)
}

/// The processes of a v2 cgroup.
fn procs(rel: &str) -> Vec<String> {
    std::fs::read_to_string(root().join(rel).join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A pod of two apps where one has limits of its own: on v2 the kernel allows no process in
/// a cgroup whose children have controllers enabled, so the pod init may not stay in the
/// pod's cgroup once the app's child exists (it failed with EBUSY, "joining the pod's
/// cgroups: Device or resource busy"). The supervisor and the init live in a leaf of their
/// own, each app in its own.
#[test]
fn two_apps_one_with_its_own_limits() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let (mut child, uuid) = start_pod(
        &rkt,
        &[],
        &[
            "--name=limited",
            "--memory=48Mi",
            "--cpu=300m",
            "--exec",
            "/bin/sleep",
            "--",
            "60",
            "---",
            &image,
            "--name=free",
            "--exec",
            "/bin/sleep",
            "--",
            "60",
        ],
    );
    let status = rkt.ok(&["status", &uuid]);
    assert!(status.starts_with("state=running"), "{status}");
    let rel = pod_rel(&uuid);
    let limited = cgroup::app_rel(&rel, "limited");
    let (mem, quota) = if v2() {
        ("memory.max", "cpu.max")
    } else {
        ("memory.limit_in_bytes", "cpu.cfs_quota_us")
    };
    assert_eq!(
        read(&file("memory", &limited, mem)),
        (48u64 << 20).to_string()
    );
    let q = read(&file("cpu", &limited, quota));
    assert!(q.starts_with("30000"), "{q}");
    if v2() {
        assert!(
            procs(&rel).is_empty(),
            "the pod's own cgroup holds no process"
        );
        assert_eq!(
            procs(&cgroup::init_rel(&rel)).len(),
            2,
            "supervisor and init"
        );
        assert_eq!(procs(&limited).len(), 1);
        assert_eq!(procs(&cgroup::app_rel(&rel, "free")).len(), 1);
        assert_eq!(read(&root().join(&rel).join("memory.max")), "max");
    }
    rkt.ok(&["stop", &uuid]);
    child.wait().unwrap();
    assert_eq!(cgroups_of(&uuid), Vec::<PathBuf>::new());
    rkt.ok(&["rm", &uuid]);
}

/// `--memory-reservation`, `--memory-swap`, `--cpu` with `--cpu-period`, `--cpu-shares`,
/// `--pids-limit` in their files; `--cpuset-cpus` seen from inside the pod.
#[test]
fn resource_flags_reach_the_cgroups() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(
        &rkt,
        &[],
        &[
            "--memory=64Mi",
            "--memory-reservation=16Mi",
            "--memory-swap=96Mi",
            "--cpu=250m",
            "--cpu-period=20000",
            "--cpu-shares=512",
            "--cpuset-cpus=0",
            "--pids-limit=77",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "grep Cpus_allowed_list /proc/self/status > /tmp/cpus; sleep 60",
        ],
    );
    let rel = pod_rel(&uuid);
    if v2() {
        let f = |n: &str| read(&root().join(&rel).join(n));
        assert_eq!(f("memory.max"), (64u64 << 20).to_string());
        assert_eq!(f("memory.low"), (16u64 << 20).to_string());
        assert_eq!(
            f("memory.swap.max"),
            (32u64 << 20).to_string(),
            "swap alone"
        );
        assert_eq!(f("cpu.max"), "5000 20000");
        assert_eq!(f("cpu.weight"), "20");
        assert_eq!(f("cpuset.cpus"), "0");
        assert_eq!(f("pids.max"), "77");
    } else {
        let f = |c: &str, n: &str| read(&root().join(c).join(&rel).join(n));
        assert_eq!(
            f("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            f("memory", "memory.soft_limit_in_bytes"),
            (16u64 << 20).to_string()
        );
        if root().join("memory/memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                f("memory", "memory.memsw.limit_in_bytes"),
                (96u64 << 20).to_string()
            );
        }
        assert_eq!(f("cpu", "cpu.cfs_quota_us"), "5000");
        assert_eq!(f("cpu", "cpu.cfs_period_us"), "20000");
        assert_eq!(f("cpu", "cpu.shares"), "512");
        assert_eq!(f("cpuset", "cpuset.cpus"), "0");
        assert_eq!(f("pids", "pids.max"), "77");
    }
    let cpus = common::eventually(std::time::Duration::from_secs(10), "the app's CPUs", || {
        let o = rkt.run(&["enter", &uuid, "/bin/cat", "/tmp/cpus"]);
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(cpus.split_whitespace().last(), Some("0"), "{cpus}");
    rkt.ok(&["stop", &uuid]);
    child.wait().unwrap();
    rkt.ok(&["rm", &uuid]);
}

/// Flags the kernel would refuse, or that make no sense together, fail before any pod runs,
/// naming the flag.
#[test]
fn resource_flags_that_cannot_work_are_refused() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    for (flags, says) in [
        (&["--cpu-period=50000"][..], "give --cpu too"),
        (&["--memory-swap=64Mi"][..], "needs --memory"),
        (
            &["--memory=64Mi", "--memory-reservation=128Mi"][..],
            "--memory-reservation",
        ),
        (&["--cpuset-cpus=4095"][..], "not online"),
        (&["--device=/etc/hostname"][..], "not a device node"),
    ] {
        let mut args = vec!["run", "--net=none", &image];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--exec", "/bin/true"]);
        let err = rkt.fails(&args);
        assert!(err.contains(says), "{flags:?}: {err}");
    }
    let err = rkt.fails(&["run", "--cgroup-parent=../escape", &image]);
    assert!(err.contains("--cgroup-parent"), "{err}");
    assert!(common::pods::pod_dirs(&rkt).is_empty());
}

/// The pod's device cgroup: a device given with `--device` opens (for what its permissions
/// allow) and may be made with mknod only with `m`; every other device may be neither made
/// nor (given through a read-only volume) written, although the app (root here: the image's
/// user is not) keeps CAP_MKNOD.
#[test]
fn devices_allowed_and_denied() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    // /dev/kmsg may be opened for writing by anyone (reading needs CAP_SYSLOG): nothing but
    // the device cgroup decides here. Nothing is written to it.
    let script = "B=/bin/busybox; \
        (exec 3>/dev/kmsg) 2>&1 && echo open-w-ok; \
        $B mknod /tmp/k c 1 11 2>&1 && echo mknod-kmsg-ok; \
        $B mknod /tmp/m c 1 1 2>&1 || echo mknod-mem-denied; \
        $B mknod /tmp/n c 1 3 2>&1 || echo mknod-null-denied; true";
    let o = rkt.run(&[
        "run",
        "--net=none",
        &busybox(),
        "--device=/dev/kmsg:/dev/kmsg:wm",
        "--user=0",
        "--group=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        script,
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "open-w-ok",
        "mknod-kmsg-ok",
        "mknod-mem-denied",
        "mknod-null-denied",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(out.contains("Operation not permitted"), "{out}");
    // A device node given as a read-only host volume may be read (here: opened) only.
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--volume=k,kind=host,source=/dev/kmsg,readOnly=true",
        &busybox(),
        "--mount=volume=k,target=/dev/kmsg",
        "--user=0",
        "--group=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "(exec 3>/dev/kmsg) 2>&1 || echo open-w-denied",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("open-w-denied") && out.contains("Operation not permitted"),
        "{out}"
    );
}

/// `--cgroup-parent` places the pod; the path is recorded in the pod, so enter joins it and,
/// after a SIGKILLed supervisor, rm finds and removes it (the parent itself stays).
#[test]
fn cgroup_parent_is_recorded_and_found_again() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let parent = format!("rkt-test-{}.slice/inner", std::process::id());
    let flag = format!("--cgroup-parent=/{parent}/");
    let (mut child, uuid) = start_pod(
        &rkt,
        &[&flag],
        &["--memory=40Mi", "--exec", "/bin/sleep", "--", "60"],
    );
    let rel = cgroup::pod_rel(&parent, &uuid);
    assert_eq!(
        read(&file(
            "memory",
            &rel,
            if v2() {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            }
        )),
        (40u64 << 20).to_string()
    );
    assert!(
        cgroups_of(&uuid).is_empty(),
        "nothing below the default parent"
    );
    let o = rkt.run(&["enter", &uuid, "/bin/cat", "/proc/self/cgroup"]);
    let seen = String::from_utf8_lossy(&o.stdout);
    assert!(seen.contains(&rel), "{seen}");
    child.kill().unwrap();
    child.wait().unwrap();
    rkt.ok(&["stop", &uuid]);
    rkt.ok(&["status", "--wait=10s", &uuid]);
    let left = cgroup::pod_dirs_everywhere(root(), &rel);
    assert!(!left.is_empty(), "the killed supervisor removed nothing");
    rkt.ok(&["rm", &uuid]);
    assert_eq!(
        cgroup::pod_dirs_everywhere(root(), &rel),
        Vec::<PathBuf>::new()
    );
    // The parent is the operator's: left in place, removed here by the test.
    let top = parent.split('/').next().unwrap().to_string();
    for d in cgroup::pod_dirs_everywhere(root(), &top) {
        std::fs::remove_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
}
