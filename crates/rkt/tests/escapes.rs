//! Escape attempts from inside a pod, as the app, under the default security settings: each
//! must fail, and each test asserts how (the errno, or the seccomp kill). The attempts and
//! their expected ends are in `test_support::escapes` (the driver's tests make them too).
//!
//! What pods_confinement.rs already checks is not repeated: the capability sets, no_new_privs,
//! the masked /proc files, and `rkt enter` joining the pod's cgroups and namespaces.

mod common;

use common::pods::{out, registry};
use common::Rkt;
use std::os::unix::process::CommandExt;
use std::sync::OnceLock;
use test_support::escapes::{assert_refused, script, HostSecret};

/// The probe image, pushed once to the shared test registry.
fn probe_image() -> String {
    static PUSHED: OnceLock<()> = OnceLock::new();
    PUSHED.get_or_init(|| registry().push("probe", "probe:latest"));
    registry().image("probe:latest")
}

/// An empty volume at /vol: a directory of the pod's own, on the host's disk.
const VOLUME: &str = "--volume=vol,kind=empty";
const MOUNT: &str = "--mount=volume=vol,target=/vol";

#[test]
fn the_app_cannot_escape() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let secret = HostSecret::new();
    let o = rkt.run(&[
        "run",
        "--net=none",
        VOLUME,
        &probe_image(),
        MOUNT,
        "--user=0",
        "--group=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        &script(&secret, "/vol"),
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_refused(
        "the app",
        &stdout,
        &secret,
        &["rkt-stage1", "sh", "busybox", "escape_probe"],
    );
}

/// rkt's CVE-2019-10144/-10145/-10147: processes `rkt enter` starts had every capability, no
/// seccomp filter and the host's cgroups, so anything in the pod could use them (ptrace them,
/// reach through their /proc entries) to get out. Entered, the same attempts end exactly as
/// they do for the app.
#[test]
fn rkt_enter_cannot_escape_either() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let secret = HostSecret::new();
    let uuid_file = rkt.config.path().join("uuid");
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut pod = rkt
        .cmd()
        .args([
            "run",
            "--net=none",
            &save,
            VOLUME,
            &probe_image(),
            MOUNT,
            "--user=0",
            "--group=0",
            "--exec",
            "/bin/sleep",
            "--",
            "60",
        ])
        .spawn()
        .unwrap();
    let uuid = common::eventually(std::time::Duration::from_secs(30), "the pod's UUID", || {
        std::fs::read_to_string(&uuid_file).ok()
    });
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    let o = rkt.run(&["enter", &uuid, "/bin/sh", "-c", &script(&secret, "/vol")]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_refused(
        "rkt enter",
        &stdout,
        &secret,
        &["rkt-stage1", "sleep", "sh", "busybox", "escape_probe"],
    );

    // A process entered into the pod, seen from another one inside it: it cannot be
    // ptraced, and its root is the pod's, never the host's.
    let mut entered = rkt
        .cmd()
        .args(["enter", &uuid, "/bin/sleep", "30"])
        .spawn()
        .unwrap();
    let find = "for p in /proc/[0-9]*; do \
                  [ \"$(/bin/busybox cat $p/cmdline | /bin/busybox tr '\\0' ' ')\" = '/bin/sleep 30 ' ] \
                  && echo ${p#/proc/}; done";
    let pid = common::eventually(
        std::time::Duration::from_secs(10),
        "the entered sleep",
        || {
            let o = rkt.run(&["enter", &uuid, "/bin/sh", "-c", find]);
            let s = out(&o).0;
            s.lines().next().map(|l| l.trim().to_string())
        },
    );
    let probe = format!(
        "/bin/escape_probe ptrace {pid}; /bin/escape_probe open /proc/{pid}/root{}; \
         /bin/busybox grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/{pid}/status",
        secret.path.display()
    );
    let o = rkt.run(&["enter", &uuid, "/bin/sh", "-c", &probe]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ptrace signal=31"), "{stdout}");
    assert!(
        stdout.contains("open errno=ENOENT"),
        "the entered process's root is the pod's: {stdout}"
    );
    assert!(stdout.contains("CapEff:\t00000000a80425fb"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");
    entered.kill().ok();
    entered.wait().ok();
    rkt.ok(&["stop", "--force", &uuid]);
    pod.wait().unwrap();
}

/// Setuid binaries gain nothing under no_new_privs: one owned by root, and one owned by a
/// user the image maps (`app`, 1000), run by another user.
#[test]
fn setuid_binaries_gain_nothing() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &probe_image(),
        "--user=1234",
        "--group=1234",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "/bin/probe-suid-root ids; /bin/probe-suid-app ids; /bin/probe-suid-root setuid0; \
         /bin/busybox stat -c '%n %a %u' /bin/probe-suid-root /bin/probe-suid-app",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        "ids ok uid=1234 euid=1234\nids ok uid=1234 euid=1234\nsetuid0 errno=EPERM\n\
         /bin/probe-suid-root 4755 0\n/bin/probe-suid-app 4755 1000\n",
        "the setuid bits are there, and ignored: {stderr}"
    );
}

/// What the app was started with (the shell adds none for a simple command), then a walk up
/// from the descriptor the caller left open.
const LIST_FDS: &str = "/bin/escape_probe fds; /bin/escape_probe openat-fd 7 ..";

/// `rkt ARGS` with a directory of the host open on descriptor 7, without close-on-exec, as
/// a careless caller would leave it.
fn run_with_host_dir_on_fd_7(rkt: &Rkt, args: &[&str]) -> std::process::Output {
    use std::os::fd::AsRawFd;
    let host_dir = std::fs::File::open("/run").unwrap();
    let raw = host_dir.as_raw_fd();
    let mut cmd = rkt.cmd();
    cmd.args(args);
    // SAFETY: dup2 in the child between fork and exec, on a descriptor we own.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// The descriptors are exactly stdin (/dev/null), stdout and stderr, and 7 is closed.
fn assert_only_stdio(how: &str, o: &std::process::Output) {
    let (stdout, stderr) = out(o);
    assert!(o.status.success(), "{how}: {stdout}\n{stderr}");
    let fds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("fd "))
        .collect();
    let numbers: Vec<&str> = fds.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        numbers,
        ["0", "1", "2"],
        "{how}: descriptors it was not given: {fds:?}"
    );
    assert!(fds[0].ends_with("/dev/null"), "{how}: stdin: {fds:?}");
    assert!(
        stdout.contains("openat-fd errno=EBADF"),
        "{how}: the caller's descriptor 7 is open: {stdout}"
    );
}

/// No descriptor of rkt or of the supervisor reaches the app, or a command `rkt enter`
/// starts: not even one the caller left open without close-on-exec (a directory of the
/// host, here), which would let the app `openat` its way out.
#[test]
fn no_descriptor_leaks_into_the_app() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = probe_image();
    let o = run_with_host_dir_on_fd_7(
        &rkt,
        &[
            "run",
            "--net=none",
            &image,
            "--user=0",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            LIST_FDS,
        ],
    );
    assert_only_stdio("rkt run", &o);

    let uuid_file = rkt.config.path().join("uuid");
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut pod = rkt
        .cmd()
        .args([
            "run",
            "--net=none",
            &save,
            &image,
            "--exec",
            "/bin/sleep",
            "--",
            "60",
        ])
        .spawn()
        .unwrap();
    let uuid = common::eventually(std::time::Duration::from_secs(30), "the pod's UUID", || {
        std::fs::read_to_string(&uuid_file).ok()
    });
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    let o = run_with_host_dir_on_fd_7(&rkt, &["enter", &uuid, "/bin/sh", "-c", LIST_FDS]);
    // rkt enter passes its own stdin on (here /dev/null, from Command::output).
    assert_only_stdio("rkt enter", &o);
    rkt.ok(&["stop", "--force", &uuid]);
    pod.wait().unwrap();
}

