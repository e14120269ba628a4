//! The generated protobuf types and services, in modules that mirror their packages (the
//! generated code refers across packages by relative paths).

/// go-plugin's package `plugin`.
pub mod plugin {
    tonic::include_proto!("plugin");
}

#[allow(clippy::all)]
pub mod hashicorp {
    pub mod nomad {
        pub mod plugins {
            pub mod base {
                pub mod proto {
                    tonic::include_proto!("hashicorp.nomad.plugins.base.proto");
                }
            }
            pub mod drivers {
                pub mod proto {
                    tonic::include_proto!("hashicorp.nomad.plugins.drivers.proto");
                }
            }
            pub mod shared {
                pub mod hclspec {
                    tonic::include_proto!("hashicorp.nomad.plugins.shared.hclspec");
                }
                pub mod structs {
                    tonic::include_proto!("hashicorp.nomad.plugins.shared.structs");
                }
            }
        }
    }
}

pub use hashicorp::nomad::plugins::base::proto as base;
pub use hashicorp::nomad::plugins::drivers::proto as drivers;
pub use hashicorp::nomad::plugins::shared::hclspec;
pub use hashicorp::nomad::plugins::shared::structs;
