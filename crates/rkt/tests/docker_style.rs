//! The flags that carry the options operators know from Docker and podman (not in rkt 1.30;
//! the Nomad driver's task options set the same spec fields): `--entrypoint`, `--ulimit`,
//! `--tmpfs`, `--sysctl`, `--shm-size`, `--privileged`, supplementary groups by name,
//! `--user-label`/`--user-annotation`, and rkt's comma forms of `--dns` and `--hosts-entry`.
//! Each is checked from inside the pod, and bad values are refused with nothing left behind.

mod common;

use common::pods::*;
use common::Rkt;

/// Runs `script` in a busybox pod as root with `pod` flags before the image and `app`
/// flags after it; returns stdout, asserting success.
fn run_script(rkt: &Rkt, pod: &[&str], app: &[&str], script: &str) -> String {
    let image = busybox();
    let mut args = vec!["run"];
    args.extend_from_slice(pod);
    args.extend_from_slice(&[image.as_str(), "--user=0", "--group=0"]);
    args.extend_from_slice(app);
    args.extend_from_slice(&["--exec", "/bin/sh", "--", "-c", script]);
    let o = rkt.run(&args);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "rkt {args:?}:\n{stdout}\n{stderr}");
    stdout
}

/// A field of the line of /proc/self/mounts whose mount point is `target`.
fn mount_options(mounts: &str, target: &str) -> String {
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[1] == target)
        .map(|f| format!("{} {}", f[2], f[3]))
        .next_back()
        .unwrap_or_else(|| panic!("{target} not mounted:\n{mounts}"))
}

#[test]
fn limits_file_systems_and_kernel_parameters_reach_the_app() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let out = run_script(
        &rkt,
        &[
            "--net=none",
            "--sysctl=net.core.somaxconn=1234",
            "--sysctl=kernel.shmmni=1111",
            "--shm-size=8m",
            "--dns=10.0.0.53,10.0.0.54",
            "--hosts-entry=10.1.1.1=db,fd00::1=db6",
        ],
        &[
            "--ulimit=nofile=1000:2000",
            "--ulimit=nproc=300",
            "--tmpfs=/scratch:size=1m,mode=700",
            "--supplementary-gids=staff,7",
        ],
        "B=/bin/busybox; echo somaxconn=$($B cat /proc/sys/net/core/somaxconn); \
         echo shmmni=$($B cat /proc/sys/kernel/shmmni); \
         echo nofile=$(ulimit -Sn):$(ulimit -Hn) nproc=$(ulimit -u); \
         $B stat -c 'scratch=%a' /scratch; \
         $B grep Groups /proc/self/status; $B cat /etc/resolv.conf /etc/hosts; \
         $B cat /proc/self/mounts",
    );
    assert!(out.contains("somaxconn=1234"), "{out}");
    assert!(out.contains("shmmni=1111"), "{out}");
    assert!(out.contains("nofile=1000:2000 nproc=300"), "{out}");
    assert!(out.contains("scratch=700"), "{out}");
    assert!(
        out.contains("Groups:\t7 50"),
        "staff is 50 in the image: {out}"
    );
    assert!(
        out.contains("nameserver 10.0.0.53\nnameserver 10.0.0.54"),
        "{out}"
    );
    assert!(
        out.contains("10.1.1.1\tdb\n") && out.contains("fd00::1\tdb6"),
        "{out}"
    );
    let scratch = mount_options(&out, "/scratch");
    assert!(
        scratch.starts_with("tmpfs ")
            && scratch.contains("size=1024k")
            && scratch.contains("nodev"),
        "{scratch}"
    );
    assert!(
        mount_options(&out, "/dev/shm").contains("size=8192k"),
        "{out}"
    );
    // The host's parameters are its own still.
    let host = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    assert_ne!(host.trim(), "1234");
}

#[test]
fn entrypoint_replaces_the_images_and_drops_its_command() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    // The image's entrypoint is ["/bin/sh","-c"] and its command ["echo hello"].
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        "--entrypoint=[\"/bin/echo\",\"from\"]",
        "--",
        "entrypoint",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "from entrypoint");
    let o = rkt.run(&["run", "--net=none", &image, "--entrypoint=/bin/true"]);
    assert!(o.status.success(), "no command of the image's is appended");
}

