//! Pods for real: namespaces, overlayfs, cgroups, the supervisor and the pod lifecycle.

mod common;

use common::{Registry, Rkt};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::with_fixtures("plain"))
}

fn busybox() -> String {
    registry().image("busybox:latest")
}

fn out(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// No mount of this store is left in the host's mount table.
fn assert_no_mounts(rkt: &Rkt) {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = rkt.dir.path().display().to_string();
    assert!(
        !table.contains(&dir),
        "mounts left behind:\n{}",
        table
            .lines()
            .filter(|l| l.contains(&dir))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Starts `rkt run --net=none POD_FLAGS busybox APP_ARGS` in the background and returns it
/// with the pod's UUID once the pod is running.
fn start_pod(rkt: &Rkt, pod_flags: &[&str], app_args: &[&str]) -> (std::process::Child, String) {
    let uuid_file = rkt.config.path().join(format!("uuid-{}", rand_suffix()));
    let image = busybox();
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut args = vec!["run", "--net=none", save.as_str()];
    args.extend_from_slice(pod_flags);
    args.push(&image);
    args.extend_from_slice(app_args);
    let child = rkt.cmd().args(&args).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !uuid_file.exists() {
        assert!(Instant::now() < deadline, "the pod never got a UUID");
        std::thread::sleep(Duration::from_millis(20));
    }
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    (child, uuid)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn pod_dirs(rkt: &Rkt) -> Vec<String> {
    let mut v = Vec::new();
    for d in pod::STATE_DIRS {
        if let Ok(rd) = std::fs::read_dir(rkt.dir.path().join("pods").join(d)) {
            v.extend(
                rd.filter_map(|e| e.ok())
                    .map(|e| format!("{d}/{}", e.file_name().to_string_lossy())),
            );
        }
    }
    v
}

#[test]
fn run_passes_output_and_exit_status_through() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &busybox(),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(7), "{stderr}");
    assert_eq!(stdout.trim(), "out");
    assert!(stderr.contains("err"), "{stderr}");
    // --no-overlay: the app writes into a copy of the image, never into the image itself.
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--no-overlay",
        &busybox(),
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo changed > /www/index.html; cat /www/index.html",
    ]);
    assert_eq!(out(&o).0.trim(), "changed", "{}", out(&o).1);
    let o = rkt.run(&[
        "run",
        "--net=none",
        &busybox(),
        "--exec",
        "/bin/cat",
        "--",
        "/www/index.html",
    ]);
    assert_eq!(
        out(&o).0.trim(),
        "hello from rkt",
        "the stored image was modified"
    );
    // The image's own command (sh -c "echo hello") when nothing overrides it.
    let o = rkt.run(&["run", "--net=host", &busybox()]);
    assert_eq!(out(&o).0.trim(), "hello");
    assert!(o.status.success());
    assert_no_mounts(&rkt);
}

#[test]
fn app_sees_its_environment_identity_and_files() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let env_file = rkt.config.path().join("env");
    std::fs::write(&env_file, "# comment\nFROMFILE=1\nFOO=file\n").unwrap();
    let script = "echo $FOO $FROMFILE $SET $APPENV $AC_APP_NAME $container; id -u; id -g; id -G; pwd; \
                  hostname; grep -c 10.1.2.3 /etc/hosts; cat /etc/resolv.conf; cat /proc/1/cmdline | tr '\\0' ' '";
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--hostname=podhost",
        "--hosts-entry=10.1.2.3=db",
        "--dns=192.0.2.53",
        "--dns-search=example.test",
        &format!("--set-env-file={}", env_file.display()),
        "--set-env=SET=s",
        &busybox(),
        "--user=app",
        "--group=staff",
        "--supplementary-gids=7,8",
        "--working-dir=/tmp",
        "--environment=APPENV=e",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        script,
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // Image env FOO=bar is overridden by the env file, set-env and environment are added.
    assert_eq!(lines[0], "file 1 s e busybox rkt");
    assert_eq!(lines[1], "1000");
    assert_eq!(lines[2], "50");
    assert_eq!(lines[3], "50 7 8");
    assert_eq!(lines[4], "/tmp");
    assert_eq!(lines[5], "podhost");
    assert_eq!(lines[6], "1");
    assert!(
        stdout.contains("nameserver 192.0.2.53") && stdout.contains("search example.test"),
        "{stdout}"
    );
    // PID 1 of the pod is its own init, not a host process.
    assert!(lines.last().unwrap().contains("rkt-stage1"), "{stdout}");
}

