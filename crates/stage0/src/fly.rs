//! rkt's fly stage1 (`--stage1-name=coreos.com/rkt/stage1-fly`, `--stage1-from-dir=
//! stage1-fly.aci`), the way CoreOS's wrapper units (kubelet-wrapper, etcd-wrapper) ran
//! rkt: one app with the host's PID, network, UTS and IPC namespaces and full privileges,
//! in its image's root with the host's /dev, /proc and /sys bound in and a tmpfs on /tmp.
//!
//! As rkt documented it, fly has no network of its own, no CPU or memory isolators, no
//! capability bound and no seccomp filter: the flags that would ask for them are refused
//! here, never ignored. Unlike rkt's fly, the pod's mounts are made in a mount namespace of
//! the app's own (host mounts still propagate in), so none is left on the host.

use crate::error::{bail, Result};
use crate::spec::{AppSpec, PidsLimit, RuntimeSpec};
use layout::plan::AppPlan;
use layout::pod_dir::PodDir;
use pod::manifest::RuntimeApp;

/// The version of rkt whose stage1 flavours these are.
pub const VERSION: &str = "1.30.0";

/// What `stage1/flavor` holds for a fly pod.
pub(crate) const FLAVOR: &str = "fly";

/// The names the flavours go by: the stage1 images' names and their files' names in rkt's
/// stage1 images directory.
pub const NAMES: [(&str, &str, crate::spec::Stage1); 2] = [
    (
        "coreos.com/rkt/stage1-coreos",
        "stage1-coreos.aci",
        crate::spec::Stage1::Default,
    ),
    (
        "coreos.com/rkt/stage1-fly",
        "stage1-fly.aci",
        crate::spec::Stage1::Fly,
    ),
];

/// The pod's apps as fly can run them.
pub(crate) fn check(apps: &[AppSpec]) -> Result<()> {
    let [app] = apps else {
        bail!(
            "the fly stage1 runs one app, and this pod has {}; run one image",
            apps.len()
        );
    };
    let refused = [
        (app.memory.is_some(), "--memory"),
        (app.cpu_millicores.is_some(), "--cpu"),
        (app.cpu_shares.is_some(), "--cpu-shares"),
        (app.pids_limit != PidsLimit::Default, "--pids-limit"),
        (app.caps_retain.is_some(), "--caps-retain"),
        (app.caps_remove.is_some(), "--caps-remove"),
        (app.seccomp.is_some(), "--seccomp"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(set, _)| *set) {
        bail!(
            "{flag}: the fly stage1 has no cgroups, capability bound or seccomp filter (its app runs with the host's privileges); use the default stage1 for it"
        );
    }
    Ok(())
}

/// Fly's app keeps every capability, no seccomp filter, no no_new_privs, no masked paths and
/// no cgroup limits, and its manifest says so (no capability isolator).
pub(crate) fn open_up(runtime_apps: &mut [RuntimeApp], plans: &mut [AppPlan]) {
    for a in runtime_apps {
        a.app.isolators.retain(|i| {
            !i["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("os/linux/capabilities"))
        });
    }
    for p in plans {
        p.caps = None;
        p.no_new_privs = false;
        p.seccomp = None;
        p.mask_paths = false;
        p.pids_limit = None;
    }
}

/// Whether the pod was prepared for fly.
pub(crate) fn is_fly(pod: &PodDir) -> bool {
    std::fs::read_to_string(pod.flavor()).is_ok_and(|f| f.trim() == FLAVOR)
}

/// The runtime flags fly can honour: its network, UTS and IPC namespaces are the host's.
pub(crate) fn check_runtime(rt: &RuntimeSpec, forwards: usize) -> Result<()> {
    if !(rt.net.is_empty() || rt.net == ["host"]) || rt.net_namespace.is_some() {
        bail!("--net: the fly stage1 has the host's network; leave --net out or say --net=host");
    }
    if forwards > 0 {
        bail!("--port: the fly stage1 has the host's network, so there is nothing to forward; the app's ports are the host's");
    }
    if rt.hostname.is_some() {
        bail!("--hostname: the fly stage1 has the host's UTS namespace and hostname");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_app_and_no_isolators() {
        let app = AppSpec::default();
        assert!(check(std::slice::from_ref(&app)).is_ok());
        let e = check(&[app.clone(), app.clone()]).unwrap_err().to_string();
        assert!(e.contains("one app"), "{e}");
        let limited = AppSpec {
            memory: Some(1 << 20),
            ..Default::default()
        };
        let e = check(&[limited]).unwrap_err().to_string();
        assert!(e.contains("--memory") && e.contains("fly"), "{e}");
        let rt = RuntimeSpec {
            net: vec!["default".into()],
            ..Default::default()
        };
        assert!(check_runtime(&rt, 0)
            .unwrap_err()
            .to_string()
            .contains("--net"));
        assert!(check_runtime(&RuntimeSpec::default(), 0).is_ok());
        assert!(check_runtime(&RuntimeSpec::default(), 1).is_err());
    }
}
