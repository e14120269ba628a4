//! A pod's rules in iptables' nat table, installed and removed in one `iptables-restore` each.
//!
//! Host ports forwarded into the pod are laid out as rkt did it: a `RKT-PFWD-DNAT-<uuid8>`
//! chain (jumped to from PREROUTING and OUTPUT for local destinations) and a
//! `RKT-PFWD-SNAT-<uuid8>` chain (from POSTROUTING, so that connections to 127.0.0.1 are
//! masqueraded and reach the pod).
//!
//! Masquerading for rkt's built-in networks is here too (`RKT-MASQ-<uuid8>`, the same two
//! rules the ptp plugin's ipMasq makes: accept the pod's own subnet, masquerade the rest but
//! multicast). The plugin would spend seven iptables runs on ADD and more on DEL; this is one
//! batch shared with the ports. Networks from net.d keep their plugin's own ipMasq.
//!
//! DNAT binds no socket, so host ports are reserved in `/run/rkt/ports`: one file per
//! forwarded port naming the pod, checked under a lock. `/run` is emptied on reboot exactly
//! when the rules are, and a reservation whose pod has no network namespace any more is
//! stale and taken over.

use crate::{host_err, Result};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RESERVATIONS: &str = "/run/rkt/ports";

/// One `--port`, resolved against the image's ports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Forward {
    /// The image's port name (`80-tcp`).
    pub name: String,
    pub protocol: String,
    /// None: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub pod_port: u16,
}

impl Forward {
    fn describe(&self) -> String {
        match self.host_ip {
            Some(ip) => format!("{ip}:{}/{}", self.host_port, self.protocol),
            None => format!("{}/{}", self.host_port, self.protocol),
        }
    }

    fn reservation(&self) -> PathBuf {
        let ip = self.host_ip.map_or("any".to_string(), |i| i.to_string());
        Path::new(RESERVATIONS).join(format!("{}-{ip}-{}", self.protocol, self.host_port))
    }
}

fn dnat_chain(uuid: &str) -> String {
    format!("RKT-PFWD-DNAT-{}", &uuid[..8.min(uuid.len())])
}

fn snat_chain(uuid: &str) -> String {
    format!("RKT-PFWD-SNAT-{}", &uuid[..8.min(uuid.len())])
}

fn masq_chain(uuid: &str) -> String {
    format!("RKT-MASQ-{}", &uuid[..8.min(uuid.len())])
}

/// Masquerading of a pod's address, except towards its own subnet.
#[derive(Debug, Clone, Copy)]
pub struct Masquerade {
    pub pod_ip: Ipv4Addr,
    pub subnet: (Ipv4Addr, u8),
}

/// Reserves the host ports and installs the rules. On failure nothing of this pod's stays.
pub fn setup(
    uuid: &str,
    masq: Option<Masquerade>,
    pod_ip: Ipv4Addr,
    forwards: &[Forward],
) -> Result<()> {
    if forwards.is_empty() && masq.is_none() {
        return Ok(());
    }
    let done = reserve(uuid, forwards)
        .and_then(|()| match forwards.is_empty() {
            true => Ok(()),
            false => route_localnet(pod_ip),
        })
        .and_then(|()| restore(&rules(uuid, masq, pod_ip, forwards)));
    if done.is_err() {
        let _ = teardown(uuid);
    }
    done
}

/// Removes the pod's rules and reservations; safe to call again.
pub fn teardown(uuid: &str) -> Result<()> {
    let ours = [dnat_chain(uuid), snat_chain(uuid), masq_chain(uuid)];
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .map_err(|e| host_err(format!("running iptables: {e}; install iptables")))?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut batch = String::from("*nat\n");
    let mut chains = Vec::new();
    for line in listing.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("-N"), Some(c)) if ours.iter().any(|o| o == c) => chains.push(c.to_string()),
            (Some("-A"), Some(c)) if !ours.iter().any(|o| o == c) => {
                let target = line.rsplit(' ').next().unwrap_or("");
                if ours.iter().any(|o| o == target) {
                    batch.push_str(&format!("-D {}\n", &line[3..]));
                }
            }
            _ => {}
        }
    }
    for c in &chains {
        batch.push_str(&format!("-F {c}\n-X {c}\n"));
    }
    if batch.len() > "*nat\n".len() {
        batch.push_str("COMMIT\n");
        restore(&batch)?;
    }
    release(uuid);
    Ok(())
}

