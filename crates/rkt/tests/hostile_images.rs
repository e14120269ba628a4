//! Images whose symlinks point at the host: everything stage1 creates, mounts or writes for a
//! pod (volume targets, `--mount` targets, /etc files, /proc, /sys, /dev) must land inside the
//! pod's root or be refused, and the host must be left exactly as it was.
//!
//! Also images whose layers carry what a store must not let out: device nodes, and a
//! directory that a later layer turns into a symlink to the host before a third writes
//! through it.
//!
//! The fixtures (`tests/harness/fixtures.sh`, images `hostile` and `hostile-etc`) point at
//! the fixed host directory [`HOST`]; each test fills it with known contents first and
//! compares it, entry by entry, afterwards.

mod common;

use common::{Registry, Rkt};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The host directory the hostile images' symlinks name.
const HOST: &str = "/run/rkt-hostile-host";

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let reg = Registry::with_fixtures("plain");
        for tag in [
            "hostile-dev",
            "hostile-swap",
            "hostile-whiteout",
            "hostile-hardlink",
            "probe",
        ] {
            reg.push(tag, &format!("{tag}:latest"));
        }
        reg
    })
}

/// [`HOST`] with known contents, for one test at a time; removed when dropped.
struct HostDir {
    _serial: MutexGuard<'static, ()>,
    before: BTreeMap<String, String>,
}

impl HostDir {
    fn new() -> HostDir {
        static SERIAL: Mutex<()> = Mutex::new(());
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let _ = std::fs::remove_dir_all(HOST);
        std::fs::create_dir_all(format!("{HOST}/etc")).unwrap();
        for (f, text) in [
            ("hosts", "127.0.0.1 the-host's-hosts\n"),
            ("hostname", "the-host\n"),
            ("resolv.conf", "nameserver 192.0.2.1\n"),
            ("etc/passwd", "root:x:0:0:host:/root:/bin/sh\n"),
        ] {
            std::fs::write(Path::new(HOST).join(f), text).unwrap();
        }
        HostDir {
            _serial: serial,
            before: snapshot(),
        }
    }

    /// Nothing was created, removed or changed below [`HOST`].
    fn assert_untouched(&self) {
        assert_eq!(snapshot(), self.before, "the pod changed the host's {HOST}");
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(HOST);
    }
}

/// Every entry below [`HOST`]: its kind, mode and (for files) contents.
fn snapshot() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.is_dir() {
                walk(&p, out);
                "dir".to_string()
            } else if md.is_file() {
                std::fs::read_to_string(&p).unwrap_or_default()
            } else {
                format!("{:?}", md.file_type())
            };
            out.insert(
                p.display().to_string(),
                format!("{:o} {what}", md.permissions().mode()),
            );
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new(HOST), &mut out);
    out
}

/// No mount of this store, and none below [`HOST`], is left in the host's mount table.
fn assert_no_mounts(rkt: &Rkt) {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = rkt.dir.path().display().to_string();
    let left: Vec<&str> = table
        .lines()
        .filter(|l| l.contains(&dir) || l.contains(HOST))
        .collect();
    assert!(left.is_empty(), "mounts left behind:\n{}", left.join("\n"));
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The pod writes through every symlinked path it was given; each write lands in a volume,
/// and /etc's files are the pod's own.
const WRITE_EVERYWHERE: &str = "echo v > /evil/vol/f && echo w > /rel/vol2/g && \
     echo m > /deep/a/b/c/h && cat /etc/hostname /etc/hosts && \
     grep -c . /proc/self/status >/dev/null && test -c /dev/null && echo done";

#[test]
fn volume_and_mount_targets_below_symlinks_stay_in_the_pod() {
    if !common::require_root() {
        return;
    }
    for overlay in [&[][..], &["--no-overlay"][..]] {
        let host = HostDir::new();
        let rkt = Rkt::new();
        let vol = tempfile::tempdir().unwrap();
        let volume = format!("--volume=m,kind=host,source={}", vol.path().display());
        let image = registry().image("hostile:latest");
        let mut args = vec!["run", "--net=none", "--hostname=hostile-pod", &volume];
        args.extend_from_slice(overlay);
        args.extend_from_slice(&[
            &image,
            "--mount=volume=m,target=/deep/a/b/c",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            WRITE_EVERYWHERE,
        ]);
        let o = rkt.run(&args);
        let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "{overlay:?}: {stdout}\n{stderr}");
        assert!(stdout.contains("hostile-pod\n"), "{stdout}");
        assert!(
            !stdout.contains("the-host"),
            "the host's /etc leaked in: {stdout}"
        );
        assert!(stdout.ends_with("done\n"), "{stdout}");
        host.assert_untouched();
        // The bind target below /deep/a (-> the host dir) was the pod's, and it got the mount.
        assert_eq!(
            std::fs::read_to_string(vol.path().join("h")).unwrap(),
            "m\n"
        );
        // The image's own volumes are the pod's empty volumes, below the pod directory.
        let found = find_files(rkt.dir.path(), &["f", "g"]);
        assert_eq!(found.len(), 2, "{overlay:?}: volume files {found:?}");
        assert!(found.iter().all(|p| p.contains("/volumes/")), "{found:?}");
        assert_no_mounts(&rkt);
        rkt.ok(&["gc", "--grace-period=0s"]);
    }
}

