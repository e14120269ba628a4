//! `rkt api-service`: rkt's gRPC API (v1alpha), read through a client generated from the
//! same proto, over real pods and images: GetInfo, ListPods (filters as cAdvisor uses them:
//! the pod whose cgroup holds a process), InspectPod, ListImages, InspectImage, ListenEvents
//! (events as pods start and exit) and GetLogs (refused: no logs are kept).

mod common;

use api::v1alpha::public_api_client::PublicApiClient;
use api::v1alpha::*;
use common::pods::*;
use common::Rkt;
use std::time::Duration;

type Client = PublicApiClient<tonic::transport::Channel>;

/// `rkt api-service` on a free loopback port, stopped (SIGTERM) when dropped.
struct ApiService {
    child: std::process::Child,
    addr: String,
}

impl ApiService {
    fn start(rkt: &Rkt) -> ApiService {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = rkt
            .cmd()
            .args(["api-service", &format!("--listen={addr}")])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        common::eventually(Duration::from_secs(10), "the API service listening", || {
            std::net::TcpStream::connect(&addr).ok()
        });
        ApiService { child, addr }
    }

    fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        use std::io::Read;
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    }
}

impl Drop for ApiService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn pods(
    rt: &tokio::runtime::Runtime,
    c: &mut Client,
    filters: Vec<PodFilter>,
    detail: bool,
) -> Vec<Pod> {
    rt.block_on(c.list_pods(ListPodsRequest { filters, detail }))
        .unwrap()
        .into_inner()
        .pods
}

/// A busybox pod that exits with `code`; its UUID.
fn exited_pod(rkt: &Rkt, code: i32) -> String {
    let uuid_file = rkt.config.path().join(format!("uuid-{}", rand_suffix()));
    let o = rkt.run(&[
        "run",
        "--net=none",
        &format!("--uuid-file-save={}", uuid_file.display()),
        &busybox(),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        &format!("exit {code}"),
    ]);
    assert_eq!(o.status.code(), Some(code), "{}", out(&o).1);
    std::fs::read_to_string(uuid_file).unwrap()
}

