//! What every integration test shares.
//!
//! - [`skip`] and [`require_root`]: a test that cannot run here says why, visibly (the reasons
//!   are collected in `target/test-skips.txt`, which `scripts/test.sh` prints at the end), and
//!   under `CI=true` a skip fails the test: CI runs as root with every package installed, so a
//!   skip there means something is missing, never that the test passed.
//! - [`Registry`]: real Distribution registries started by `tests/harness/registry.sh`, with
//!   the fixture images that `tests/harness/fixtures.sh` builds with umoci (built once per run).
//! - [`Rkt`]: the built `rkt` binary against a store and configuration of its own; when
//!   dropped it stops and removes every pod it still has, so a failing test leaves nothing
//!   running.
//! - [`eventually`], [`python_server`], paths to the repository and the built binaries.

pub mod discovery;
pub mod escapes;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn harness(script: &str) -> PathBuf {
    repo_root().join("tests/harness").join(script)
}

/// The directory of the workspace's built binaries (rkt, rkt-stage1, nomad-driver-rkt): the
/// parent of the running test's own `deps/` directory.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A built binary of the workspace; panics if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} missing: build the workspace first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Where skipped tests leave their reasons for `scripts/test.sh` to show.
pub fn skips_file() -> PathBuf {
    repo_root().join("target/test-skips.txt")
}

/// Skips the calling test, saying why. Under `CI=true` this fails the test instead.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} would skip ({reason}), and CI=true allows no skip: CI must run everything");
    }
    eprintln!("skipped: {test}: {reason}");
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skips_file())
    {
        let _ = writeln!(f, "{test}: {reason}");
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when running as root; otherwise [`skip`]s with `why` (what the test needs root for).
pub fn require_root(why: &str) -> bool {
    if !is_root() {
        skip(&format!("needs root: {why}"));
        return false;
    }
    true
}

/// Calls `f` until it gives a value, every 20 ms for up to `limit`; panics naming `what`.
#[track_caller]
pub fn eventually<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll(limit, Duration::from_millis(20), what, f)
}