#[test]
fn volumes_and_mounts() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let ro = tempfile::tempdir().unwrap();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &format!("--volume=shared,kind=host,source={}", host.path().display()),
        &format!(
            "--volume=locked,kind=host,source={},readOnly=true",
            ro.path().display()
        ),
        "--volume=scratch,kind=empty,mode=0700,uid=1000",
        &busybox(),
        "--user=0",
        "--group=0",
        "--mount=volume=shared,target=/shared",
        "--mount=volume=locked,target=/locked",
        "--mount=volume=scratch,target=/scratch",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "cat /shared/in; echo back > /shared/out; touch /locked/x 2>/dev/null || echo ro; \
         stat -c '%a %u' /scratch; test -d /data && test -d /var/tmp && echo implicit",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["from host", "ro", "700 1000", "implicit"]
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "back\n"
    );
    assert!(!ro.path().join("x").exists());
    assert_no_mounts(&rkt);
}

#[test]
fn prepare_run_prepared_status_stop_rm() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let uuid_file = rkt.config.path().join("uuid");
    let uuid = rkt.ok(&[
        "prepare",
        "--quiet",
        &format!("--uuid-file-save={}", uuid_file.display()),
        &busybox(),
        "--exec",
        "/bin/sleep",
        "--memory=32Mi",
        "--cpu=500m",
        "--",
        "60",
    ]);
    let uuid = uuid.trim().to_string();
    assert_eq!(std::fs::read_to_string(&uuid_file).unwrap(), uuid);
    assert!(rkt
        .ok(&["status", &uuid[..8]])
        .starts_with("state=prepared\n"));

    let mut child = rkt
        .cmd()
        .args(["run-prepared", "--net=none", &uuid])
        .spawn()
        .unwrap();
    let status = rkt.ok(&[
        "status",
        "--wait-ready=10s",
        &format!("--uuid-file={}", uuid_file.display()),
    ]);
    assert!(status.starts_with("state=running\n"), "{status}");
    assert!(status.contains("exited=false"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["status", "--format=json", &uuid])).unwrap();
    assert_eq!(json["name"], uuid.as_str());
    assert_eq!(json["state"], "running");
    assert_eq!(json["apps"][0]["name"], "busybox");
    assert!(json["apps"][0]["oom_killed"].is_null(), "{json}");
    // Limits are in the pod's cgroups while it runs.
    let mem = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/rkt/{uuid}/memory.limit_in_bytes"
    ));
    if let Ok(mem) = mem {
        assert_eq!(mem.trim(), (32 << 20).to_string());
        let quota =
            std::fs::read_to_string(format!("/sys/fs/cgroup/cpu/rkt/{uuid}/cpu.cfs_quota_us"))
                .unwrap();
        assert_eq!(quota.trim(), "50000");
    }
    let list = rkt.ok(&["list", "--no-legend"]);
    assert!(
        list.starts_with(&uuid[..8]) && list.contains("running"),
        "{list}"
    );

    // Removing a running pod is refused; stopping it forwards SIGTERM to the app.
    let err = rkt.fails(&["rm", &uuid]);
    assert!(err.contains("stop it first"), "{err}");
    let started = Instant::now();
    assert_eq!(rkt.ok(&["stop", &uuid]).trim(), format!("{uuid:?}"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let code = child.wait().unwrap().code();
    assert_eq!(
        code,
        Some(143),
        "rkt run-prepared exits with the app's status (SIGTERM)"
    );
    let status = rkt.ok(&["status", &uuid]);
    assert!(
        status.contains("state=exited") && status.contains("app-busybox=143"),
        "{status}"
    );
    let err = rkt.ok(&["stop", &uuid]);
    assert!(err.is_empty());
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory/rkt/{uuid}")).exists());

    assert_eq!(rkt.ok(&["rm", &uuid]).trim(), format!("{uuid:?}"));
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
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
    let rel = layout::cgroup::pod_rel(&uuid);
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
fn bad_input_is_refused_and_leaves_no_pod() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    rkt.ok(&["fetch", &busybox()]);
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--net=none", "--bogus", "IMG"], "unknown flag"),
        (
            &["run", "--net=none", "--volume=v,kind=nope", "IMG"],
            "--volume",
        ),
        (&["run", "--net=none", "IMG", "--mount=volume=v"], "--mount"),
        (
            &["run", "--net=none", "IMG", "--mount=volume=nov,target=/x"],
            "no --volume defines it",
        ),
        (
            &["run", "--net=none", "IMG", "--memory=lots"],
            "invalid quantity",
        ),
        (
            &["run", "--net=none", "IMG", "--cpu=fast"],
            "invalid CPU quantity",
        ),
        (
            &["run", "--net=none", "IMG", "--user=nobody-here"],
            "not found in the image",
        ),
        (
            &[
                "run",
                "--net=none",
                "--pull-policy=never",
                "docker://127.0.0.1:1/missing:1",
            ],
            "--pull-policy=never",
        ),
        (
            &["run", "--net=nosuch", "IMG", "--exec=/bin/true"],
            "network \"nosuch\" not found",
        ),
    ];
    for (args, expect) in cases {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if *a == "IMG" {
                    busybox()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = rkt.fails(&args);
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
        assert!(
            pod_dirs(&rkt).is_empty(),
            "{args:?} left {:?}",
            pod_dirs(&rkt)
        );
    }
    // A refused run-prepared leaves the pod prepared.
    let uuid = rkt.ok(&["prepare", &busybox(), "--exec=/bin/true"]);
    let err = rkt.fails(&["run-prepared", "--net=nosuch", uuid.trim()]);
    assert!(err.contains("not found"), "{err}");
    assert!(rkt
        .ok(&["status", uuid.trim()])
        .starts_with("state=prepared"));
}

#[test]
fn ambiguous_uuid_prefix_is_refused() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let mut uuids: Vec<String> = Vec::new();
    // Prepare pods until two share a first character.
    let prefix = loop {
        let u = rkt
            .ok(&["prepare", &busybox(), "--exec=/bin/true"])
            .trim()
            .to_string();
        if let Some(p) = uuids.iter().find(|p| p[..1] == u[..1]) {
            break p[..1].to_string();
        }
        uuids.push(u);
    };
    let err = rkt.fails(&["status", &prefix]);
    assert!(err.contains("matches"), "{err}");
    rkt.ok(&["gc", "--expire-prepared=0s", "--grace-period=0s"]);
    assert!(pod_dirs(&rkt).is_empty());
}

