//! Paths inside a pod directory (`<dir>/pods/<state>/<uuid>`), as rkt laid them out, and the
//! markers stage1 leaves there.
//!
//! ```text
//! pod                      the appc pod manifest
//! pod-created              made with the pod (its mtime is the creation time)
//! pid, ppid                the pod init's and the supervisor's PIDs
//! appsinfo/<app>/treeStoreID  the app's image tree in the store
//! volumes/<name>/          the pod's empty volumes
//! netns                    the pod's network namespace (a path), while it has one
//! net-info.json            the pod's networks, as rkt wrote them for `status`
//! gc-marked                made when `gc` moved the pod to garbage (its mtime starts the grace period)
//! mds-registered           the pod is registered with the metadata service
//! overlay/<app>/upper,work the app's overlay layers
//! stage1/prepared          the apps' plan records, written by prepare
//! stage1/ports.json        the --port forwards resolved at prepare time
//! stage1/flavor            `fly` for rkt's fly stage1 (absent: the default one)
//! stage1/private-users     SHIFT:COUNT of the pod's user namespace (--private-users)
//! stage1/plan              the whole plan, written when the pod runs
//! stage1/net/<ifname>.json a network's CNI result, for its DEL at teardown
//! stage1/export-<pid>      `rkt export`'s scratch directory
//! stage1/etc/              hostname, hosts and resolv.conf for the apps
//! stage1/rootfs/rkt/status/<app>[-created|-started|-oom-killed]
//! stage1/rootfs/opt/stage2/<app>/rootfs   the app's root
//! ```

use std::path::{Path, PathBuf};

/// A pod directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDir {
    pub path: PathBuf,
}