#[test]
fn etc_proc_sys_and_dev_as_symlinks_stay_in_the_pod() {
    if !common::require_root() {
        return;
    }
    let host = HostDir::new();
    let rkt = Rkt::new();
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--hostname=etc-pod",
        "--dns=192.0.2.53",
        &registry().image("hostile-etc:latest"),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "cat /etc/hostname /etc/resolv.conf && test -c /dev/null && test -d /dev/pts && \
         test -r /proc/self/status && test -d /sys/kernel && echo x > /data/y && echo done",
    ]);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("etc-pod\n"), "{stdout}");
    assert!(stdout.contains("nameserver 192.0.2.53"), "{stdout}");
    assert!(stdout.ends_with("done\n"), "{stdout}");
    host.assert_untouched();
    assert_no_mounts(&rkt);
}

#[test]
fn a_symlink_loop_in_a_mount_target_is_refused_naming_image_and_path() {
    if !common::require_root() {
        return;
    }
    let host = HostDir::new();
    let rkt = Rkt::new();
    let image = registry().image("hostile:latest");
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--volume=m,kind=empty",
        &image,
        "--mount=volume=m,target=/loop/x",
        "--exec",
        "/bin/true",
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(254), "{stderr}");
    for want in ["symlink loop", "\"/loop/x\"", &image] {
        assert!(stderr.contains(want), "no {want:?} in: {stderr}");
    }
    host.assert_untouched();
    assert_no_mounts(&rkt);
}

#[test]
fn a_volume_source_swapped_for_a_symlink_after_prepare_is_refused() {
    if !common::require_root() {
        return;
    }
    let host = HostDir::new();
    let rkt = Rkt::new();
    let parent = tempfile::tempdir().unwrap();
    let src = parent.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let uuid = rkt.ok(&[
        "prepare",
        "--quiet",
        &format!("--volume=m,kind=host,source={}", src.display()),
        &registry().image("hostile:latest"),
        "--mount=volume=m,target=/mnt",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo pwned > /mnt/p",
    ]);
    let uuid = uuid.trim();
    // Whoever owns the directory swaps the source for a symlink to the host's files.
    std::fs::rename(&src, parent.path().join("old")).unwrap();
    std::os::unix::fs::symlink(HOST, &src).unwrap();
    let o = rkt.run(&["run-prepared", "--net=none", uuid]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(254), "{stderr}");
    assert!(stderr.contains("symlink"), "{stderr}");
    assert!(stderr.contains(&src.display().to_string()), "{stderr}");
    host.assert_untouched();
    assert!(!parent.path().join("old/p").exists());
    assert_no_mounts(&rkt);
}

/// A layer that replaces a directory with a symlink to the host, then one that writes below
/// it: refused at the third layer, with nothing written to the host, no half image, and the
/// store as good as before.
#[test]
fn a_directory_swapped_for_a_symlink_between_layers_is_refused() {
    if !common::require_root() {
        return;
    }
    let host = HostDir::new();
    let rkt = Rkt::new();
    let image = registry().image("hostile-swap:latest");
    let err = rkt.fails(&["fetch", &image]);
    for want in [&image, "lib/d/pwned", "symlink"] {
        assert!(err.contains(want), "no {want:?} in: {err}");
    }
    host.assert_untouched();
    assert!(!Path::new(HOST).join("pwned").exists());
    assert!(
        rkt.image_dirs().is_empty(),
        "a half image: {:?}",
        rkt.image_dirs()
    );
    assert!(rkt.tmp_entries().is_empty(), "{:?}", rkt.tmp_entries());
    let o = rkt.run(&[
        "run",
        "--net=none",
        &registry().image("busybox:latest"),
        "--exec",
        "/bin/cat",
        "--",
        "/www/index.html",
    ]);
    assert_eq!(text(&o.stdout), "hello from rkt\n", "{}", text(&o.stderr));
}