fn rules(uuid: &str, masq: Option<Masquerade>, pod_ip: Ipv4Addr, forwards: &[Forward]) -> String {
    let mut r = String::from("*nat\n");
    if let Some(m) = masq {
        let c = masq_chain(uuid);
        let (net, len) = m.subnet;
        r.push_str(&format!(
            ":{c} - [0:0]\n-A POSTROUTING -s {ip} -j {c}\n-A {c} -d {net}/{len} -j ACCEPT\n\
             -A {c} ! -d 224.0.0.0/4 -j MASQUERADE\n",
            ip = m.pod_ip
        ));
    }
    if forwards.is_empty() {
        r.push_str("COMMIT\n");
        return r;
    }
    let (dnat, snat) = (dnat_chain(uuid), snat_chain(uuid));
    r.push_str(&format!(
        ":{dnat} - [0:0]\n:{snat} - [0:0]\n\
         -I PREROUTING 1 -m addrtype --dst-type LOCAL -j {dnat}\n\
         -I OUTPUT 1 -m addrtype --dst-type LOCAL -j {dnat}\n\
         -I POSTROUTING 1 -s 127.0.0.1 ! -d 127.0.0.1 -j {snat}\n"
    ));
    for f in forwards {
        let dst = f.host_ip.map_or("0.0.0.0/0".to_string(), |i| i.to_string());
        r.push_str(&format!(
            "-A {dnat} -d {dst} -p {p} -m {p} --dport {hp} -j DNAT --to-destination {pod_ip}:{pp}\n\
             -A {snat} -s 127.0.0.1 -d {pod_ip} -p {p} -m {p} --dport {pp} -j MASQUERADE\n",
            p = f.protocol,
            hp = f.host_port,
            pp = f.pod_port,
        ));
    }
    r.push_str("COMMIT\n");
    r
}

fn restore(batch: &str) -> Result<()> {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| host_err(format!("running iptables-restore: {e}; install iptables")))?;
    let _ = child
        .stdin
        .take()
        .expect("piped")
        .write_all(batch.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| host_err(format!("iptables-restore: {e}")))?;
    if !out.status.success() {
        return Err(host_err(format!(
            "iptables-restore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Connections to 127.0.0.1 leave with a loopback source, which the kernel routes out of a
/// real interface only where route_localnet is on: set it on the host side of the pod's link.
fn route_localnet(pod_ip: Ipv4Addr) -> Result<()> {
    let Some(dev) = route_device(pod_ip) else {
        return Err(host_err(format!(
            "no host route to the pod's address {pod_ip}"
        )));
    };
    let p = format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet");
    std::fs::write(&p, "1").map_err(|e| host_err(format!("writing {p}: {e}")))
}

/// The interface the host routes `ip` through (longest prefix in /proc/net/route).
fn route_device(ip: Ipv4Addr) -> Option<String> {
    route_device_in(&std::fs::read_to_string("/proc/net/route").ok()?, ip)
}

fn route_device_in(table: &str, ip: Ipv4Addr) -> Option<String> {
    let target = u32::from(ip);
    // Addresses are the kernel's network-order bytes printed as a native-endian number.
    let addr = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|raw| u32::from_be_bytes(raw.to_ne_bytes()))
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dest, mask) = (addr(f.get(1)?)?, addr(f.get(7)?)?);
            (mask != 0 && target & mask == dest).then(|| (mask.count_ones(), f[0].to_string()))
        })
        .max()
        .map(|(_, dev)| dev)
}

/// Reserves every host port or none: a port forwarded by another pod, or one a host process
/// listens on, is refused with its name.
fn reserve(uuid: &str, forwards: &[Forward]) -> Result<()> {
    std::fs::create_dir_all(RESERVATIONS)
        .map_err(|e| host_err(format!("creating {RESERVATIONS}: {e}")))?;
    let _lock = lock()?;
    for f in forwards {
        if let Some(other) = conflicting(f, uuid) {
            return Err(crate::conflict_err(format!(
                "host port {} is already forwarded to pod {other}; choose another host port",
                f.describe()
            )));
        }
        if let Err(e) = probe(f) {
            return Err(crate::conflict_err(format!(
                "host port {} is in use on the host ({e}); choose another host port",
                f.describe()
            )));
        }
    }
    for f in forwards {
        std::fs::write(f.reservation(), uuid)
            .map_err(|e| host_err(format!("reserving host port {}: {e}", f.describe())))?;
    }
    Ok(())
}