#[test]
fn labels_and_annotations_are_kept_and_shown() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let uuid = rkt.ok(&[
        "prepare",
        "--quiet",
        "--user-label=team=web",
        "--user-annotation=owner=ops@example.com",
        &busybox(),
        "--exec=/bin/true",
    ]);
    let uuid = uuid.trim();
    let status: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["status", "--format=json", uuid])).unwrap();
    assert_eq!(status["user_labels"]["team"], "web", "{status}");
    assert_eq!(status["user_annotations"]["owner"], "ops@example.com");
    let list: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["list", "--format=json"])).unwrap();
    assert_eq!(list[0]["user_labels"]["team"], "web", "{list}");
    let manifest: serde_json::Value =
        serde_json::from_str(&rkt.ok(&["cat-manifest", uuid])).unwrap();
    assert_eq!(manifest["userLabels"]["team"], "web");
    rkt.ok(&["rm", uuid]);
}

#[test]
fn privileged_gets_the_hosts_devices_and_a_writable_sys() {
    if !common::require_root() {
        return;
    }
    let mut rkt = Rkt::new();
    rkt.insecure = "image,http,all-run".into();
    let out = run_script(
        &rkt,
        &["--net=none"],
        &["--privileged"],
        "B=/bin/busybox; $B ls /dev; $B cat /proc/self/mounts",
    );
    // A device the default /dev never has.
    let host_dev = ["loop-control", "kmsg", "mem"]
        .into_iter()
        .find(|d| std::path::Path::new("/dev").join(d).exists())
        .expect("the host has one of these");
    assert!(
        out.lines().any(|l| l == host_dev),
        "/dev/{host_dev} in a privileged pod:\n{out}"
    );
    assert!(mount_options(&out, "/sys").contains("rw,"), "{out}");
}

#[test]
fn bad_values_are_refused_and_leave_nothing() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let cases: &[(&[&str], &[&str], &str)] = &[
        (&["--sysctl=vm.swappiness=1"], &[], "would change the host"),
        (
            &["--sysctl=kernel.hostname=x"],
            &[],
            "would change the host",
        ),
        (
            &["--net=host", "--sysctl=net.core.somaxconn=9"],
            &[],
            "shares the host's network",
        ),
        (&[], &["--privileged"], "needs --insecure-options=all-run"),
        (&[], &["--ulimit=files=1"], "unknown resource"),
        (&[], &["--tmpfs=/x:size=lots"], "invalid quantity"),
        (&[], &["--supplementary-gids=nosuchgroup"], "nosuchgroup"),
        (&["--shm-size=big"], &[], "invalid quantity"),
    ];
    for (pod, app, want) in cases {
        let mut args = vec!["run"];
        if !pod.iter().any(|a| a.starts_with("--net")) {
            args.push("--net=none");
        }
        args.extend_from_slice(pod);
        args.push(&image);
        args.extend_from_slice(app);
        args.extend_from_slice(&["--exec", "/bin/true"]);
        let err = rkt.fails(&args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
}

/// `--pid=host`: the app sees the host's processes; stopping the pod still ends all of its
/// own, though they no longer die with the pod's init.
#[test]
fn host_pid_namespace_and_stop_still_ends_every_process() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let out = run_script(
        &rkt,
        &["--net=none", "--pid=host"],
        &[],
        "B=/bin/busybox; echo self=$$; $B cat /proc/1/comm",
    );
    let pid: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("self="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(pid > 1, "a host PID, not 1: {out}");
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert!(out.contains(host_init.trim()), "the host's PID 1: {out}");

    // A pod whose app has a child of its own, stopped with SIGKILL.
    let (mut child, uuid) = start_pod(
        &rkt,
        &["--pid=host"],
        &[
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "/bin/sleep 3001 & /bin/sleep 3002",
        ],
    );
    let sleepers = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("sleep 300"))
            .collect()
    };
    common::eventually(std::time::Duration::from_secs(10), "both sleepers", || {
        (sleepers().len() == 2).then_some(())
    });
    rkt.ok(&["stop", "--force", &uuid]);
    child.wait().unwrap();
    common::eventually(
        std::time::Duration::from_secs(10),
        "no sleeper left",
        || sleepers().is_empty().then_some(()),
    );
    rkt.ok(&["rm", &uuid]);
    assert!(cgroups_of(&uuid).is_empty(), "{:?}", cgroups_of(&uuid));
}
