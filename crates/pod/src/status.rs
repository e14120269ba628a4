//! rkt's `v1.Pod`: the JSON form of `rkt status` and `rkt list`.
//!
//! A quirk kept from rkt: the pod's `created_at`/`started_at` are Unix seconds while the apps'
//! timestamps are Unix nanoseconds.

use crate::{Pod, State};
use layout::pod_dir::Marker;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Serialize)]
pub struct PodStatus {
    pub name: String,
    pub state: String,
    pub networks: Vec<serde_json::Value>,
    pub app_names: Vec<String>,
    pub apps: Vec<AppStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    pub user_annotations: BTreeMap<String, String>,
    pub user_labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct AppStatus {
    pub name: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub image_id: String,
    /// Not in rkt's v1 API: set when the kernel's OOM killer ended the app (Nomad's driver
    /// reports it as OOMKilled).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    pub mounts: Vec<serde_json::Value>,
    pub user_annotations: BTreeMap<String, String>,
    pub user_labels: BTreeMap<String, String>,
}

pub fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl PodStatus {
    pub fn of(pod: &Pod) -> PodStatus {
        let manifest = pod.manifest().ok();
        let dir = pod.dir();
        let marker = |app: &str, m: Marker| dir.app_marker(app, m);
        let apps: Vec<AppStatus> = manifest
            .iter()
            .flat_map(|m| m.apps.iter())
            .map(|a| {
                let exit_code = pod.exit_code(&a.name);
                let started = crate::mtime(&marker(&a.name, Marker::Started));
                let state = match (exit_code, started, pod.state) {
                    (Some(_), _, _) => "exited",
                    (None, Some(_), State::Running) => "running",
                    (None, _, State::Running) | (None, _, State::Prepared) => "created",
                    _ => "unknown",
                };
                AppStatus {
                    name: a.name.clone(),
                    state: state.into(),
                    created_at: crate::mtime(&marker(&a.name, Marker::Created)).map(nanos),
                    started_at: started.map(nanos),
                    finished_at: exit_code
                        .and(crate::mtime(&dir.app_status(&a.name)))
                        .map(nanos),
                    exit_code,
                    image_id: a.image.id.clone(),
                    oom_killed: marker(&a.name, Marker::OomKilled).exists(),
                    mounts: Vec::new(),
                    user_annotations: BTreeMap::new(),
                    user_labels: BTreeMap::new(),
                }
            })
            .collect();
        PodStatus {
            name: pod.uuid.clone(),
            state: pod.state.as_str().into(),
            // rkt's net-info.json records are the v1 API's network objects as they are.
            networks: std::fs::read(pod.dir().net_info())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            app_names: apps.iter().map(|a| a.name.clone()).collect(),
            apps,
            created_at: pod.created().map(secs),
            started_at: pod.started().map(secs),
            user_annotations: manifest
                .as_ref()
                .map(|m| m.user_annotations.clone())
                .unwrap_or_default(),
            user_labels: manifest
                .as_ref()
                .map(|m| m.user_labels.clone())
                .unwrap_or_default(),
        }
    }
}
