//! The pod's root filesystem, built inside its own mount namespace: everything mounted here
//! disappears with the namespace when the pod ends, so no mount can leak onto the host.
//!
//! Every path inside an app's root is resolved beneath that root (see [`crate::inroot`]):
//! mount targets, the directories made for them and the files bound over `/etc`, so that an
//! image's symlinks cannot point any of it at the host.
//!
//! Everything the app can write to is mounted nodev (its root, its directory volumes, /dev
//! itself, /dev/shm): the app keeps CAP_MKNOD, one of appc's default capabilities, and with
//! no device cgroup a node it made for the host's disk would open. The devices it gets are
//! the host's own nodes bound into /dev one by one.

use crate::error::{Error, Result};
use crate::inroot::{self, Root};
use crate::sys;
use layout::plan::{AppPlan, Plan};
use layout::pod_dir::PodDir;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use std::os::fd::{AsFd, OwnedFd};
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
pub fn build_root(pod: &Path, plan: &Plan) -> Result<PathBuf> {
    // Nothing we mount may propagate back to the host.
    sys::mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "")?;
    let shm_size = plan.shm_size.unwrap_or(DEFAULT_SHM_SIZE);
    if let [app] = plan.apps.as_slice() {
        return build_app_root(pod, app, shm_size);
    }
    let stage1 = PodDir::new(pod).stage1_rootfs();
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
        build_app_root(pod, app, shm_size)?;
    }
    Ok(stage1)
}

/// Mounts the app's root filesystem itself, at its place in the pod: its image under an
/// overlay whose upper layer is the pod's, or the copy stage0 made (`--no-overlay`), nodev
/// either way. Returns its path.
pub(crate) fn mount_app_root(dir: &PodDir, plan: &AppPlan) -> Result<PathBuf> {
    // Stage0 made everything up to here: host paths of our own.
    let root_path = dir.app_rootfs(&plan.name);
    mkdir(&root_path)?;
    if plan.overlay {
        let upper = dir.overlay_upper(&plan.name);
        let work = dir.overlay_work(&plan.name);
        mkdir(&upper)?;
        mkdir(&work)?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            plan.image_rootfs,
            upper.display(),
            work.display()
        );
        sys::mount("overlay", &root_path, "overlay", libc::MS_NODEV, &opts)?;
    } else {
        // --no-overlay: stage0 copied the image here; make it a mount point for pivot_root.
        sys::mount(
            &root_path.display().to_string(),
            &root_path,
            "",
            libc::MS_BIND | libc::MS_REC,
            "",
        )?;
        remount_keeping(
            &inroot::open_source(&root_path)?,
            &root_path.display().to_string(),
            libc::MS_NODEV,
        )?;
    }
    Ok(root_path)
}

/// The app and its image, for messages.
pub(crate) fn app_what(plan: &AppPlan) -> String {
    match &plan.image {
        Some(image) => format!("app {:?} (image {image})", plan.name),
        None => format!("app {:?}", plan.name),
    }
}

/// Mounts one app's root (overlay over the image, or the prepared copy) with /proc, /sys, a
/// minimal /dev, the pod's /etc files and its volumes. Returns the root's path.
fn build_app_root(pod: &Path, plan: &AppPlan, shm_size: u64) -> Result<PathBuf> {
    let dir = PodDir::new(pod);
    let root_path = mount_app_root(&dir, plan)?;
    // From here on, what lies below the root came from the image.
    let root = Root::open(&root_path, &app_what(plan))?;
    mount_kernel_fs(&root, plan.privileged)?;
    if plan.mask_paths {
        mask_kernel_paths(&root)?;
    }
    mount_dev(&root, shm_size, plan.privileged)?;
    bind_etc(&root, &dir, &["hostname", "hosts", "resolv.conf"])?;
    bind_volumes(&root, pod, plan)?;
    for t in &plan.tmpfs {
        mount_tmpfs(&root, t)?;
    }
    if plan.readonly_rootfs {
        let top = inroot::open_source(&root_path)?;
        remount_keeping(&top, "the root", libc::MS_RDONLY)?;
    }
    Ok(root_path)
}

/// Binds the pod's files `names` (stage0's hostname, hosts, resolv.conf) over the app's
/// `/etc/NAME`, where stage0 wrote them.
pub(crate) fn bind_etc(root: &Root, dir: &PodDir, names: &[&str]) -> Result<()> {
    for name in names {
        let src = dir.etc().join(name);
        if src.exists() {
            let dest = root.file_for_bind(&format!("/etc/{name}"))?;
            bind(
                root,
                &inroot::open_source(&src)?,
                &dest,
                &format!("/etc/{name}"),
                false,
                false,
                0,
            )?;
        }
    }
    Ok(())
}

