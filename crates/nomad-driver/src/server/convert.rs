//! Every conversion between Nomad's protobuf messages and the backend's types, and the
//! gRPC status a backend error becomes.

use crate::backend::{self, start, stats};
use crate::proto::drivers as d;
use crate::proto::structs;
use prost::Message;
use std::collections::HashMap;
use std::time::SystemTime;
use tonic::Status;

/// A driver error as Nomad's Go plugin server returns it: with a RecoverableError detail
/// when a retry could help (so the restart policy applies), a plain error otherwise.
pub(super) fn status(e: backend::Error) -> Status {
    match e {
        backend::Error::Recoverable(msg) => recoverable_status(&msg, true),
        backend::Error::Fatal(msg) => Status::unknown(msg),
        backend::Error::TaskNotFound => Status::not_found(e.to_string()),
    }
}

/// FailedPrecondition carrying RecoverableError{recoverable}, as Nomad's Go server sends it.
pub(super) fn recoverable_status(msg: &str, recoverable: bool) -> Status {
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

pub(super) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// Go's zero time, which Nomad's client expects for "not yet".
pub(super) fn zero_time() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: -62135596800,
        nanos: 0,
    }
}

pub(super) fn exit_result(e: &backend::ExitInfo) -> d::ExitResult {
    d::ExitResult {
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
    }
}

/// The names `extra_labels` can pick, with their values: from the task's configuration
/// (Nomad 1.1+ sends job_id, namespace and node_name), else from its environment, and the
/// node's name from the host's (Nomad's default node name).
fn nomad_labels(t: &d::TaskConfig) -> std::collections::BTreeMap<String, String> {
    let env = |k: &str| t.env.get(k).cloned().unwrap_or_default();
    let or = |v: &str, fallback: String| {
        if v.is_empty() {
            fallback
        } else {
            v.to_string()
        }
    };
    let node = or(
        &t.node_name,
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    );
    [
        ("job_name", or(&t.job_name, env("NOMAD_JOB_NAME"))),
        (
            "task_group_name",
            or(&t.task_group_name, env("NOMAD_GROUP_NAME")),
        ),
        ("task_name", t.name.clone()),
        ("namespace", or(&t.namespace, env("NOMAD_NAMESPACE"))),
        ("node_name", node),
        ("job_id", or(&t.job_id, env("NOMAD_JOB_ID"))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .filter(|(_, v)| !v.is_empty())
    .collect()
}

/// What the backend needs from Nomad's task configuration.
pub fn spec_of(t: &d::TaskConfig) -> start::Spec {
    let res = t.resources.clone().unwrap_or_default();
    let alloc = res.allocated_resources.clone().unwrap_or_default();
    let linux = res.linux_resources.clone().unwrap_or_default();
    // The task's memory from its allocation: Nomad 1.1 and later put the higher of memory
    // and memory_max in LinuxResources' limit, and memory_max beside memory here.
    let memory = alloc.memory.unwrap_or_default();
    let memory_bytes = match (alloc.memory, linux.memory_limit_bytes) {
        (Some(m), _) if m.memory_mb > 0 => m.memory_mb << 20,
        (_, n) => n,
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
        memory_max_bytes: memory.memory_max_mb << 20,
        cpu_shares,
        cpuset_cpus: linux.cpuset_cpus.clone(),
        task_ports,
        group_ports: res
            .ports
            .iter()
            .map(|p| (p.label.clone(), p.value as u16))
            .collect(),
        port_targets: res
            .ports
            .iter()
            .map(|p| (p.label.clone(), p.value as u16, p.to.max(0) as u16))
            .collect(),
        nomad_labels: nomad_labels(t),
        percent_ticks: linux.percent_ticks,
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
            .map(|dev| start::Device {
                host_path: dev.host_path.clone(),
                container_path: dev.task_path.clone(),
                cgroup_permissions: dev.cgroup_permissions.clone(),
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

pub(super) fn fingerprint_response(f: backend::fingerprint::Fingerprint) -> d::FingerprintResponse {
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

pub(super) fn stats_response(id: &str, s: &stats::Sample) -> d::TaskStatsResponse {
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
