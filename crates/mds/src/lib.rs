//! The appc metadata service (appc's `ace.md`, "App Container Metadata Service"), as
//! `rkt metadata-service` ran it in rkt 1.30:
//!
//! - **Registration**, over the Unix socket `/run/rkt/metadata-svc.sock` (root only): `rkt
//!   run --mds-register` puts the pod's manifest (`PUT /pods/UUID?token=TOKEN`) and each
//!   app's image manifest (`PUT /pods/UUID/APP`); the pod is removed with `DELETE
//!   /pods/UUID` when it is. `GET /port` (not rkt's) tells the registrant the apps' port, so
//!   that `--listen-port` works end to end.
//! - **The apps' endpoints**, over TCP (`--listen-port`, default 18112, on every IPv4
//!   address), under `/TOKEN/acMetadata/v1`, where the pod's apps find them through
//!   `AC_METADATA_URL` (`http://HOST:PORT/TOKEN`): the pod's annotations, manifest and UUID;
//!   each app's annotations (the image's, then the pod manifest's app's), image manifest and
//!   image ID; and identity: `POST pod/hmac/sign` (form `content`) signs with HMAC-SHA512 of
//!   the pod's UUID and the content under a key made when the service starts, `POST
//!   pod/hmac/verify` (form `uuid`, `content`, `signature`) answers 200 for a signature the
//!   service made for that pod, 403 otherwise. An unknown token is 401.
//!
//! Registrations live in memory, as in rkt: a restarted service knows no pod.

#![forbid(unsafe_code)]

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use layout::{
    mds_socket as socket_path, MDS_PORT as DEFAULT_PORT, MDS_SOCKET as DEFAULT_SOCKET,
};

/// A registered pod.
struct Pod {
    uuid: String,
    /// The UUID's 16 bytes, which signatures cover (as rkt's types.UUID).
    uuid_bytes: [u8; 16],
    token: String,
    manifest: Value,
    /// App name to image manifest.
    apps: HashMap<String, Value>,
}

/// The registered pods and the signing key.
pub struct Service {
    pods: Mutex<HashMap<String, Pod>>,
    key: [u8; 64],
    port: u16,
}

type Shared = Arc<Service>;

impl Service {
    /// A service with no pod, a fresh signing key, telling registrants `port`.
    pub fn new(port: u16) -> std::io::Result<Shared> {
        let mut key = [0u8; 64];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(Arc::new(Service {
            pods: Mutex::new(HashMap::new()),
            key,
            port,
        }))
    }

    fn with_pod<T>(&self, token: &str, f: impl FnOnce(&Pod) -> T) -> Option<T> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.values().find(|p| p.token == token).map(f)
    }

    fn signature(&self, uuid: &[u8; 16], content: &str) -> Vec<u8> {
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(&self.key).expect("any key length");
        mac.update(uuid);
        mac.update(content.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// The registration endpoints (for the Unix socket).
pub fn registration(service: Shared) -> Router {
    Router::new()
        .route("/pods/{uuid}", put(register_pod).delete(unregister_pod))
        .route("/pods/{uuid}/{app}", put(register_app))
        .route(
            "/port",
            get(|State(s): State<Shared>| async move { s.port.to_string() }),
        )
        .with_state(service)
}

/// The apps' endpoints (for TCP).
pub fn public(service: Shared) -> Router {
    const V1: &str = "/{token}/acMetadata/v1";
    let r = |p: &str| format!("{V1}{p}");
    Router::new()
        .route(&r("/pod/annotations"), get(pod_annotations))
        .route(&r("/pod/annotations/{*name}"), get(pod_annotation))
        .route(&r("/pod/manifest"), get(pod_manifest))
        .route(&r("/pod/uuid"), get(pod_uuid))
        .route(&r("/apps/{app}/annotations"), get(app_annotations))
        .route(&r("/apps/{app}/annotations/{*name}"), get(app_annotation))
        .route(&r("/apps/{app}/image/manifest"), get(image_manifest))
        .route(&r("/apps/{app}/image/id"), get(image_id))
        .route(&r("/pod/hmac/sign"), post(sign))
        .route(&r("/pod/hmac/verify"), post(verify))
        .with_state(service)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=us-ascii")],
        body.into(),
    )
        .into_response()
}

fn json(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn unauthorized() -> Response {
    text(StatusCode::UNAUTHORIZED, "pod not found\n")
}

/// A UUID's 16 bytes, from its text form.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let bytes = hex::decode(hex).ok()?;
    bytes.try_into().ok()
}

async fn register_pod(
    State(s): State<Shared>,
    Path(uuid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let Some(uuid_bytes) = uuid_bytes(&uuid) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("UUID is missing or malformed: {uuid:?}"),
        );
    };
    let Some(token) = q.get("token").filter(|t| !t.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "token missing");
    };
    let manifest: Value = match serde_json::from_str(&body) {
        Ok(m @ Value::Object(_)) if m["acKind"] == "PodManifest" => m,
        Ok(_) => return text(StatusCode::BAD_REQUEST, "not a pod manifest"),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("JSON-decoding failed: {e}"),
            )
        }
    };
    let pod = Pod {
        uuid: uuid.clone(),
        uuid_bytes,
        token: token.clone(),
        manifest,
        apps: HashMap::new(),
    };
    s.pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uuid, pod);
    StatusCode::OK.into_response()
}