#[test]
fn run_rm_cycles_leave_nothing_behind() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let uuid_file = rkt.config.path().join("uuid");
    let cycles: usize = std::env::var("RKT_TEST_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(500);
    let mut uuids = Vec::new();
    for _ in 0..cycles {
        rkt.ok(&[
            "run",
            "--net=none",
            &format!("--uuid-file-save={}", uuid_file.display()),
            &busybox(),
            "--memory=64M",
            "--exec=/bin/true",
        ]);
        uuids.push(std::fs::read_to_string(&uuid_file).unwrap());
        rkt.ok(&["rm", &format!("--uuid-file={}", uuid_file.display())]);
    }
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
    // Every cycle's pod, in every hierarchy (v1 controllers and the unified one).
    let leftover: Vec<_> = uuids.iter().flat_map(|u| cgroups_of(u)).collect();
    assert!(leftover.is_empty(), "{leftover:?}");
}

/// Every cgroup directory pod `uuid` has anywhere on this host.
fn cgroups_of(uuid: &str) -> Vec<std::path::PathBuf> {
    layout::cgroup::pod_dirs_everywhere(std::path::Path::new(layout::cgroup::ROOT), uuid)
}

/// A SIGKILLed supervisor cannot remove its pod's cgroups; rm and gc must, the apps' own
/// child cgroups included.
#[test]
fn killed_supervisor_cgroups_are_removed_by_rm_and_gc() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    for remove in [&["rm"][..], &["gc", "--grace-period=0s"][..]] {
        let (mut child, uuid) = start_pod(
            &rkt,
            &[],
            &[
                "--name=a",
                "--memory=64M",
                "--exec",
                "/bin/sleep",
                "--",
                "60",
                "---",
                &image,
                "--name=b",
                "--cpu=200m",
                "--exec",
                "/bin/sleep",
                "--",
                "60",
            ],
        );
        let made = cgroups_of(&uuid);
        assert!(
            made.iter().any(|d| d.ends_with(format!("{uuid}/a")))
                && made.iter().any(|d| d.ends_with(format!("{uuid}/b"))),
            "per-app cgroups: {made:?}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        rkt.ok(&["stop", &uuid]);
        rkt.ok(&["status", "--wait=10s", &uuid]);
        assert!(!cgroups_of(&uuid).is_empty(), "nobody removed them yet");
        let mut args = remove.to_vec();
        if remove[0] == "rm" {
            args.push(&uuid);
        }
        rkt.ok(&args);
        assert_eq!(
            cgroups_of(&uuid),
            Vec::<std::path::PathBuf>::new(),
            "{remove:?}"
        );
        assert!(
            pod_dirs(&rkt).is_empty(),
            "{remove:?}: {:?}",
            pod_dirs(&rkt)
        );
    }
}

