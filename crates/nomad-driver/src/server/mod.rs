//! Nomad's gRPC services over [`crate::backend::Driver`], one module a service: `base`
//! (BasePlugin: schemas, configuration), `driver` (the Driver service: tasks, events,
//! statistics), `exec` (streaming exec); `convert` holds every conversion between the
//! protobuf messages and the backend's types.

mod base;
mod convert;
mod driver;
mod exec;

pub use base::Base;
pub use convert::{recoverable_details, spec_of};
pub use driver::DriverService;

use std::time::Duration;

/// How often the fingerprint is sent again, as Nomad's rkt driver did.
pub const FINGERPRINT_PERIOD: Duration = Duration::from_secs(30);
