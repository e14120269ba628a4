//! What holds an app in: memory and CPU limits, capabilities, no_new_privs, masked paths,
//! the seccomp filter, and `rkt enter` confined exactly like the app.

mod common;

use common::pods::*;
use common::Rkt;
use std::time::{Duration, Instant};

/// The app's capability bound, effective set and no_new_privs, from inside the pod.
fn security_of(rkt: &Rkt, extra: &[&str]) -> String {
    let image = busybox();
    let mut args = vec!["run", "--net=none", image.as_str(), "--user=0", "--group=0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--exec", "/bin/sh", "--", "-c",
        // busybox applets by name: the image links only a few of them.
        "B=/bin/busybox; $B grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
         echo timer_list-bytes=$($B wc -c </proc/timer_list); \
         $B awk '$5 == \"/proc/sys\" { split($6, o, \",\"); print \"procsys-\" o[1] }' /proc/self/mountinfo",
    ]);
    let o = rkt.run(&args);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    stdout
}

#[test]
fn memory_limit_is_enforced() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    // A shell string that doubles until it cannot.
    let o = rkt.run(&[
        "run",
        "--net=none",
        &busybox(),
        "--memory=16Mi",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "a=x; while :; do a=\"$a$a\"; done",
    ]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "an app past its memory limit is OOM-killed (SIGKILL)"
    );
    let uuid = rkt.ok(&["list", "--no-legend", "--full"]);
    let uuid = uuid.split_whitespace().next().unwrap().to_string();
    let status = rkt.ok(&["status", &uuid]);
    assert!(status.contains("app-busybox=137"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["status", "--format=json", &uuid])).unwrap();
    assert_eq!(
        json["apps"][0]["oom_killed"], true,
        "status says OOM: {json}"
    );
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    if !common::require_root() {
        return;
    }
    let root = std::path::Path::new(layout::cgroup::ROOT);
    if layout::cgroup::Hierarchy::detect(root) != layout::cgroup::Hierarchy::V1 {
        common::skip("reads v1's cpu.stat and cpuacct.usage; a v2 host is covered by stage1's fake-hierarchy tests");
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(
        &rkt,
        &[],
        &[
            "--cpu=500m",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "while :; do :; done",
        ],
    );
    // What the kernel itself says, whatever the machine's load: the quota is set, the busy
    // loop was throttled, and it never used more than half a core (plus one period's slack).
    let rel = layout::cgroup::pod_rel(layout::cgroup::DEFAULT_PARENT, &uuid);
    let cpu = root.join("cpu").join(&rel);
    let acct = layout::cgroup::v1_cpuacct_dir(root, &rel);
    let read = |p: std::path::PathBuf| -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")).trim(), "50000");
    let usage = || -> u64 { read(acct.join("cpuacct.usage")).trim().parse().unwrap() };
    let (before, t0) = (usage(), Instant::now());
    let throttled = common::eventually(Duration::from_secs(20), "the loop to be throttled", || {
        let stat = read(cpu.join("cpu.stat"));
        let n: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        (n >= 3 && t0.elapsed() >= Duration::from_secs(1)).then_some(n)
    });
    let (used, elapsed) = (usage() - before, t0.elapsed());
    rkt.ok(&["stop", "--force", &uuid]);
    child.wait().unwrap();
    let allowed = 0.5 * elapsed.as_nanos() as f64 + 100e6;
    assert!(
        (used as f64) <= allowed,
        "a busy loop under --cpu=500m used {used} ns of CPU in {elapsed:?} ({throttled} periods throttled)"
    );
}