#[test]
fn version_is_rkts_five_lines() {
    let rkt = Rkt::new();
    let v = rkt.ok(&["version"]);
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], "rkt Version: 1.30.0");
    assert_eq!(lines[1], "appc Version: 0.8.11");
}

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

#[test]
fn stored_docker_image_runs_without_insecure_image() {
    if !common::require_root() {
        return;
    }
    let mut rkt = Rkt::new();
    rkt.ok(&["fetch", &busybox()]);
    rkt.insecure = "http".into();
    rkt.ok(&["run", "--net=none", &busybox(), "--exec=/bin/true"]);
    let err = rkt.fails(&[
        "run",
        "--net=none",
        &registry().image("special:latest"),
        "--exec=/bin/true",
    ]);
    assert!(err.contains("--insecure-options=image"), "{err}");
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
        stdout.contains(&format!("rkt/{uuid}")),
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

#[test]
fn app_flags_and_listing_formats() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    // --readonly-rootfs, --name, --inherit-env, --oom-score-adj, --cpu-shares.
    let o = rkt
        .cmd()
        .env("FROM_HOST", "yes")
        .args([
            "run", "--net=none", "--inherit-env", &busybox(), "--name=web", "--readonly-rootfs",
            "--oom-score-adj=500", "--cpu-shares=256", "--user=0", "--exec", "/bin/sh", "--", "-c",
            "echo $FROM_HOST $AC_APP_NAME; cat /proc/self/oom_score_adj; \
             touch /www/x 2>/dev/null && echo writable || echo read-only; touch /data/ok && echo volume-writable",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stdout, "yes web\n500\nread-only\nvolume-writable\n");

    // status --wait blocks until the pod exits; list --full and JSON.
    let uuid_file = rkt.config.path().join("uuid");
    let mut child = rkt
        .cmd()
        .args([
            "run",
            "--net=none",
            &format!("--uuid-file-save={}", uuid_file.display()),
            &busybox(),
            "--exec",
            "/bin/sleep",
            "--",
            "1",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !uuid_file.exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let status = rkt.ok(&[
        "status",
        "--wait",
        &format!("--uuid-file={}", uuid_file.display()),
    ]);
    assert!(
        status.contains("state=exited") && status.contains("app-busybox=0"),
        "{status}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "--wait returned before the pod exited"
    );
    child.wait().unwrap();
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    let full = rkt.ok(&["list", "--full"]);
    let header: Vec<&str> = full
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "UUID",
            "APP",
            "IMAGE NAME",
            "IMAGE ID",
            "STATE",
            "CREATED",
            "STARTED",
            "NETWORKS"
        ]
    );
    assert!(full.contains(&uuid) && full.contains("sha512-"), "{full}");
    let json: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["list", "--format=json"])).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == uuid.as_str() && p["state"] == "exited"));
    let manifest: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["cat-manifest", &uuid])).unwrap();
    assert_eq!(manifest["acKind"], "PodManifest");
    assert_eq!(
        manifest["apps"][0]["app"]["exec"],
        serde_json::json!(["/bin/sleep", "1"])
    );
    rkt.ok(&["gc", "--grace-period=0s"]);
}

