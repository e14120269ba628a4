//! `rkt metadata-service` and `rkt run --mds-register`: an app inside a pod reads its pod's
//! and its own metadata from `AC_METADATA_URL` and has the service sign for its pod; the
//! host verifies the signature; the registration goes with the pod. Each test's service has
//! a socket of its own (`RKT_METADATA_SOCKET`) and a free port.

mod common;

use common::pods::*;
use common::Rkt;
use std::time::Duration;

/// `rkt metadata-service` on a free port and a socket of its own, SIGTERMed when dropped.
struct Mds {
    child: std::process::Child,
    port: u16,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Mds {
    fn start(rkt: &mut Rkt) -> Mds {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("mds.sock");
        rkt.env
            .push(("RKT_METADATA_SOCKET".into(), socket.display().to_string()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = rkt
            .cmd()
            .args(["metadata-service", &format!("--listen-port={port}")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        common::eventually(Duration::from_secs(10), "the metadata service", || {
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
        Mds {
            child,
            port,
            socket,
            _dir: dir,
        }
    }

    /// curl against the apps' endpoints from the host; (status, body).
    fn curl(&self, path: &str, form: &[(&str, &str)]) -> (String, String) {
        let mut c = std::process::Command::new("curl");
        c.args(["-s", "-w", "\n%{http_code}"]);
        for (k, v) in form {
            c.args(["--data-urlencode", &format!("{k}={v}")]);
        }
        let o = c
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_string(), body.to_string())
    }
}

impl Drop for Mds {
    fn drop(&mut self) {
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// What the app asks the service, one line (or JSON document) per question, then a
/// signature of "hello" for its pod.
const APP: &str = r#"
u="$AC_METADATA_URL/acMetadata/v1"
echo "url $AC_METADATA_URL"
echo "uuid $(wget -qO- $u/pod/uuid)"
echo "image-id $(wget -qO- $u/apps/$AC_APP_NAME/image/id)"
echo "pod-annotation $(wget -qO- $u/pod/annotations/coreos.com/rkt/stage1/mutable)"
echo "app-annotation $(wget -qO- $u/apps/$AC_APP_NAME/annotations/appc.io/docker/repository)"
echo "image-manifest $(wget -qO- $u/apps/$AC_APP_NAME/image/manifest)"
echo "pod-manifest $(wget -qO- $u/pod/manifest)"
echo "signature $(wget -qO- --post-data content=hello $u/pod/hmac/sign)"
"#;

fn lines(stdout: &str) -> std::collections::HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn an_app_reads_its_metadata_and_its_pods_identity_is_verified() {
    if !common::require_root() {
        return;
    }
    let mut rkt = Rkt::new();
    let mds = Mds::start(&mut rkt);
    let uuid_file = rkt.config.path().join("uuid");
    let o = rkt.run(&[
        "run",
        "--net=host",
        "--mds-register",
        &format!("--uuid-file-save={}", uuid_file.display()),
        &busybox(),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        APP,
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    let got = lines(&stdout);
    assert!(
        got["url"].starts_with(&format!("http://127.0.0.1:{}/", mds.port)),
        "{stdout}"
    );
    assert_eq!(got["uuid"], uuid);
    let manifest: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["cat-manifest", &uuid])).unwrap();
    assert_eq!(
        got["image-id"],
        manifest["apps"][0]["image"]["id"].as_str().unwrap()
    );
    assert_eq!(got["pod-annotation"], "false");
    assert_eq!(got["app-annotation"], "busybox");
    let im: serde_json::Value = serde_json::from_str(&got["image-manifest"]).unwrap();
    assert_eq!(im["acKind"], "ImageManifest");
    let pm: serde_json::Value = serde_json::from_str(&got["pod-manifest"]).unwrap();
    assert_eq!(pm["apps"][0]["name"], "busybox");

    // The host verifies the pod's signature; another content, another pod or a forged
    // signature is refused.
    let token_path = got["url"].split('/').nth(3).unwrap().to_string();
    let verify = format!("/{token_path}/acMetadata/v1/pod/hmac/verify");
    let sig = got["signature"].clone();
    let other_uuid = "00000000-0000-4000-8000-000000000000";
    assert_eq!(
        mds.curl(
            &verify,
            &[("uuid", &uuid), ("content", "hello"), ("signature", &sig)]
        )
        .0,
        "200"
    );
    for (u, content, s) in [
        (uuid.as_str(), "hell0", sig.as_str()),
        (other_uuid, "hello", sig.as_str()),
        (uuid.as_str(), "hello", "AAAA"),
    ] {
        assert_eq!(
            mds.curl(
                &verify,
                &[("uuid", u), ("content", content), ("signature", s)]
            )
            .0,
            "403",
            "{u} {content} {s}"
        );
    }
    // A token the service never gave out is refused; the pod's goes when the pod does.
    assert_eq!(
        mds.curl("/nosuchtoken/acMetadata/v1/pod/uuid", &[]).0,
        "401"
    );
    let uuid_url = format!("/{token_path}/acMetadata/v1/pod/uuid");
    assert_eq!(mds.curl(&uuid_url, &[]), ("200".into(), uuid.clone()));
    rkt.ok(&["rm", &uuid]);
    assert_eq!(mds.curl(&uuid_url, &[]).0, "401", "the pod is unregistered");
}

#[test]
fn a_pod_on_the_default_network_reaches_it_through_its_gateway() {
    if !common::require_root() {
        return;
    }
    let mut rkt = Rkt::new();
    let _mds = Mds::start(&mut rkt);
    let o = rkt.run(&[
        "run",
        "--mds-register",
        &busybox(),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo $AC_METADATA_URL; wget -qO- $AC_METADATA_URL/acMetadata/v1/pod/uuid",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("http://172.16.28.1:"), "{stdout}");
    let uuid = stdout.lines().nth(1).unwrap_or_default();
    assert_eq!(uuid.len(), 36, "{stdout}");
}

#[test]
fn without_a_service_or_a_network_registration_is_refused_leaving_nothing() {
    if !common::require_root() {
        return;
    }
    let mut rkt = Rkt::new();
    let dir = tempfile::tempdir().unwrap();
    rkt.env.push((
        "RKT_METADATA_SOCKET".into(),
        dir.path().join("none.sock").display().to_string(),
    ));
    let image = busybox();
    let e = rkt.fails(&[
        "run",
        "--net=host",
        "--mds-register",
        &image,
        "--exec=/bin/true",
    ]);
    assert!(e.contains("could not reach the metadata service"), "{e}");
    let e = rkt.fails(&[
        "run",
        "--net=none",
        "--mds-register",
        &image,
        "--exec=/bin/true",
    ]);
    assert!(e.contains("--mds-register"), "{e}");
    let e = rkt.fails(&["prepare", "--mds-register", &image]);
    assert!(e.contains("run-prepared"), "{e}");
    assert_eq!(pod_dirs(&rkt), Vec::<String>::new());
    let mds = Mds::start(&mut rkt);
    // A second service on the same socket is refused while the first listens.
    let o = rkt
        .cmd()
        .args(["metadata-service", "--listen-port=0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another metadata service"));
    assert!(mds.socket.exists());
}
