//! rkt's gRPC API, `v1alpha`, as `rkt api-service` serves it and as cAdvisor and other
//! monitors read it: GetInfo, ListPods, InspectPod, ListImages, InspectImage and
//! ListenEvents, over the pods and images of one rkt directory. The service is read-only:
//! it never changes a pod or an image, and starting or stopping it affects neither.
//!
//! - [`v1alpha`]: the messages, the server trait and the client, generated from
//!   `proto/v1alpha/api.proto` (rkt's names and field numbers, so rkt's clients work).
//! - [`convert`]: pods and images as the API's messages, and rkt's filters.
//! - [`events`]: ListenEvents, by watching the store's pods and images change.
//! - [`Service`]: the PublicAPI service; [`serve`] runs it on an address.

#![forbid(unsafe_code)]

pub mod convert;
pub mod events;
mod service;

pub use service::{serve, Flags, Service};

/// The generated code of package `v1alpha`.
#[allow(clippy::all)]
pub mod v1alpha {
    tonic::include_proto!("v1alpha");
}

/// The API version rkt 1.30 reported in GetInfo.
pub const API_VERSION: &str = "1.0.0-alpha";