/// The pod outlives its supervisor: after a SIGKILL of rkt-stage1 on the host side, the pod's
/// init still holds the lock and runs the app; stop still works and the exit is recorded.
#[test]
fn pod_survives_a_killed_supervisor() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "60"]);
    child.kill().unwrap(); // the supervisor: `rkt run` became it by exec
    child.wait().unwrap();
    let status = rkt.ok(&["status", &uuid]);
    assert!(status.starts_with("state=running"), "{status}");
    let started = Instant::now();
    rkt.ok(&["stop", &uuid]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM reached the app"
    );
    let status = rkt.ok(&["status", &uuid]);
    assert!(
        status.contains("state=exited") && status.contains("app-busybox=143"),
        "{status}"
    );
    rkt.ok(&["rm", &uuid]);
    assert_eq!(cgroups_of(&uuid), Vec::<std::path::PathBuf>::new());
}

/// Several apps in one pod share its namespaces; each has its own root, limits and exit
/// status; when one fails the others are stopped and the pod exits with the failure.
#[test]
fn several_apps_share_a_pod() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let o = rkt.run(&[
        "run", "--net=none", "--hostname=shared", &image, "--name=a", "--user=0", "--exec", "/bin/sh", "--", "-c",
        "echo a-$(/bin/busybox hostname) > /tmp/mine; /bin/busybox sleep 1; cat /tmp/mine",
        "---", &image, "--name=b", "--user=0", "--exec", "/bin/sh", "--", "-c",
        "/bin/busybox sleep 0.3; test -e /tmp/mine && echo b-sees-a || echo b-own-root; \
         for p in /proc/[0-9]*; do /bin/busybox tr '\\0' ' ' < $p/cmdline; echo; done | /bin/busybox grep -c '^/bin/busybox sleep 1 $'",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("a-shared"),
        "app a's own files and the pod's hostname: {stdout}"
    );
    assert!(
        stdout.contains("b-own-root"),
        "each app has its own root: {stdout}"
    );
    assert!(
        stdout.contains("\n1\n") || stdout.starts_with("1\n"),
        "b sees a's process (one PID namespace): {stdout}"
    );
    let uuid = rkt.ok(&["list", "--no-legend", "--full"]);
    let uuid = uuid.split_whitespace().next().unwrap().to_string();
    let status = rkt.ok(&["status", &uuid]);
    assert!(
        status.contains("app-a=0") && status.contains("app-b=0"),
        "{status}"
    );
    let list = rkt.ok(&["list", "--no-legend"]);
    assert_eq!(list.lines().count(), 2, "one row per app: {list}");

    // b fails: a is stopped, and the pod exits with b's status.
    let started = Instant::now();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        "--name=a",
        "--exec",
        "/bin/sleep",
        "--",
        "30",
        "---",
        &image,
        "--name=b",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", out(&o).1);
    assert!(started.elapsed() < Duration::from_secs(10));

    // A per-app memory limit applies to that app only.
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        "--name=calm",
        "--exec",
        "/bin/sleep",
        "--",
        "30",
        "---",
        &image,
        "--name=hog",
        "--memory=16Mi",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "a=x; while :; do a=\"$a$a\"; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", out(&o).1);

    // enter needs --app in such a pod; duplicate names are refused.
    let (mut child, uuid) = start_pod(
        &rkt,
        &[],
        &[
            "--name=x",
            "--exec",
            "/bin/sleep",
            "--",
            "30",
            "---",
            &image,
            "--name=y",
            "--exec",
            "/bin/sleep",
            "--",
            "30",
        ],
    );
    let err = rkt.fails(&["enter", &uuid, "/bin/true"]);
    assert!(err.contains("Pod contains multiple apps"), "{err}");
    let o = rkt.run(&[
        "enter",
        "--app=y",
        &uuid,
        "/bin/busybox",
        "cat",
        "/proc/1/comm",
    ]);
    assert_eq!(out(&o).0.trim(), "rkt-stage1", "{}", out(&o).1);
    rkt.ok(&["stop", &uuid]);
    child.wait().unwrap();
    let err = rkt.fails(&[
        "run",
        "--net=none",
        &image,
        "--name=z",
        "---",
        &image,
        "--name=z",
    ]);
    assert!(err.contains("two apps are named"), "{err}");
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
}