/// Binds the app's volumes at their targets in its root.
pub(crate) fn bind_volumes(root: &Root, pod: &Path, plan: &AppPlan) -> Result<()> {
    let pod_dir = Root::open(pod, "the pod directory")?;
    for m in &plan.mounts {
        let (target, ro, recursive) = (&m.target, &m.read_only, &m.recursive);
        let src = mount_source(&pod_dir, pod, &m.source)?;
        let is_dir = rustix::fs::fstat(&src)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        let dest = if is_dir {
            root.mkdir_all(target)?
        } else {
            root.file_for_bind(target)?
        };
        // A directory is nodev (see the top); a file is bound as it is: it may be a device
        // the operator gave the app on purpose (Nomad's `devices`).
        let nodev = if is_dir { libc::MS_NODEV } else { 0 };
        bind(root, &src, &dest, target, *ro, *recursive, nodev)?;
    }
    Ok(())
}

/// A volume's source: relative ones are the pod's own (empty) volumes, looked up beneath the
/// pod directory; absolute ones are the host paths stage0 resolved when it prepared the pod.
/// Neither may have gained a symlink since.
fn mount_source(pod_dir: &Root, pod: &Path, src: &str) -> Result<OwnedFd> {
    if src.starts_with('/') {
        return inroot::open_source(Path::new(src));
    }
    rustix::fs::openat2(
        pod_dir.fd(),
        src,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| Error::os(format!("volume source {}/{src}", pod.display()), e))
}

pub fn enter_root(root: &Path) -> Result<()> {
    sys::pivot_into(root)
}

