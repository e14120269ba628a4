//! Images for rkt: references, registry client, content store and rendered trees.
//!
//! The flow of `rkt fetch docker://…` is [`fetch::Fetcher::fetch`]: parse the
//! [`reference::Reference`] (a short name goes to the default registry of
//! [`registries::Registries`]), try each source in turn (the registry's mirrors, then the
//! registry itself) with [`registry::Registry::connect`] and credentials from
//! [`auth::Credentials`], resolve the manifest for this platform, download and verify blobs
//! into the [`store::Store`], apply them with [`unpack::Tree`], convert the config to an appc
//! manifest with [`appc::from_docker`], and publish the image with one rename.
//!
//! ACIs (files, URLs, appc names found by [`aci::discovery`]) go through [`aci`]: their
//! signatures are checked against the [`trust::Keystore`] before anything is unpacked.
//!
//! Every fallible function returns an [`Error`], whose variant says what a caller can do
//! about it (retry a registry, report an image or input that cannot be used, not found).

#![forbid(unsafe_code)]

pub mod aci;
pub mod appc;
pub mod auth;
pub mod digest;
pub mod docker_config;
pub mod error;
pub mod export;
pub mod fetch;
pub mod reference;
pub mod registries;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod trust;
pub mod unpack;
pub mod verify;

pub use error::{Error, Result};
