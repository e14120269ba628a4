//! A real Nomad agent (server and client in one process) that loads the built plugin, for the
//! tests that submit the example jobs as an operator would.
//!
//! Finding the agent binary: `NOMAD_BIN`, else `<repo>/../shared/tools/nomad/install.sh`
//! unpacked into `<repo>/target/nomad`, else `nomad` on PATH. Without one (or without root)
//! the tests print why and skip, except under `CI=true`, where they fail: a suite that quietly
//! skips its end-to-end tests in CI proves nothing.
//!
//! Each [`Agent`] binds to 127.0.0.1 on free ports with its own data directory, plugin
//! directory and rkt store, and turns off everything that would reach beyond the machine
//! (update checks, cloud metadata fingerprints). Its drop stops every job (so the driver
//! removes the pods), collects the allocations, stops the agent and then sweeps whatever is
//! left: pods in its rkt store, processes holding its files, mounts below its directory. When
//! the test is failing (or `NOMAD_AGENT_LOG` is set), the agent's log is printed first.

#![allow(dead_code)]

use crate::common::{bin_dir, is_root, repo_root, rkt_bin, RktDir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The registry address the example jobs name (`docker://127.0.0.1:5000/demo/httpd:latest`).
pub const EXAMPLE_REGISTRY_PORT: u16 = 5000;

/// Everything a test needs before it can start an agent: root, a Nomad binary and the
/// examples' image being served. `None` (after printing why) when the test should skip.
pub fn prerequisites() -> Option<PathBuf> {
    if !is_root() {
        skip_or_fail("a Nomad client that runs rkt pods needs root");
        return None;
    }
    let Some(nomad) = nomad_bin() else {
        skip_or_fail("no Nomad agent binary (set NOMAD_BIN or provide ../shared/tools/nomad)");
        return None;
    };
    serve_example_images();
    Some(nomad)
}

/// Prints a skip line, or fails when `CI` is `true`.
pub fn skip_or_fail(reason: &str) {
    test_support::skip(reason);
}

/// The Nomad binary: `NOMAD_BIN`, the shared test copy unpacked into `target/nomad`, or
/// `nomad` on PATH. Looked up once per test binary.
pub fn nomad_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(find_nomad).clone()
}

