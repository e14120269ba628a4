//! `--mds-register`: the pod registered with the metadata service (`rkt metadata-service`,
//! the `mds` crate) as rkt 1.30 did it: its manifest with a random token, then each app's
//! image manifest, over the service's Unix socket; the apps get `AC_METADATA_URL`
//! (`http://HOST:PORT/TOKEN`), HOST being where the pod reaches the host (127.0.0.1 with
//! the host's network, the network's gateway otherwise). The pod is unregistered when it is
//! removed (`mds-registered` in the pod directory says it was registered).

use crate::error::{bail, Context, Error, Result};
use layout::pod_dir::PodDir;
use std::io::{Read, Write};
use std::path::Path;

fn unreachable() -> Error {
    Error::failed(format!(
        "could not reach the metadata service at {}. Make sure the metadata service is running (rkt metadata-service) or leave out --mds-register",
        layout::mds_socket().display()
    ))
}

/// Registers the pod in `dir` and its apps; returns `AC_METADATA_URL` for its apps, whose
/// host part is `host`.
pub(crate) fn register(
    config: &crate::Config,
    dir: &Path,
    uuid: &str,
    host: std::net::Ipv4Addr,
) -> Result<String> {
    let pod = PodDir::new(dir);
    let port = request("GET", "/port", b"")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(layout::MDS_PORT);
    let token = token()?;
    let manifest = std::fs::read(pod.manifest()).context("reading the pod manifest")?;
    request("PUT", &format!("/pods/{uuid}?token={token}"), &manifest)
        .map_err(|e| e.context("registering the pod with the metadata service"))?;
    std::fs::write(pod.mds_registered(), b"")?;
    let registered = register_apps(config, uuid, &manifest);
    if let Err(e) = registered {
        unregister(dir, uuid);
        return Err(e);
    }
    Ok(format!("http://{host}:{port}/{token}"))
}

fn register_apps(config: &crate::Config, uuid: &str, manifest: &[u8]) -> Result<()> {
    let manifest: pod::manifest::PodManifest = serde_json::from_slice(manifest)?;
    let store = image::store::Store::open(&config.dir)?;
    for app in &manifest.apps {
        let image = store.manifest_bytes(&app.image.id)?;
        request("PUT", &format!("/pods/{uuid}/{}", app.name), &image).map_err(|e| {
            e.context(format!(
                "registering app {:?} with the metadata service",
                app.name
            ))
        })?;
    }
    Ok(())
}

/// Removes the pod's registration, if it has one; the service may be gone, which is fine.
pub(crate) fn unregister(dir: &Path, uuid: &str) {
    let registered = PodDir::new(dir).mds_registered();
    if registered.exists() {
        let _ = request("DELETE", &format!("/pods/{uuid}"), b"");
        let _ = std::fs::remove_file(registered);
    }
}

/// 16 random bytes in hex, as rkt's tokens.
fn token() -> Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// One HTTP/1.1 request over the registration socket; the body of a 200 answer.
fn request(method: &str, path: &str, body: &[u8]) -> Result<String> {
    let mut s =
        std::os::unix::net::UnixStream::connect(layout::mds_socket()).map_err(|_| unreachable())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: unixsock\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).unwrap_or("");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if status != "200" {
        bail!("{method} {path} returned {status}: {}", body.trim());
    }
    Ok(body.to_string())
}
