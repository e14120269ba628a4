//! The on-disk contract shared by every part of rkt.
//!
//! stage0 (`rkt prepare`, `rkt run`) writes a pod directory and a plan; stage1 (the pod's
//! supervisor) reads the plan, makes the pod's cgroups and leaves markers and exit statuses
//! in the pod directory; `rkt status`, `rm`, `gc` and the Nomad driver read them back. Each of
//! those names lives here once:
//!
//! - [`plan`]: the plan type and its encoding (NUL-separated `key=value` records);
//! - [`pod_dir`]: paths inside a pod directory, and the marker files' names;
//! - [`cgroup`]: where a pod's cgroups are, which hierarchy the host uses, and their removal.
//!
//! No dependencies: the supervisor links this crate, and every byte of it stays resident for
//! each running pod.

#![forbid(unsafe_code)]

pub mod cgroup;
pub mod plan;
pub mod pod_dir;

/// rkt's data directory when `--dir` is not given: pods and the image store.
pub const DEFAULT_DIR: &str = "/var/lib/rkt";
/// rkt's local configuration when `--local-config` is not given (an operator's own).
pub const DEFAULT_LOCAL_CONFIG: &str = "/etc/rkt";
/// The metadata service's registration socket (`rkt metadata-service`, `--mds-register`).
pub const MDS_SOCKET: &str = "/run/rkt/metadata-svc.sock";
/// The metadata service's port for the apps, when `--listen-port` is not given.
pub const MDS_PORT: u16 = 18112;
/// Overrides [`MDS_SOCKET`] for the service and its registrants alike (not an rkt variable:
/// lets tests, and several services on one host, use sockets of their own).
pub const MDS_SOCKET_ENV: &str = "RKT_METADATA_SOCKET";

/// The metadata service's registration socket: [`MDS_SOCKET_ENV`] or [`MDS_SOCKET`].
pub fn mds_socket() -> std::path::PathBuf {
    std::env::var_os(MDS_SOCKET_ENV)
        .map(Into::into)
        .unwrap_or_else(|| MDS_SOCKET.into())
}

/// rkt's system configuration when `--system-config` is not given (what packages install).
pub const DEFAULT_SYSTEM_CONFIG: &str = "/usr/lib/rkt";