fn find_nomad() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NOMAD_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "NOMAD_BIN={} is not a file; unset it or point it at a Nomad binary",
            p.display()
        );
        return Some(p);
    }
    let root = repo_root();
    let install = root.join("../shared/tools/nomad/install.sh");
    if install.is_file() {
        let dest = root.join("target/nomad");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let out = Command::new(&install)
            .arg(&dest)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", install.display()));
        assert!(
            out.status.success(),
            "{} {} failed: {}",
            install.display(),
            dest.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        return Some(dest);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nomad"))
        .find(|p| p.is_file())
}

/// Serves the examples' image at 127.0.0.1:5000/demo/httpd:latest, as
/// `examples/serve-images.sh` does, from a registry that ends with this test binary. The
/// harness's state (and its cached fixture layout) is kept under the target directory. If
/// port 5000 is already taken by a registry that serves the image (`serve-images.sh` left
/// running), that one is used.
pub fn serve_example_images() {
    static SERVED: OnceLock<()> = OnceLock::new();
    SERVED.get_or_init(|| {
        let state = bin_dir().join("nomad-agent-images");
        let harness = repo_root().join("tests/harness");
        // A registry an earlier run of this test binary left in the same state directory
        // goes first: its watchdog ends it when that run's process is gone, which may be
        // just after this run would have taken it over.
        run_ok(
            Command::new(harness.join("registry.sh"))
                .arg("stop")
                .arg(state.join("registry")),
        );
        let started = Command::new(harness.join("registry.sh"))
            .args(["start", "plain"])
            .arg(state.join("registry"))
            .env("REGISTRY_PORT", EXAMPLE_REGISTRY_PORT.to_string())
            .env("HARNESS_OWNER_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !started.status.success() {
            let served = http(
                "GET",
                EXAMPLE_REGISTRY_PORT,
                "/v2/demo/httpd/manifests/latest",
            );
            match served {
                Ok((200, _)) => {
                    eprintln!(
                        "note: 127.0.0.1:{EXAMPLE_REGISTRY_PORT} already serves demo/httpd:latest; using it"
                    );
                    return;
                }
                other => panic!(
                    "cannot serve the examples' image on 127.0.0.1:{EXAMPLE_REGISTRY_PORT} \
                     (registry.sh: {}; the port answers {other:?}): free the port",
                    String::from_utf8_lossy(&started.stderr).trim()
                ),
            }
        }
        run_ok(Command::new(harness.join("fixtures.sh")).arg(state.join("fixtures")));
        run_ok(
            Command::new("skopeo")
                .args(["copy", "-q", "--dest-tls-verify=false"])
                .arg(format!(
                    "oci:{}:busybox",
                    state.join("fixtures/layout").display()
                ))
                .arg(format!(
                    "docker://127.0.0.1:{EXAMPLE_REGISTRY_PORT}/demo/httpd:latest"
                )),
        );
    });
}

/// The escape tests' probe image (busybox with `escape_probe`, run as root) at
/// 127.0.0.1:5000/demo/probe:latest, beside the examples' image.
pub fn serve_probe_image() -> String {
    static SERVED: OnceLock<()> = OnceLock::new();
    serve_example_images();
    SERVED.get_or_init(|| {
        let state = bin_dir().join("nomad-agent-images");
        run_ok(
            Command::new("skopeo")
                .args(["copy", "-q", "--dest-tls-verify=false"])
                .arg(format!(
                    "oci:{}:probe",
                    state.join("fixtures/layout").display()
                ))
                .arg(format!(
                    "docker://127.0.0.1:{EXAMPLE_REGISTRY_PORT}/demo/probe:latest"
                )),
        );
    });
    format!("docker://127.0.0.1:{EXAMPLE_REGISTRY_PORT}/demo/probe:latest")
}

/// Docker Hub's `library/redis:3.2` (the fixture image) at 127.0.0.1:5000 as well, for a
/// job that names it `redis:3.2` with the example registry as Docker Hub's mirror.
pub fn serve_hub_names() {
    static SERVED: OnceLock<()> = OnceLock::new();
    serve_example_images();
    SERVED.get_or_init(|| {
        let state = bin_dir().join("nomad-agent-images");
        run_ok(
            Command::new("skopeo")
                .args(["copy", "-q", "--dest-tls-verify=false"])
                .arg(format!(
                    "oci:{}:busybox",
                    state.join("fixtures/layout").display()
                ))
                .arg(format!(
                    "docker://127.0.0.1:{EXAMPLE_REGISTRY_PORT}/library/redis:3.2"
                )),
        );
    });
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (Nomad's API, or a task's web server): the
/// status and the body.
pub fn http(method: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// A finished command: exit code and output.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success, naming what ran.
    #[track_caller]
    pub fn ok(self, what: &str) -> Run {
        assert_eq!(self.code, 0, "{what} failed: {self:#?}");
        self
    }
}

/// Runs `cmd` to its end (at most `limit`, then it is killed and the test fails).
pub fn run_with_limit(mut cmd: Command, limit: Duration) -> Run {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let every = Duration::from_millis(20);
    let Some(status) = test_support::within(limit, every, || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{what} did not finish within {limit:?}; stderr: {}",
            err.join().unwrap()
        );
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Polls `f` every 250 ms until it gives a value; fails the test after `limit`.
#[track_caller]
pub fn wait_for<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    test_support::poll(limit, Duration::from_millis(250), what, f)
}

use test_support::free_ports;

/// What an agent is: server and client in one (the default), or one of a cluster's.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    Both,
    Server,
    /// A client of the server at this RPC address.
    Client {
        server: String,
    },
}

/// How a test's agent differs from the standard one.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The body of the plugin block's `config {}`; `volumes_enabled = true` when None.
    pub plugin_config: Option<String>,
    /// Files of a configuration directory of the plugin's own, passed as
    /// `--rkt-local-config` (paths relative to it, and contents); none: rkt's default.
    pub rkt_config: Vec<(String, String)>,
    /// Ready means the rkt driver is detected but unhealthy (a configuration it refuses).
    pub expect_unhealthy: bool,
    /// More environment for the agent (and so its plugin and rkt), after the variables that
    /// keep HTTP on this machine.
    pub env: Vec<(String, String)>,
}

