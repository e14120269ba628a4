//! A Nomad client in miniature: starts the plugin binary the way a Nomad agent does
//! (environment, handshake line on stdout, gRPC over the unix socket it names), and the
//! parts of a client node a task needs (an allocation directory with logmon's FIFOs).
//! Also a local registry serving the busybox fixture image, from rkt's test harness.

#![allow(dead_code, unused_imports)]

use nomad_driver_rkt::proto::{base, drivers, plugin as gp};
use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use tonic::transport::Channel;

pub const COOKIE: &str = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255";

pub use test_support::{bin_dir, is_root, repo_root};

pub fn rkt_bin() -> PathBuf {
    test_support::bin("rkt")
}

/// The driver runs pods, which needs root.
pub fn root_or_skip() -> bool {
    test_support::require_root("the driver runs pods")
}

/// A running plugin process and its gRPC clients.
pub struct Plugin {
    pub child: Child,
    pub socket: PathBuf,
    pub handshake: String,
    pub base: base::base_plugin_client::BasePluginClient<Channel>,
    pub driver: drivers::driver_client::DriverClient<Channel>,
    pub controller: gp::grpc_controller_client::GrpcControllerClient<Channel>,
    pub channel: Channel,
    /// Every line the plugin wrote to stderr so far (Nomad re-logs them).
    pub stderr_lines: Arc<Mutex<Vec<String>>>,
}

