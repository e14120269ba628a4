//! The pod's root filesystem, built inside its own mount namespace: everything mounted here
//! disappears with the namespace when the pod ends, so no mount can leak onto the host.

use crate::plan::{AppPlan, Plan};
use crate::sys;
use std::path::{Path, PathBuf};

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Character devices every app gets (name, mode, major, minor), as OCI runtimes provide.
const DEVICES: [(&str, u32, u32, u32); 6] = [
    ("null", 0o666, 1, 3),
    ("zero", 0o666, 1, 5),
    ("full", 0o666, 1, 7),
    ("random", 0o666, 1, 8),
    ("urandom", 0o666, 1, 9),
    ("tty", 0o666, 5, 0),
];

/// Builds the pod's root in its own mount namespace. A single app's root is the pod's root
/// (pivot_root goes straight into it); with several apps, the pod's root is
/// `stage1/rootfs` and each app's root lies below it at `opt/stage2/<app>/rootfs`, where the
/// app is chrooted. Returns the path to pivot into.
pub fn build_root(pod: &Path, plan: &Plan) -> Result<PathBuf, String> {
    // Nothing we mount may propagate back to the host.
    sys::mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "")?;
    if let [app] = plan.apps.as_slice() {
        return build_app_root(pod, app);
    }
    let stage1 = pod.join("stage1/rootfs");
    mkdir(&stage1)?;
    // A mount point of its own, for pivot_root; first, so that it does not hide the apps'.
    sys::mount(
        &stage1.display().to_string(),
        &stage1,
        "",
        libc::MS_BIND | libc::MS_REC,
        "",
    )?;
    for app in &plan.apps {
        build_app_root(pod, app)?;
    }
    Ok(stage1)
}

/// Where an app's root is, seen from the pod's root when the pod has several apps.
pub fn app_root_in_pod(app: &AppPlan) -> String {
    format!("/opt/stage2/{}/rootfs", app.name)
}

/// Mounts one app's root (overlay over the image, or the prepared copy) with /proc, /sys, a
/// minimal /dev, the pod's /etc files and its volumes. Returns the root's path.
fn build_app_root(pod: &Path, plan: &AppPlan) -> Result<PathBuf, String> {
    let root = pod
        .join("stage1/rootfs/opt/stage2")
        .join(&plan.name)
        .join("rootfs");
    mkdir(&root)?;
    if plan.overlay {
        let upper = pod.join("overlay").join(&plan.name).join("upper");
        let work = pod.join("overlay").join(&plan.name).join("work");
        mkdir(&upper)?;
        mkdir(&work)?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            plan.image_rootfs,
            upper.display(),
            work.display()
        );
        sys::mount("overlay", &root, "overlay", 0, &opts)?;
    } else {
        // --no-overlay: stage0 copied the image here; make it a mount point for pivot_root.
        sys::mount(
            &root.display().to_string(),
            &root,
            "",
            libc::MS_BIND | libc::MS_REC,
            "",
        )?;
    }
    mount_kernel_fs(&root)?;
    if plan.mask_paths {
        mask_kernel_paths(&root)?;
    }
    mount_dev(&root)?;
    for name in ["hostname", "hosts", "resolv.conf"] {
        let src = pod.join("stage1/etc").join(name);
        if src.exists() {
            bind_file(&src, &root.join("etc").join(name), false)?;
        }
    }
    for (src, target, ro, recursive) in &plan.mounts {
        let dest = beneath(&root, target);
        // Relative sources are the pod's own (empty) volumes.
        let src = pod.join(src);
        if src.is_dir() {
            mkdir(&dest)?;
            bind(&src, &dest, *ro, *recursive)?;
        } else {
            bind_file(&src, &dest, *ro)?;
        }
    }
    if plan.readonly_rootfs {
        sys::mount(
            "",
            &root,
            "",
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            "",
        )?;
    }
    Ok(root)
}