/// A running Nomad agent, with nomad-driver-rkt in its plugin directory.
pub struct Agent {
    pub nomad: PathBuf,
    pub http_port: u16,
    pub rpc_port: u16,
    pub role: Role,
    /// The node's name (and the agent's).
    pub name: String,
    pub node_id: String,
    /// Config, data_dir, plugin_dir and the agent's log.
    pub dir: tempfile::TempDir,
    rkt_dir: Option<RktDir>,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

impl Agent {
    /// Starts an agent and waits until its node is ready with the rkt driver detected and
    /// healthy. A lost race for a port is retried with new ones.
    pub fn start(nomad: &Path) -> Agent {
        Agent::start_full(nomad, Role::Both, "rkt-e2e", &Setup::default())
    }

    /// [`Agent::start`], set up as `setup` says.
    pub fn start_with(nomad: &Path, setup: &Setup) -> Agent {
        Agent::start_full(nomad, Role::Both, "rkt-e2e", setup)
    }

    /// An agent of `role` named `name`, once ready: a server with a leader, a client's node
    /// ready with the rkt driver healthy.
    pub fn start_as(nomad: &Path, role: Role, name: &str) -> Agent {
        Agent::start_full(nomad, role, name, &Setup::default())
    }

    fn start_full(nomad: &Path, role: Role, name: &str, setup: &Setup) -> Agent {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (agent, ready) = Agent::try_start(nomad, role.clone(), name, setup);
            match ready {
                Ok(()) => return agent,
                Err(why) if attempt < 3 && why.contains("address already in use") => {
                    eprintln!("agent start attempt {attempt}: {why}; retrying on other ports");
                    drop(agent);
                }
                Err(why) => {
                    let log = agent.log_tail(200);
                    drop(agent);
                    panic!("the Nomad agent did not become ready: {why}\n--- agent log ---\n{log}");
                }
            }
        }
    }

