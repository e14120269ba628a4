//! CNI networks for rkt pods: which networks a pod joins ([`conf`]), the plugins that build
//! them ([`cni`]), the pod's network namespace ([`netns`]) and its nat rules: the host ports
//! forwarded into it, and masquerading for rkt's built-in networks ([`nat`]).
//!
//! [`setup`] runs before the pod starts and either leaves a fully networked namespace or
//! nothing at all. [`teardown`] undoes it and may run any number of times, from whichever
//! process finds the pod exited first (the supervisor, `stop`, `rm`, `gc`).
//!
//! What the pod directory holds:
//! - `netns`: the path of the pinned namespace; present while there is something to undo;
//! - `net-info.json`: rkt's record of the networks (`netName`, `netConf`, `pluginPath`,
//!   `ifName`, `ip`, `args`, `mask`), read by `status` and `list`;
//! - `stage1/net/<ifname>.json`: what each plugin was given and returned, for its DEL;
//! - `stage1/net/nat`: present when the pod may have nat rules to remove.

pub mod cni;
pub mod conf;
pub mod nat;
pub mod netns;

pub use cni::Dns;
pub use conf::{NetConf, NetMode, Request};
pub use nat::Forward;

use layout::pod_dir::PodDir;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// A networking error, worded for the operator, of the kind that says whose it is to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or the configuration is wrong: a `--net` value, a `net.d` file, a
    /// network that does not exist, a port that is not the pod's.
    #[error("{0}")]
    Config(String),
    /// Something else holds what the pod asked for: a host port another pod or process has.
    #[error("{0}")]
    Conflict(String),
    /// The host failed: a CNI plugin, `iptables`, a file or a namespace of the host's.
    #[error("{0}")]
    Host(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn config_err(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

pub(crate) fn conflict_err(msg: impl Into<String>) -> Error {
    Error::Conflict(msg.into())
}

pub(crate) fn host_err(msg: impl Into<String>) -> Error {
    Error::Host(msg.into())
}

/// One network of a pod, as rkt recorded it in `net-info.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetInfo {
    #[serde(rename = "netName")]
    pub net_name: String,
    #[serde(rename = "netConf")]
    pub net_conf: String,
    #[serde(rename = "pluginPath")]
    pub plugin_path: String,
    #[serde(rename = "ifName")]
    pub if_name: String,
    pub ip: Option<Ipv4Addr>,
    pub args: String,
    pub mask: Option<Ipv4Addr>,
}

/// What a plugin was given and returned, kept for its DEL.
#[derive(Serialize, Deserialize)]
struct Attachment {
    network: String,
    plugin: PathBuf,
    args: String,
    conf: Value,
    result: Value,
}

/// A networked pod: its records and the DNS its networks suggest.
#[derive(Debug, Default)]
pub struct Networked {
    pub infos: Vec<NetInfo>,
    pub dns: Dns,
    /// The host's address on the network the pod's forwarded ports go through (the first
    /// masquerading one, or the last): its gateway, where the pod reaches host services such
    /// as the metadata service (rkt's GetForwardableNetHostIP).
    pub host_ip: Option<Ipv4Addr>,
}

/// Creates the pod's namespace, attaches it to `nets` (interfaces `eth0`, `eth1`, … in order)
/// and forwards `ports` to the address of the first masquerading network (or the last
/// network). On failure everything done so far is undone.
pub fn setup(uuid: &str, pod_dir: &Path, nets: &[NetConf], ports: &[Forward]) -> Result<Networked> {
    let done = attach_all(uuid, pod_dir, nets, ports);
    if done.is_err() {
        let _ = teardown(uuid, pod_dir);
        let _ = std::fs::remove_file(PodDir::new(pod_dir).net_info());
    }
    done
}

fn attach_all(
    uuid: &str,
    pod_dir: &Path,
    nets: &[NetConf],
    ports: &[Forward],
) -> Result<Networked> {
    let plugins: Vec<PathBuf> = nets
        .iter()
        .map(|n| cni::find_plugin(&n.name, &n.plugin))
        .collect::<Result<_>>()?;
    let ns = netns::path_for(uuid);
    // Written first: from here on, a crash leaves something teardown can find.
    write(
        &PodDir::new(pod_dir).netns(),
        ns.display().to_string().as_bytes(),
    )?;
    netns::create(&ns)?;
    let state = PodDir::new(pod_dir).net_state();
    std::fs::create_dir_all(&state).map_err(|e| host_err(format!("{}: {e}", state.display())))?;
    let mut out = Networked::default();
    let mut gateways = Vec::new();
    let mut masq = None;
    for (i, (net, plugin)) in nets.iter().zip(&plugins).enumerate() {
        let ifname = format!("eth{i}");
        let mut conf = net.json.clone();
        let own_masq = net.builtin && net.ip_masq();
        if own_masq {
            conf["ipMasq"] = Value::Bool(false);
        }
        let mut attachment = Attachment {
            network: net.name.clone(),
            plugin: plugin.clone(),
            args: net.args.clone(),
            conf,
            result: Value::Null,
        };
        // Recorded before ADD, so that a half-done ADD is still deleted.
        save(&state, &ifname, &attachment)?;
        let result = attachment
            .call(uuid, &ns, &ifname)
            .run("ADD", &attachment.conf)?;
        attachment.result = result;
        save(&state, &ifname, &attachment)?;
        // CNI 0.3 and later say ips[].gateway; 0.1 and 0.2 said ip4.gateway.
        let r = &attachment.result;
        gateways.push(
            r["ips"][0]["gateway"]
                .as_str()
                .or(r["ip4"]["gateway"].as_str())
                .and_then(|g| g.parse::<Ipv4Addr>().ok()),
        );
        let o = cni::outcome(&attachment.result);
        if o.ip.is_none() {
            return Err(host_err(format!(
                "network {:?}: plugin {} returned no IPv4 address",
                net.name,
                plugin.display()
            )));
        }
        if out.dns.is_empty() {
            out.dns = o.dns.clone();
        }
        if let (true, None, Some(ip)) = (own_masq, masq, o.ip) {
            let net = Ipv4Addr::from(u32::from(ip) & u32::from(cni::mask(o.prefix)));
            masq = Some(nat::Masquerade {
                pod_ip: ip,
                subnet: (net, o.prefix),
            });
        }
        out.infos.push(NetInfo {
            net_name: net.name.clone(),
            net_conf: net.source.clone(),
            plugin_path: plugin.display().to_string(),
            if_name: ifname,
            ip: o.ip,
            args: net.args.clone(),
            mask: o.ip.map(|_| cni::mask(o.prefix)),
        });
        write(
            &PodDir::new(pod_dir).net_info(),
            &serde_json::to_vec(&out.infos).expect("serializable"),
        )?;
    }
    let via = nets
        .iter()
        .position(NetConf::ip_masq)
        .unwrap_or(nets.len().saturating_sub(1));
    out.host_ip = gateways.get(via).copied().flatten();
    if !ports.is_empty() || masq.is_some() {
        let ip = out.infos[via].ip.expect("checked above");
        write(&state.join("nat"), b"")?;
        nat::setup(uuid, masq, ip, ports)?;
    }
    Ok(out)
}

impl Attachment {
    /// The plugin call for this attachment of pod `uuid`.
    fn call<'a>(&'a self, uuid: &'a str, netns: &'a Path, ifname: &'a str) -> cni::Call<'a> {
        cni::Call {
            network: &self.network,
            plugin: &self.plugin,
            container_id: uuid,
            netns,
            ifname,
            args: &self.args,
        }
    }
}

fn save(state: &Path, ifname: &str, a: &Attachment) -> Result<()> {
    write(
        &state.join(format!("{ifname}.json")),
        &serde_json::to_vec(a).expect("serializable"),
    )
}

fn write(p: &Path, body: &[u8]) -> Result<()> {
    std::fs::write(p, body).map_err(|e| host_err(format!("writing {}: {e}", p.display())))
}

/// Whether the pod still has a network to tear down.
pub fn is_set_up(pod_dir: &Path) -> bool {
    PodDir::new(pod_dir).netns().exists()
}

/// Removes the forwarded ports, DELs every attachment (last first) and removes the namespace.
/// Every step is tried; the first failure is returned, and the pod stays marked as set up so
/// that a later call can finish the job.
pub fn teardown(uuid: &str, pod_dir: &Path) -> Result<()> {
    if !is_set_up(pod_dir) {
        return Ok(());
    }
    let ns = netns::path_for(uuid);
    let state = PodDir::new(pod_dir).net_state();
    // The nat rules go while the plugins run: neither depends on the other.
    let nat_marker = state.join("nat");
    let rules = nat_marker.exists().then(|| {
        let uuid = uuid.to_string();
        std::thread::spawn(move || nat::teardown(&uuid))
    });
    let mut first_err = None;
    let mut ifnames: Vec<String> = std::fs::read_dir(&state)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".json").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    ifnames.sort_by_key(|n| {
        std::cmp::Reverse(n.trim_start_matches("eth").parse::<u32>().unwrap_or(0))
    });
    for ifname in ifnames {
        let file = state.join(format!("{ifname}.json"));
        let Ok(a) = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Attachment>(&b).map_err(|e| e.to_string()))
        else {
            continue;
        };
        match a.call(uuid, &ns, &ifname).run("DEL", &with_prev_result(&a)) {
            Ok(_) => {
                let _ = std::fs::remove_file(&file);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(rules) = rules {
        match rules
            .join()
            .unwrap_or_else(|_| Err(host_err("nat teardown panicked")))
        {
            Ok(()) => {
                let _ = std::fs::remove_file(&nat_marker);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Err(e) = netns::remove(&ns) {
        first_err.get_or_insert(e);
    }
    match first_err {
        Some(e) => Err(e),
        None => {
            let _ = std::fs::remove_file(PodDir::new(pod_dir).netns());
            Ok(())
        }
    }
}

/// Spec 0.4.0 and later give DEL and CHECK the ADD result as `prevResult`.
fn with_prev_result(a: &Attachment) -> Value {
    let mut conf = a.conf.clone();
    let version = conf
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.1.0");
    if !matches!(version, "" | "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1") && !a.result.is_null() {
        conf["prevResult"] = a.result.clone();
    }
    conf
}

/// Runs CHECK (spec 0.4.0 and later) for every network of a running pod: the plugins verify
/// that the interfaces, addresses and routes they made are still there.
pub fn check(uuid: &str, pod_dir: &Path) -> Result<()> {
    let ns = netns::path_for(uuid);
    let infos = read_infos(pod_dir);
    for info in infos {
        let file = PodDir::new(pod_dir)
            .net_state()
            .join(format!("{}.json", info.if_name));
        let a: Attachment = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                host_err(format!(
                    "network {:?}: {} is missing",
                    info.net_name,
                    file.display()
                ))
            })?;
        let conf = with_prev_result(&a);
        if conf.get("prevResult").is_none() {
            continue; // CHECK does not exist before spec 0.4.0
        }
        a.call(uuid, &ns, &info.if_name).run("CHECK", &conf)?;
    }
    Ok(())
}

/// The pod's `net-info.json`; empty when it has none.
pub fn read_infos(pod_dir: &Path) -> Vec<NetInfo> {
    std::fs::read(PodDir::new(pod_dir).net_info())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// rkt's `networks=` form: `default:ip4=172.16.28.7, other:ip4=…`.
pub fn summary(infos: &[NetInfo]) -> String {
    infos
        .iter()
        .map(|i| {
            let ip = i.ip.map(|a| a.to_string()).unwrap_or_default();
            format!("{}:ip4={ip}", i.net_name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
