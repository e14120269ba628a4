//! The BasePlugin service: what the plugin is, its schemas, and its configuration.

use crate::backend::Driver;
use crate::proto::base as b;
use crate::{config, hclspec};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct Base {
    pub driver: Arc<Driver>,
}

#[tonic::async_trait]
impl b::base_plugin_server::BasePlugin for Base {
    async fn plugin_info(
        &self,
        _: Request<b::PluginInfoRequest>,
    ) -> Result<Response<b::PluginInfoResponse>, Status> {
        Ok(Response::new(b::PluginInfoResponse {
            r#type: b::PluginType::Driver as i32,
            plugin_api_versions: vec!["v0.1.0".into()],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            name: "rkt".into(),
        }))
    }

    async fn config_schema(
        &self,
        _: Request<b::ConfigSchemaRequest>,
    ) -> Result<Response<b::ConfigSchemaResponse>, Status> {
        Ok(Response::new(b::ConfigSchemaResponse {
            spec: Some(hclspec::plugin_config()),
        }))
    }

    async fn set_config(
        &self,
        req: Request<b::SetConfigRequest>,
    ) -> Result<Response<b::SetConfigResponse>, Status> {
        // A configuration that cannot be used is accepted and reported by the fingerprint
        // (the driver unhealthy, with the reason), so that the node says what is wrong and
        // Nomad places no task here, instead of each task failing on its own.
        let r = req.get_ref();
        match config::plugin_config(&r.msgpack_config) {
            Ok(c) => self.driver.configure(&c, r.nomad_config.is_some()),
            Err(e) => {
                let e = e.to_string();
                crate::log::error("invalid plugin configuration", &[("error", &e)]);
                self.driver.set_config_error(e);
            }
        }
        Ok(Response::new(b::SetConfigResponse {}))
    }
}