    /// An agent started, and whether it became ready.
    fn try_start(
        nomad: &Path,
        role: Role,
        name: &str,
        setup: &Setup,
    ) -> (Agent, Result<(), String>) {
        let dir = tempfile::Builder::new()
            .prefix("nomad-agent-")
            .tempdir()
            .unwrap();
        let rkt_dir = RktDir::new();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let plugin = plugins.join("nomad-driver-rkt");
        let built = Path::new(env!("CARGO_BIN_EXE_nomad-driver-rkt"));
        if std::fs::hard_link(built, &plugin).is_err() {
            std::fs::copy(built, &plugin).unwrap();
        }
        let ports = free_ports(3);
        let (http_port, rpc, serf) = (ports[0], ports[1], ports[2]);
        let mut plugin_args = vec![
            format!("--rkt={}", rkt_bin().display()),
            format!("--rkt-dir={}", rkt_dir.path().display()),
        ];
        if !setup.rkt_config.is_empty() {
            let local = dir.path().join("rkt-config");
            for (rel, contents) in &setup.rkt_config {
                let file = local.join(rel);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, contents).unwrap();
            }
            plugin_args.push(format!("--rkt-local-config={}", local.display()));
        }
        let config = dir.path().join("agent.hcl");
        let cni = dir.path().join("cni");
        std::fs::create_dir_all(&cni).unwrap();
        std::fs::write(cni.join(format!("{CNI_NETWORK}.conflist")), CNI_CONFLIST).unwrap();
        std::fs::write(
            &config,
            agent_config(
                &dir.path().join("data"),
                &cni,
                &plugins,
                &plugin_args,
                setup
                    .plugin_config
                    .as_deref()
                    .unwrap_or("volumes_enabled = true"),
                [http_port, rpc, serf],
                &role,
                name,
            ),
        )
        .unwrap();
        let mut agent = Agent {
            nomad: nomad.to_path_buf(),
            http_port,
            rpc_port: rpc,
            role,
            name: name.to_string(),
            node_id: String::new(),
            dir,
            rkt_dir: Some(rkt_dir),
            child: None,
            env: setup.env.clone(),
        };
        agent.spawn();
        let ready = agent
            .wait_ready(Duration::from_secs(90), setup.expect_unhealthy)
            .map(|id| agent.node_id = id);
        (agent, ready)
    }

    /// Starts the agent process on this agent's configuration, its log appended to.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let mut cmd = Command::new(&self.nomad);
        cmd.arg("agent")
            .arg(format!(
                "-config={}",
                self.dir.path().join("agent.hcl").display()
            ))
            .env_remove("NOMAD_ADDR")
            // The plugin inherits these: anything its rkt would fetch from beyond
            // 127.0.0.0/8 fails at once instead of leaving the machine.
            .envs(test_support::LOCAL_ONLY_ENV)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        // SAFETY: prctl in the forked child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                // If the test process dies without its cleanup, the agent goes too.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILLs the agent process alone, as a crash would (its plugin is left running).
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the agent again on the same data directory and ports, and waits until its
    /// node is ready again with the rkt driver healthy.
    pub fn restart(&mut self) {
        self.kill_agent();
        self.spawn();
        match self.wait_ready(Duration::from_secs(90), false) {
            Ok(id) => self.node_id = id,
            Err(why) => panic!(
                "the restarted agent did not become ready: {why}\n{}",
                self.log_tail(100)
            ),
        }
    }

    /// The PID of this agent's nomad-driver-rkt process, if one runs.
    pub fn plugin_pid(&self) -> Option<i32> {
        let plugin = self.dir.path().join("plugins/nomad-driver-rkt");
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == plugin)
            })
    }

    fn wait_ready(&mut self, limit: Duration, unhealthy: bool) -> Result<String, String> {
        let mut last = String::from("no answer yet");
        let every = Duration::from_millis(250);
        let ready = test_support::within(limit, every, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = self.log_tail(30);
                let why = if log.contains("address already in use") {
                    "address already in use"
                } else {
                    "exited"
                };
                return Some(Err(format!("the agent {why} ({status})")));
            }
            match self.ready_node(unhealthy) {
                Ok(id) => Some(Ok(id)),
                Err(e) => {
                    last = e;
                    None
                }
            }
        });
        ready.unwrap_or_else(|| Err(format!("not ready after {limit:?}: {last}")))
    }

    /// The RPC address clients of this server join.
    pub fn rpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.rpc_port)
    }

    /// The node's ID once it is ready with the rkt driver detected and healthy (or, with
    /// `unhealthy`, detected and unhealthy with a reason; a server alone: once it has a
    /// leader, and its "node ID" is empty).
    fn ready_node(&self, unhealthy: bool) -> Result<String, String> {
        if self.role == Role::Server {
            let leader = self.get("/v1/status/leader")?;
            return match leader.as_str() {
                Some(l) if !l.is_empty() => Ok(String::new()),
                _ => Err("no leader yet".into()),
            };
        }
        // This agent, not another that took the port (then this one would have exited).
        let me = self.get("/v1/agent/self")?;
        let data = self.dir.path().join("data");
        if me["config"]["DataDir"] != data.to_string_lossy().as_ref() {
            return Err(format!(
                "the agent on port {} is not ours: data_dir {}",
                self.http_port, me["config"]["DataDir"]
            ));
        }
        let nodes = self.get("/v1/nodes")?;
        let node = nodes
            .as_array()
            .and_then(|n| n.iter().find(|n| n["Name"] == self.name.as_str()))
            .ok_or("no node registered yet")?;
        let id = node["ID"].as_str().unwrap_or_default().to_string();
        if node["Status"] != "ready" {
            return Err(format!("node status {}", node["Status"]));
        }
        let full = self.get(&format!("/v1/node/{id}"))?;
        let rkt = &full["Drivers"]["rkt"];
        let reason = rkt["HealthDescription"].as_str().unwrap_or_default();
        let ready = match unhealthy {
            false => rkt["Detected"] == true && rkt["Healthy"] == true,
            true => rkt["Detected"] == true && rkt["Healthy"] == false && !reason.is_empty(),
        };
        if !ready {
            return Err(format!("rkt driver not ready: {rkt}"));
        }
        Ok(id)
    }

    /// GET on the agent's HTTP API, as JSON.
    pub fn get(&self, path: &str) -> Result<Value, String> {
        match http("GET", self.http_port, path)? {
            (200, body) => serde_json::from_str(&body).map_err(|e| format!("{path}: {e}")),
            (code, body) => Err(format!("{path}: HTTP {code}: {}", body.trim())),
        }
    }

    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The `nomad` command line against this agent.
    pub fn cli(&self, args: &[&str]) -> Run {
        let mut c = Command::new(&self.nomad);
        c.args(args).env("NOMAD_ADDR", self.address());
        run_with_limit(c, Duration::from_secs(120))
    }

    /// `rkt` on this agent's store.
    pub fn rkt(&self, args: &[&str]) -> Run {
        let mut c = Command::new(rkt_bin());
        c.arg(format!("--dir={}", self.rkt_dir().display()))
            .args(args);
        run_with_limit(c, Duration::from_secs(60))
    }

    pub fn rkt_dir(&self) -> &Path {
        self.rkt_dir.as_ref().unwrap().path()
    }

    /// The pods in this agent's rkt store (`rkt list --format=json`): (UUID, state).
    pub fn pods(&self) -> Vec<(String, String)> {
        let out = self.rkt(&["list", "--format=json"]).ok("rkt list");
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("rkt list --format=json: {e}: {}", out.stdout));
        v.as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The job's allocations (API stubs, with task states and events).
    pub fn allocs(&self, job: &str) -> Vec<Value> {
        match self.get(&format!("/v1/job/{job}/allocations")) {
            Ok(Value::Array(a)) => a,
            _ => Vec::new(),
        }
    }

    /// The full allocation.
    pub fn alloc(&self, id: &str) -> Value {
        self.get(&format!("/v1/allocation/{id}"))
            .unwrap_or_else(|e| panic!("allocation {id}: {e}"))
    }

    /// Waits for the job's allocation to run `task`; fails at once if the task dies or the
    /// allocation fails. Returns the allocation's ID.
    pub fn wait_running(&self, job: &str, task: &str, limit: Duration) -> String {
        wait_for(&format!("job {job} to run task {task}"), limit, || {
            let allocs = self.allocs(job);
            let a = allocs.first()?;
            let id = a["ID"].as_str()?.to_string();
            let state = &a["TaskStates"][task];
            if a["ClientStatus"] == "failed" || state["State"] == "dead" {
                panic!(
                    "allocation {id} of job {job} failed: {}\nevents: {}",
                    a["ClientStatus"],
                    self.events_text(&id, task)
                );
            }
            (a["ClientStatus"] == "running" && state["State"] == "running").then_some(id)
        })
    }

    /// The task's events, oldest first: (Type, DisplayMessage, the whole event).
    pub fn events(&self, alloc: &str, task: &str) -> Vec<(String, String, Value)> {
        let a = self.alloc(alloc);
        a["TaskStates"][task]["Events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["Type"].as_str().unwrap_or_default().to_string(),
                    e["DisplayMessage"].as_str().unwrap_or_default().to_string(),
                    e.clone(),
                )
            })
            .collect()
    }

    pub fn events_text(&self, alloc: &str, task: &str) -> String {
        self.events(alloc, task)
            .iter()
            .map(|(t, m, _)| format!("\n  {t}: {m}"))
            .collect()
    }

    /// `nomad job stop JOB`, then waits for its allocations to be complete.
    pub fn stop_job(&self, job: &str) {
        self.cli(&["job", "stop", job]).ok("nomad job stop");
        wait_for(
            &format!("the allocations of {job} to stop"),
            Duration::from_secs(60),
            || {
                self.allocs(job)
                    .iter()
                    .all(|a| a["ClientStatus"] != "running" && a["ClientStatus"] != "pending")
                    .then_some(())
            },
        );
    }

    /// The last `n` lines of the agent's log, without its HTTP access lines (the tests poll).
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("http: request complete"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Stops every job and waits (a little) for their allocations to stop, so the driver
    /// stops and removes their pods; then has the client collect them (which unmounts their
    /// secrets directories).
    fn stop_everything(&self) {
        let Ok(Value::Array(jobs)) = self.get("/v1/jobs") else {
            return;
        };
        for job in &jobs {
            if let Some(id) = job["ID"].as_str() {
                let _ = http(
                    "DELETE",
                    self.http_port,
                    &format!("/v1/job/{id}?purge=true"),
                );
            }
        }
        // Best effort, as a clean-up: an agent that never settles is stopped all the same.
        let every = Duration::from_millis(250);
        let _ = test_support::within(Duration::from_secs(30), every, || {
            let Ok(Value::Array(allocs)) = self.get("/v1/allocations") else {
                return Some(());
            };
            allocs
                .iter()
                .all(|a| a["ClientStatus"] != "running" && a["ClientStatus"] != "pending")
                .then_some(())
        });
        let _ = http("PUT", self.http_port, "/v1/client/gc");
        // The collection is asynchronous; it unmounts each allocation's secrets directory.
        let _ = test_support::within(Duration::from_secs(10), every, || {
            self.mounts_below().is_empty().then_some(())
        });
    }

    /// Mount points below the agent's directory, deepest first.
    fn mounts_below(&self) -> Vec<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mountinfo)
            .filter(|m| m.starts_with(&format!("{dir}/")))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        points
    }

    fn stop_agent(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling the agent we started, by its PID.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let every = Duration::from_millis(100);
        let exited = test_support::within(Duration::from_secs(20), every, || {
            child.try_wait().ok().flatten()
        });
        if exited.is_some() {
            return;
        }
        eprintln!("the Nomad agent ignored SIGINT for 20 s; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Processes that still use this agent's files (its plugin binary, logmon FIFOs, a
    /// working directory in its data_dir): all started by this agent. Killed by PID.
    fn kill_leftovers(&self) {
        let dir = self.dir.path().to_path_buf();
        let me = std::process::id().to_string();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let name = p.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                continue;
            }
            let uses = |link: PathBuf| std::fs::read_link(link).is_ok_and(|t| t.starts_with(&dir));
            let fds = std::fs::read_dir(p.path().join("fd"))
                .map(|d| d.flatten().any(|f| uses(f.path())))
                .unwrap_or(false);
            if fds || uses(p.path().join("exe")) || uses(p.path().join("cwd")) {
                if let Ok(pid) = name.parse::<i32>() {
                    eprintln!("killing leftover process {pid} of the Nomad agent");
                    // SAFETY: a process this test's agent started, by its PID.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }

    /// Mounts the client left below its directory (secrets tmpfs of uncollected allocations).
    fn unmount_leftovers(&self) {
        for m in self.mounts_below() {
            let c = std::ffi::CString::new(m.clone()).unwrap();
            // SAFETY: unmounting a path below this agent's own temporary directory.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                eprintln!("umount {m}: {}", std::io::Error::last_os_error());
            }
        }
    }
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap(), 8);
            if let Ok(v) = v {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("NOMAD_AGENT_LOG").is_some() {
            eprintln!(
                "--- the Nomad agent's log (last 400 lines of {}) ---\n{}\n--- end of the agent's log ---",
                self.dir.path().join("agent.log").display(),
                self.log_tail(400)
            );
            if self.rkt_dir.is_some() && bin_dir().join("rkt").exists() {
                let pods = Command::new(bin_dir().join("rkt"))
                    .arg(format!("--dir={}", self.rkt_dir().display()))
                    .arg("list")
                    .output();
                if let Ok(p) = pods {
                    eprintln!("rkt list:\n{}", String::from_utf8_lossy(&p.stdout));
                }
            }
        }
        if self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
        {
            self.stop_everything();
        }
        self.stop_agent();
        // The safety net: exited pods are collected, running ones stopped and removed
        // (RktDir's drop, which also removes the store); then whatever still holds the
        // agent's files goes, then its mounts.
        if let Some(store) = self.rkt_dir.take() {
            if bin_dir().join("rkt").exists() {
                let _ = Command::new(bin_dir().join("rkt"))
                    .arg(format!("--dir={}", store.path().display()))
                    .args(["gc", "--grace-period=0s"])
                    .stdin(Stdio::null())
                    .output();
            }
            drop(store);
        }
        self.kill_leftovers();
        self.unmount_leftovers();
    }
}

/// An operator's own CNI network, for `network { mode = "cni/rkt-e2e" }`: a bridge of its
/// own with addresses in a range no other test uses, and Nomad's port mappings.
pub const CNI_NETWORK: &str = "rkt-e2e";
const CNI_CONFLIST: &str = r#"{
  "cniVersion": "0.4.0",
  "name": "rkt-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "rkte2e0",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.99.7.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
"#;

/// The agent's configuration: server and client on 127.0.0.1, nothing that leaves the host.
#[allow(clippy::too_many_arguments)]
fn agent_config(
    data: &Path,
    cni: &Path,
    plugins: &Path,
    plugin_args: &[String],
    plugin_config: &str,
    [http, rpc, serf]: [u16; 3],
    role: &Role,
    name: &str,
) -> String {
    let (server, client_servers) = match role {
        Role::Both => (true, String::new()),
        Role::Server => (false, String::new()),
        Role::Client { server } => (false, format!("servers = [\"{server}\"]")),
    };
    let server_block = match role {
        Role::Client { .. } => "server {\n  enabled = false\n}\n".to_string(),
        // A lost client is noticed within seconds, not Nomad's production minute.
        _ => "server {\n  enabled          = true\n  bootstrap_expect = 1\n  heartbeat_grace  = \"3s\"\n  min_heartbeat_ttl = \"3s\"\n}\n".to_string(),
    };
    let client_enabled = server || matches!(role, Role::Client { .. });
    let args: Vec<String> = plugin_args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        r#"# Written by crates/nomad-driver/tests/agent/mod.rs for one test.
name                 = "{name}"
data_dir             = "{data}"
plugin_dir           = "{plugins}"
bind_addr            = "127.0.0.1"
log_level            = "DEBUG"
disable_update_check = true

advertise {{
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}}

ports {{
  http = {http}
  rpc  = {rpc}
  serf = {serf}
}}

{server_block}
client {{
  enabled           = {client_enabled}
  {client_servers}
  network_interface = "lo"
  cni_path          = "/usr/lib/cni"
  # Nomad removes finished allocations' directories (their logs too) once the disk is 80%
  # full, which a CI machine may well be: tests read the logs of finished tasks.
  gc_disk_usage_threshold  = 99
  gc_inode_usage_threshold = 99
  gc_max_allocs            = 1000
  cni_config_dir    = "{cni}"
  options = {{
    # No cloud metadata requests (169.254.169.254), and no other task drivers.
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
    "driver.denylist"      = "docker,exec,java,qemu,raw_exec"
  }}
}}

consul {{
  auto_advertise   = false
  server_auto_join = false
  client_auto_join = false
}}

plugin "nomad-driver-rkt" {{
  args = [{args}]
  config {{
{plugin_config}
  }}
}}
"#,
        data = data.display(),
        cni = cni.display(),
        plugins = plugins.display(),
        args = args.join(", "),
    )
}