pub fn enter_root(root: &Path) -> Result<(), String> {
    sys::pivot_into(root)
}

fn mount_kernel_fs(root: &Path) -> Result<(), String> {
    let proc_ = root.join("proc");
    mkdir(&proc_)?;
    sys::mount("proc", &proc_, "proc", NOSUID_NODEV_NOEXEC, "")?;
    let sysfs = root.join("sys");
    mkdir(&sysfs)?;
    sys::mount(
        "sysfs",
        &sysfs,
        "sysfs",
        NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
        "",
    )?;
    Ok(())
}

/// Files that leak host information or control the host: hidden behind /dev/null.
const MASKED_FILES: [&str; 6] = [
    "proc/kcore",
    "proc/keys",
    "proc/timer_list",
    "proc/sched_debug",
    "proc/latency_stats",
    "proc/timer_stats",
];
/// Directories hidden behind an empty read-only tmpfs.
const MASKED_DIRS: [&str; 3] = ["proc/acpi", "proc/scsi", "sys/firmware"];
/// Kernel tunables that stay readable but not writable.
const READ_ONLY: [&str; 5] = [
    "proc/sys",
    "proc/sysrq-trigger",
    "proc/bus",
    "proc/fs",
    "proc/irq",
];

fn mask_kernel_paths(root: &Path) -> Result<(), String> {
    for f in MASKED_FILES {
        let p = root.join(f);
        if p.exists() {
            sys::mount("/dev/null", &p, "", libc::MS_BIND, "")?;
        }
    }
    for d in MASKED_DIRS {
        let p = root.join(d);
        if p.is_dir() {
            sys::mount(
                "tmpfs",
                &p,
                "tmpfs",
                libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
                "size=0",
            )?;
        }
    }
    for r in READ_ONLY {
        let p = root.join(r);
        if p.exists() {
            let s = p.display().to_string();
            sys::mount(&s, &p, "", libc::MS_BIND | libc::MS_REC, "")?;
            sys::mount(
                "",
                &p,
                "",
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                "",
            )?;
        }
    }
    Ok(())
}

fn mount_dev(root: &Path) -> Result<(), String> {
    let dev = root.join("dev");
    mkdir(&dev)?;
    sys::mount(
        "tmpfs",
        &dev,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "mode=755,size=65536k",
    )?;
    for (name, mode, major, minor) in DEVICES {
        sys::mknod(&dev.join(name), mode, major, minor)?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    sys::mount(
        "devpts",
        &pts,
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    sys::mount(
        "shm",
        &shm,
        "tmpfs",
        NOSUID_NODEV_NOEXEC,
        "mode=1777,size=65536k",
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(|e| format!("creating /dev/{link}: {e}"))?;
    }
    Ok(())
}

/// `target` (an absolute path inside the app) under `root`, without `..` escapes.
fn beneath(root: &Path, target: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in target
        .split('/')
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
    {
        p.push(c);
    }
    p
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()))
}

fn bind(src: &Path, dest: &Path, ro: bool, recursive: bool) -> Result<(), String> {
    let s = src.display().to_string();
    let rec = if recursive { libc::MS_REC } else { 0 };
    sys::mount(&s, dest, "", libc::MS_BIND | rec, "")?;
    if ro {
        sys::mount(
            "",
            dest,
            "",
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            "",
        )?;
    }
    Ok(())
}

/// Binds a file over `dest`, replacing a symlink there first: an image's symlink must not
/// redirect the mount elsewhere.
fn bind_file(src: &Path, dest: &Path, ro: bool) -> Result<(), String> {
    if let Some(parent) = dest.parent() {
        mkdir(parent)?;
    }
    if dest
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        std::fs::remove_file(dest).map_err(|e| format!("replacing {}: {e}", dest.display()))?;
    }
    if !dest.exists() {
        std::fs::write(dest, b"").map_err(|e| format!("creating {}: {e}", dest.display()))?;
    }
    bind(src, dest, ro, false)
}
