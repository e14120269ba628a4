//! The store's pods and images as the API's messages, and rkt's filters over them (the
//! conditions of one filter combined with AND, the filters with OR).

use crate::v1alpha::{
    self, App, AppState, Image, ImageFilter, ImageFormat, ImageType, KeyValue, Network, PodFilter,
    PodState,
};
use image::appc::NameValue;
use pod::State;
use std::time::SystemTime;

/// The image format every stored image has: Docker images are stored as appc (docker2aci).
fn appc_format() -> Option<ImageFormat> {
    Some(ImageFormat {
        r#type: ImageType::Appc as i32,
        version: image::appc::AC_VERSION.to_string(),
    })
}

fn key_values(nv: &[NameValue]) -> Vec<KeyValue> {
    nv.iter()
        .map(|a| KeyValue {
            key: a.name.clone(),
            value: a.value.clone(),
        })
        .collect()
}

fn nanos(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// rkt's states as the API names them.
pub fn pod_state(s: State) -> PodState {
    match s {
        State::Embryo => PodState::Embryo,
        State::Preparing => PodState::Preparing,
        State::AbortedPrepare => PodState::AbortedPrepare,
        State::Prepared => PodState::Prepared,
        State::Running => PodState::Running,
        State::Exited => PodState::Exited,
        State::Deleting | State::ExitedDeleting => PodState::Deleting,
        State::Garbage | State::ExitedGarbage => PodState::Garbage,
    }
}

/// A pod as the API shows it; its manifest only with `detail`.
pub fn pod(p: &pod::Pod, detail: bool) -> v1alpha::Pod {
    let mut out = v1alpha::Pod {
        id: p.uuid.clone(),
        pid: -1,
        state: pod_state(p.state) as i32,
        ..Default::default()
    };
    if p.state == State::Embryo {
        return out;
    }
    if let Ok(m) = p.manifest() {
        out.annotations = key_values(&m.annotations);
        out.apps = m.apps.iter().map(|a| app(p, a)).collect();
    }
    if detail {
        out.manifest = std::fs::read(p.dir().manifest()).unwrap_or_default();
    }
    if matches!(p.state, State::Running | State::Exited) {
        out.networks = networks(p);
    }
    out.created_at = nanos(p.created());
    out.started_at = nanos(p.started());
    if matches!(p.state, State::Garbage | State::ExitedGarbage) {
        // Marking moved the pod's directory: its ctime is when.
        out.gc_marked_at = std::fs::metadata(&p.path)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.ctime() * 1_000_000_000 + m.ctime_nsec()
            })
            .unwrap_or(0);
    }
    out.pid = p.pid().unwrap_or(-1);
    if p.state == State::Running {
        out.cgroup = cgroup(p);
    }
    out
}

/// The pod's cgroup as /proc/PID/cgroup names it (what cAdvisor matches containers with);
/// empty for a pod without cgroups (fly).
fn cgroup(p: &pod::Pod) -> String {
    match layout::plan::Plan::load(&p.dir().plan()) {
        Ok(plan) if !plan.cgroup.is_empty() => format!("/{}", plan.cgroup),
        _ => String::new(),
    }
}

fn networks(p: &pod::Pod) -> Vec<Network> {
    net::read_infos(&p.path)
        .into_iter()
        .map(|n| Network {
            name: n.net_name,
            ipv4: n.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            ipv6: String::new(),
        })
        .collect()
}

fn app(p: &pod::Pod, a: &pod::manifest::RuntimeApp) -> App {
    let version = a
        .image
        .labels
        .iter()
        .find(|l| l.name == "version")
        .map_or("latest".to_string(), |l| l.value.clone());
    let (state, exit_code) = if p.state == State::Running || p.state.ran() {
        let state = if p.state == State::Running {
            AppState::Running
        } else {
            AppState::Exited
        };
        (state, p.exit_code(&a.name).unwrap_or(-1))
    } else {
        (AppState::Undefined, -1)
    };
    App {
        name: a.name.clone(),
        image: Some(Image {
            base_format: appc_format(),
            id: a.image.id.clone(),
            name: a.image.name.clone(),
            version,
            ..Default::default()
        }),
        state: state as i32,
        exit_code,
        annotations: key_values(&a.annotations),
    }
}

/// A stored image as the API shows it; its manifest only with `detail`.
pub fn image(store: &image::store::Store, info: &image::store::ImageInfo, detail: bool) -> Image {
    let manifest = store.manifest(&info.id).ok();
    let (annotations, labels, name) = match &manifest {
        Some(m) => (
            key_values(&m.annotations),
            key_values(&m.labels),
            m.name.clone(),
        ),
        None => (Vec::new(), Vec::new(), info.name.clone()),
    };
    Image {
        base_format: appc_format(),
        id: info.id.clone(),
        name: image::store::aci_identifier(&name),
        version: info.version.clone().unwrap_or_else(|| "latest".into()),
        import_timestamp: info.import_time / 1_000_000_000,
        manifest: if detail {
            store.manifest_bytes(&info.id).unwrap_or_default()
        } else {
            Vec::new()
        },
        size: info.size as i64,
        annotations,
        labels,
    }
}