#[test]
fn security_defaults_and_their_relaxation() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let s = security_of(&rkt, &[]);
    assert!(
        s.contains("CapBnd:\t00000000a80425fb"),
        "appc's 14 default capabilities: {s}"
    );
    assert!(s.contains("CapEff:\t00000000a80425fb"), "{s}");
    assert!(s.contains("NoNewPrivs:\t1"), "{s}");
    assert!(
        s.contains("timer_list-bytes=0\n"),
        "/proc/timer_list is masked: {s}"
    );
    assert!(
        s.contains("procsys-ro"),
        "/proc/sys is mounted read-only: {s}"
    );

    let s = security_of(&rkt, &["--caps-retain=CAP_CHOWN,CAP_NET_ADMIN"]);
    assert!(s.contains("CapBnd:\t0000000000001001"), "{s}");
    let s = security_of(&rkt, &["--caps-remove=CAP_NET_RAW"]);
    assert!(s.contains("CapBnd:\t00000000a80405fb"), "{s}");
    let err = rkt.fails(&["run", "--net=none", &busybox(), "--caps-retain=CAP_BOGUS"]);
    assert!(err.contains("CAP_BOGUS"), "{err}");

    let mut relaxed = Rkt::new();
    relaxed.insecure = "image,http,capabilities,paths,seccomp".into();
    let s = security_of(&relaxed, &[]);
    assert!(!s.contains("CapBnd:\t00000000a80425fb"), "{s}");
    assert!(s.contains("NoNewPrivs:\t0"), "{s}");
    assert!(!s.contains("procsys-ro"), "{s}");
    assert!(!s.contains("timer_list-bytes=0\n"), "{s}");
}

/// `rkt enter` joins the pod's namespaces and cgroups and keeps the app's confinement: what
/// rkt's CVE-2019-10144 (all capabilities), -10145 (no seccomp) and -10147 (host cgroups) let
/// entered processes escape.
#[test]
fn enter_is_confined_like_the_app() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(
        &rkt,
        &["--hostname=inside"],
        &["--user=0", "--group=0", "--exec", "/bin/sleep", "--", "60"],
    );
    let o = rkt.run(&[
        "enter",
        &uuid[..8],
        "/bin/busybox",
        "sh",
        "-c",
        "B=/bin/busybox; $B grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; $B hostname; \
         $B cat /proc/self/cgroup; $B cat /proc/1/comm; $B cat /www/index.html; exit 3",
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(
        o.status.code(),
        Some(3),
        "enter exits with the command's status: {stderr}"
    );
    assert!(
        stdout.contains("CapBnd:\t00000000a80425fb"),
        "capability bound kept (CVE-2019-10144): {stdout}"
    );
    assert!(stdout.contains("CapEff:\t00000000a80425fb"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    assert!(
        stdout.contains("Seccomp:\t2"),
        "the app's seccomp filter (CVE-2019-10145): {stdout}"
    );
    assert!(
        stdout.contains("\ninside\n"),
        "the pod's UTS namespace: {stdout}"
    );
    assert!(
        stdout.contains(&format!("rkt-{uuid}")),
        "the pod's cgroups (CVE-2019-10147): {stdout}"
    );
    assert!(
        stdout.contains("rkt-stage1"),
        "the pod's PID namespace: {stdout}"
    );
    assert!(
        stdout.contains("hello from rkt"),
        "the pod's root filesystem: {stdout}"
    );
    let err = rkt.fails(&["enter", "--app=nope", &uuid, "/bin/true"]);
    assert!(err.contains("no app"), "{err}");
    rkt.ok(&["stop", "--force", &uuid]);
    child.wait().unwrap();
    let err = rkt.fails(&["enter", &uuid, "/bin/true"]);
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn seccomp_default_kills_and_custom_lists_refuse() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    // sethostname is not on the default list: the app dies of SIGSYS (128 + 31), as in rkt.
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        "--user=0",
        "--exec",
        "/bin/busybox",
        "--",
        "hostname",
        "changed",
    ]);
    assert_eq!(o.status.code(), Some(159), "{}", out(&o).1);
    // With errno=, the call fails instead, and the app goes on.
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        if cfg!(target_arch = "x86_64") {
            "--seccomp=mode=remove,errno=EPERM,mkdir,mkdirat"
        } else {
            "--seccomp=mode=remove,errno=EPERM,mkdirat"
        },
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "/bin/busybox mkdir /tmp/x 2>/dev/null || echo mkdir-refused; echo alive",
    ]);
    assert_eq!(out(&o).0, "mkdir-refused\nalive\n", "{}", out(&o).1);
    // --insecure-options=seccomp: no filter.
    let mut relaxed = Rkt::new();
    relaxed.insecure = "image,http,seccomp".into();
    let o = relaxed.run(&[
        "run",
        "--net=none",
        &image,
        "--exec",
        "/bin/busybox",
        "--",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(out(&o).0.trim(), "Seccomp:\t0", "{}", out(&o).1);
    let err = rkt.fails(&[
        "run",
        "--net=none",
        &image,
        "--seccomp=mode=retain,nosuchcall",
    ]);
    assert!(err.contains("nosuchcall"), "{err}");
}
