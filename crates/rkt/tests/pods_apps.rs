//! What an app gets and sees in its pod: output and exit status, environment and identity,
//! volumes and mounts, several apps in one pod, --interactive and --ipc, refused flags.

mod common;

use common::pods::*;
use common::Rkt;
use std::time::{Duration, Instant};

/// Runs `rkt ARGS` with `input` on its stdin; returns its stdout.
fn run_with_stdin(rkt: &Rkt, args: &[&str], input: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = rkt
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", out(&o).1);
    out(&o).0
}

#[test]
fn run_passes_output_and_exit_status_through() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &busybox(),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(7), "{stderr}");
    assert_eq!(stdout.trim(), "out");
    assert!(stderr.contains("err"), "{stderr}");
    // --no-overlay: the app writes into a copy of the image, never into the image itself.
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--no-overlay",
        &busybox(),
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo changed > /www/index.html; cat /www/index.html",
    ]);
    assert_eq!(out(&o).0.trim(), "changed", "{}", out(&o).1);
    let o = rkt.run(&[
        "run",
        "--net=none",
        &busybox(),
        "--exec",
        "/bin/cat",
        "--",
        "/www/index.html",
    ]);
    assert_eq!(
        out(&o).0.trim(),
        "hello from rkt",
        "the stored image was modified"
    );
    // The image's own command (sh -c "echo hello") when nothing overrides it.
    let o = rkt.run(&["run", "--net=host", &busybox()]);
    assert_eq!(out(&o).0.trim(), "hello");
    assert!(o.status.success());
    assert_no_mounts(&rkt);
}

#[test]
fn app_sees_its_environment_identity_and_files() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let env_file = rkt.config.path().join("env");
    std::fs::write(&env_file, "# comment\nFROMFILE=1\nFOO=file\n").unwrap();
    let script = "echo $FOO $FROMFILE $SET $APPENV $AC_APP_NAME $container; id -u; id -g; id -G; pwd; \
                  hostname; grep -c 10.1.2.3 /etc/hosts; cat /etc/resolv.conf; cat /proc/1/cmdline | tr '\\0' ' '";
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--hostname=podhost",
        "--hosts-entry=10.1.2.3=db",
        "--dns=192.0.2.53",
        "--dns-search=example.test",
        &format!("--set-env-file={}", env_file.display()),
        "--set-env=SET=s",
        &busybox(),
        "--user=app",
        "--group=staff",
        "--supplementary-gids=7,8",
        "--working-dir=/tmp",
        "--environment=APPENV=e",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        script,
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // Image env FOO=bar is overridden by the env file, set-env and environment are added.
    assert_eq!(lines[0], "file 1 s e busybox rkt");
    assert_eq!(lines[1], "1000");
    assert_eq!(lines[2], "50");
    assert_eq!(lines[3], "50 7 8");
    assert_eq!(lines[4], "/tmp");
    assert_eq!(lines[5], "podhost");
    assert_eq!(lines[6], "1");
    assert!(
        stdout.contains("nameserver 192.0.2.53") && stdout.contains("search example.test"),
        "{stdout}"
    );
    // PID 1 of the pod is its own init, not a host process.
    assert!(lines.last().unwrap().contains("rkt-stage1"), "{stdout}");
}

#[test]
fn volumes_and_mounts() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let ro = tempfile::tempdir().unwrap();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &format!("--volume=shared,kind=host,source={}", host.path().display()),
        &format!(
            "--volume=locked,kind=host,source={},readOnly=true",
            ro.path().display()
        ),
        "--volume=scratch,kind=empty,mode=0700,uid=1000",
        &busybox(),
        "--user=0",
        "--group=0",
        "--mount=volume=shared,target=/shared",
        "--mount=volume=locked,target=/locked",
        "--mount=volume=scratch,target=/scratch",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "cat /shared/in; echo back > /shared/out; touch /locked/x 2>/dev/null || echo ro; \
         stat -c '%a %u' /scratch; test -d /data && test -d /var/tmp && echo implicit",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["from host", "ro", "700 1000", "implicit"]
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "back\n"
    );
    assert!(!ro.path().join("x").exists());
    assert_no_mounts(&rkt);
}

