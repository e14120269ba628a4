//! The run plan stage0 writes for stage1: `key=value` records separated by NUL bytes. Keys
//! that repeat (`exec`, `env`, `gid`, `mount`) build lists in order.

use std::path::Path;

/// The pod: what all its apps share, and the apps.
#[derive(Debug, Default)]
pub struct Plan {
    pub hostname: String,
    /// `host` shares the host's network namespace; `none` gets a new one with only loopback;
    /// `contained` joins the namespace stage0 pinned at `netns` and attached to its networks.
    pub net: String,
    pub netns: Option<String>,
    /// The `rkt` binary, run as `rkt net-teardown POD_DIR` once the pod has exited.
    pub net_teardown: Option<String>,
    /// Where the cgroups go, relative to each controller's root (e.g. `rkt/<uuid>`).
    pub cgroup: String,
    pub apps: Vec<AppPlan>,
}

/// One app of the pod. Its records follow its `app=NAME` record.
#[derive(Debug, Default)]
pub struct AppPlan {
    pub name: String,
    /// The image's rendered tree (overlay lower layer, or the copy with --no-overlay).
    pub image_rootfs: String,
    /// The image's name, for messages about what the image contains.
    pub image: Option<String>,
    pub overlay: bool,
    pub exec: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    pub readonly_rootfs: bool,
    /// Bind mounts: (host path, path in the app, read-only, recursive).
    pub mounts: Vec<(String, String, bool, bool)>,
    pub memory_limit: Option<u64>,
    /// CFS quota in microseconds per 100 ms period.
    pub cpu_quota_us: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub oom_score_adj: Option<i32>,
    /// Capabilities the app keeps (bounding, effective, permitted, inheritable); None keeps
    /// them all (`--insecure-options=capabilities`).
    pub caps: Option<Vec<u32>>,
    pub no_new_privs: bool,
    /// System calls the app may make, and the errno for the others (None: kill with SIGSYS).
    /// No filter at all when None (`--insecure-options=seccomp`).
    pub seccomp: Option<(Vec<i64>, Option<i32>)>,
    /// Mask and make read-only the kernel paths an app has no business with.
    pub mask_paths: bool,
}

impl AppPlan {
    pub fn has_limits(&self) -> bool {
        self.memory_limit.is_some() || self.cpu_quota_us.is_some() || self.cpu_shares.is_some()
    }
}

