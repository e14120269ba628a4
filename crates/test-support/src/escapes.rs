//! Escape attempts from inside a pod, shared by the runtime's tests (`rkt run`, `rkt enter`)
//! and the driver's (a task in a real Nomad agent): what each attempt is, and how the
//! default security settings must refuse it.
//!
//! The attempts are made by `escape_probe` (tests/harness/escape_probe.c, built static by
//! fixtures.sh into the `probe` image): it runs each attempt in a forked child and prints one
//! line, `PROBE ok|errno=NAME|signal=N`. Signal 31 is SIGSYS: the default seccomp filter
//! killing a call that is not on its allow-list. The script is given a volume's path (a
//! directory of the host's disk, bound into the pod) to make a device node in.

use std::collections::BTreeMap;

/// The device numbers of the host's root filesystem (what a pod would read the host through).
fn host_root_dev() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    (libc::major(dev), libc::minor(dev))
}

/// A file only the host has, and what it says; removed when dropped.
pub struct HostSecret {
    pub path: std::path::PathBuf,
    pub text: String,
}

impl Default for HostSecret {
    fn default() -> HostSecret {
        HostSecret::new()
    }
}

impl HostSecret {
    pub fn new() -> HostSecret {
        let text = format!(
            "host-secret-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let path = std::path::PathBuf::from(format!("/run/{text}"));
        std::fs::write(&path, &text).unwrap();
        HostSecret { path, text }
    }
}

impl Drop for HostSecret {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The attempts, as `LABEL COMMAND`: each line of the shell script prints `LABEL RESULT`.
fn attempts(secret: &HostSecret, host_pid: u32, volume: &str) -> Vec<(&'static str, String)> {
    let (major, minor) = host_root_dev();
    let secret = secret.path.display();
    vec![
        ("proc-sys", "write /proc/sys/kernel/hostname escaped".into()),
        (
            "core_pattern",
            "write /proc/sys/kernel/core_pattern /tmp/core".into(),
        ),
        (
            "sys",
            "write /sys/kernel/mm/transparent_hugepage/enabled never".into(),
        ),
        ("sys-cgroup", "write /sys/fs/cgroup/pids/tasks 1".into()),
        ("mount", "mount".into()),
        ("unshare-user", "unshare user".into()),
        ("unshare-mount", "unshare mount".into()),
        ("clone-user", "clone user".into()),
        ("clone-mount", "clone mount".into()),
        ("clone3-user", "clone3 user".into()),
        ("thread", "thread".into()),
        ("keyctl", "keyctl".into()),
        ("add_key", "add_key".into()),
        ("finit_module", "finit_module /bin/escape_probe".into()),
        ("init_module", "init_module".into()),
        ("ptrace-init", "ptrace 1".into()),
        ("ptrace-host", format!("ptrace {host_pid}")),
        ("mknod-disk", format!("mknod /tmp/disk b {major} {minor}")),
        ("mknod-kmsg-root", "mknod /tmp/kmsg c 1 11 w".into()),
        ("mknod-kmsg-dev", "mknod /dev/kmsg c 1 11 w".into()),
        ("mknod-kmsg-shm", "mknod /dev/shm/kmsg c 1 11 w".into()),
        ("mknod-kmsg-volume", format!("mknod {volume}/kmsg c 1 11 w")),
        ("capset", "capset".into()),
        ("ambient", "ambient".into()),
        ("open_by_handle_at", "open_by_handle_at /".into()),
        ("proc1-root", format!("open /proc/1/root{secret}")),
        ("proc1-fd", "open /proc/1/fd/0".into()),
        ("host-proc", format!("open /proc/{host_pid}/root{secret}")),
    ]
}

/// What the default settings do to each attempt, and why that is the refusal we want.
pub const EXPECTED: [(&str, &str); 28] = [
    // /proc/sys and /sys are mounted read-only.
    ("proc-sys", "errno=EROFS"),
    ("core_pattern", "errno=EROFS"),
    ("sys", "errno=EROFS"),
    ("sys-cgroup", "errno=ENOENT"),
    // Not on the seccomp allow-list: the caller is killed, as in rkt.
    ("mount", "signal=31"),
    ("unshare-user", "signal=31"),
    ("unshare-mount", "signal=31"),
    // The same through clone: namespace flags are refused like unshare; clone3, whose
    // flags a filter cannot read, fails with ENOSYS, so that threads fall back to clone...
    ("clone-user", "signal=31"),
    ("clone-mount", "signal=31"),
    ("clone3-user", "errno=ENOSYS"),
    // ... and still start.
    ("thread", "ok"),
    ("keyctl", "signal=31"),
    ("add_key", "signal=31"),
    ("finit_module", "signal=31"),
    ("init_module", "signal=31"),
    ("ptrace-init", "signal=31"),
    ("ptrace-host", "signal=31"),
    // CAP_MKNOD is one of appc's defaults, but the pod's device cgroup lets nothing be made
    // (the host's root disk; the host's kernel log, /dev/kmsg, which an app could write into
    // before); and were a node made, every file system an app can write to is mounted nodev.
    ("mknod-disk", "errno=EPERM"),
    ("mknod-kmsg-root", "errno=EPERM"),
    ("mknod-kmsg-dev", "errno=EPERM"),
    ("mknod-kmsg-shm", "errno=EPERM"),
    ("mknod-kmsg-volume", "errno=EPERM"),
    // CAP_SYS_ADMIN is outside the bounding set.
    ("capset", "errno=EPERM"),
    ("ambient", "errno=EPERM"),
    ("open_by_handle_at", "signal=31"),
    // The pod's init (the supervisor) is more privileged than the app: its root and
    // descriptors are out of reach (ptrace access mode checks).
    ("proc1-root", "errno=EACCES"),
    ("proc1-fd", "errno=EACCES"),
    // The host's processes are not in the pod's PID namespace.
    ("host-proc", "errno=ENOENT"),
];

/// Runs every attempt through `sh -c` and returns LABEL -> RESULT.
pub fn script(secret: &HostSecret, volume: &str) -> String {
    let mut s = String::new();
    for (label, cmd) in attempts(secret, std::process::id(), volume) {
        s.push_str(&format!(
            "echo \"{label} $(/bin/escape_probe {cmd} | /bin/busybox cut -d' ' -f2-)\"; "
        ));
    }
    // The processes the app can see, by name.
    s.push_str(
        "for p in /proc/[0-9]*; do echo \"proc $(/bin/busybox cat $p/comm)\"; done; echo end",
    );
    s
}

fn results(stdout: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut map = BTreeMap::new();
    let mut procs = Vec::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("proc ") {
            procs.push(name.to_string());
        } else if let Some((label, result)) = line.split_once(' ') {
            map.insert(label.to_string(), result.to_string());
        }
    }
    (map, procs)
}

/// [`EXPECTED`] for a pod run with `--private-users`: refused all the same, some earlier.
/// No device node can be made at all (EPERM): the app's CAP_MKNOD is its user namespace's,
/// and the kernel makes device nodes only for the host's; in /dev, a directory of the
/// host's root, not even the name (EACCES). The kernel's tunables belong to the host's root,
/// a stranger to the pod's, so writing them fails before the read-only mount is reached
/// (EACCES).
pub fn expected_private_users() -> Vec<(&'static str, &'static str)> {
    EXPECTED
        .iter()
        .map(|(label, end)| match *label {
            l @ ("mknod-kmsg-dev" | "proc-sys" | "core_pattern") => (l, "errno=EACCES"),
            l if l.starts_with("mknod-") => (l, "errno=EPERM"),
            l => (l, *end),
        })
        .collect()
}

pub fn assert_refused(how: &str, stdout: &str, secret: &HostSecret, allowed_procs: &[&str]) {
    assert_refused_as(how, stdout, secret, allowed_procs, &EXPECTED)
}

/// [`assert_refused`] against another table of expected ends.
pub fn assert_refused_as(
    how: &str,
    stdout: &str,
    secret: &HostSecret,
    allowed_procs: &[&str],
    expected: &[(&str, &str)],
) {
    assert!(
        stdout.ends_with("end\n"),
        "{how}: the script did not finish:\n{stdout}"
    );
    assert!(
        !stdout.contains(&secret.text),
        "{how}: a host file was read from inside the pod:\n{stdout}"
    );
    let (got, procs) = results(stdout);
    let mut wrong = Vec::new();
    for (label, want) in expected.iter().copied() {
        let have = got.get(label).map(String::as_str).unwrap_or("(missing)");
        if have != want {
            wrong.push(format!("{label}: {have}, want {want}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{how}: attempts that did not end as expected:\n{}\n\nall:\n{stdout}",
        wrong.join("\n")
    );
    let strangers: Vec<&String> = procs
        .iter()
        .filter(|p| !allowed_procs.contains(&p.as_str()))
        .collect();
    assert!(
        strangers.is_empty(),
        "{how}: processes that are not the pod's are visible: {strangers:?}"
    );
}