/// Whiteouts below a symlink to the host (`link/.wh.hosts`, an opaque `link/.wh..wh..opq`)
/// hide nothing and, above all, delete nothing on the host: the image is fetched and runs,
/// and the host directory keeps every file.
#[test]
fn whiteouts_through_a_symlink_delete_nothing_on_the_host() {
    if !common::require_root() {
        return;
    }
    let host = HostDir::new();
    let rkt = Rkt::new();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &registry().image("hostile-whiteout:latest"),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "/bin/busybox readlink /link",
    ]);
    assert_eq!(text(&o.stdout), format!("{HOST}\n"), "{}", text(&o.stderr));
    host.assert_untouched();
}

/// A hardlink whose target passes through a symlink to the host (`h => link/hosts`) is
/// refused: the link would make the host's file part of the image.
#[test]
fn a_hardlink_through_a_symlink_is_refused() {
    if !common::require_root() {
        return;
    }
    let host = HostDir::new();
    let rkt = Rkt::new();
    let image = registry().image("hostile-hardlink:latest");
    let err = rkt.fails(&["fetch", &image]);
    for want in [&image, "\"h\"", "symlink"] {
        assert!(err.contains(want), "no {want:?} in: {err}");
    }
    host.assert_untouched();
    assert!(rkt.image_dirs().is_empty(), "{:?}", rkt.image_dirs());
    assert!(rkt.tmp_entries().is_empty(), "{:?}", rkt.tmp_entries());
    // The host's file did not gain a link from the store.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(format!("{HOST}/hosts")).unwrap().nlink(),
        1
    );
    rkt.ok(&["fetch", &registry().image("busybox:latest")]);
}

/// Device nodes in an image are kept (images may carry them) but confined: inside the pod
/// every file system the app can reach is nodev, so they cannot be opened, even as root
/// with CAP_MKNOD; in the store they lie below a directory only root may enter.
#[test]
fn device_nodes_in_an_image_cannot_be_opened() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = registry().image("hostile-dev:latest");
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "for d in /disk /kmem /mem /kmsg /null; do /bin/busybox stat -c '%n %t:%T %a' $d; \
           /bin/busybox head -c1 $d 2>&1 >/dev/null || echo \"$d refused\"; done; \
         (echo x >/kmsg) 2>&1; true",
    ]);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    // EACCES ("Permission denied") is nodev's answer; without it, /null would open, /kmsg
    // would take a line into the host's kernel log, and the others would fail for want of
    // capabilities (EPERM) or a disk at 8:0 (ENXIO).
    assert_eq!(
        stdout,
        "/disk 8:0 666\nhead: /disk: Permission denied\n/disk refused\n\
         /kmem 1:2 666\nhead: /kmem: Permission denied\n/kmem refused\n\
         /mem 1:1 666\nhead: /mem: Permission denied\n/mem refused\n\
         /kmsg 1:b 666\nhead: /kmsg: Permission denied\n/kmsg refused\n\
         /null 1:3 666\nhead: /null: Permission denied\n/null refused\n\
         /bin/sh: can't create /kmsg: Permission denied\n"
    );
    // On the host: the rendered nodes exist, below a directory closed to other users.
    let id = rkt.ok(&["image", "list", "--no-legend", "--fields=id"]);
    let rootfs = rkt.rootfs(id.lines().next().unwrap());
    assert!(rootfs.join("disk").exists());
    let closed = rootfs.ancestors().any(|d| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 == 0)
    });
    assert!(closed, "{} is reachable by every user", rootfs.display());
    // A local user (nobody) cannot open the image's 0666 node through the store.
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "head",
            "-c1",
        ])
        .arg(rootfs.join("null"))
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o.stderr).contains("Permission denied"),
        "{:?} {}",
        o.status,
        text(&o.stderr)
    );
}

/// Paths of the regular files below `dir` with one of `names`.
fn find_files(dir: &Path, names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                // The image store holds the rendered image (symlinks only, never our files).
                stack.push(p);
            } else if md.is_file() && names.iter().any(|n| e.file_name() == **n) {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