impl Plan {
    pub fn load(path: &Path) -> Result<Plan, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Plan::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<Plan, String> {
        let mut pod = Plan {
            net: "host".into(),
            ..Default::default()
        };
        for rec in bytes.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let rec = std::str::from_utf8(rec).map_err(|_| "record is not UTF-8".to_string())?;
            let (k, v) = rec
                .split_once('=')
                .ok_or_else(|| format!("bad record {rec:?}"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}: not a number: {v:?}"))
            };
            match k {
                "hostname" => {
                    pod.hostname = v.into();
                    continue;
                }
                "net" => {
                    pod.net = v.into();
                    continue;
                }
                "cgroup" => {
                    pod.cgroup = v.into();
                    continue;
                }
                "netns" => {
                    pod.netns = Some(v.into());
                    continue;
                }
                "net_teardown" => {
                    pod.net_teardown = Some(v.into());
                    continue;
                }
                "app" => {
                    pod.apps.push(AppPlan {
                        name: v.into(),
                        workdir: "/".into(),
                        overlay: true,
                        ..Default::default()
                    });
                    continue;
                }
                _ => {}
            }
            let p = pod
                .apps
                .last_mut()
                .ok_or_else(|| format!("record {k:?} before any app"))?;
            match k {
                "image_rootfs" => p.image_rootfs = v.into(),
                "image" => p.image = Some(v.into()),
                "overlay" => p.overlay = v == "1",
                "exec" => p.exec.push(v.into()),
                "env" => p.env.push(v.into()),
                "workdir" => p.workdir = v.into(),
                "uid" => p.uid = num(v)? as u32,
                "gid" => p.gid = num(v)? as u32,
                "supplementary_gid" => p.supplementary_gids.push(num(v)? as u32),
                "readonly_rootfs" => p.readonly_rootfs = v == "1",
                "mount" => {
                    // SOURCE \t TARGET \t 1|0 (read-only) [\t rec|norec]
                    let f: Vec<&str> = v.split('\t').collect();
                    match f.as_slice() {
                        [s, d, ro] => {
                            p.mounts
                                .push((s.to_string(), d.to_string(), *ro == "1", true))
                        }
                        [s, d, ro, rec] => p.mounts.push((
                            s.to_string(),
                            d.to_string(),
                            *ro == "1",
                            *rec != "norec",
                        )),
                        _ => return Err(format!("bad mount record {v:?}")),
                    }
                }
                "caps" => {
                    let list = v.split(',').filter(|c| !c.is_empty());
                    p.caps = Some(
                        list.map(num)
                            .map(|c| c.map(|c| c as u32))
                            .collect::<Result<_, _>>()?,
                    );
                }
                "no_new_privs" => p.no_new_privs = v == "1",
                "seccomp" => {
                    // `kill:N,N,…` or `errno=E:N,N,…`
                    let (action, list) = v
                        .split_once(':')
                        .ok_or_else(|| format!("bad seccomp record {v:?}"))?;
                    let errno = match action {
                        "kill" => None,
                        a => Some(
                            a.strip_prefix("errno=")
                                .and_then(|e| e.parse().ok())
                                .ok_or_else(|| format!("bad seccomp action {a:?}"))?,
                        ),
                    };
                    let nums = list
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(|n| {
                            n.parse::<i64>()
                                .map_err(|_| format!("bad syscall number {n:?}"))
                        })
                        .collect::<Result<_, _>>()?;
                    p.seccomp = Some((nums, errno));
                }
                "mask_paths" => p.mask_paths = v == "1",
                "memory" => p.memory_limit = Some(num(v)?),
                "cpu_quota_us" => p.cpu_quota_us = Some(num(v)?),
                "cpu_shares" => p.cpu_shares = Some(num(v)?),
                "oom_score_adj" => {
                    p.oom_score_adj =
                        Some(v.parse().map_err(|_| format!("bad oom_score_adj {v:?}"))?)
                }
                _ => return Err(format!("unknown key {k:?}")),
            }
        }
        if pod.apps.is_empty() {
            return Err("plan has no app".into());
        }
        for a in &pod.apps {
            if a.exec.is_empty() || a.image_rootfs.is_empty() {
                return Err(format!("app {:?} lacks exec or image_rootfs", a.name));
            }
        }
        Ok(pod)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_lists_in_order() {
        let p = super::Plan::parse(
            b"app=a\0image_rootfs=/r\0exec=/bin/sh\0exec=-c\0exec=echo\nhi\0env=A=1\0mount=/h\t/c\t1\0memory=1024\0",
        )
        .unwrap();
        let p = &p.apps[0];
        assert_eq!(p.exec, ["/bin/sh", "-c", "echo\nhi"]);
        assert_eq!(p.env, ["A=1"]);
        assert_eq!(p.mounts, [("/h".into(), "/c".into(), true, true)]);
        assert_eq!(p.memory_limit, Some(1024));
        assert!(super::Plan::parse(b"app=a\0bogus=1\0").is_err());
        assert!(
            super::Plan::parse(b"exec=/x\0").is_err(),
            "app records before any app"
        );
    }

    #[test]
    fn several_apps_and_pod_records() {
        let p = super::Plan::parse(
            b"hostname=h\0netns=/run/netns/x\0net_teardown=/bin/rkt\0app=a\0image_rootfs=/r\0exec=/a\0net=none\0app=b\0image_rootfs=/s\0exec=/b\0uid=5\0",
        )
        .unwrap();
        assert_eq!((p.hostname.as_str(), p.net.as_str()), ("h", "none"));
        assert_eq!(p.netns.as_deref(), Some("/run/netns/x"));
        assert_eq!(p.net_teardown.as_deref(), Some("/bin/rkt"));
        assert_eq!(p.apps.len(), 2);
        assert_eq!((p.apps[0].exec[0].as_str(), p.apps[0].uid), ("/a", 0));
        assert_eq!((p.apps[1].exec[0].as_str(), p.apps[1].uid), ("/b", 5));
    }
}