/// In a pod of several apps, an app (root, with CAP_SYS_CHROOT, an appc default) climbs out
/// of a chroot with a second chroot. Each app has a mount namespace of its own pivoted into
/// its root, so there is nothing above it: not the other app's files, not the pod's exit
/// statuses. The same for a process entered into one of the apps.
#[test]
fn an_app_cannot_climb_into_the_pod_or_another_app() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let climb = "/bin/escape_probe chroot-escape /opt/stage2/b/rootfs/tmp/secret; \
                 /bin/escape_probe chroot-escape /rkt/status/.b.exit; \
                 /bin/escape_probe chroot-escape /tmp/mine";
    let o = rkt.run(&[
        "run",
        "--net=none",
        &probe_image(),
        "--name=a",
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        // b writes its secret first; the climb's last line shows the probe works (its own
        // file, in its own root, reached the same way).
        &format!("echo mine >/tmp/mine; /bin/busybox sleep 1; {climb}"),
        "---",
        &probe_image(),
        "--name=b",
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo b-secret >/tmp/secret; /bin/busybox sleep 3",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout, CLIMBED_NOWHERE, "{stderr}");

    // Entered into app a of a running pod of two.
    let uuid_file = rkt.config.path().join("uuid2");
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut pod = rkt
        .cmd()
        .args([
            "run",
            "--net=none",
            &save,
            &probe_image(),
            "--name=a",
            "--user=0",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "echo mine >/tmp/mine; exec /bin/busybox sleep 60",
            "---",
            &probe_image(),
            "--name=b",
            "--user=0",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "echo b-secret >/tmp/secret; exec /bin/busybox sleep 60",
        ])
        .spawn()
        .unwrap();
    let uuid = common::eventually(std::time::Duration::from_secs(30), "the pod's UUID", || {
        std::fs::read_to_string(&uuid_file).ok()
    });
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    common::eventually(std::time::Duration::from_secs(10), "b's secret", || {
        let o = rkt.run(&[
            "enter",
            "--app=b",
            &uuid,
            "/bin/busybox",
            "cat",
            "/tmp/secret",
        ]);
        (o.stdout == b"b-secret\n").then_some(())
    });
    let o = rkt.run(&["enter", "--app=a", &uuid, "/bin/sh", "-c", climb]);
    let (stdout, stderr) = out(&o);
    assert_eq!(stdout, CLIMBED_NOWHERE, "entered: {stderr}");
    rkt.ok(&["stop", "--force", &uuid]);
    pod.wait().unwrap();
}

/// What the climb finds: neither of the pod's paths, only its own file.
const CLIMBED_NOWHERE: &str =
    "chroot-escape errno=ENOENT\nchroot-escape errno=ENOENT\nchroot-escape ok mine\n";

/// The system calls that reach the host kernel's own state (bpf, perf_event_open,
/// userfaultfd, kexec_load, reboot, swapon, acct, quotactl, pivot_root, umount2, setns, the
/// new mount API, process_vm_readv, kcmp, iopl, ioperm, syslog, the clocks, ...): every one
/// is off the default allow-list, and the caller is killed.
#[test]
fn kernel_interfaces_are_off_the_allow_list() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &probe_image(),
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "for c in $(/bin/escape_probe raw-list); do echo \"$c $(/bin/escape_probe raw $c)\"; done",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 20, "{stdout}");
    let wrong: Vec<&&str> = lines
        .iter()
        .filter(|l| !l.ends_with(" raw signal=31"))
        .collect();
    assert!(wrong.is_empty(), "not killed by the filter: {wrong:?}");
}

