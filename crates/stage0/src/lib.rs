//! stage0: what `rkt run`, `prepare`, `run-prepared`, `stop`, `rm`, `gc` and `enter` do, as a
//! library. Typed specs go in ([`PodSpec`], [`AppSpec`], [`RuntimeSpec`]: filled by the `rkt`
//! crate's argument grammar, or by the Nomad driver from a job); pods come out in the store under
//! [`Config::dir`], laid out as [`layout`] says. Every error carries a [`Kind`], so that a
//! caller (the `rkt` command line, the Nomad driver) knows whether to retry, report bad input
//! or give up, without reading its text.
//!
//! - [`prepare`]: fetches the images, resolves each app, writes the pod manifest and the apps'
//!   plan records; the pod is `prepared`.
//! - [`run_prepared`] and [`run`]: network, /etc files and the full plan, then `exec` of
//!   `rkt-stage1`, which keeps the PID and the pod lock and supervises the pod.
//! - [`lifecycle`]: waiting, stopping, entering, removing and collecting pods.
//! - [`trust`]: finding public keys and trusting them for image name prefixes (`rkt trust`).

pub mod config;
pub mod error;
mod exec;
pub mod export;
pub mod fly;
pub mod fs;
mod isolators;
pub mod lifecycle;
mod mds;
mod pod_manifest;
mod prepare;
mod resources;
pub mod spec;
pub mod stage1_conf;
mod start;
pub mod trust;
pub mod userns;
mod volumes;

pub use config::{Config, InsecureOptions, RegistryAuth};
pub use error::{Error, Kind, Result};
pub use spec::{AppSpec, PodSpec, RuntimeSpec};
pub use start::{prepare, ready_prepared, run, run_prepared, stage1_path, Ready};
