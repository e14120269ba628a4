//! Test harness shared by the integration tests: real Distribution registries started by
//! `tests/harness/registry.sh`, fixture images built by umoci and pushed by skopeo, and a
//! helper to run the `rkt` binary against a private store.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn harness(script: &str) -> PathBuf {
    repo_root().join("tests/harness").join(script)
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

/// Integration tests need root (mknod, chown, registries on loopback are fine without, but
/// rendering images with devices and owners is not).
pub fn require_root() -> bool {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!(
            "skipped: this test renders images with device nodes and owners, which needs root"
        );
        return false;
    }
    true
}

/// A running registry; stopped when dropped.
pub struct Registry {
    pub state: tempfile::TempDir,
    pub port: u16,
    pub mode: String,
}

impl Registry {
    pub fn start(mode: &str) -> Registry {
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
        }
    }

    /// A registry with the standard fixture set pushed to it.
    pub fn with_fixtures(mode: &str) -> Registry {
        let reg = Registry::start(mode);
        reg.push_fixtures();
        reg
    }

    pub fn push_fixtures(&self) {
        let layout = fixtures();
        let mut args = vec![self.port.to_string(), layout.to_str().unwrap().to_string()];
        if matches!(self.mode.as_str(), "basic" | "token") {
            args.push("tester:secret".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script("push_fixtures.sh", &args);
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
}

impl Drop for Registry {
    fn drop(&mut self) {
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

/// An rkt store and configuration of its own.
pub struct Rkt {
    pub dir: tempfile::TempDir,
    pub config: tempfile::TempDir,
    pub insecure: String,
    pub env: Vec<(String, String)>,
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
        let mut c = Command::new(env!("CARGO_BIN_EXE_rkt"));
        c.arg(format!("--dir={}", self.dir.path().display()))
            .arg(format!("--local-config={}", self.config.path().display()))
            .arg("--system-config=/nonexistent")
            .arg(format!("--insecure-options={}", self.insecure));
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

    pub fn cas(&self) -> PathBuf {
        self.dir.path().join("cas")
    }

    /// Image IDs in the store, as the store's directory shows them.
    pub fn image_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.cas().join("images"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn tmp_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.cas().join("tmp"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
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

/// Starts one of the harness's single-purpose Python servers and returns it with its port.
pub fn python_server(
    script: &str,
    args: &[&str],
) -> (std::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("port");
    let child = std::process::Command::new("python3")
        .arg(harness(script))
        .arg(&portfile)
        .args(args)
        .spawn()
        .unwrap();
    let port = (0..200)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(25));
            std::fs::read_to_string(&portfile).ok()
        })
        .unwrap_or_else(|| panic!("{script} did not start"));
    (child, port.trim().to_string(), dir)
}
