//! `rkt run`, `rkt prepare` and `rkt run-prepared`: rkt's arguments into stage0's specs.
//! Running a pod ends in `exec` of the supervisor, so these return only on failure.

use crate::flags::GlobalArgs;
use anyhow::Result;
use std::path::PathBuf;

/// The flags `run-prepared` takes (and `run` shares).
#[derive(Debug, Default, clap::Args)]
pub struct RuntimeArgs {
    /// Networks: default, default-restricted, host, none, all, or names from net.d
    /// (NAME:K=V;K=V passes CNI_ARGS); a bare --net means default
    #[arg(long, value_delimiter = ',', num_args = 0..=1, require_equals = true, default_missing_value = "default")]
    pub net: Vec<String>,
    /// DNS server IPs, or "host" or "none" (repeated, or comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub dns: Vec<String>,
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    #[arg(long = "dns-opt")]
    pub dns_opt: Vec<String>,
    #[arg(long = "dns-domain")]
    pub dns_domain: Option<String>,
    /// The pod's hostname (default rkt-<uuid>)
    #[arg(long)]
    pub hostname: Option<String>,
    /// IP=HOST entries for /etc/hosts, or "host" (repeated, or comma-separated)
    #[arg(long = "hosts-entry", value_delimiter = ',', value_parser = |v: &str| rkt::grammar::hosts_entry(v).map_err(|e| e.to_string()))]
    pub hosts_entries: Vec<stage0::spec::HostsEntry>,
    /// Join this existing network namespace instead of making one (not an rkt 1.30 flag:
    /// nomad-driver-rkt uses it for Nomad's group networks)
    #[arg(long = "net-namespace")]
    pub net_namespace: Option<PathBuf>,
    /// Give the (single) app this terminal: its stdin is rkt's (otherwise /dev/null)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::flags::parse_bool, default_value = "false")]
    pub interactive: bool,
    /// The pod's IPC namespace: auto or private (its own), or parent (the host's)
    #[arg(long, default_value = "auto", value_parser = |v: &str| rkt::grammar::ipc(v).map_err(|e| e.to_string()))]
    pub ipc: stage0::spec::Ipc,
    /// The pod's PID namespace: private (its own) or host; not an rkt 1.30 flag
    #[arg(long, default_value = "private", value_parser = |v: &str| rkt::grammar::pid(v).map_err(|e| e.to_string()))]
    pub pid: stage0::spec::Pid,
    /// The cgroup the pod's cgroup goes below (default rkt.slice), relative to
    /// /sys/fs/cgroup: machine.slice, or a subtree delegated to rkt
    #[arg(long = "cgroup-parent", value_parser = |v: &str| layout::cgroup::check_parent(v))]
    pub cgroup_parent: Option<String>,
    #[arg(long = "mds-register", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::flags::parse_bool, default_value = "false")]
    pub mds_register: bool,
    /// KEY=VALUE: a kernel parameter of the pod's own namespaces (net.*, kernel.shm*,
    /// kernel.msg*, kernel.sem, fs.mqueue.*); not an rkt 1.30 flag
    #[arg(long, value_parser = |v: &str| stage0::spec::parse_sysctl(v).map_err(|e| e.to_string()))]
    pub sysctl: Vec<(String, String)>,
    /// The size of the pod's /dev/shm (64m by default); not an rkt 1.30 flag
    #[arg(long = "shm-size", value_parser = |v: &str| stage0::spec::parse_size(v).map_err(|e| e.to_string()))]
    pub shm_size: Option<u64>,
}

impl RuntimeArgs {
    fn spec(&self) -> stage0::RuntimeSpec {
        stage0::RuntimeSpec {
            net: self.net.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_opt: self.dns_opt.clone(),
            dns_domain: self.dns_domain.clone(),
            hostname: self.hostname.clone(),
            hosts_entries: self.hosts_entries.clone(),
            net_namespace: self.net_namespace.clone(),
            interactive: self.interactive,
            ipc: self.ipc,
            pid: self.pid,
            mds_register: self.mds_register,
            sysctls: self.sysctl.clone(),
            shm_size: self.shm_size,
            cgroup_parent: self.cgroup_parent.clone(),
        }
    }
}

pub fn run(global: &GlobalArgs, raw: &[String]) -> Result<()> {
    let (pod, apps) = rkt::grammar::parse(raw)?;
    Err(stage0::run(&config(global, &pod)?, &pod, &apps).into())
}

pub fn prepare(global: &GlobalArgs, raw: &[String]) -> Result<()> {
    let (pod, apps) = rkt::grammar::parse(raw)?;
    let uuid = stage0::prepare(&config(global, &pod)?, &pod, &apps)?;
    println!("{uuid}");
    Ok(())
}

/// The global flags' configuration; `--quiet` keeps download progress off stderr.
fn config(global: &GlobalArgs, pod: &stage0::PodSpec) -> Result<stage0::Config> {
    let mut config = global.config()?;
    if pod.quiet {
        config.progress = std::sync::Arc::new(image::fetch::NoProgress);
    }
    Ok(config)
}

pub fn run_prepared(global: &GlobalArgs, uuid: &str, runtime: &RuntimeArgs) -> Result<()> {
    Err(stage0::run_prepared(&global.config()?, uuid, &runtime.spec()).into())
}
