//! Nomad's BasePlugin and Driver services over [`backend::Driver`].

use crate::backend::{self, start, stats, Driver};
use crate::proto::base as b;
use crate::proto::drivers as d;
use crate::proto::structs;
use crate::{config, hclspec, log};
use prost::Message;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How often the fingerprint is sent again, as Nomad's rkt driver did.
pub const FINGERPRINT_PERIOD: Duration = Duration::from_secs(30);

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
                log::error("invalid plugin configuration", &[("error", &e)]);
                self.driver.set_config_error(e);
            }
        }
        Ok(Response::new(b::SetConfigResponse {}))
    }
}

pub struct DriverService {
    pub driver: Arc<Driver>,
}

/// A driver error as Nomad's Go plugin server returns it: with a RecoverableError detail
/// when a retry could help (so the restart policy applies), a plain error otherwise.
fn status(e: backend::Error) -> Status {
    match e {
        backend::Error::Recoverable(msg) => recoverable_status(&msg, true),
        backend::Error::Fatal(msg) => Status::unknown(msg),
        backend::Error::TaskNotFound => Status::not_found(e.to_string()),
    }
}

/// FailedPrecondition carrying RecoverableError{recoverable}, as Nomad's Go server sends it.
fn recoverable_status(msg: &str, recoverable: bool) -> Status {
    Status::with_details(
        tonic::Code::FailedPrecondition,
        msg,
        recoverable_details(msg, recoverable).into(),
    )
}

/// A google.rpc.Status whose first detail is hashicorp.nomad.plugins.shared.structs.RecoverableError.
pub fn recoverable_details(msg: &str, recoverable: bool) -> Vec<u8> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<prost_types::Any>,
    }
    RpcStatus {
        code: tonic::Code::FailedPrecondition as i32,
        message: msg.into(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError"
                .into(),
            value: structs::RecoverableError { recoverable }.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// Go's zero time, which Nomad's client expects for "not yet".
fn zero_time() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: -62135596800,
        nanos: 0,
    }
}

fn exit_result(e: &backend::ExitInfo) -> d::ExitResult {
    d::ExitResult {
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
    }
}

/// What the backend needs from Nomad's task configuration.
pub fn spec_of(t: &d::TaskConfig) -> start::Spec {
    let res = t.resources.clone().unwrap_or_default();
    let alloc = res.allocated_resources.clone().unwrap_or_default();
    let linux = res.linux_resources.clone().unwrap_or_default();
    let memory_bytes = match linux.memory_limit_bytes {
        0 => alloc
            .memory
            .as_ref()
            .map_or(0, |m| m.memory_mb.max(m.memory_max_mb) << 20),
        n => n,
    };
    let cpu_shares = match linux.cpu_shares {
        0 => alloc.cpu.as_ref().map_or(0, |c| c.cpu_shares),
        n => n,
    };
    let task_ports = alloc.networks.first().map(|n| {
        n.reserved_ports
            .iter()
            .chain(&n.dynamic_ports)
            .map(|p| (p.label.clone(), p.value as u16))
            .collect()
    });
    start::Spec {
        id: t.id.clone(),
        name: t.name.clone(),
        alloc_id: t.alloc_id.clone(),
        alloc_dir: t.alloc_dir.clone().into(),
        env: t.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        user: t.user.clone(),
        memory_bytes,
        cpu_shares,
        task_ports,
        group_ports: res
            .ports
            .iter()
            .map(|p| (p.label.clone(), p.value as u16))
            .collect(),
        mounts: t
            .mounts
            .iter()
            .map(|m| start::HostPath {
                host_path: m.host_path.clone(),
                task_path: m.task_path.clone(),
                read_only: m.readonly,
            })
            .collect(),
        devices: t
            .devices
            .iter()
            .map(|dev| start::HostPath {
                host_path: dev.host_path.clone(),
                task_path: dev.task_path.clone(),
                read_only: !dev.cgroup_permissions.contains('w'),
            })
            .collect(),
        stdout_path: t.stdout_path.clone().into(),
        stderr_path: t.stderr_path.clone().into(),
        group_netns: t
            .network_isolation_spec
            .as_ref()
            .filter(|n| n.mode == d::network_isolation_spec::NetworkIsolationMode::Group as i32)
            .filter(|n| !n.path.is_empty())
            .map(|n| n.path.clone().into()),
        group_dns: t.dns.as_ref().map(|dns| {
            (
                dns.servers.clone(),
                dns.searches.clone(),
                dns.options.clone(),
            )
        }),
    }
}

fn fingerprint_response(f: backend::fingerprint::Fingerprint) -> d::FingerprintResponse {
    use backend::fingerprint::{Attr, Health};
    let attributes: HashMap<String, structs::Attribute> = f
        .attributes
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                Attr::Bool(b) => structs::attribute::Value::BoolVal(b),
                Attr::Str(s) => structs::attribute::Value::StringVal(s),
            };
            (
                k,
                structs::Attribute {
                    value: Some(value),
                    unit: String::new(),
                },
            )
        })
        .collect();
    d::FingerprintResponse {
        attributes,
        health: match f.health {
            Health::Healthy => d::fingerprint_response::HealthState::Healthy,
            Health::Unhealthy => d::fingerprint_response::HealthState::Unhealthy,
            Health::Undetected => d::fingerprint_response::HealthState::Undetected,
        } as i32,
        health_description: f.description,
        err: String::new(),
    }
}

fn stats_response(id: &str, s: &stats::Sample) -> d::TaskStatsResponse {
    use d::cpu_usage::Fields as C;
    use d::memory_usage::Fields as M;
    let c = &s.counters;
    let mut memory_fields = vec![
        M::Rss as i32,
        M::Cache as i32,
        M::Swap as i32,
        M::Usage as i32,
    ];
    if c.max_usage.is_some() {
        memory_fields.push(M::MaxUsage as i32);
    }
    let usage = d::TaskResourceUsage {
        cpu: Some(d::CpuUsage {
            system_mode: s.system_percent,
            user_mode: s.user_percent,
            total_ticks: s.total_ticks,
            throttled_periods: c.throttled_periods,
            throttled_time: c.throttled_time,
            percent: s.percent,
            measured_fields: [
                C::SystemMode,
                C::UserMode,
                C::TotalTicks,
                C::ThrottledPeriods,
                C::ThrottledTime,
                C::Percent,
            ]
            .iter()
            .map(|f| *f as i32)
            .collect(),
        }),
        memory: Some(d::MemoryUsage {
            rss: c.rss,
            cache: c.cache,
            max_usage: c.max_usage.unwrap_or(0),
            kernel_usage: 0,
            kernel_max_usage: 0,
            usage: c.usage,
            swap: c.swap,
            measured_fields: memory_fields,
        }),
    };
    d::TaskStatsResponse {
        stats: Some(d::TaskStats {
            id: id.into(),
            timestamp: Some(timestamp(SystemTime::now())),
            agg_resource_usage: Some(usage),
            resource_usage_by_pid: HashMap::new(),
        }),
    }
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
        Ok(Response::new(crate::server_exec::relay(session, inbound)))
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
