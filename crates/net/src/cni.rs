//! Running CNI plugins as the CNI specification says: the command and the pod in `CNI_*`
//! environment variables, the network configuration on stdin, the result (or an error
//! object) on stdout. Results of every spec version from 0.1.0 to 1.0.0 are read.

use crate::{host_err, Result};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where plugins are looked for: `CNI_PATH` (an operator's own plugins) first, then Debian's
/// `containernetworking-plugins` and the conventional `/opt/cni/bin`.
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    dirs.extend(["/usr/lib/cni", "/opt/cni/bin"].map(PathBuf::from));
    dirs
}

/// The plugin binary for a network type.
pub fn find_plugin(network: &str, plugin: &str) -> Result<PathBuf> {
    let dirs = search_path();
    dirs.iter()
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            host_err(format!(
                "network {network:?}: CNI plugin {plugin:?} not found in {}; install \
                 containernetworking-plugins or put the plugin in CNI_PATH",
                list.join(":")
            ))
        })
}

/// One plugin call's parameters.
pub struct Call<'a> {
    pub network: &'a str,
    pub plugin: &'a Path,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: &'a str,
}

impl Call<'_> {
    /// Runs `command` (ADD, DEL, CHECK) with `conf` on stdin; returns the plugin's stdout.
    pub fn run(&self, command: &str, conf: &Value) -> Result<Value> {
        let stdin = conf_file(conf).map_err(|e| {
            host_err(format!(
                "network {:?}: the configuration for {}: {e}",
                self.network,
                self.plugin.display()
            ))
        })?;
        let path: Vec<String> = search_path()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        let child = Command::new(self.plugin)
            .env_clear()
            .env("PATH", host_path())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", self.container_id)
            .env("CNI_NETNS", self.netns)
            .env("CNI_IFNAME", self.ifname)
            .env("CNI_ARGS", self.args)
            .env("CNI_PATH", path.join(":"))
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                host_err(format!(
                    "network {:?}: running {}: {e}",
                    self.network,
                    self.plugin.display()
                ))
            })?;
        let out = child
            .wait_with_output()
            .map_err(|e| host_err(format!("network {:?}: {e}", self.network)))?;
        let stdout: Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
        };
        if out.status.success() {
            return Ok(stdout);
        }
        let msg = stdout
            .get("msg")
            .and_then(Value::as_str)
            .map(|m| match stdout.get("details").and_then(Value::as_str) {
                Some(d) if !d.is_empty() => format!("{m}: {d}"),
                _ => m.to_string(),
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        Err(host_err(format!(
            "network {:?}: CNI {command} with plugin {} failed: {msg}",
            self.network,
            self.plugin.display()
        )))
    }
}

/// The configuration as a plugin reads it on stdin: an anonymous file, not a pipe. A plugin
/// that exits without reading (an early error, or no need) would otherwise leave rkt writing
/// to a closed pipe, and rkt, which dies of SIGPIPE as Go's rkt did, would die with it,
/// silently, in the middle of `rm` or `gc`. A file also cannot block on a full pipe.
fn conf_file(conf: &Value) -> std::io::Result<std::fs::File> {
    use rustix::fs::{memfd_create, MemfdFlags};
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::from(memfd_create("cni-conf", MemfdFlags::CLOEXEC)?);
    serde_json::to_writer(&mut file, conf)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

fn host_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
}

/// What rkt keeps of a plugin's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub ip: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Dns,
}

/// DNS settings a plugin returned.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// Reads an ADD result: `ip4` (spec 0.1.0 and 0.2.0) or `ips` (0.3.0 to 1.0.0).
pub fn outcome(result: &Value) -> Outcome {
    let address = result
        .pointer("/ip4/ip")
        .and_then(Value::as_str)
        .map(|a| (a, result.pointer("/ip4/gateway")))
        .or_else(|| {
            result
                .get("ips")
                .and_then(Value::as_array)?
                .iter()
                .filter(|ip| ip.get("version").and_then(Value::as_str) != Some("6"))
                .find_map(|ip| {
                    let a = ip.get("address").and_then(Value::as_str)?;
                    a.parse::<Cidr>().ok()?;
                    Some((a, ip.get("gateway")))
                })
        });
    let mut o = Outcome {
        dns: result
            .get("dns")
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default(),
        ..Default::default()
    };
    if let Some((addr, gw)) = address {
        if let Ok(c) = addr.parse::<Cidr>() {
            o.ip = Some(c.0);
            o.prefix = c.1;
        }
        o.gateway = gw.and_then(Value::as_str).and_then(|g| g.parse().ok());
    }
    o
}

/// An IPv4 address with its prefix length (`172.16.28.2/24`).
struct Cidr(Ipv4Addr, u8);

impl std::str::FromStr for Cidr {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Cidr, ()> {
        let (ip, len) = s.split_once('/').ok_or(())?;
        let len: u8 = len.parse().map_err(|_| ())?;
        (len <= 32).then_some(()).ok_or(())?;
        Ok(Cidr(ip.parse().map_err(|_| ())?, len))
    }
}

/// A prefix length as a dotted mask, as rkt's `mask` field shows it.
pub fn mask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    };
    Ipv4Addr::from(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_of_every_version() {
        let old = json!({"cniVersion": "0.1.0", "ip4": {"ip": "172.16.28.5/24", "gateway": "172.16.28.1"},
            "dns": {"nameservers": ["10.0.0.53"]}});
        let o = outcome(&old);
        assert_eq!(o.ip, Some(Ipv4Addr::new(172, 16, 28, 5)));
        assert_eq!(
            (o.prefix, o.gateway),
            (24, Some(Ipv4Addr::new(172, 16, 28, 1)))
        );
        assert_eq!(o.dns.nameservers, ["10.0.0.53"]);
        let v04 = json!({"cniVersion": "0.4.0", "ips": [
            {"version": "6", "address": "fd00::2/64"},
            {"version": "4", "address": "10.1.2.3/16", "gateway": "10.1.0.1", "interface": 1}]});
        assert_eq!(outcome(&v04).ip, Some(Ipv4Addr::new(10, 1, 2, 3)));
        let v1 = json!({"cniVersion": "1.0.0", "ips": [{"address": "fd00::2/64"}, {"address": "10.9.0.7/8"}]});
        let o = outcome(&v1);
        assert_eq!(
            (o.ip, o.prefix, o.gateway),
            (Some(Ipv4Addr::new(10, 9, 0, 7)), 8, None)
        );
        assert_eq!(outcome(&json!({})), Outcome::default());
    }

    #[test]
    fn masks() {
        assert_eq!(mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(mask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(mask(32), Ipv4Addr::new(255, 255, 255, 255));
    }
}
