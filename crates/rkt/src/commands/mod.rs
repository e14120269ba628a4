//! One module per rkt subcommand.

pub mod api_service;
pub mod config;
pub mod export;
pub mod fetch;
pub mod image;
pub mod metadata_service;
pub mod pods;
pub mod run;
pub mod trust;
pub mod version;
