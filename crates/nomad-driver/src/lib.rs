//! `nomad-driver-rkt`: Nomad's `rkt` task driver as an external plugin.
//!
//! - [`proto`]: the wire types (go-plugin's services, Nomad's base and driver services);
//! - [`cty`] and [`config`]: the job's `config {}` and the plugin's `config {}` as Nomad sends
//!   them (cty msgpack), and [`hclspec`]: the schemas that tell Nomad what they may hold;
//! - [`backend`]: what the driver does: typed specs from the job, pods prepared, run and
//!   managed through the stage0 and pod libraries;
//! - [`server`]: the gRPC services on top of it; [`plugin`]: the go-plugin handshake, logs.

pub mod backend;
pub mod config;
pub mod cty;
pub mod hclspec;
pub mod log;
pub mod plugin;
pub mod proto;
pub mod server;