/// Mounts `fstype` on `target` (a descriptor resolved in the root); `shown` names it in errors.
fn mount_on(
    src: &str,
    target: &OwnedFd,
    shown: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<()> {
    sys::mount(src, &inroot::fd_path(target), fstype, flags, data).map_err(|e| e.context(shown))
}

/// /proc, and /sys read-only (writable for a privileged app).
fn mount_kernel_fs(root: &Root, privileged: bool) -> Result<()> {
    let proc_ = root.mkdir_all("/proc")?;
    mount_on("proc", &proc_, "/proc", "proc", NOSUID_NODEV_NOEXEC, "")?;
    let sysfs = root.mkdir_all("/sys")?;
    let ro = if privileged { 0 } else { libc::MS_RDONLY };
    mount_on(
        "sysfs",
        &sysfs,
        "/sys",
        "sysfs",
        NOSUID_NODEV_NOEXEC | ro,
        "",
    )
}

/// `--tmpfs`: a tmpfs at a path of the app (resolved in its root), nosuid and nodev.
fn mount_tmpfs(root: &Root, t: &layout::plan::Tmpfs) -> Result<()> {
    let dest = root.mkdir_all(&t.target)?;
    let mut data = format!("mode={:o}", t.mode);
    if let Some(size) = t.size {
        data.push_str(&format!(",size={size}"));
    }
    let ro = if t.read_only { libc::MS_RDONLY } else { 0 };
    mount_on(
        "tmpfs",
        &dest,
        &t.target,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV | ro,
        &data,
    )
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

/// Runs after /proc and /sys are mounted, so these paths resolve into the kernel's file
/// systems (they are looked up in the root all the same).
fn mask_kernel_paths(root: &Root) -> Result<()> {
    let found = |p: &str| root.resolve(p).ok();
    for f in MASKED_FILES {
        if let Some(fd) = found(f) {
            mount_on("/dev/null", &fd, f, "", libc::MS_BIND, "")?;
        }
    }
    for d in MASKED_DIRS {
        if let Some(fd) = found(d).filter(is_dir) {
            mount_on(
                "tmpfs",
                &fd,
                d,
                "tmpfs",
                libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
                "size=0",
            )?;
        }
    }
    for r in READ_ONLY {
        if let Some(fd) = found(r) {
            let here = inroot::fd_path(&fd).display().to_string();
            mount_on(&here, &fd, r, "", libc::MS_BIND | libc::MS_REC, "")?;
            // The descriptor still names what lies under the new mount: look it up again.
            let bound = root.resolve(r).map_err(|e| Error::os(r.to_string(), e))?;
            mount_on(
                "",
                &bound,
                r,
                "",
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                "",
            )?;
        }
    }
    Ok(())
}

fn is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// /dev/shm's size when `--shm-size` is not given: Docker's and podman's default.
const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// A fresh nodev tmpfs on /dev with the host's standard devices bound in, /dev/pts and
/// /dev/shm (of `shm_size` bytes). Everything below the tmpfs is made relative to its
/// descriptor: it is ours, not the image's. A privileged app gets the host's /dev instead,
/// with a /dev/pts and /dev/shm of its own.
fn mount_dev(root: &Root, shm_size: u64, privileged: bool) -> Result<()> {
    let dev = root.mkdir_all("/dev")?;
    if privileged {
        mount_on("/dev", &dev, "/dev", "", libc::MS_BIND | libc::MS_REC, "")?;
    } else {
        mount_on(
            "tmpfs",
            &dev,
            "/dev",
            "tmpfs",
            NOSUID_NODEV_NOEXEC,
            "mode=755,size=65536k",
        )?;
    }
    let dev = root.resolve("/dev").map_err(|e| Error::os("/dev", e))?;
    let dev = rustix::fs::openat(
        &dev,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("opening the pod's /dev", e))?;
    if privileged {
        // The host's own pts and shm are mounted there: the pod's go on top.
        let pts = inroot::resolve_in(dev.as_fd(), "pts").map_err(|e| Error::os("/dev/pts", e))?;
        mount_devpts(&pts)?;
        let shm = inroot::resolve_in(dev.as_fd(), "shm").map_err(|e| Error::os("/dev/shm", e))?;
        return mount_shm(&shm, shm_size);
    }
    for (name, mode, major, minor) in DEVICES {
        bind_device(&dev, name, mode, major, minor)?;
    }
    let pts = dev_dir(&dev, "pts", 0o755)?;
    mount_devpts(&pts)?;
    let shm = dev_dir(&dev, "shm", 0o755)?;
    mount_shm(&shm, shm_size)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        rustix::fs::symlinkat(target, &dev, link)
            .map_err(|e| Error::os(format!("creating /dev/{link}"), e))?;
    }
    Ok(())
}

fn mount_devpts(pts: &OwnedFd) -> Result<()> {
    mount_on(
        "devpts",
        pts,
        "/dev/pts",
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )
}

fn mount_shm(shm: &OwnedFd, size: u64) -> Result<()> {
    mount_on(
        "shm",
        shm,
        "/dev/shm",
        "tmpfs",
        NOSUID_NODEV_NOEXEC,
        &format!("mode=1777,size={size}"),
    )
}

/// Binds the host's /dev/NAME (checked to be the character device MAJOR:MINOR) over an
/// empty file of the pod's /dev, so that it opens although the tmpfs is nodev.
fn bind_device(dev: &OwnedFd, name: &str, mode: u32, major: u32, minor: u32) -> Result<()> {
    let host = format!("/dev/{name}");
    let src = inroot::open_source(Path::new(&host))?;
    let st = rustix::fs::fstat(&src).map_err(|e| Error::os(host.as_str(), e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::CharacterDevice
        || rustix::fs::major(st.st_rdev) != major
        || rustix::fs::minor(st.st_rdev) != minor
    {
        return Err(Error::msg(format!(
            "{host} on this host is not the character device {major}:{minor}; apps need it"
        )));
    }
    let file = rustix::fs::openat(
        dev,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(mode),
    )
    .map_err(|e| Error::os(format!("creating /dev/{name}"), e))?;
    mount_on(
        &inroot::fd_path(&src).display().to_string(),
        &file,
        &format!("/dev/{name}"),
        "",
        libc::MS_BIND,
        "",
    )
}

fn dev_dir(dev: &OwnedFd, name: &str, mode: u32) -> Result<OwnedFd> {
    rustix::fs::mkdirat(dev, name, Mode::from_raw_mode(mode))
        .map_err(|e| Error::os(format!("creating /dev/{name}"), e))?;
    inroot::resolve_in(dev.as_fd(), name).map_err(|e| Error::os(format!("/dev/{name}"), e))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::at("creating", p, e))
}

/// Binds `src` over `dest` (both descriptors checked by the caller), at `target` in `root`,
/// then makes it read-only (`ro`) and adds `extra` mount flags (MS_NODEV), keeping the
/// flags it had.
fn bind(
    root: &Root,
    src: &OwnedFd,
    dest: &OwnedFd,
    target: &str,
    ro: bool,
    recursive: bool,
    extra: libc::c_ulong,
) -> Result<()> {
    let s = inroot::fd_path(src).display().to_string();
    let rec = if recursive { libc::MS_REC } else { 0 };
    mount_on(&s, dest, target, "", libc::MS_BIND | rec, "")?;
    let add = extra | if ro { libc::MS_RDONLY } else { 0 };
    if add != 0 {
        // `dest` still names what lies under the new mount: look the target up again.
        let top = root
            .resolve(target)
            .map_err(|e| Error::os(target.to_string(), e))?;
        remount_keeping(&top, target, add)?;
    }
    Ok(())
}

/// Remounts the bind mount at `fd` with `add` (MS_RDONLY, MS_NODEV) on top of the flags it
/// has: a bind remount sets the mount's flags, so any it had and was not given again (a
/// host volume's nosuid, the root's nodev) would be dropped.
fn remount_keeping(fd: &OwnedFd, shown: &str, add: libc::c_ulong) -> Result<()> {
    let st = rustix::fs::fstatvfs(fd).map_err(|e| Error::os(shown.to_string(), e))?;
    let have = st.f_flag.bits() as libc::c_ulong;
    let kept = [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ]
    .iter()
    .filter(|(st, _)| have & *st != 0)
    .fold(0, |acc, (_, ms)| acc | ms);
    mount_on(
        "",
        fd,
        shown,
        "",
        libc::MS_BIND | libc::MS_REMOUNT | kept | add,
        "",
    )
}