/// The plugin binary with the environment a Nomad agent adds to its own, and `args` as the
/// agent's `plugin "nomad-driver-rkt" { args = [...] }` would pass them.
pub fn nomad_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nomad-driver-rkt"));
    cmd.args(args)
        .env("NOMAD_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "2")
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Plugin {
    /// Launches the plugin as Nomad does, with `--rkt` and `--rkt-dir` as plugin args.
    pub async fn start(rkt_dir: &Path) -> Plugin {
        Plugin::start_with(rkt_dir, |_| {}).await
    }

    pub async fn start_with(rkt_dir: &Path, tweak: impl FnOnce(&mut Command)) -> Plugin {
        let mut cmd = nomad_command(&[
            format!("--rkt={}", rkt_bin().display()),
            format!("--rkt-dir={}", rkt_dir.display()),
        ]);
        tweak(&mut cmd);
        Plugin::spawn(cmd).await
    }

    /// The plugin with no rkt to run: enough for everything up to the task RPCs (handshake,
    /// base plugin, schemas, capabilities, go-plugin services), and needs nothing built but
    /// this crate. The fingerprint reports the driver undetected.
    pub async fn start_without_rkt() -> Plugin {
        Plugin::spawn(nomad_command(&["--rkt=/nonexistent/rkt"])).await
    }

    /// Starts `cmd`, reads the handshake line from its stdout as go-plugin's client does, and
    /// connects to the socket it names.
    pub async fn spawn(mut cmd: Command) -> Plugin {
        let mut child = cmd.spawn().unwrap();
        // Nomad re-logs the plugin's stderr; here it goes to the test's output, and is kept.
        let stderr = child.stderr.take().unwrap();
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let kept = stderr_lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("plugin: {line}");
                kept.lock().unwrap().push(line);
            }
        });
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut handshake = String::new();
        stdout.read_line(&mut handshake).unwrap();
        // Later stdout lines are read and dropped, as go-plugin's client does.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        let handshake = handshake.trim().to_string();
        let parts: Vec<&str> = handshake.split('|').collect();
        assert_eq!(parts.len(), 6, "handshake {handshake:?}");
        assert_eq!(
            (parts[0], parts[1], parts[2], parts[4]),
            ("1", "2", "unix", "grpc")
        );
        let socket = PathBuf::from(parts[3]);
        let channel = connect(&socket).await;
        Plugin {
            child,
            socket,
            handshake,
            base: base::base_plugin_client::BasePluginClient::new(channel.clone()),
            driver: drivers::driver_client::DriverClient::new(channel.clone()),
            controller: gp::grpc_controller_client::GrpcControllerClient::new(channel.clone()),
            channel,
            stderr_lines,
        }
    }

    /// go-plugin's health service on the same connection.
    pub fn health(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        tonic_health::pb::health_client::HealthClient::new(self.channel.clone())
    }

    /// The exit status, once the process has ended within `limit`.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let every = std::time::Duration::from_millis(20);
        test_support::within(limit, every, || self.child.try_wait().unwrap())
    }

    /// SetConfig as the long-lived instance gets it.
    pub async fn set_config(&mut self, volumes_enabled: bool) {
        self.base
            .set_config(set_config_request(
                volumes_enabled_config(volumes_enabled.into()),
                true,
            ))
            .await
            .unwrap();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

pub async fn connect(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap()
}

/// A SetConfig as Nomad sends it: `msgpack_config` in cty msgpack, `nomad_config` only on the
/// long-lived instance (the validation instance gets none).
pub fn set_config_request(msgpack_config: Vec<u8>, long_lived: bool) -> base::SetConfigRequest {
    base::SetConfigRequest {
        msgpack_config,
        nomad_config: long_lived.then_some(base::NomadConfig {
            driver: Some(base::NomadDriverConfig {
                client_max_port: 14512,
                client_min_port: 14000,
                topology: None,
            }),
        }),
        plugin_api_version: "v0.1.0".into(),
    }
}

/// The plugin's `config {}` with `volumes_enabled` set to `v`.
pub fn volumes_enabled_config(v: rmpv::Value) -> Vec<u8> {
    encode(&rmpv::Value::Map(vec![("volumes_enabled".into(), v)]))
}

/// The plugin's `config {}` with `volumes_enabled = true` and a `gc` block.
pub fn gc_plugin_config(image: bool, image_delay: &str) -> Vec<u8> {
    encode(&rmpv::Value::Map(vec![
        (
            "gc".into(),
            rmpv::Value::Map(vec![
                ("image".into(), image.into()),
                ("image_delay".into(), image_delay.into()),
            ]),
        ),
        ("volumes_enabled".into(), true.into()),
    ]))
}

pub fn encode(v: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

/// A task `config {}` as Nomad encodes it: every schema key, sorted, absent ones nil.
pub fn task_config(set: &[(&str, rmpv::Value)]) -> Vec<u8> {
    // The keys the plugin's own schema declares, in cty's (sorted) order.
    let spec = nomad_driver_rkt::hclspec::task_config();
    let Some(nomad_driver_rkt::proto::hclspec::spec::Block::Object(o)) = spec.block else {
        panic!("the task schema is an object");
    };
    let mut keys: Vec<String> = o.attributes.into_keys().collect();
    keys.sort();
    let entries = keys
        .iter()
        .map(|k| {
            let v = set
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or(rmpv::Value::Nil);
            (rmpv::Value::from(k.as_str()), v)
        })
        .collect();
    encode(&rmpv::Value::Map(entries))
}

/// A task `config {}` that runs `command args…` from `image` on network `net` (none given:
/// the job says nothing, and rkt's default applies).
pub fn command_config(image: &str, command: &str, args: &[&str], net: Option<&str>) -> Vec<u8> {
    let mut fields = vec![
        ("image", image.into()),
        ("command", command.into()),
        ("args", strs(args)),
    ];
    if let Some(n) = net {
        fields.push(("net", strs(&[n])));
    }
    task_config(&fields)
}

pub fn strs(items: &[&str]) -> rmpv::Value {
    rmpv::Value::Array(items.iter().map(|s| rmpv::Value::from(*s)).collect())
}

/// What Nomad's client prepares on the node before StartTask: the allocation directory and
/// logmon's stdout/stderr FIFOs, read until the task closes them.
pub struct Alloc {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub task: String,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Alloc {
    pub fn new(task: &str) -> Alloc {
        let dir = tempfile::Builder::new()
            .prefix("nomad-alloc-")
            .tempdir()
            .unwrap();
        let id = format!(
            "{:08x}-0000-4000-8000-000000000000",
            std::process::id() ^ rand32()
        );
        for d in [
            "alloc/logs",
            "alloc/data",
            &format!("{task}/local"),
            &format!("{task}/secrets"),
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        // As Nomad makes them: the shared directory is writable by any task's user.
        for d in ["alloc", "alloc/logs", "alloc/data"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path().join(d), std::fs::Permissions::from_mode(0o777))
                .unwrap();
        }
        let fifo = |name: &str| {
            let p = dir.path().join("alloc/logs").join(name);
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: mkfifo on a path we own.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::fs::File::open(p).unwrap().read_to_string(&mut s);
                s
            })
        };
        let stdout = Some(fifo(&format!(".{task}.stdout.fifo")));
        let stderr = Some(fifo(&format!(".{task}.stderr.fifo")));
        Alloc {
            dir,
            id,
            task: task.into(),
            stdout,
            stderr,
        }
    }

    /// Waits until the task's shell has run `: >/alloc/trapped` (after its `trap`): a
    /// signal sent before the trap is set ends the shell at once.
    pub async fn until_trapped(&self) {
        self.until_marked("trapped", "the task to set its trap")
            .await
    }

    /// Waits until the task has written `/alloc/<name>`: the marker an app writes when it
    /// reaches a point the test must not run ahead of.
    pub async fn until_marked(&self, name: &str, what: &str) {
        let marker = self.dir.path().join("alloc").join(name);
        let (limit, every) = (
            std::time::Duration::from_secs(60),
            std::time::Duration::from_millis(20),
        );
        test_support::poll_async(limit, every, what, async || marker.exists().then_some(())).await
    }

    pub fn task_dir(&self) -> PathBuf {
        self.dir.path().join(&self.task)
    }

    /// The task configuration Nomad would send.
    pub fn task_config(&self, driver_config: Vec<u8>) -> drivers::TaskConfig {
        let logs = self.dir.path().join("alloc/logs");
        let env: BTreeMap<String, String> = [
            ("NOMAD_TASK_NAME", self.task.as_str()),
            ("NOMAD_ALLOC_ID", self.id.as_str()),
            ("NOMAD_ALLOC_DIR", "/alloc"),
            ("NOMAD_TASK_DIR", "/local"),
            ("NOMAD_SECRETS_DIR", "/secrets"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        drivers::TaskConfig {
            id: format!("{}/{}/{:08x}", self.id, self.task, rand32()),
            name: self.task.clone(),
            msgpack_driver_config: driver_config,
            env: env.into_iter().collect(),
            resources: Some(drivers::Resources {
                allocated_resources: Some(drivers::AllocatedTaskResources {
                    cpu: Some(drivers::AllocatedCpuResources { cpu_shares: 100 }),
                    memory: Some(drivers::AllocatedMemoryResources {
                        memory_mb: 64,
                        memory_max_mb: 0,
                    }),
                    networks: Vec::new(),
                }),
                linux_resources: Some(drivers::LinuxResources {
                    cpu_shares: 100,
                    memory_limit_bytes: 64 << 20,
                    ..Default::default()
                }),
                ports: Vec::new(),
            }),
            alloc_dir: self.dir.path().display().to_string(),
            stdout_path: logs
                .join(format!(".{}.stdout.fifo", self.task))
                .display()
                .to_string(),
            stderr_path: logs
                .join(format!(".{}.stderr.fifo", self.task))
                .display()
                .to_string(),
            alloc_id: self.id.clone(),
            ..Default::default()
        }
    }

    /// Everything the task wrote to stdout, once it closed it.
    pub fn stdout(&mut self) -> String {
        self.stdout
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }

    pub fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

pub fn rand32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A local Distribution registry (rkt's test harness) serving the busybox fixture image as
/// `demo/busybox:latest`.
pub struct Registry(test_support::Registry);

impl Registry {
    pub fn start() -> Registry {
        let reg = test_support::Registry::start("plain");
        reg.push("busybox", "demo/busybox:latest");
        Registry(reg)
    }

    pub fn image(&self) -> String {
        self.0.image("demo/busybox:latest")
    }

    /// The harness's registry, to push more.
    pub fn harness(&self) -> &test_support::Registry {
        &self.0
    }
}

/// rkt's data directory for one test. Tasks outlive the plugin by design, so a test that
/// fails half-way would leave pods (and their networks) running: on drop every pod of the
/// directory is stopped and removed before the directory goes.
pub struct RktDir(tempfile::TempDir);

impl RktDir {
    pub fn new() -> RktDir {
        RktDir(
            tempfile::Builder::new()
                .prefix("driver-rkt-")
                .tempdir()
                .unwrap(),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for RktDir {
    fn drop(&mut self) {
        test_support::remove_all_pods(self.path());
    }
}
pub mod tasks;
