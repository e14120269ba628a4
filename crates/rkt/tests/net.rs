//! Contained networks for real: CNI plugins from containernetworking-plugins, a namespace per
//! pod, forwarded host ports, DNS, and teardown. Traffic goes only to loopback, to pod IPs,
//! and to a network namespace these tests make to play "another host".
//!
//! The tests share the host's nat table, /run/netns and the default network's address range,
//! so they take turns (one lock), and each checks that it left nothing behind.

mod common;

use common::{Registry, Rkt};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::with_fixtures("plain"))
}

fn busybox() -> String {
    registry().image("busybox:latest")
}

/// One networking test at a time.
fn turn() -> Option<MutexGuard<'static, ()>> {
    static LOCK: Mutex<()> = Mutex::new(());
    if !common::require_root() {
        return None;
    }
    if !std::path::Path::new("/usr/lib/cni/ptp").exists() {
        panic!("/usr/lib/cni/ptp missing: scripts/install-deps.sh installs containernetworking-plugins");
    }
    Some(LOCK.lock().unwrap_or_else(|e| e.into_inner()))
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

use test_support::free_port;

/// A network namespace of the test's own, linked to the host by a veth pair: "another host"
/// at `peer_ip`, which sees the host at `host_ip`.
struct Peer {
    ns: String,
    host_ip: String,
    peer_ip: String,
}

impl Peer {
    fn new(n: u8) -> Peer {
        let ns = format!("rkt-test-peer{n}");
        let (host_ip, peer_ip) = (format!("10.213.{n}.1"), format!("10.213.{n}.2"));
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(std::process::Stdio::null())
            .status();
        sh(&format!(
            "ip netns add {ns} && ip link add rkttp{n}h type veth peer name rkttp{n}p netns {ns} && \
             ip addr add {host_ip}/30 dev rkttp{n}h && ip link set rkttp{n}h up && \
             ip -n {ns} addr add {peer_ip}/30 dev rkttp{n}p && ip -n {ns} link set rkttp{n}p up && \
             ip -n {ns} link set lo up"
        ));
        Peer {
            ns,
            host_ip,
            peer_ip,
        }
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(args);
        c
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// A pod started in the background with `rkt run`; stopped and removed when dropped.
struct RunningPod<'a> {
    rkt: &'a Rkt,
    child: Child,
    uuid: String,
}

impl<'a> RunningPod<'a> {
    fn start(rkt: &'a Rkt, pod_flags: &[&str], app_args: &[&str]) -> RunningPod<'a> {
        let uuid_file = rkt.config.path().join(format!("uuid-{}", nanos()));
        let save = format!("--uuid-file-save={}", uuid_file.display());
        let image = busybox();
        let mut args = vec!["run", save.as_str()];
        args.extend_from_slice(pod_flags);
        args.push(&image);
        args.extend_from_slice(app_args);
        let mut child = rkt.cmd().args(&args).spawn().unwrap();
        test_support::eventually(Duration::from_secs(30), "the pod's UUID", || {
            if let Some(s) = child.try_wait().unwrap() {
                panic!("rkt {args:?} exited early: {s}");
            }
            uuid_file.exists().then_some(())
        });
        let uuid = std::fs::read_to_string(&uuid_file).unwrap();
        rkt.ok(&["status", "--wait-ready=10s", &uuid]);
        RunningPod { rkt, child, uuid }
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.rkt.ok(&["status", "--format=json", &self.uuid])).unwrap()
    }

