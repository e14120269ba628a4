//! The appc pod manifest (`<pod>/pod`), which `rkt cat-manifest` prints and Nomad's driver
//! read to map port names.

use appc_schema::{App, NameValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodManifest {
    pub ac_version: String,
    pub ac_kind: String,
    pub apps: Vec<RuntimeApp>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub isolators: Vec<serde_json::Value>,
    #[serde(default)]
    pub annotations: Vec<NameValue>,
    #[serde(default)]
    pub ports: Vec<ExposedPort>,
    /// `--user-annotation`: the pod's annotations of its user's own (appc 0.8.11's
    /// `userAnnotations`), shown by `rkt status` and `rkt list`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_annotations: BTreeMap<String, String>,
    /// `--user-label`: the pod's labels (`userLabels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeApp {
    pub name: String,
    pub image: RuntimeImage,
    pub app: App,
    #[serde(default, rename = "readOnlyRootFS")]
    pub read_only_root_fs: bool,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// The app's annotations (the metadata service serves them over the image's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<NameValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeImage {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub labels: Vec<NameValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mount {
    pub volume: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExposedPort {
    pub name: String,
    pub host_port: u16,
    /// appc spells it `hostIP`.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

impl PodManifest {
    pub fn new(apps: Vec<RuntimeApp>, volumes: Vec<Volume>, ports: Vec<ExposedPort>) -> Self {
        PodManifest {
            ac_version: "1.30.0".into(),
            ac_kind: "PodManifest".into(),
            apps,
            volumes,
            isolators: Vec::new(),
            annotations: vec![NameValue {
                name: "coreos.com/rkt/stage1/mutable".into(),
                value: "false".into(),
            }],
            ports,
            user_annotations: BTreeMap::new(),
            user_labels: BTreeMap::new(),
        }
    }
}