impl PodDir {
    pub fn new(path: impl Into<PathBuf>) -> PodDir {
        PodDir { path: path.into() }
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn manifest(&self) -> PathBuf {
        self.at("pod")
    }
    pub fn created(&self) -> PathBuf {
        self.at("pod-created")
    }
    /// The pod init's PID, written by the supervisor once the init exists.
    pub fn pid(&self) -> PathBuf {
        self.at("pid")
    }
    /// The supervisor's PID.
    pub fn ppid(&self) -> PathBuf {
        self.at("ppid")
    }
    /// Per-app records, one directory per app.
    pub fn appsinfo_dir(&self) -> PathBuf {
        self.at("appsinfo")
    }
    pub fn appsinfo(&self, app: &str) -> PathBuf {
        self.appsinfo_dir().join(app)
    }
    /// The ID of the image tree (in the store) that the app's root comes from.
    pub fn tree_store_id(&self, app: &str) -> PathBuf {
        self.appsinfo(app).join("treeStoreID")
    }
    /// The pod's empty volumes, one directory each.
    pub fn volumes_dir(&self) -> PathBuf {
        self.at("volumes")
    }
    /// The path of the pod's network namespace, while it has one.
    pub fn netns(&self) -> PathBuf {
        self.at("netns")
    }
    /// The pod's networks as `rkt status` shows them.
    pub fn net_info(&self) -> PathBuf {
        self.at("net-info.json")
    }
    /// The CNI results of the pod's networks, one file per interface.
    pub fn net_state(&self) -> PathBuf {
        self.at("stage1/net")
    }
    /// Made when `gc` marked the pod as garbage; its mtime starts the grace period.
    pub fn gc_marked(&self) -> PathBuf {
        self.at("gc-marked")
    }
    /// Present while the pod is registered with the metadata service.
    pub fn mds_registered(&self) -> PathBuf {
        self.at("mds-registered")
    }
    /// A scratch directory of `rkt export` (process `pid`).
    pub fn export_scratch(&self, pid: u32) -> PathBuf {
        self.at("stage1").join(format!("export-{pid}"))
    }
    /// An empty volume's directory; [`PodDir::volume_rel`] is the same, relative to the pod.
    pub fn volume(&self, name: &str) -> PathBuf {
        self.path.join(volume_rel(name))
    }
    pub fn overlay_upper(&self, app: &str) -> PathBuf {
        self.at("overlay").join(app).join("upper")
    }
    pub fn overlay_work(&self, app: &str) -> PathBuf {
        self.at("overlay").join(app).join("work")
    }
    /// The apps' plan records, as `rkt prepare` resolved them.
    pub fn prepared(&self) -> PathBuf {
        self.at("stage1/prepared")
    }
    /// The `--port` forwards resolved at prepare time.
    pub fn ports(&self) -> PathBuf {
        self.at("stage1/ports.json")
    }
    /// The stage1 flavour the pod was prepared for (`fly`); absent: the default one.
    pub fn flavor(&self) -> PathBuf {
        self.at("stage1/flavor")
    }
    /// `--private-users`: the pod's user namespace range, `SHIFT:COUNT` (absent: none).
    pub fn private_users(&self) -> PathBuf {
        self.at("stage1/private-users")
    }
    /// The plan stage1 runs.
    pub fn plan(&self) -> PathBuf {
        self.at("stage1/plan")
    }
    /// hostname, hosts and resolv.conf, bound over the apps' own.
    pub fn etc(&self) -> PathBuf {
        self.at("stage1/etc")
    }
    /// The root of a pod of several apps (their roots lie below it).
    pub fn stage1_rootfs(&self) -> PathBuf {
        self.at("stage1/rootfs")
    }
    /// Exit statuses and markers, one set per app.
    pub fn status_dir(&self) -> PathBuf {
        self.at("stage1/rootfs/rkt/status")
    }
    pub fn app_status(&self, app: &str) -> PathBuf {
        self.status_dir().join(app)
    }
    pub fn app_marker(&self, app: &str, marker: Marker) -> PathBuf {
        self.status_dir().join(marker.file_name(app))
    }
    /// The app's root filesystem on the host.
    pub fn app_rootfs(&self, app: &str) -> PathBuf {
        self.stage1_rootfs()
            .join(app_root_in_pod(app).trim_start_matches('/'))
    }
    /// Where the apps' roots are (`opt/stage2` of the pod's root).
    pub fn stage2_dir(&self) -> PathBuf {
        self.stage1_rootfs().join("opt/stage2")
    }

    /// The apps that have `marker` (for a reader that does not know the apps' names).
    pub fn apps_with(&self, marker: Marker) -> Vec<String> {
        let suffix = marker.file_name("");
        let Ok(rd) = std::fs::read_dir(self.status_dir()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(&suffix).map(str::to_string)
            })
            .collect()
    }
}

/// Where an app's root is, seen from a pod's root when the pod has several apps.
pub fn app_root_in_pod(app: &str) -> String {
    format!("/opt/stage2/{app}/rootfs")
}

/// An empty volume's directory relative to the pod directory (which moves between states).
pub fn volume_rel(name: &str) -> String {
    format!("volumes/{name}")
}

/// Files stage1 leaves beside an app's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Made just before the app's process is started.
    Created,
    /// Made once the app's process runs (in its root, with its identity).
    Started,
    /// The kernel's OOM killer killed the app.
    OomKilled,
}

impl Marker {
    pub fn file_name(self, app: &str) -> String {
        let suffix = match self {
            Marker::Created => "created",
            Marker::Started => "started",
            Marker::OomKilled => "oom-killed",
        };
        format!("{app}-{suffix}")
    }
}

/// Parses the integer in a PID file.
pub fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_rkts() {
        let p = PodDir::new("/d/pods/run/u");
        assert_eq!(p.plan(), Path::new("/d/pods/run/u/stage1/plan"));
        assert_eq!(
            p.app_marker("web", Marker::Started),
            Path::new("/d/pods/run/u/stage1/rootfs/rkt/status/web-started")
        );
        assert_eq!(
            p.app_rootfs("web"),
            Path::new("/d/pods/run/u/stage1/rootfs/opt/stage2/web/rootfs")
        );
        assert_eq!(p.volume("data"), Path::new("/d/pods/run/u/volumes/data"));
    }
}
