//! The PublicAPI service over one rkt directory, and the server that runs it.

use crate::convert;
use crate::events::{self, Snapshot};
use crate::v1alpha::public_api_server::{PublicApi, PublicApiServer};
use crate::v1alpha::*;
use std::path::PathBuf;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The global flags the service was started with, as GetInfo reports them.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub dir: PathBuf,
    pub system_config: String,
    pub local_config: String,
    pub user_config: String,
    pub insecure_options: String,
    pub trust_keys_from_https: bool,
}

/// The read-only PublicAPI over the pods and images of [`Flags::dir`].
#[derive(Clone)]
pub struct Service {
    flags: Flags,
}

impl Service {
    pub fn new(flags: Flags) -> Service {
        Service { flags }
    }

    fn pods(&self) -> Result<pod::Pods, Status> {
        pod::Pods::open(&self.flags.dir).map_err(|e| Status::internal(e.to_string()))
    }

    fn store(&self) -> Result<image::store::Store, Status> {
        image::store::Store::open(&self.flags.dir).map_err(|e| Status::internal(e.to_string()))
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl PublicApi for Service {
    async fn get_info(
        &self,
        _: Request<GetInfoRequest>,
    ) -> Result<Response<GetInfoResponse>, Status> {
        let f = &self.flags;
        Ok(Response::new(GetInfoResponse {
            info: Some(Info {
                rkt_version: "1.30.0".into(),
                appc_version: image::appc::AC_VERSION.into(),
                api_version: crate::API_VERSION.into(),
                global_flags: Some(GlobalFlags {
                    dir: f.dir.display().to_string(),
                    system_config_dir: f.system_config.clone(),
                    local_config_dir: f.local_config.clone(),
                    user_config_dir: f.user_config.clone(),
                    insecure_flags: f.insecure_options.clone(),
                    trust_keys_from_https: f.trust_keys_from_https,
                }),
            }),
        }))
    }

    async fn list_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        let r = request.into_inner();
        let mut pods: Vec<Pod> = self
            .pods()?
            .list()
            .map_err(|e| Status::internal(e.to_string()))?
            .iter()
            .map(|p| convert::pod(p, r.detail))
            .filter(|p| convert::any(p, &r.filters, convert::pod_matches))
            .collect();
        pods.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(Response::new(ListPodsResponse { pods }))
    }

    async fn inspect_pod(
        &self,
        request: Request<InspectPodRequest>,
    ) -> Result<Response<InspectPodResponse>, Status> {
        let id = request.into_inner().id;
        let p = self.pods()?.find(&id).map_err(|e| match e {
            pod::Error::NotFound(m) => Status::not_found(m),
            pod::Error::InvalidInput(m) => Status::invalid_argument(m),
            e => Status::internal(e.to_string()),
        })?;
        Ok(Response::new(InspectPodResponse {
            pod: Some(convert::pod(&p, true)),
        }))
    }

    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let r = request.into_inner();
        let store = self.store()?;
        let images = store
            .list()
            .map_err(|e| Status::internal(e.to_string()))?
            .iter()
            .map(|i| convert::image(&store, i, r.detail))
            .filter(|i| convert::any(i, &r.filters, convert::image_matches))
            .collect();
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn inspect_image(
        &self,
        request: Request<InspectImageRequest>,
    ) -> Result<Response<InspectImageResponse>, Status> {
        let id = request.into_inner().id;
        if !id.starts_with("sha512-") {
            return Err(Status::invalid_argument(format!(
                "{id:?} is not an image ID (sha512-…)"
            )));
        }
        let store = self.store()?;
        let info = store
            .resolve(&id)
            .map_err(|e| Status::not_found(e.to_string()))?;
        Ok(Response::new(InspectImageResponse {
            image: Some(convert::image(&store, &info, true)),
        }))
    }

    type ListenEventsStream = Streamed<ListenEventsResponse>;

    async fn listen_events(
        &self,
        request: Request<ListenEventsRequest>,
    ) -> Result<Response<Self::ListenEventsStream>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let dir = self.flags.dir.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut seen = snapshot(&dir).await;
            loop {
                let time = now();
                if filter.until_time > 0 && time >= filter.until_time {
                    return;
                }
                tokio::time::sleep(events::POLL).await;
                let current = snapshot(&dir).await;
                let events: Vec<Event> = seen
                    .changes(&current, now())
                    .into_iter()
                    .filter(|e| events::matches(e, &filter))
                    .collect();
                seen = current;
                if !events.is_empty() && tx.send(Ok(ListenEventsResponse { events })).await.is_err()
                {
                    return; // the client went away
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    type GetLogsStream = Streamed<GetLogsResponse>;

    async fn get_logs(
        &self,
        _: Request<GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        Err(Status::unimplemented(
            "GetLogs: this rkt keeps no logs of its pods (no journal in the pod: an app's output goes to whoever ran it, such as rkt run's terminal or Nomad's log files); read them there",
        ))
    }
}

async fn snapshot(dir: &std::path::Path) -> Snapshot {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Snapshot::take(&dir))
        .await
        .unwrap_or_default()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    service: Service,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(PublicApiServer::new(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}