/// [`eventually`], calling `f` every `every` (for checks that cost, such as a command).
#[track_caller]
pub fn poll<T>(limit: Duration, every: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    match within(limit, every, f) {
        Some(v) => v,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Calls `f` every `every` until it gives a value, for up to `limit`; None if it never
/// did (for callers that have something to do then, such as killing what they wait for).
pub fn within<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// [`poll`] for async tests: awaits `f` every `every` until it gives a value, without
/// blocking the runtime's thread; panics naming `what` after `limit`.
pub async fn poll_async<T>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct TCP ports on 127.0.0.1, free a moment ago: bound all at once, so the kernel
/// hands out distinct ones, and released together.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Runs a harness script and panics with its output if it fails.
pub fn run_script(script: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(harness(script))
        .args(args)
        // Registries end with this test process (statics are never dropped).
        .env("HARNESS_OWNER_PID", std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running registry; stopped when dropped.
pub struct Registry {
    pub state: tempfile::TempDir,
    pub port: u16,
    pub mode: String,
    /// The registry named by [`EXTERNAL_REGISTRY`]: started by someone else, with the
    /// fixtures already pushed; never stopped here.
    pub external: bool,
}

/// `RKT_TEST_REGISTRY=PORT`: a plain registry on 127.0.0.1:PORT that already serves the
/// standard fixture set (push_fixtures.sh) and `demo/busybox:latest`. The guest of
/// `tests/guest/lane.sh` has one (pushed on the host before it boots: the guest has neither
/// umoci nor skopeo), and its tests ask for a plain registry as they do everywhere.
pub const EXTERNAL_REGISTRY: &str = "RKT_TEST_REGISTRY";

impl Registry {
    /// A registry of `mode` (plain, tls, basic, token: see registry.sh), empty; or, for a
    /// plain one where [`EXTERNAL_REGISTRY`] is set, that one, with its fixtures.
    pub fn start(mode: &str) -> Registry {
        if let Some(port) = std::env::var(EXTERNAL_REGISTRY)
            .ok()
            .filter(|_| mode == "plain")
            .and_then(|p| p.parse().ok())
        {
            return Registry {
                state: tempfile::tempdir().unwrap(),
                port,
                mode: mode.to_string(),
                external: true,
            };
        }
        let state = tempfile::Builder::new()
            .prefix("rkt-registry-")
            .tempdir()
            .unwrap();
        let out = run_script(
            "registry.sh",
            &["start", mode, state.path().to_str().unwrap()],
        );
        let port = out.trim().lines().last().unwrap().trim().parse().unwrap();
        Registry {
            state,
            port,
            mode: mode.to_string(),
            external: false,
        }
    }

    /// A registry with the standard fixture set pushed to it (see push_fixtures.sh).
    pub fn with_fixtures(mode: &str) -> Registry {
        let reg = Registry::start(mode);
        reg.push_fixtures();
        reg
    }

    pub fn push_fixtures(&self) {
        if self.external {
            return;
        }
        let layout = fixtures();
        let mut args = vec![self.port.to_string(), layout.to_str().unwrap().to_string()];
        if matches!(self.mode.as_str(), "basic" | "token") {
            args.push("tester:secret".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script("push_fixtures.sh", &args);
    }

    /// Pushes fixture image `tag` (of fixtures.sh's layout) as `repo_tag` (plain mode only).
    pub fn push(&self, tag: &str, repo_tag: &str) {
        self.push_with(tag, repo_tag, &[]);
    }

    /// [`Registry::push`] with more `skopeo copy` flags (`--format v2s2`: see push.sh).
    pub fn push_with(&self, tag: &str, repo_tag: &str, flags: &[&str]) {
        if self.external {
            // Pushed before the tests started (see EXTERNAL_REGISTRY); anything else fails
            // when the test pulls it, naming the image.
            return;
        }
        let src = format!("oci:{}:{tag}", fixtures().display());
        let dest = format!("docker://{}/{repo_tag}", self.host());
        let mut args = vec![src.as_str(), dest.as_str()];
        args.extend_from_slice(flags);
        run_script("push.sh", &args);
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn image(&self, repo_tag: &str) -> String {
        format!("docker://127.0.0.1:{}/{repo_tag}", self.port)
    }

    pub fn ca(&self) -> PathBuf {
        self.state.path().join("ca.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("registry.log")).unwrap_or_default()
    }

    /// The digest the registry gives for `repo:reference`'s manifest (plain mode), as a
    /// client accepting every manifest type sees it.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> String {
        let url = format!("http://{}/v2/{repo}/manifests/{reference}", self.host());
        let out = Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", "-D", "-", "-H"])
            .arg(MANIFEST_ACCEPT)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{url}: no Docker-Content-Digest"))
    }

    /// Where the registry keeps the bytes of blob (or manifest) `digest`: the file its
    /// filesystem storage serves them from.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.state
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// Every manifest type rkt accepts, for asking a registry for digests.
pub const MANIFEST_ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// The environment that keeps a test's HTTP on this machine: every request to a host other
/// than 127.0.0.0/8 or localhost goes to a proxy at 127.0.0.1:9, where nothing listens, and
/// fails at once. A test whose image would come from Docker Hub after all fails instead of
/// reaching it (rkt's HTTP client honours these variables, as curl does).
pub const LOCAL_ONLY_ENV: [(&str, &str); 4] = [
    ("HTTPS_PROXY", "http://127.0.0.1:9"),
    ("HTTP_PROXY", "http://127.0.0.1:9"),
    ("ALL_PROXY", "http://127.0.0.1:9"),
    ("NO_PROXY", "127.0.0.0/8,localhost"),
];

impl Drop for Registry {
    fn drop(&mut self) {
        if self.external {
            return;
        }
        let _ = Command::new("bash")
            .arg(harness("registry.sh"))
            .args(["stop", self.state.path().to_str().unwrap()])
            .output();
    }
}

/// The OCI layout with every fixture image, built once per test run by umoci.
pub fn fixtures() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = repo_root().join("target/test-fixtures");
        // Several test binaries may build at once: serialize on a lock file.
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::File::create(dir.with_extension("lock")).unwrap();
        flock(&lock);
        run_script("fixtures.sh", &[dir.to_str().unwrap()]);
        dir.join("layout")
    })
}

fn flock(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd. Released when the file is closed at process exit.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    std::mem::forget(f.try_clone().unwrap());
}

/// An rkt store and configuration of its own. Dropped, it stops and removes every pod it
/// still has: pods outlive whatever started them, by design, so a test that fails half-way
/// would otherwise leave them (and their networks) running.
pub struct Rkt {
    pub dir: tempfile::TempDir,
    pub config: tempfile::TempDir,
    pub insecure: String,
    pub env: Vec<(String, String)>,
}

impl Default for Rkt {
    fn default() -> Rkt {
        Rkt::new()
    }
}

impl Rkt {
    pub fn new() -> Rkt {
        Rkt {
            dir: tempfile::Builder::new()
                .prefix("rkt-store-")
                .tempdir()
                .unwrap(),
            config: tempfile::Builder::new()
                .prefix("rkt-config-")
                .tempdir()
                .unwrap(),
            insecure: "image,http".into(),
            env: Vec::new(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin("rkt"));
        c.arg(format!("--dir={}", self.dir.path().display()))
            .arg(format!("--local-config={}", self.config.path().display()))
            .arg("--system-config=/nonexistent")
            .arg(format!("--insecure-options={}", self.insecure));
        for (k, v) in LOCAL_ONLY_ENV {
            c.env(k, v);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rkt {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts rkt's error status 254, returning stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(254),
            "rkt {args:?} should fail with 254:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn write_auth(&self, name: &str, json: &str) {
        let d = self.config.path().join("auth.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), json).unwrap();
    }

    /// A `dockerAuth` credentials file for one registry.
    pub fn write_docker_auth(&self, name: &str, registry: &str, user: &str, password: &str) {
        self.write_auth(
            name,
            &format!(
                r#"{{"rktKind":"dockerAuth","rktVersion":"v1","registries":["{registry}"],"credentials":{{"user":"{user}","password":"{password}"}}}}"#
            ),
        );
    }

    /// A `registries.d` file of this store's local configuration.
    pub fn write_registries(&self, name: &str, json: &str) {
        let d = self.config.path().join("registries.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), json).unwrap();
    }

    pub fn cas(&self) -> PathBuf {
        self.dir.path().join("cas")
    }

    /// Image IDs in the store, as the store's directory shows them.
    pub fn image_dirs(&self) -> Vec<String> {
        let mut v = entries(&self.cas().join("images"));
        v.sort();
        v
    }

    pub fn tmp_entries(&self) -> Vec<String> {
        entries(&self.cas().join("tmp"))
    }

    /// The rendered root filesystem of the image with this (short or full) ID.
    pub fn rootfs(&self, id: &str) -> PathBuf {
        let full = self
            .image_dirs()
            .into_iter()
            .find(|d| d.starts_with(id.trim()))
            .unwrap_or_else(|| panic!("no image {id} in the store"));
        self.cas().join("images").join(full).join("rootfs")
    }
}

impl Drop for Rkt {
    fn drop(&mut self) {
        remove_all_pods(self.dir.path());
    }
}

/// Stops and removes every pod of the rkt directory `dir`; for cleanup guards, so it never
/// panics (a test already failing would abort the run).
pub fn remove_all_pods(dir: &Path) {
    let rkt_bin = bin_dir().join("rkt");
    if !rkt_bin.exists() {
        return;
    }
    let rkt = |args: &[&str]| {
        Command::new(&rkt_bin)
            .arg(format!("--dir={}", dir.display()))
            .args(args)
            .output()
    };
    let Ok(out) = rkt(&["list", "--format=json"]) else {
        return;
    };
    let pods: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    for pod in pods.as_array().into_iter().flatten() {
        if let Some(uuid) = pod["name"].as_str() {
            let _ = rkt(&["stop", "--force", uuid]);
            let _ = rkt(&["rm", uuid]);
        }
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts one of the harness's single-purpose Python servers and returns it with its port.
pub fn python_server(
    script: &str,
    args: &[&str],
) -> (std::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("port");
    let child = Command::new("python3")
        .arg(harness(script))
        .arg(&portfile)
        .args(args)
        .spawn()
        .unwrap();
    let port = eventually(Duration::from_secs(5), script, || {
        std::fs::read_to_string(&portfile)
            .ok()
            .filter(|p| p.ends_with('\n') || !p.is_empty())
    });
    (child, port.trim().to_string(), dir)
}

/// A small tmpfs of its own, for what happens when a file system fills up (a store, a
/// volume); unmounted (lazily, in case a pod still holds it) when dropped.
pub struct SmallFs {
    pub dir: tempfile::TempDir,
}

impl SmallFs {
    /// A tmpfs of `size` (tmpfs's own syntax: `48m`).
    pub fn new(size: &str) -> SmallFs {
        let dir = tempfile::Builder::new()
            .prefix("rkt-smallfs-")
            .tempdir()
            .unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs on {}", dir.path().display());
        SmallFs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes an unprivileged writer could still write.
    pub fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(self.dir.path()).unwrap();
        st.f_bavail * st.f_frsize
    }

    /// An rkt whose store (`--dir`) is on this file system.
    pub fn rkt(&self) -> Rkt {
        let mut rkt = Rkt::new();
        rkt.dir = tempfile::Builder::new()
            .prefix("store-")
            .tempdir_in(self.dir.path())
            .unwrap();
        rkt
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        remove_all_pods(self.dir.path());
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
