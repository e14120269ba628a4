//! The Driver service: task lifecycle, events, statistics and exec, over the backend.

use crate::backend::{self, stats, Driver};
use crate::proto::drivers as d;
use crate::{config, hclspec, log};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::convert::*;
use super::FINGERPRINT_PERIOD;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct DriverService {
    pub driver: Arc<Driver>,
}

#[tonic::async_trait]
impl d::driver_server::Driver for DriverService {
    type FingerprintStream = BoxStream<d::FingerprintResponse>;
    type TaskStatsStream = BoxStream<d::TaskStatsResponse>;
    type TaskEventsStream = BoxStream<d::DriverTaskEvent>;
    type ExecTaskStreamingStream = BoxStream<d::ExecTaskStreamingResponse>;

    async fn init(&self, _: Request<d::InitRequest>) -> Result<Response<d::InitResponse>, Status> {
        Ok(Response::new(d::InitResponse {}))
    }

    async fn shutdown(
        &self,
        _: Request<d::ShutdownRequest>,
    ) -> Result<Response<d::ShutdownResponse>, Status> {
        Ok(Response::new(d::ShutdownResponse {}))
    }

    async fn task_config_schema(
        &self,
        _: Request<d::TaskConfigSchemaRequest>,
    ) -> Result<Response<d::TaskConfigSchemaResponse>, Status> {
        Ok(Response::new(d::TaskConfigSchemaResponse {
            spec: Some(hclspec::task_config()),
        }))
    }

    async fn capabilities(
        &self,
        _: Request<d::CapabilitiesRequest>,
    ) -> Result<Response<d::CapabilitiesResponse>, Status> {
        Ok(Response::new(d::CapabilitiesResponse {
            capabilities: Some(d::DriverCapabilities {
                send_signals: true,
                exec: true,
                fs_isolation: d::driver_capabilities::FsIsolation::Image as i32,
                // Host, and a group's network namespace made by Nomad (bridge or CNI).
                network_isolation_modes: vec![
                    d::network_isolation_spec::NetworkIsolationMode::Host as i32,
                    d::network_isolation_spec::NetworkIsolationMode::Group as i32,
                ],
                ..Default::default()
            }),
        }))
    }

