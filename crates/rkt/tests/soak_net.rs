//! Soak: run/stop/rm cycles of a pod on the default network (ptp, masquerade) with a forwarded
//! port that is used every cycle. Host-wide counts of everything a pod can leave behind are
//! taken before and after, printed, and must be equal: mounts, cgroups, veths, network
//! namespaces, IPAM reservations, iptables rules, pod directories, port reservations, and
//! open descriptors of this process (rkt itself lives for one command; a pod's supervisor
//! for one cycle).
//!
//! `SOAK_CYCLES` (default 50) sets the length; `SOAK_CYCLES=1000` is the long form. The counts
//! are host-wide, so this is a binary with one test, and nothing else that makes pods or
//! networks may run at the same time (CI runs test binaries one after another).

mod common;

use common::pods::busybox;
use common::Rkt;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count(cmd: &str) -> usize {
    sh(cmd).lines().filter(|l| !l.trim().is_empty()).count()
}

/// Everything a pod could leave on the host, counted.
fn host_counts(rkt: &Rkt) -> BTreeMap<&'static str, usize> {
    let dir = rkt.dir.path().display().to_string();
    BTreeMap::from([
        ("mounts", mounts()),
        (
            "mounts of the store",
            count(&format!("grep -F '{dir}/' /proc/self/mountinfo || true")),
        ),
        (
            "pod cgroups",
            count("find /sys/fs/cgroup/rkt.slice /sys/fs/cgroup/*/rkt.slice -mindepth 1 -type d 2>/dev/null || true"),
        ),
        ("veths", count("ip -o link show type veth")),
        ("pod netns", count("ls /run/netns 2>/dev/null | grep '^rkt-' || true")),
        (
            "IPAM reservations",
            count("find /var/lib/cni/networks -type f ! -name 'last_reserved_ip*' ! -name lock 2>/dev/null || true"),
        ),
        ("iptables nat rules", count("iptables -w -t nat -S")),
        ("iptables filter rules", count("iptables -w -t filter -S")),
        ("pod dirs", common::pods::pod_dirs(rkt).len()),
        (
            "port reservations",
            count("cat /run/rkt/ports/* 2>/dev/null || true"),
        ),
        ("fds of this process", own_fds()),
    ])
}

/// Mounts in this mount namespace, except network namespaces other programs pinned in
/// /run/netns (a pod's are `rkt-<uuid>`, and count).
fn mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            let target = l.split(' ').nth(4).unwrap_or("");
            !target.starts_with("/run/netns/") || target.starts_with("/run/netns/rkt-")
        })
        .count()
}

fn own_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

use test_support::free_port;

/// GET / through the forwarded port; the pod's httpd serves a page naming the cycle.
fn get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn run_stop_rm_cycles_on_the_default_network_leak_nothing() {
    if !common::require_root() {
        return;
    }
    assert!(
        std::path::Path::new("/usr/lib/cni/ptp").exists(),
        "/usr/lib/cni/ptp missing: scripts/install-deps.sh installs containernetworking-plugins"
    );
    let cycles: usize = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    let rkt = Rkt::new();
    let image = busybox();
    rkt.ok(&["fetch", &image]);
    let port = free_port();
    let flag = format!("--port=8080-tcp:{port}");
    // One warm-up cycle: the first pod creates what stays for good (the nat chains of the
    // default network, its IPAM directory).
    let run_cycle = |i: usize| {
        let save = rkt.config.path().join("uuid");
        let mut child = rkt
            .cmd()
            .args([
                "run",
                "--net=default",
                &flag,
                &format!("--uuid-file-save={}", save.display()),
                &image,
                "--exec=/bin/sh",
                "--",
                "-c",
                &format!("echo cycle-{i} > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"),
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let page = common::eventually(Duration::from_secs(30), "the forwarded port", || {
            get(port).filter(|p| p.contains(&format!("cycle-{i}")))
        });
        assert!(page.contains("200 OK"), "{page}");
        let uuid = std::fs::read_to_string(&save).unwrap();
        rkt.ok(&["stop", &uuid]);
        child.wait().unwrap();
        rkt.ok(&["rm", &uuid]);
    };
    run_cycle(0);
    let before = host_counts(&rkt);
    let t = Instant::now();
    for i in 1..=cycles {
        run_cycle(i);
        if i % 100 == 0 {
            eprintln!("{i} cycles, {:?}", t.elapsed());
        }
    }
    let took = t.elapsed();
    let after = host_counts(&rkt);
    eprintln!("{cycles} run/stop/rm cycles with --net=default and a forwarded port in {took:?}");
    eprintln!("{:<24} {:>8} {:>8}", "", "before", "after");
    for (k, v) in &before {
        eprintln!("{k:<24} {v:>8} {:>8}", after[k]);
    }
    assert_eq!(before, after, "something grew over {cycles} cycles");
}