/// `recursive=false` binds a host volume without the mounts below it; the default is
/// recursive, as in rkt's default stage1.
#[test]
fn host_volume_recursion() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let host = tempfile::tempdir().unwrap();
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(mounted.success());
    std::fs::write(sub.join("inner"), "x").unwrap();
    let look = |recursive: &str| {
        let o = rkt.run(&[
            "run",
            "--net=none",
            &format!(
                "--volume=v,kind=host,source={},recursive={recursive}",
                host.path().display()
            ),
            &busybox(),
            "--mount=volume=v,target=/v",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "test -e /v/sub/inner && echo sees-submount || echo no-submount",
        ]);
        out(&o).0
    };
    let (with, without) = (look("true"), look("false"));
    let _ = std::process::Command::new("umount").arg(&sub).status();
    assert_eq!(with.trim(), "sees-submount");
    assert_eq!(without.trim(), "no-submount");
}

/// Runs `rkt ARGS` with `input` on its stdin; returns its stdout.
fn run_with_stdin(rkt: &Rkt, args: &[&str], input: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = rkt
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", out(&o).1);
    out(&o).0
}

/// `--interactive` and `--ipc` do what rkt's did; flags this rkt cannot honour are refused,
/// naming themselves, instead of being accepted and ignored.
#[test]
fn interactive_ipc_and_no_silent_flags() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let read = ["--exec", "/bin/sh", "--", "-c", "read x; echo got:$x"];
    let mut args = vec!["run", "--net=none", &image];
    args.extend_from_slice(&read);
    assert_eq!(
        run_with_stdin(&rkt, &args, "hello\n").trim(),
        "got:",
        "stdin is /dev/null"
    );
    args.insert(1, "--interactive");
    assert_eq!(run_with_stdin(&rkt, &args, "hello\n").trim(), "got:hello");
    let err = rkt.fails(&[
        "run",
        "--interactive",
        "--net=none",
        &image,
        "--name=a",
        "---",
        &image,
        "--name=b",
    ]);
    assert!(
        err.contains("--interactive") && err.contains("2 apps"),
        "{err}"
    );

    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let ns = |ipc: &str| {
        let mut args = vec!["run", "--net=none"];
        if !ipc.is_empty() {
            args.push(ipc);
        }
        args.extend_from_slice(&[
            &image,
            "--exec",
            "/bin/busybox",
            "--",
            "readlink",
            "/proc/self/ns/ipc",
        ]);
        rkt.ok(&args).trim().to_string()
    };
    let host_ipc = host_ipc.to_string_lossy();
    assert_eq!(ns("--ipc=parent"), host_ipc);
    assert_ne!(ns(""), host_ipc, "a pod has its own IPC namespace");
    assert_ne!(ns("--ipc=private"), host_ipc);
    let err = rkt.fails(&["run", "--ipc=bogus", "--net=none", &image]);
    assert!(err.contains("--ipc"), "{err}");

    for flag in [
        "--stage1-name=coreos.com/rkt/stage1-fly:1.30.0",
        "--signature=/nonexistent.asc",
        "--stdin=null",
        "--user-label=a=b",
        "--mds-register",
    ] {
        let err = rkt.fails(&["run", flag, "--net=none", &image]);
        let name = flag.split('=').next().unwrap();
        assert!(err.contains(name), "{flag}: {err}");
    }
    // The five pods that ran are there; the refused runs left nothing.
    assert_eq!(pod_dirs(&rkt).len(), 5, "{:?}", pod_dirs(&rkt));
}

/// `rkt image gc` never removes the image of a pod, running or exited, until the pod is
/// removed: the image's tree is below the pod's overlay (rkt kept its pods' tree stores).
#[test]
fn image_gc_keeps_the_images_pods_use() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let (mut child, uuid) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "60"]);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert_eq!(rkt.image_dirs().len(), 1, "the image of a running pod");
    rkt.ok(&["stop", "--force", &uuid]);
    child.wait().unwrap();
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert_eq!(rkt.image_dirs().len(), 1, "the image of an exited pod");
    rkt.ok(&["rm", &uuid]);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(rkt.image_dirs().is_empty(), "no pod uses it any more");
}