    async fn fingerprint(
        &self,
        _: Request<d::FingerprintRequest>,
    ) -> Result<Response<Self::FingerprintStream>, Status> {
        let driver = self.driver.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            // The first answer at once; then every period. The stream ends only when the
            // client goes away.
            loop {
                let f = fingerprint_response(driver.fingerprint().await);
                if tx.send(Ok(f)).await.is_err() {
                    return;
                }
                tokio::time::sleep(FINGERPRINT_PERIOD).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn recover_task(
        &self,
        req: Request<d::RecoverTaskRequest>,
    ) -> Result<Response<d::RecoverTaskResponse>, Status> {
        let r = req.into_inner();
        let handle = r
            .handle
            .ok_or_else(|| Status::invalid_argument("error: handle cannot be nil"))?;
        let id = handle
            .config
            .as_ref()
            .map(|c| c.id.clone())
            .filter(|i| !i.is_empty())
            .unwrap_or(r.task_id);
        self.driver
            .recover(&id, &handle.driver_state)
            .await
            .map_err(status)?;
        log::info("recovered task", &[("task_id", &id)]);
        Ok(Response::new(d::RecoverTaskResponse {}))
    }

    async fn start_task(
        &self,
        req: Request<d::StartTaskRequest>,
    ) -> Result<Response<d::StartTaskResponse>, Status> {
        let task = req
            .into_inner()
            .task
            .ok_or_else(|| Status::invalid_argument("no task"))?;
        let opts = config::task_config(&task.msgpack_driver_config)
            .map_err(|e| Status::unknown(format!("failed to decode driver config: {e}")))?;
        let spec = spec_of(&task);
        log::info(
            "starting task",
            &[("task_id", &task.id), ("image", &opts.image)],
        );
        let started = self.driver.start(opts, spec).await.map_err(|e| {
            log::error(
                "task start failed",
                &[("task_id", &task.id), ("error", &e.to_string())],
            );
            status(e)
        })?;
        let network_override = started.network.map(|n| d::NetworkOverride {
            port_map: n.ports.into_iter().collect(),
            addr: n.ip,
            auto_advertise: false,
        });
        Ok(Response::new(d::StartTaskResponse {
            result: d::start_task_response::Result::Success as i32,
            driver_error_msg: String::new(),
            handle: Some(d::TaskHandle {
                version: backend::STATE_VERSION,
                config: Some(task),
                state: d::TaskState::Running as i32,
                driver_state: started.state,
            }),
            network_override,
        }))
    }

    async fn wait_task(
        &self,
        req: Request<d::WaitTaskRequest>,
    ) -> Result<Response<d::WaitTaskResponse>, Status> {
        let exit = self
            .driver
            .wait(&req.get_ref().task_id)
            .await
            .map_err(status)?;
        Ok(Response::new(d::WaitTaskResponse {
            result: Some(exit_result(&exit)),
            err: exit.err.unwrap_or_default(),
        }))
    }

    async fn stop_task(
        &self,
        req: Request<d::StopTaskRequest>,
    ) -> Result<Response<d::StopTaskResponse>, Status> {
        let r = req.into_inner();
        let timeout = r
            .timeout
            .and_then(|t| Duration::try_from(t).ok())
            .unwrap_or(Duration::from_secs(5));
        match self.driver.stop(&r.task_id, timeout, &r.signal).await {
            Ok(()) => Ok(Response::new(d::StopTaskResponse {})),
            Err(backend::Error::TaskNotFound) => Ok(Response::new(d::StopTaskResponse {})),
            Err(e) => Err(Status::unknown(format!("executor Shutdown failed: {e}"))),
        }
    }

    async fn destroy_task(
        &self,
        req: Request<d::DestroyTaskRequest>,
    ) -> Result<Response<d::DestroyTaskResponse>, Status> {
        let r = req.into_inner();
        self.driver
            .destroy(&r.task_id, r.force)
            .await
            .map_err(status)?;
        Ok(Response::new(d::DestroyTaskResponse {}))
    }

    async fn inspect_task(
        &self,
        req: Request<d::InspectTaskRequest>,
    ) -> Result<Response<d::InspectTaskResponse>, Status> {
        let s = self
            .driver
            .inspect(&req.get_ref().task_id)
            .map_err(status)?;
        let state = if s.exit.is_some() {
            d::TaskState::Exited
        } else {
            d::TaskState::Running
        };
        Ok(Response::new(d::InspectTaskResponse {
            task: Some(d::TaskStatus {
                id: s.id,
                name: s.name,
                state: state as i32,
                started_at: Some(timestamp(s.started_at)),
                completed_at: Some(s.completed_at.map_or_else(zero_time, timestamp)),
                result: Some(s.exit.as_ref().map(exit_result).unwrap_or_default()),
            }),
            driver: Some(d::TaskDriverStatus {
                attributes: [
                    ("pid".to_string(), s.pid.to_string()),
                    ("uuid".to_string(), s.uuid),
                ]
                .into(),
            }),
            network_override: None,
        }))
    }

    async fn task_stats(
        &self,
        req: Request<d::TaskStatsRequest>,
    ) -> Result<Response<Self::TaskStatsStream>, Status> {
        let r = req.into_inner();
        let interval = r
            .collection_interval
            .and_then(|t| Duration::try_from(t).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        let driver = self.driver.clone();
        let id = r.task_id;
        if driver.exited(&id).map_err(status)? {
            // Not worth retrying: Nomad stops collecting for a non-recoverable error (any
            // other error it retries every few seconds, forever).
            return Err(recoverable_status(&format!("task {id} has exited"), false));
        }
        driver.counters(&id).map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let mut sampler = stats::Sampler::default();
            let mhz = stats::mhz_per_core();
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if driver.exited(&id).unwrap_or(true) {
                    return;
                }
                let Ok(c) = driver.counters(&id) else { return };
                let s = sampler.sample(std::time::Instant::now(), c, mhz);
                if tx.send(Ok(stats_response(&id, &s))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn task_events(
        &self,
        _: Request<d::TaskEventsRequest>,
    ) -> Result<Response<Self::TaskEventsStream>, Status> {
        let events =
            tokio_stream::wrappers::BroadcastStream::new(self.driver.events()).filter_map(|e| {
                // A lagging client misses events rather than ending the stream.
                let e = e.ok()?;
                Some(Ok(d::DriverTaskEvent {
                    task_id: e.task_id,
                    alloc_id: e.alloc_id,
                    task_name: e.task_name,
                    timestamp: Some(timestamp(e.timestamp)),
                    message: e.message,
                    annotations: e.annotations.into_iter().collect(),
                }))
            });
        // Never ends while the plugin lives, even with no task sending events.
        Ok(Response::new(Box::pin(
            events.chain(tokio_stream::pending()),
        )))
    }

    async fn signal_task(
        &self,
        req: Request<d::SignalTaskRequest>,
    ) -> Result<Response<d::SignalTaskResponse>, Status> {
        let r = req.into_inner();
        if backend::signal_known(&r.signal) {
            self.driver.signal(&r.task_id, &r.signal).map_err(status)?;
        } else {
            log::warn(
                "unknown signal to send to task, using SIGINT instead",
                &[("signal", &r.signal), ("task_id", &r.task_id)],
            );
            self.driver.signal(&r.task_id, "SIGINT").map_err(status)?;
        }
        Ok(Response::new(d::SignalTaskResponse {}))
    }

    async fn exec_task(
        &self,
        req: Request<d::ExecTaskRequest>,
    ) -> Result<Response<d::ExecTaskResponse>, Status> {
        let r = req.into_inner();
        let timeout = r
            .timeout
            .and_then(|t| Duration::try_from(t).ok())
            .unwrap_or_default();
        let out = self
            .driver
            .exec(&r.task_id, &r.command, timeout)
            .await
            .map_err(status)?;
        Ok(Response::new(d::ExecTaskResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            result: Some(d::ExitResult {
                exit_code: out.exit_code,
                ..Default::default()
            }),
        }))
    }

    async fn exec_task_streaming(
        &self,
        req: Request<Streaming<d::ExecTaskStreamingRequest>>,
    ) -> Result<Response<Self::ExecTaskStreamingStream>, Status> {
        let mut inbound = req.into_inner();
        let setup = loop {
            match inbound.message().await? {
                Some(m) => {
                    if let Some(s) = m.setup {
                        break s;
                    }
                }
                None => {
                    return Err(Status::invalid_argument(
                        "the stream ended before its setup message",
                    ))
                }
            }
        };
        let cmd = self
            .driver
            .exec_command(&setup.task_id, &setup.command)
            .map_err(status)?;
        let session = backend::exec_stream::spawn(cmd, setup.tty)
            .map_err(|e| Status::unknown(format!("starting rkt enter: {e}")))?;
        Ok(Response::new(super::exec::relay(session, inbound)))
    }

    async fn create_network(
        &self,
        _: Request<d::CreateNetworkRequest>,
    ) -> Result<Response<d::CreateNetworkResponse>, Status> {
        Err(Status::unimplemented(
            "the rkt driver makes its pods' networks itself",
        ))
    }

    async fn destroy_network(
        &self,
        _: Request<d::DestroyNetworkRequest>,
    ) -> Result<Response<d::DestroyNetworkResponse>, Status> {
        Err(Status::unimplemented(
            "the rkt driver makes its pods' networks itself",
        ))
    }
}