async fn unregister_pod(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    match s
        .pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&uuid)
    {
        Some(_) => StatusCode::OK.into_response(),
        None => text(StatusCode::NOT_FOUND, "pod not found"),
    }
}

async fn register_app(
    State(s): State<Shared>,
    Path((uuid, app)): Path<(String, String)>,
    body: String,
) -> Response {
    let manifest: Value = match serde_json::from_str(&body) {
        Ok(m @ Value::Object(_)) if m["acKind"] == "ImageManifest" => m,
        Ok(_) => return text(StatusCode::BAD_REQUEST, "not an image manifest"),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("JSON-decoding failed: {e}"),
            )
        }
    };
    let mut pods = s.pods.lock().unwrap_or_else(|e| e.into_inner());
    match pods.get_mut(&uuid) {
        Some(p) => {
            p.apps.insert(app, manifest);
            StatusCode::OK.into_response()
        }
        None => text(StatusCode::NOT_FOUND, "Pod with given UUID not found"),
    }
}

/// `[{"name":…,"value":…}]` as appc's annotations are written; a missing list is empty.
fn annotations(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn lookup(list: &[Value], name: &str) -> Option<String> {
    list.iter()
        .rev()
        .find(|a| a["name"] == name)
        .and_then(|a| a["value"].as_str().map(str::to_string))
}

async fn pod_annotations(State(s): State<Shared>, Path(token): Path<String>) -> Response {
    s.with_pod(&token, |p| {
        json(&Value::Array(annotations(&p.manifest["annotations"])))
    })
    .unwrap_or_else(unauthorized)
}

async fn pod_annotation(
    State(s): State<Shared>,
    Path((token, name)): Path<(String, String)>,
) -> Response {
    s.with_pod(&token, |p| {
        match lookup(&annotations(&p.manifest["annotations"]), &name) {
            Some(v) => text(StatusCode::OK, v),
            None => text(
                StatusCode::NOT_FOUND,
                format!("Pod annotation {name:?} not found"),
            ),
        }
    })
    .unwrap_or_else(unauthorized)
}

async fn pod_manifest(State(s): State<Shared>, Path(token): Path<String>) -> Response {
    s.with_pod(&token, |p| json(&p.manifest))
        .unwrap_or_else(unauthorized)
}

async fn pod_uuid(State(s): State<Shared>, Path(token): Path<String>) -> Response {
    s.with_pod(&token, |p| text(StatusCode::OK, p.uuid.clone()))
        .unwrap_or_else(unauthorized)
}

/// The pod manifest's entry for `app`.
fn runtime_app<'a>(p: &'a Pod, app: &str) -> Option<&'a Value> {
    p.manifest["apps"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == app)
}

/// Runs `f` with the pod of `token` and the image manifest of its app `app`: 401 for an
/// unknown token, 404 for an app the pod did not register.
fn with_app(
    s: &Service,
    token: &str,
    app: &str,
    f: impl FnOnce(&Pod, &Value) -> Response,
) -> Response {
    s.with_pod(token, |p| match p.apps.get(app) {
        Some(im) => f(p, im),
        None => text(StatusCode::NOT_FOUND, "app not found\n"),
    })
    .unwrap_or_else(unauthorized)
}

/// The image's annotations, then the pod manifest's app's, a later one replacing an earlier
/// one of the same name.
fn merged_app_annotations(p: &Pod, app: &str, im: &Value) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::new();
    let from_pod = runtime_app(p, app).map(|a| annotations(&a["annotations"]));
    for a in annotations(&im["annotations"])
        .into_iter()
        .chain(from_pod.into_iter().flatten())
    {
        merged.retain(|m| m["name"] != a["name"]);
        merged.push(a);
    }
    merged
}

async fn app_annotations(
    State(s): State<Shared>,
    Path((token, app)): Path<(String, String)>,
) -> Response {
    with_app(&s, &token, &app, |p, im| {
        json(&Value::Array(merged_app_annotations(p, &app, im)))
    })
}

async fn app_annotation(
    State(s): State<Shared>,
    Path((token, app, name)): Path<(String, String, String)>,
) -> Response {
    with_app(&s, &token, &app, |p, im| {
        match lookup(&merged_app_annotations(p, &app, im), &name) {
            Some(v) => text(StatusCode::OK, v),
            None => text(
                StatusCode::NOT_FOUND,
                format!("App annotation {name:?} not found"),
            ),
        }
    })
}