    fn ip(&self, net: usize) -> String {
        self.status()["networks"][net]["ip"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for RunningPod<'_> {
    fn drop(&mut self) {
        let _ = self.rkt.run(&["stop", "--force", &self.uuid]);
        let _ = self.child.wait();
        let _ = self.rkt.run(&["rm", &self.uuid]);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// How long a server in a pod may take to listen.
const LISTENING: Duration = Duration::from_secs(10);

fn http_get(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn curl(url: &str) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sf", "-m", "2", url]);
    c
}

/// Sends one datagram to `addr` (from the host, or from `peer`) and returns the echo.
fn udp_echo(peer: Option<&Peer>, addr: &str, payload: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = format!(
        "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5); \
         s.sendto(b'{payload}', ('{host}', {port})); print(s.recvfrom(100)[0].decode())"
    );
    let mut c = match peer {
        Some(p) => p.exec(&["python3", "-c", &script]),
        None => {
            let mut c = Command::new("python3");
            c.args(["-c", &script]);
            c
        }
    };
    http_get(&mut c).map(|s| s.trim().to_string())
}

/// What a pod's network could leave behind on the host: its namespace, IPAM reservations,
/// nat rules and chains, port reservations, and veths still carrying pod-side gateway
/// addresses of the test networks.
fn leftovers(uuids: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let nat = sh("iptables -w -t nat -S");
    let ipam = sh("grep -rl . /var/lib/cni/networks 2>/dev/null || true");
    for u in uuids {
        if std::path::Path::new(&format!("/run/netns/rkt-{u}")).exists() {
            found.push(format!("netns rkt-{u}"));
        }
        for line in nat
            .lines()
            .filter(|l| l.contains(u.as_str()) || l.contains(&u[..8]))
        {
            found.push(format!("nat rule: {line}"));
        }
        for f in ipam.lines() {
            if std::fs::read_to_string(f).is_ok_and(|c| c.contains(u.as_str())) {
                found.push(format!("IPAM reservation {f}"));
            }
        }
        if sh("cat /run/rkt/ports/* 2>/dev/null || true").contains(u.as_str()) {
            found.push(format!("port reservation of {u}"));
        }
    }
    for line in sh("ip -o -4 addr show").lines() {
        if line.contains("172.16.28.") || line.contains("172.31.") || line.contains("10.214.") {
            found.push(format!("interface: {line}"));
        }
    }
    found
}

fn uuids_of(rkt: &Rkt) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&rkt.ok(&["list", "--format=json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn write_net(rkt: &Rkt, file: &str, json: &str) {
    let d = rkt.config.path().join("net.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(file), json).unwrap();
}

#[test]
fn pod_is_reached_at_its_ip_and_forwarded_ports_and_reaches_out_through_masquerade() {
    let Some(_turn) = turn() else { return };
    let rkt = Rkt::new();
    let peer = Peer::new(1);
    let (tcp, udp) = (free_port(), free_port());
    let mut uuids = Vec::new();
    {
        let tcp_flag = format!("--port=8080-tcp:{tcp}");
        let udp_flag = format!("--port=53-udp:{udp}");
        let web = RunningPod::start(
            &rkt,
            &["--net=default", &tcp_flag, &udp_flag],
            &[
                "--exec",
                "/bin/httpd",
                "--",
                "-f",
                "-p",
                "8080",
                "-h",
                "/www",
            ],
        );
        uuids.push(web.uuid.clone());
        let ip = web.ip(0);
        assert!(ip.starts_with("172.16.28."), "{ip}");
        let st = web.status();
        let n = &st["networks"][0];
        assert_eq!(n["netName"], "default");
        assert_eq!(n["ifName"], "eth0");
        assert_eq!(n["mask"], "255.255.255.0");
        assert_eq!(n["pluginPath"], "/usr/lib/cni/ptp");
        let pod_dir = rkt.dir.path().join("pods/run").join(&web.uuid);
        assert!(pod_dir.join("net-info.json").exists());
        let text = rkt.ok(&["status", &web.uuid]);
        assert!(
            text.contains(&format!("networks=default:ip4={ip}\n")),
            "{text}"
        );
        assert!(rkt.ok(&["list"]).contains(&format!("default:ip4={ip}")));

        let page = "hello from rkt";
        let at_ip = test_support::eventually(LISTENING, "the pod IP", || {
            http_get(&mut curl(&format!("http://{ip}:8080/")))
        });
        assert!(at_ip.contains(page));
        let local = http_get(&mut curl(&format!("http://127.0.0.1:{tcp}/"))).expect("localhost");
        assert!(local.contains(page));
        let url = format!("http://{}:{tcp}/", peer.host_ip);
        let remote =
            http_get(&mut peer.exec(&["curl", "-sf", "-m", "2", &url])).expect("from another host");
        assert!(remote.contains(page));
        drop(web);

        // UDP: an echo server (the host's python, lent to the pod read-only) behind a
        // forwarded UDP port.
        let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',53))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(d,a)\n";
        let pod = RunningPod::start(
            &rkt,
            &[
                "--net=default",
                &udp_flag,
                "--volume=usr,kind=host,source=/usr,readOnly=true",
                "--volume=lib,kind=host,source=/usr/lib,readOnly=true",
                "--volume=lib64,kind=host,source=/usr/lib64,readOnly=true",
                "--mount=volume=usr,target=/usr",
                "--mount=volume=lib,target=/lib",
                "--mount=volume=lib64,target=/lib64",
            ],
            &["--user=0", "--exec", "/usr/bin/python3", "--", "-c", echo],
        );
        uuids.push(pod.uuid.clone());
        let from_host = test_support::eventually(LISTENING, "UDP echo through 127.0.0.1", || {
            udp_echo(None, &format!("127.0.0.1:{udp}"), "ping-local")
        });
        assert_eq!(from_host, "ping-local");
        let from_peer = udp_echo(
            Some(&peer),
            &format!("{}:{udp}", peer.host_ip),
            "ping-remote",
        );
        assert_eq!(from_peer.as_deref(), Some("ping-remote"));
        drop(pod);

        // Out through masquerade: the peer has no route back to pod addresses, so an answer
        // proves the pod's traffic left with the host's address.
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), "from the other host").unwrap();
        let mut server = peer
            .exec(&[
                "busybox",
                "httpd",
                "-f",
                "-p",
                &format!("{}:8000", peer.peer_ip),
                "-h",
            ])
            .arg(www.path())
            .spawn()
            .unwrap();
        let url = format!("http://{}:8000/", peer.peer_ip);
        let out = rkt.cmd().args(["run", "--net=default", &busybox(), "--exec", "/bin/sh", "--", "-c"])
            .arg(format!("for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- {url} && exit 0; sleep 0.2; done; exit 1"))
            .output()
            .unwrap();
        let _ = server.kill();
        let _ = server.wait();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from the other host");
        uuids.extend(uuids_of(&rkt));
        assert_eq!(uuids.len(), 3);
    }
    assert_eq!(leftovers(&uuids), Vec::<String>::new());
}

#[test]
fn several_networks_cni_args_and_dns_from_the_network() {
    let Some(_turn) = turn() else { return };
    let rkt = Rkt::new();
    write_net(
        &rkt,
        "10-extra.conf",
        r#"{"cniVersion": "0.4.0", "name": "extra", "type": "ptp",
            "ipam": {"type": "host-local", "subnet": "10.214.0.0/24"},
            "dns": {"nameservers": ["10.214.0.53"], "search": ["svc.test"]}}"#,
    );
    let show = [
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "busybox ip -o -4 addr; cat /etc/resolv.conf",
    ];
    let mut args = vec!["run", "--net=default,extra:IP=10.214.0.50"];
    let image = busybox();
    args.push(&image);
    args.extend_from_slice(&show);
    let out = rkt.ok(&args);
    assert!(
        out.contains("eth0") && out.contains("inet 172.16.28."),
        "{out}"
    );
    assert!(
        out.contains("eth1") && out.contains("inet 10.214.0.50/24"),
        "{out}"
    );
    assert!(
        out.contains("lo") && out.contains("inet 127.0.0.1/8"),
        "{out}"
    );
    // The network's DNS, since no --dns was given.
    assert!(
        out.contains("nameserver 10.214.0.53\nsearch svc.test"),
        "{out}"
    );
    let uuid = uuids_of(&rkt).pop().unwrap();
    let st: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["status", "--format=json", &uuid])).unwrap();
    assert_eq!(st["networks"][1]["netName"], "extra");
    assert_eq!(st["networks"][1]["args"], "IP=10.214.0.50");
    assert!(st["networks"][1]["netConf"]
        .as_str()
        .unwrap()
        .ends_with("net.d/10-extra.conf"));

    // --dns wins over the network's.
    let mut args = vec!["run", "--net=extra", "--dns=10.9.9.9"];
    args.push(&image);
    args.extend_from_slice(&["--exec", "/bin/cat", "--", "/etc/resolv.conf"]);
    assert_eq!(rkt.ok(&args), "nameserver 10.9.9.9\n");
    // A bare --net is the default network.
    let out = rkt.ok(&[
        "run",
        "--net",
        &image,
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "busybox ip -o -4 addr",
    ]);
    assert!(out.contains("inet 172.16.28."), "{out}");
    // default-restricted: its own range, no default route.
    let out = rkt.ok(&[
        "run",
        "--net=default-restricted",
        &image,
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "busybox ip -4 addr; busybox ip route",
    ]);
    assert!(
        out.contains("inet 172.31.") && !out.contains("default via"),
        "{out}"
    );
    let uuids = uuids_of(&rkt);
    // Pods that exited on their own were torn down by their supervisor, before any rm.
    assert_eq!(leftovers(&uuids), Vec::<String>::new());
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert_eq!(uuids_of(&rkt), Vec::<String>::new());
}

#[test]
fn network_goes_after_a_killed_supervisor_on_stop() {
    let Some(_turn) = turn() else { return };
    let rkt = Rkt::new();
    let port = free_port();
    let flag = format!("--port=8080-tcp:{port}");
    let pod = RunningPod::start(
        &rkt,
        &["--net=default", &flag],
        &["--exec", "/bin/sleep", "--", "1000"],
    );
    let dir = rkt.dir.path().join("pods/run").join(&pod.uuid);
    let supervisor: i32 = std::fs::read_to_string(dir.join("ppid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: killing the pod's supervisor, which this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    // Dead: gone, or a zombie until `rkt run` (this test's child) is reaped.
    let stat = format!("/proc/{supervisor}/stat");
    test_support::eventually(Duration::from_secs(10), "the supervisor to die", || {
        std::fs::read_to_string(&stat)
            .map_or(true, |s| s.contains(") Z "))
            .then_some(())
    });
    assert!(std::path::Path::new(&format!("/run/netns/rkt-{}", pod.uuid)).exists());
    rkt.ok(&["stop", &pod.uuid]);
    assert_eq!(
        leftovers(std::slice::from_ref(&pod.uuid)),
        Vec::<String>::new()
    );
    // The port is free again for the next pod.
    let next = RunningPod::start(
        &rkt,
        &["--net=default", &flag],
        &["--exec", "/bin/sleep", "--", "1000"],
    );
    let uuids = vec![pod.uuid.clone(), next.uuid.clone()];
    drop(next);
    drop(pod);
    assert_eq!(leftovers(&uuids), Vec::<String>::new());
}

#[test]
fn bad_networks_and_ports_fail_and_leave_nothing() {
    let Some(_turn) = turn() else { return };
    let rkt = Rkt::new();
    let image = busybox();
    let netns_before = std::fs::read_dir("/run/netns")
        .map(|d| d.count())
        .unwrap_or(0);
    // Each bad start fails with `expect`, leaving only the pods in `pods` and their
    // namespaces.
    let check_with = |args: &[&str], expect: &str, pods: &[String]| {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.push(&image);
        all.extend_from_slice(&["--exec", "/bin/true"]);
        let err = rkt.fails(&all);
        assert!(
            err.contains(expect),
            "rkt {all:?}: {err:?} should contain {expect:?}"
        );
        assert_eq!(uuids_of(&rkt), pods, "rkt {all:?} left a pod");
        let netns = std::fs::read_dir("/run/netns")
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(
            netns,
            netns_before + pods.len(),
            "rkt {all:?} left a network namespace"
        );
    };
    let check = |args: &[&str], expect: &str| check_with(args, expect, &[]);
    check(&["--net=nosuch"], "network \"nosuch\" not found");
    check(
        // (A NUMBER-PROTOCOL name forwards that port even when no image declares it.)
        &["--net=default", "--port=nosuch:8080"],
        "port name \"nosuch\" could not be found in any apps",
    );
    check(
        &["--net=host", "--port=8080-tcp:18080"],
        "--port needs a contained network",
    );
    write_net(
        &rkt,
        "20-noplugin.conf",
        r#"{"name": "noplugin", "type": "nosuchplugin"}"#,
    );
    check(&["--net=noplugin"], "CNI plugin \"nosuchplugin\" not found");
    // A host port a host process listens on.
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    check(
        &["--net=default", &format!("--port=8080-tcp:{busy_port}")],
        &format!("host port {busy_port}/tcp is in use"),
    );
    drop(busy);
    // An address range with room for one pod.
    write_net(
        &rkt,
        "30-tiny.conf",
        r#"{"cniVersion": "1.0.0", "name": "tiny", "type": "ptp",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.214.1.0/24", "rangeStart": "10.214.1.10", "rangeEnd": "10.214.1.10"}]]}}"#,
    );
    let port = free_port();
    let flag = format!("--port=8080-tcp:{port}");
    let first = RunningPod::start(
        &rkt,
        &["--net=tiny", &flag],
        &["--exec", "/bin/sleep", "--", "1000"],
    );
    let only = vec![first.uuid.clone()];
    let check_beside = |args: &[&str], expect: &str| check_with(args, expect, &only);
    check_beside(&["--net=tiny"], "network \"tiny\"");
    check_beside(
        &["--net=default", &flag],
        &format!(
            "host port {port}/tcp is already forwarded to pod {}",
            first.uuid
        ),
    );
    // A broken file in net.d is named.
    write_net(&rkt, "40-broken.conf", "{not json");
    check_beside(&["--net=default"], "40-broken.conf is not valid JSON");
    drop(first);
    assert_eq!(leftovers(&only), Vec::<String>::new());
}

/// Many pods come and go through the default network with a forwarded port; afterwards no
/// veth, namespace, address reservation or rule of theirs is left.
#[test]
fn start_stop_cycles_leak_nothing() {
    let Some(_turn) = turn() else { return };
    let cycles: usize = std::env::var("RKT_TEST_NET_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let rkt = Rkt::new();
    let image = busybox();
    let port = free_port();
    let flag = format!("--port=8080-tcp:{port}");
    let mut uuids = Vec::new();
    for i in 0..cycles {
        if i % 2 == 0 {
            // Exits by itself: the supervisor tears the network down.
            rkt.ok(&["run", "--net=default", &flag, &image, "--exec", "/bin/true"]);
        } else {
            // Stopped from outside while running.
            let pod = RunningPod::start(
                &rkt,
                &["--net=default", &flag],
                &["--exec", "/bin/sleep", "--", "1000"],
            );
            rkt.ok(&["stop", &pod.uuid]);
            uuids.push(pod.uuid.clone());
        }
        for u in uuids_of(&rkt) {
            if !uuids.contains(&u) {
                uuids.push(u);
            }
        }
        rkt.ok(&["gc", "--grace-period=0s"]);
    }
    assert_eq!(uuids.len(), cycles);
    assert_eq!(leftovers(&uuids), Vec::<String>::new());
    assert_eq!(uuids_of(&rkt), Vec::<String>::new());
}

/// Nomad's order: `prepare` takes the ports, `run-prepared` the network.
#[test]
fn ports_from_prepare_are_forwarded_by_run_prepared() {
    let Some(_turn) = turn() else { return };
    let rkt = Rkt::new();
    let port = free_port();
    let flag = format!("--port=8080-tcp:{port}");
    let image = busybox();
    let uuid = rkt.ok(&[
        "prepare",
        &flag,
        &image,
        "--exec",
        "/bin/httpd",
        "--",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ]);
    let uuid = uuid.trim().to_string();
    let mut child = rkt
        .cmd()
        .args(["run-prepared", "--net=default", &uuid])
        .spawn()
        .unwrap();
    rkt.ok(&["status", "--wait-ready=10s", &uuid]);
    let page = test_support::eventually(LISTENING, "the forwarded port", || {
        http_get(&mut curl(&format!("http://127.0.0.1:{port}/")))
    });
    assert!(page.contains("hello from rkt"));
    rkt.ok(&["stop", &uuid]);
    let _ = child.wait();
    rkt.ok(&["rm", &uuid]);
    assert_eq!(leftovers(&[uuid]), Vec::<String>::new());
}

/// `--net-namespace` (an extension for Nomad's group networks): the pod joins a namespace
/// someone else made, and leaves it as it was.
#[test]
fn run_prepared_joins_an_existing_namespace_and_leaves_it() {
    let Some(_turn) = turn() else { return };
    let rkt = Rkt::new();
    let peer = Peer::new(3);
    let image = busybox();
    let uuid = rkt.ok(&[
        "prepare",
        &image,
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "busybox ip -o -4 addr",
    ]);
    let ns = format!("--net-namespace=/run/netns/{}", peer.ns);
    let out = rkt.ok(&["run-prepared", &ns, uuid.trim()]);
    assert!(out.contains(&format!("inet {}/30", peer.peer_ip)), "{out}");
    assert!(
        std::path::Path::new("/run/netns").join(&peer.ns).exists(),
        "the namespace stays"
    );
    let uuid = rkt.ok(&["prepare", &image, "--exec", "/bin/true"]);
    let err = rkt.fails(&[
        "run-prepared",
        "--net-namespace=/run/netns/no-such-ns",
        uuid.trim(),
    ]);
    assert!(
        err.contains("network namespace /run/netns/no-such-ns does not exist"),
        "{err}"
    );
    let err = rkt.fails(&["run-prepared", "--net=default", &ns, uuid.trim()]);
    assert!(err.contains("cannot be combined with --net"), "{err}");
    assert!(rkt
        .ok(&["status", uuid.trim()])
        .starts_with("state=prepared"));
    let uuids = uuids_of(&rkt);
    rkt.ok(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    assert_eq!(leftovers(&uuids), Vec::<String>::new());
}

/// A CNI plugin that makes a network and refuses to undo it: ADD answers with an address,
/// DEL fails as a broken plugin or a vanished host device would.
const STICKY_PLUGIN: &str = r#"#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.216.0.2/24"}]}' ;;
DEL) echo '{"code":11,"msg":"sticky refuses to delete"}'; exit 1 ;;
*) echo '{"cniVersion":"0.3.1"}' ;;
esac
"#;

/// A network that cannot be undone does not keep a pod: `stop`, `rm` and `gc` each finish
/// their work, succeed, and name the failed teardown on stderr (the library returns it; the
/// command prints it).
#[test]
fn a_network_that_cannot_be_undone_is_reported_and_the_pod_still_goes() {
    use std::os::unix::fs::PermissionsExt;
    let Some(_turn) = turn() else { return };
    let plugins = tempfile::tempdir().unwrap();
    let plugin = plugins.path().join("sticky");
    std::fs::write(&plugin, STICKY_PLUGIN).unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut rkt = Rkt::new();
    rkt.env
        .push(("CNI_PATH".into(), plugins.path().display().to_string()));
    write_net(
        &rkt,
        "10-sticky.conf",
        r#"{"cniVersion":"0.3.1","name":"sticky","type":"sticky"}"#,
    );
    let pod = RunningPod::start(
        &rkt,
        &["--net=sticky"],
        &["--exec", "/bin/sleep", "--", "60"],
    );
    assert_eq!(pod.ip(0), "10.216.0.2");
    let uuid = pod.uuid.clone();

    let out = rkt.run(&["stop", "--force", &uuid]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(err.contains("sticky refuses to delete"), "{err}");
    let out = rkt.run(&["rm", &uuid]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(err.contains("sticky refuses to delete"), "{err}");
    assert!(uuids_of(&rkt).is_empty(), "rm left the pod");
    drop(pod);

    // A pod that exits by itself: its supervisor cannot undo the network either, and gc
    // collects the pod all the same.
    rkt.ok(&["run", "--net=sticky", &busybox(), "--exec", "/bin/true"]);
    let out = rkt.run(&["gc", "--grace-period=0s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(err.contains("sticky refuses to delete"), "{err}");
    assert!(uuids_of(&rkt).is_empty(), "gc left the pod");
}