/// The user the host sees the pod's app `comm` run as: the first `Uid:` field of the init's
/// child running it (waited for: the app may still be starting).
fn host_uid_of(rkt: &Rkt, uuid: &str, comm: &str) -> u32 {
    let pid_file = rkt.dir.path().join("pods/run").join(uuid).join("pid");
    let init: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let uid_of = |p: &str| -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    common::eventually(std::time::Duration::from_secs(10), comm, || {
        let children =
            std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
        children
            .split_whitespace()
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .and_then(uid_of)
    })
}

/// With `--private-users`, the same attempts end the same way (device nodes are not made at
/// all), by the app and by a process `rkt enter` starts; and the app's root is, to the
/// host, a user of the pod's own range.
#[test]
fn neither_the_app_nor_rkt_enter_escape_with_private_users() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let secret = HostSecret::new();
    let expected = test_support::escapes::expected_private_users();
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--private-users",
        VOLUME,
        &probe_image(),
        MOUNT,
        "--user=0",
        "--group=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        &script(&secret, "/vol"),
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    test_support::escapes::assert_refused_as(
        "the app, private users",
        &stdout,
        &secret,
        &["rkt-stage1", "sh", "busybox", "escape_probe"],
        &expected,
    );

    let uuid_file = rkt.config.path().join("uuid");
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut pod = rkt
        .cmd()
        .args([
            "run",
            "--net=none",
            "--private-users",
            &save,
            VOLUME,
            &probe_image(),
            MOUNT,
            "--user=0",
            "--group=0",
            "--exec",
            "/bin/sleep",
            "--",
            "60",
        ])
        .spawn()
        .unwrap();
    let uuid = common::eventually(std::time::Duration::from_secs(30), "the pod's UUID", || {
        std::fs::read_to_string(&uuid_file).ok()
    });
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    let host_uid = host_uid_of(&rkt, &uuid, "sleep");
    assert!(
        host_uid >= 0x8_0000,
        "root in the pod is host user {host_uid}"
    );
    let o = rkt.run(&["enter", &uuid, "/bin/sh", "-c", &script(&secret, "/vol")]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    test_support::escapes::assert_refused_as(
        "rkt enter, private users",
        &stdout,
        &secret,
        &["rkt-stage1", "sleep", "sh", "busybox", "escape_probe"],
        &expected,
    );
    rkt.ok(&["stop", "--force", &uuid]);
    pod.wait().unwrap();
}