fn lock() -> Result<std::fs::File> {
    let p = Path::new(RESERVATIONS).join(".lock");
    let f = std::fs::File::create(&p).map_err(|e| host_err(format!("{}: {e}", p.display())))?;
    // Released when the file closes.
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| host_err(format!("locking {}: {e}", p.display())))?;
    Ok(f)
}

/// The pod holding a live reservation that overlaps `f` (same port and protocol, and the
/// same address or either one being every address).
fn conflicting(f: &Forward, uuid: &str) -> Option<String> {
    let entries = std::fs::read_dir(RESERVATIONS).ok()?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.splitn(3, '-');
        let (Some(proto), Some(ip), Some(port)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let same_ip = ip == "any"
            || f.host_ip.is_none()
            || f.host_ip.map(|i| i.to_string()).as_deref() == Some(ip);
        if proto != f.protocol || port != f.host_port.to_string() || !same_ip {
            continue;
        }
        let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
        if owner != uuid && crate::netns::path_for(&owner).exists() {
            return Some(owner);
        }
    }
    None
}

/// Binds the host port for a moment, so that a port a host process already uses is refused
/// instead of silently shadowed.
fn probe(f: &Forward) -> std::io::Result<()> {
    let ip = f.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    match f.protocol.as_str() {
        "udp" => std::net::UdpSocket::bind((ip, f.host_port)).map(drop),
        _ => std::net::TcpListener::bind((ip, f.host_port)).map(drop),
    }
}

fn release(uuid: &str) {
    let Ok(entries) = std::fs::read_dir(RESERVATIONS) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name() != ".lock" && std::fs::read_to_string(e.path()).is_ok_and(|o| o == uuid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_as_rkt_laid_them_out() {
        let f = Forward {
            name: "80-tcp".into(),
            protocol: "tcp".into(),
            host_ip: None,
            host_port: 8080,
            pod_port: 80,
        };
        let pod_ip = Ipv4Addr::new(172, 16, 28, 2);
        let masq = Masquerade {
            pod_ip,
            subnet: (Ipv4Addr::new(172, 16, 28, 0), 24),
        };
        let r = rules("0123456789ab", Some(masq), pod_ip, &[f]);
        assert!(r.contains("-A POSTROUTING -s 172.16.28.2 -j RKT-MASQ-01234567\n"));
        assert!(r.contains("-A RKT-MASQ-01234567 -d 172.16.28.0/24 -j ACCEPT\n"));
        assert!(r.contains("-A RKT-MASQ-01234567 ! -d 224.0.0.0/4 -j MASQUERADE\n"));
        assert!(
            r.contains("-I PREROUTING 1 -m addrtype --dst-type LOCAL -j RKT-PFWD-DNAT-01234567\n")
        );
        assert!(r.contains("-A RKT-PFWD-DNAT-01234567 -d 0.0.0.0/0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.16.28.2:80\n"));
        assert!(r.contains("-A RKT-PFWD-SNAT-01234567 -s 127.0.0.1 -d 172.16.28.2 -p tcp -m tcp --dport 80 -j MASQUERADE\n"));
    }

    #[test]
    fn longest_route_wins() {
        let hex = |ip: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(ip));
        let table = format!(
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t{}\t0\t3\t0\t0\t0\t{}\n\
             veth1\t{}\t0\t1\t0\t0\t0\t{}\n\
             br0\t{}\t0\t1\t0\t0\t0\t{}\n",
            hex([0, 0, 0, 0]),
            hex([0, 0, 0, 0]),
            hex([172, 16, 28, 2]),
            hex([255, 255, 255, 255]),
            hex([172, 16, 28, 0]),
            hex([255, 255, 255, 0]),
        );
        let dev = |ip: [u8; 4]| route_device_in(&table, Ipv4Addr::from(ip));
        assert_eq!(dev([172, 16, 28, 2]).as_deref(), Some("veth1"));
        assert_eq!(dev([172, 16, 28, 3]).as_deref(), Some("br0"));
        assert_eq!(
            dev([10, 0, 0, 1]),
            None,
            "the default route is not the pod's link"
        );
    }
}