async fn image_manifest(
    State(s): State<Shared>,
    Path((token, app)): Path<(String, String)>,
) -> Response {
    with_app(&s, &token, &app, |_, im| json(im))
}

async fn image_id(State(s): State<Shared>, Path((token, app)): Path<(String, String)>) -> Response {
    with_app(&s, &token, &app, |p, _| {
        match runtime_app(p, &app).and_then(|a| a["image"]["id"].as_str()) {
            Some(id) => text(StatusCode::OK, id),
            None => text(StatusCode::NOT_FOUND, "app not found\n"),
        }
    })
}

async fn sign(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(uuid) = s.with_pod(&token, |p| p.uuid_bytes) else {
        return unauthorized();
    };
    let Some(content) = form.get("content").filter(|c| !c.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "content form value not found");
    };
    let sig = s.signature(&uuid, content);
    text(
        StatusCode::OK,
        base64::engine::general_purpose::STANDARD.encode(sig),
    )
}

async fn verify(
    State(s): State<Shared>,
    Path(_token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(uuid) = form.get("uuid").and_then(|u| uuid_bytes(u)) else {
        return text(StatusCode::BAD_REQUEST, "uuid field missing or malformed");
    };
    let Some(content) = form.get("content").filter(|c| !c.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "content field missing");
    };
    let Some(sig) = form
        .get("signature")
        .and_then(|g| base64::engine::general_purpose::STANDARD.decode(g).ok())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "signature field missing or corrupt",
        );
    };
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(&s.key).expect("any key length");
    mac.update(&uuid);
    mac.update(content.as_bytes());
    // Constant-time comparison, as hmac.Equal.
    match mac.verify_slice(&sig) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => StatusCode::FORBIDDEN.into_response(),
    }
}

/// The service's two listeners, bound.
pub struct Listeners {
    tcp: tokio::net::TcpListener,
    unix: tokio::net::UnixListener,
    socket: std::path::PathBuf,
    port: u16,
}

/// Binds the apps' port (every IPv4 address, as rkt) and the registration socket.
pub async fn bind(port: u16, socket: &std::path::Path) -> std::io::Result<Listeners> {
    let tcp = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("error listening on port {port}: {e}"))
        })?;
    let port = tcp.local_addr()?.port();
    let unix = bind_socket(socket)?;
    Ok(Listeners {
        tcp,
        unix,
        socket: socket.to_path_buf(),
        port,
    })
}

/// Serves registration and the apps' endpoints until `shutdown` completes; the socket is
/// removed then.
pub async fn serve(
    l: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = Service::new(l.port)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let reg = axum::serve(l.unix, registration(service.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let apps = axum::serve(l.tcp, public(service)).with_graceful_shutdown(stopped(stop_rx));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let (a, b) = tokio::join!(reg, apps);
    let _ = std::fs::remove_file(&l.socket);
    a.and(b)
}

/// The registration socket, root's alone; a stale one (nobody listening) is replaced.
fn bind_socket(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{}: another metadata service listens there", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(s: &Service) -> Pod {
        let _ = s;
        Pod {
            uuid: "0b1c2d3e-0000-4000-8000-000000000001".into(),
            uuid_bytes: uuid_bytes("0b1c2d3e-0000-4000-8000-000000000001").unwrap(),
            token: "t".into(),
            manifest: serde_json::json!({
                "acKind": "PodManifest",
                "apps": [{"name": "web", "image": {"id": "sha512-1"},
                          "annotations": [{"name": "a", "value": "pod"}]}]
            }),
            apps: HashMap::new(),
        }
    }

    #[test]
    fn app_annotations_are_the_images_then_the_pods() {
        let s = Service::new(1).unwrap();
        let p = pod(&s);
        let im = serde_json::json!({"annotations": [
            {"name": "a", "value": "image"}, {"name": "b", "value": "image"}
        ]});
        let merged = merged_app_annotations(&p, "web", &im);
        assert_eq!(lookup(&merged, "a").as_deref(), Some("pod"));
        assert_eq!(lookup(&merged, "b").as_deref(), Some("image"));
    }

    #[test]
    fn signatures_cover_the_uuid_and_the_content() {
        let s = Service::new(1).unwrap();
        let u1 = uuid_bytes("0b1c2d3e-0000-4000-8000-000000000001").unwrap();
        let u2 = uuid_bytes("0b1c2d3e-0000-4000-8000-000000000002").unwrap();
        assert_eq!(s.signature(&u1, "x"), s.signature(&u1, "x"));
        assert_ne!(s.signature(&u1, "x"), s.signature(&u2, "x"));
        assert_ne!(s.signature(&u1, "x"), s.signature(&u1, "y"));
        assert_eq!(s.signature(&u1, "x").len(), 64);
        assert!(uuid_bytes("not-a-uuid").is_none());
    }
}