/// `recursive=false` binds a host volume without the mounts below it; the default is
/// recursive, as in rkt's default stage1.
#[test]
fn host_volume_recursion() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let host = tempfile::tempdir().unwrap();
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(mounted.success());
    std::fs::write(sub.join("inner"), "x").unwrap();
    let look = |recursive: &str| {
        let o = rkt.run(&[
            "run",
            "--net=none",
            &format!(
                "--volume=v,kind=host,source={},recursive={recursive}",
                host.path().display()
            ),
            &busybox(),
            "--mount=volume=v,target=/v",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "test -e /v/sub/inner && echo sees-submount || echo no-submount",
        ]);
        out(&o).0
    };
    let (with, without) = (look("true"), look("false"));
    let _ = std::process::Command::new("umount").arg(&sub).status();
    assert_eq!(with.trim(), "sees-submount");
    assert_eq!(without.trim(), "no-submount");
}

/// Several apps in one pod share its namespaces; each has its own root, limits and exit
/// status; when one fails the others are stopped and the pod exits with the failure.
#[test]
fn several_apps_share_a_pod() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let o = rkt.run(&[
        "run", "--net=none", "--hostname=shared", &image, "--name=a", "--user=0", "--exec", "/bin/sh", "--", "-c",
        "echo a-$(/bin/busybox hostname) > /tmp/mine; /bin/busybox sleep 1; cat /tmp/mine",
        "---", &image, "--name=b", "--user=0", "--exec", "/bin/sh", "--", "-c",
        "/bin/busybox sleep 0.3; test -e /tmp/mine && echo b-sees-a || echo b-own-root; \
         for p in /proc/[0-9]*; do /bin/busybox tr '\\0' ' ' < $p/cmdline; echo; done | /bin/busybox grep -c '^/bin/busybox sleep 1 $'",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("a-shared"),
        "app a's own files and the pod's hostname: {stdout}"
    );
    assert!(
        stdout.contains("b-own-root"),
        "each app has its own root: {stdout}"
    );
    assert!(
        stdout.contains("\n1\n") || stdout.starts_with("1\n"),
        "b sees a's process (one PID namespace): {stdout}"
    );
    let uuid = rkt.ok(&["list", "--no-legend", "--full"]);
    let uuid = uuid.split_whitespace().next().unwrap().to_string();
    let status = rkt.ok(&["status", &uuid]);
    assert!(
        status.contains("app-a=0") && status.contains("app-b=0"),
        "{status}"
    );
    let list = rkt.ok(&["list", "--no-legend"]);
    assert_eq!(list.lines().count(), 2, "one row per app: {list}");

    // b fails: a is stopped, and the pod exits with b's status.
    let started = Instant::now();
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        "--name=a",
        "--exec",
        "/bin/sleep",
        "--",
        "30",
        "---",
        &image,
        "--name=b",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", out(&o).1);
    assert!(started.elapsed() < Duration::from_secs(10));

    // A per-app memory limit applies to that app only.
    let o = rkt.run(&[
        "run",
        "--net=none",
        &image,
        "--name=calm",
        "--exec",
        "/bin/sleep",
        "--",
        "30",
        "---",
        &image,
        "--name=hog",
        "--memory=16Mi",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "a=x; while :; do a=\"$a$a\"; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", out(&o).1);

    // enter needs --app in such a pod; duplicate names are refused.
    let (mut child, uuid) = start_pod(
        &rkt,
        &[],
        &[
            "--name=x",
            "--exec",
            "/bin/sleep",
            "--",
            "30",
            "---",
            &image,
            "--name=y",
            "--exec",
            "/bin/sleep",
            "--",
            "30",
        ],
    );
    let err = rkt.fails(&["enter", &uuid, "/bin/true"]);
    assert!(err.contains("Pod contains multiple apps"), "{err}");
    let o = rkt.run(&[
        "enter",
        "--app=y",
        &uuid,
        "/bin/busybox",
        "cat",
        "/proc/1/comm",
    ]);
    assert_eq!(out(&o).0.trim(), "rkt-stage1", "{}", out(&o).1);
    rkt.ok(&["stop", &uuid]);
    child.wait().unwrap();
    let err = rkt.fails(&[
        "run",
        "--net=none",
        &image,
        "--name=z",
        "---",
        &image,
        "--name=z",
    ]);
    assert!(err.contains("two apps are named"), "{err}");
    rkt.ok(&["gc", "--grace-period=0s"]);
    assert!(pod_dirs(&rkt).is_empty(), "{:?}", pod_dirs(&rkt));
    assert_no_mounts(&rkt);
}

/// `--interactive` and `--ipc` do what rkt's did; flags this rkt cannot honour are refused,
/// naming themselves, instead of being accepted and ignored.
#[test]
fn interactive_ipc_and_no_silent_flags() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let image = busybox();
    let read = ["--exec", "/bin/sh", "--", "-c", "read x; echo got:$x"];
    let mut args = vec!["run", "--net=none", &image];
    args.extend_from_slice(&read);
    assert_eq!(
        run_with_stdin(&rkt, &args, "hello\n").trim(),
        "got:",
        "stdin is /dev/null"
    );
    args.insert(1, "--interactive");
    assert_eq!(run_with_stdin(&rkt, &args, "hello\n").trim(), "got:hello");
    let err = rkt.fails(&[
        "run",
        "--interactive",
        "--net=none",
        &image,
        "--name=a",
        "---",
        &image,
        "--name=b",
    ]);
    assert!(
        err.contains("--interactive") && err.contains("2 apps"),
        "{err}"
    );

    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let ns = |ipc: &str| {
        let mut args = vec!["run", "--net=none"];
        if !ipc.is_empty() {
            args.push(ipc);
        }
        args.extend_from_slice(&[
            &image,
            "--exec",
            "/bin/busybox",
            "--",
            "readlink",
            "/proc/self/ns/ipc",
        ]);
        rkt.ok(&args).trim().to_string()
    };
    let host_ipc = host_ipc.to_string_lossy();
    assert_eq!(ns("--ipc=parent"), host_ipc);
    assert_ne!(ns(""), host_ipc, "a pod has its own IPC namespace");
    assert_ne!(ns("--ipc=private"), host_ipc);
    let err = rkt.fails(&["run", "--ipc=bogus", "--net=none", &image]);
    assert!(err.contains("--ipc"), "{err}");

    for flag in [
        // Not one of the built-in flavours (fly is: see fly.rs).
        "--stage1-name=coreos.com/rkt/stage1-kvm:1.30.0",
        "--signature=/nonexistent.asc",
        "--stdin=null",
        // Without a metadata service to register with.
        "--mds-register",
    ] {
        let err = rkt.fails(&["run", flag, "--net=none", &image]);
        let name = flag.split('=').next().unwrap();
        assert!(err.contains(name), "{flag}: {err}");
    }
    // The five pods that ran are there; the refused runs left nothing.
    assert_eq!(pod_dirs(&rkt).len(), 5, "{:?}", pod_dirs(&rkt));
}

#[test]
fn stored_docker_image_runs_without_insecure_image() {
    if !common::require_root() {
        return;
    }
    let mut rkt = Rkt::new();
    rkt.ok(&["fetch", &busybox()]);
    rkt.insecure = "http".into();
    rkt.ok(&["run", "--net=none", &busybox(), "--exec=/bin/true"]);
    let err = rkt.fails(&[
        "run",
        "--net=none",
        &registry().image("special:latest"),
        "--exec=/bin/true",
    ]);
    assert!(err.contains("--insecure-options=image"), "{err}");
}