#[test]
fn pods_and_images_as_rkts_api_shows_them() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let service = ApiService::start(&rkt);
    let rt = runtime();
    let mut c = rt
        .block_on(Client::connect(format!("http://{}", service.addr)))
        .unwrap();

    let info = rt
        .block_on(c.get_info(GetInfoRequest {}))
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(
        (
            info.rkt_version.as_str(),
            info.appc_version.as_str(),
            info.api_version.as_str()
        ),
        ("1.30.0", "0.8.11", "1.0.0-alpha")
    );
    let flags = info.global_flags.unwrap();
    assert_eq!(flags.dir, rkt.dir.path().display().to_string());
    assert_eq!(flags.insecure_flags, "image,http");

    let exited = exited_pod(&rkt, 3);
    let (mut running_child, running) = start_pod(&rkt, &[], &["--exec", "/bin/sleep", "--", "60"]);
    let prepared = rkt
        .ok(&["prepare", "--quiet", &busybox()])
        .trim()
        .to_string();

    let all = pods(&rt, &mut c, Vec::new(), false);
    assert_eq!(all.len(), 3, "{all:?}");
    let by_id = |id: &str| all.iter().find(|p| p.id == id).unwrap().clone();
    let e = by_id(&exited);
    assert_eq!(e.state(), PodState::Exited);
    assert_eq!(
        (e.apps[0].state(), e.apps[0].exit_code),
        (AppState::Exited, 3)
    );
    assert_eq!(e.apps[0].image.as_ref().unwrap().version, "latest");
    assert!(e.manifest.is_empty(), "no manifest without detail");
    assert!(
        e.created_at > 1_000_000_000_000_000_000,
        "nanoseconds: {}",
        e.created_at
    );
    let r = by_id(&running);
    assert_eq!(r.state(), PodState::Running);
    assert_eq!(r.apps[0].state(), AppState::Running);
    // Where the pod's plan put it (below rkt.slice by default).
    assert_eq!(
        r.cgroup,
        format!(
            "/{}",
            layout::cgroup::pod_rel(layout::cgroup::DEFAULT_PARENT, &running)
        )
    );
    assert!(r.pid > 0);
    assert_eq!(by_id(&prepared).state(), PodState::Prepared);
    assert_eq!(by_id(&prepared).apps[0].state(), AppState::Undefined);

    // cAdvisor's question: which running pod holds the cgroup of this process?
    let app_pid =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", r.pid, r.pid)).unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", app_pid.trim())).unwrap();
    let own = cgroups
        .lines()
        .map(|l| l.splitn(3, ':').nth(2).unwrap().to_string())
        .find(|c| c.contains(&running))
        .unwrap_or_else(|| panic!("the app is in no cgroup of its pod: {cgroups}"));
    let found = pods(
        &rt,
        &mut c,
        vec![PodFilter {
            states: vec![PodState::Running as i32],
            pod_sub_cgroups: vec![own.clone()],
            ..Default::default()
        }],
        true,
    );
    assert_eq!(found.len(), 1, "{own}: {found:?}");
    assert_eq!(found[0].id, running);
    let manifest: serde_json::Value = serde_json::from_slice(&found[0].manifest).unwrap();
    assert_eq!(manifest["acKind"], "PodManifest");
    let two = pods(
        &rt,
        &mut c,
        vec![
            PodFilter {
                ids: vec![exited.clone()],
                ..Default::default()
            },
            PodFilter {
                states: vec![PodState::Prepared as i32],
                ..Default::default()
            },
        ],
        false,
    );
    let mut ids: Vec<&str> = two.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    let mut want = vec![exited.as_str(), prepared.as_str()];
    want.sort();
    assert_eq!(ids, want, "filters are combined with OR");

    let inspected = rt
        .block_on(c.inspect_pod(InspectPodRequest { id: exited.clone() }))
        .unwrap()
        .into_inner()
        .pod
        .unwrap();
    assert_eq!(inspected.apps[0].exit_code, 3);
    assert!(!inspected.manifest.is_empty());
    let missing = rt
        .block_on(c.inspect_pod(InspectPodRequest {
            id: "00000000-0000-0000-0000-000000000000".into(),
        }))
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let images = rt
        .block_on(c.list_images(ListImagesRequest {
            filters: vec![ImageFilter {
                base_names: vec!["busybox".into()],
                ..Default::default()
            }],
            detail: false,
        }))
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(images.len(), 1, "{images:?}");
    assert!(images[0].manifest.is_empty() && images[0].size > 0);
    assert_eq!(images[0].id, e.apps[0].image.as_ref().unwrap().id);
    let image = rt
        .block_on(c.inspect_image(InspectImageRequest {
            id: images[0].id.clone(),
        }))
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    let im: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    assert_eq!(im["acKind"], "ImageManifest");
    assert!(image
        .labels
        .iter()
        .any(|l| l.key == "os" && l.value == "linux"));

    let logs = rt
        .block_on(c.get_logs(GetLogsRequest {
            pod_id: exited.clone(),
            ..Default::default()
        }))
        .expect_err("GetLogs is refused");
    assert_eq!(logs.code(), tonic::Code::Unimplemented);
    assert!(logs.message().contains("no logs"), "{}", logs.message());

    rkt.ok(&["stop", "--force", &running]);
    let _ = running_child.wait();
    let (code, stderr) = service.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("API service exiting..."), "{stderr}");
}

#[test]
fn listen_events_reports_pods_as_they_start_and_exit() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    rkt.ok(&["fetch", &busybox()]);
    let service = ApiService::start(&rkt);
    let rt = runtime();
    let mut c = rt
        .block_on(Client::connect(format!("http://{}", service.addr)))
        .unwrap();
    let filter = EventFilter {
        types: [
            EventType::PodStarted,
            EventType::PodExited,
            EventType::AppExited,
            EventType::PodGarbageCollected,
        ]
        .iter()
        .map(|t| *t as i32)
        .collect(),
        ..Default::default()
    };
    let mut stream = rt
        .block_on(c.listen_events(ListenEventsRequest {
            filter: Some(filter),
        }))
        .unwrap()
        .into_inner();
    let uuid = exited_pod(&rkt, 4);
    let mut got: Vec<(EventType, String, String)> = Vec::new();
    let mut collect = |got: &mut Vec<(EventType, String, String)>, until: usize| {
        rt.block_on(async {
            while got.len() < until {
                let next = tokio::time::timeout(Duration::from_secs(20), stream.message())
                    .await
                    .expect("events within 20 s")
                    .unwrap()
                    .expect("the stream stays open");
                for e in next.events {
                    if e.r#type() == EventType::AppExited {
                        assert_eq!(e.data[0].key, "exit_code");
                        assert_eq!(e.data[0].value, "4");
                    }
                    got.push((e.r#type(), e.id.clone(), e.from.clone()));
                }
            }
        })
    };
    collect(&mut got, 3);
    rkt.ok(&["rm", &uuid]);
    collect(&mut got, 4);
    let types: Vec<EventType> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        types,
        [
            EventType::PodStarted,
            EventType::AppExited,
            EventType::PodExited,
            EventType::PodGarbageCollected
        ],
        "{got:?}"
    );
    assert!(got.iter().all(|g| g.1 == uuid), "{got:?}");
    assert_eq!(got[1].2, "busybox", "an app event is from the app");
}
