//! One module per rkt subcommand.

pub mod app_args;
pub mod fetch;
pub mod image;
pub mod pods;
pub mod run;
pub mod version;