fn has_all_key_values(have: &[KeyValue], want: &[KeyValue]) -> bool {
    want.iter()
        .all(|w| have.iter().any(|h| h.key == w.key && h.value == w.value))
}

fn has_all(have: &[&str], want: &[String]) -> bool {
    want.iter().all(|w| have.contains(&w.as_str()))
}

/// Whether a pod meets one filter (every condition given).
pub fn pod_matches(pod: &v1alpha::Pod, f: &PodFilter) -> bool {
    let apps: Vec<&str> = pod.apps.iter().map(|a| a.name.as_str()).collect();
    let images: Vec<&str> = pod
        .apps
        .iter()
        .filter_map(|a| a.image.as_ref().map(|i| i.id.as_str()))
        .collect();
    let nets: Vec<&str> = pod.networks.iter().map(|n| n.name.as_str()).collect();
    (f.ids.is_empty() || f.ids.contains(&pod.id))
        && (f.states.is_empty() || f.states.contains(&pod.state))
        && has_all(&apps, &f.app_names)
        && has_all(&images, &f.image_ids)
        && has_all(&nets, &f.network_names)
        && has_all_key_values(&pod.annotations, &f.annotations)
        && (f.cgroups.is_empty() || f.cgroups.contains(&pod.cgroup))
        && (f.pod_sub_cgroups.is_empty()
            || (!pod.cgroup.is_empty()
                && f.pod_sub_cgroups.iter().any(|c| c.starts_with(&pod.cgroup))))
}

/// Whether an image meets one filter (every condition given).
pub fn image_matches(img: &Image, f: &ImageFilter) -> bool {
    let name = img.name.as_str();
    let base = name.rsplit('/').next().unwrap_or(name);
    (f.ids.is_empty() || f.ids.contains(&img.id))
        && (f.full_names.is_empty() || f.full_names.iter().any(|n| n == name))
        && (f.prefixes.is_empty() || f.prefixes.iter().any(|p| name.starts_with(p.as_str())))
        && (f.base_names.is_empty() || f.base_names.iter().any(|b| b == base))
        && (f.keywords.is_empty() || f.keywords.iter().any(|k| name.contains(k.as_str())))
        && (f.imported_after <= 0 || img.import_timestamp > f.imported_after)
        && (f.imported_before <= 0 || img.import_timestamp < f.imported_before)
        && has_all_key_values(&img.labels, &f.labels)
        && has_all_key_values(&img.annotations, &f.annotations)
}

/// rkt's rule: no filter lets everything through; otherwise any one filter must.
pub fn any<T, F>(item: &T, filters: &[F], matches: impl Fn(&T, &F) -> bool) -> bool {
    filters.is_empty() || filters.iter().any(|f| matches(item, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn pod_filters_and_within_or_across() {
        let pod = v1alpha::Pod {
            id: "u1".into(),
            state: PodState::Running as i32,
            cgroup: "/rkt/u1".into(),
            apps: vec![App {
                name: "web".into(),
                ..Default::default()
            }],
            annotations: vec![kv("a", "1")],
            ..Default::default()
        };
        let f = |f: PodFilter| pod_matches(&pod, &f);
        assert!(f(PodFilter::default()));
        assert!(f(PodFilter {
            app_names: vec!["web".into()],
            states: vec![PodState::Running as i32],
            ..Default::default()
        }));
        assert!(!f(PodFilter {
            app_names: vec!["web".into(), "db".into()],
            ..Default::default()
        }));
        assert!(f(PodFilter {
            pod_sub_cgroups: vec!["/rkt/u1/web".into()],
            ..Default::default()
        }));
        assert!(!f(PodFilter {
            pod_sub_cgroups: vec!["/system.slice".into()],
            ..Default::default()
        }));
        assert!(!f(PodFilter {
            annotations: vec![kv("a", "2")],
            ..Default::default()
        }));
        let none = PodFilter {
            ids: vec!["other".into()],
            ..Default::default()
        };
        let mine = PodFilter {
            ids: vec!["u1".into()],
            ..Default::default()
        };
        assert!(!any(&pod, std::slice::from_ref(&none), pod_matches));
        assert!(any(&pod, &[none, mine], pod_matches));
    }

    #[test]
    fn image_filters() {
        let img = Image {
            id: "sha512-1".into(),
            name: "example.com/app/web".into(),
            import_timestamp: 100,
            labels: vec![kv("version", "1")],
            ..Default::default()
        };
        let f = |f: ImageFilter| image_matches(&img, &f);
        assert!(f(ImageFilter {
            prefixes: vec!["example.com/".into()],
            base_names: vec!["web".into()],
            keywords: vec!["app".into()],
            imported_after: 99,
            imported_before: 101,
            labels: vec![kv("version", "1")],
            ..Default::default()
        }));
        assert!(!f(ImageFilter {
            base_names: vec!["app".into()],
            ..Default::default()
        }));
        assert!(!f(ImageFilter {
            imported_after: 100,
            ..Default::default()
        }));
    }
}
