//! The Docker driver's image options through the plugin's gRPC services: registry
//! credentials from the task (`auth {}`, `auth_soft_fail`), from the plugin (`auth { helper
//! config }`: a credential helper of the test's own and a Docker config.json) against a
//! registry that requires token auth; `image_pull_timeout` and the plugin's
//! `pull_activity_timeout` against a slow and a stalling registry; and bad options, each
//! failing with the field named and leaving no pod.

mod common;

use common::tasks::*;
use common::*;
use nomad_driver_rkt::proto::drivers as d;
use std::time::{Duration, Instant};

/// A password no image, log or file of the store may ever hold.
const WRONG: &str = "wrong-password-4913";

async fn configure(p: &mut Plugin, fields: Vec<(&str, rmpv::Value)>) {
    let mut map: Vec<(rmpv::Value, rmpv::Value)> = vec![("volumes_enabled".into(), true.into())];
    map.extend(fields.into_iter().map(|(k, v)| (k.into(), v)));
    p.base
        .set_config(set_config_request(encode(&rmpv::Value::Map(map)), true))
        .await
        .unwrap();
}

fn auth(user: &str, password: &str) -> rmpv::Value {
    rmpv::Value::Map(vec![
        ("username".into(), user.into()),
        ("password".into(), password.into()),
    ])
}

/// Starts `image` running /bin/true with `more` options; Ok(exit code) or Err(message).
async fn run(p: &mut Plugin, image: &str, more: Vec<(&str, rmpv::Value)>) -> Result<i32, String> {
    let mut fields = vec![
        ("image", image.into()),
        ("command", "/bin/true".into()),
        ("net", strs(&["none"])),
        ("force_pull", true.into()),
    ];
    fields.extend(more);
    let alloc = Alloc::new("t");
    let task = alloc.task_config(task_config(&fields));
    let id = task.id.clone();
    match p
        .driver
        .start_task(d::StartTaskRequest { task: Some(task) })
        .await
    {
        Ok(_) => {
            let code = wait(p, &id).await.result.map(|r| r.exit_code).unwrap_or(-1);
            destroy(p, id).await;
            Ok(code)
        }
        Err(e) => Err(e.message().to_string()),
    }
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => {
                    let holds = std::fs::read(&path)
                        .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()));
                    if holds {
                        found.push(path.display().to_string());
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_credentials_from_the_task_the_plugin_and_dockers_files() {
    if !root_or_skip() {
        return;
    }
    let reg = test_support::Registry::with_fixtures("token");
    let (private, public) = (
        reg.image("busybox:latest"),
        reg.image("public/busybox:latest"),
    );
    let rkt_dir = RktDir::new();
    // A credential helper of the test's own: it knows this registry only.
    let helpers = tempfile::tempdir().unwrap();
    let helper = helpers.path().join("docker-credential-rkttest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\nif [ \"$server\" = \"{}\" ]; then echo '{{\"Username\":\"tester\",\"Secret\":\"secret\"}}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
            reg.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        helpers.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut p = Plugin::start_with(rkt_dir.path(), |c| {
        c.env("PATH", &path);
    })
    .await;
    configure(&mut p, vec![]).await;

    // The task's own credentials.
    assert_eq!(
        run(&mut p, &private, vec![("auth", auth("tester", "secret"))]).await,
        Ok(0)
    );
    let e = run(&mut p, &private, vec![("auth", auth("tester", WRONG))])
        .await
        .unwrap_err();
    assert!(e.contains("refused the credentials"), "{e}");
    assert!(!e.contains(WRONG), "the password in an error: {e}");
    // Nothing without them on a private repository ...
    let e = run(&mut p, &private, vec![]).await.unwrap_err();
    assert!(e.contains("denied"), "{e}");
    // ... and refused ones are refused, unless auth_soft_fail lets the public image through.
    assert!(run(&mut p, &public, vec![("auth", auth("tester", WRONG))])
        .await
        .is_err());
    let soft = vec![
        ("auth", auth("tester", WRONG)),
        ("auth_soft_fail", true.into()),
    ];
    assert_eq!(run(&mut p, &public, soft).await, Ok(0));

    // The plugin's credential helper.
    let helper_cfg = rmpv::Value::Map(vec![("helper".into(), "rkttest".into())]);
    configure(&mut p, vec![("auth", helper_cfg)]).await;
    assert_eq!(run(&mut p, &private, vec![]).await, Ok(0));

    // The plugin's Docker config.json (tester:secret, base64).
    let config = helpers.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"dGVzdGVyOnNlY3JldA=="}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let file_cfg = rmpv::Value::Map(vec![("config".into(), config.display().to_string().into())]);
    configure(&mut p, vec![("auth", file_cfg)]).await;
    assert_eq!(run(&mut p, &private, vec![]).await, Ok(0));

    // No credential was written anywhere in the store or the driver's state.
    assert_eq!(files_holding(rkt_dir.path(), WRONG), Vec::<String>::new());
    let state: Vec<String> = files_holding(rkt_dir.path(), "tester")
        .into_iter()
        .filter(|f| !f.contains("/cas/"))
        .collect();
    assert!(state.is_empty(), "{state:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_that_take_too_long_or_stall_are_abandoned() {
    if !root_or_skip() {
        return;
    }
    let port = registry().harness().port.to_string();
    let rkt_dir = RktDir::new();
    let mut p = Plugin::start(rkt_dir.path()).await;
    // 100 kB/s: the 1 MB image needs about 10 s; image_pull_timeout allows 2.
    let (mut slow, slow_port, _d1) =
        test_support::python_server("slow_proxy.py", &[&port, "100000"]);
    configure(&mut p, vec![]).await;
    let image = format!("docker://127.0.0.1:{slow_port}/demo/busybox:latest");
    let t = Instant::now();
    let e = run(&mut p, &image, vec![("image_pull_timeout", "2s".into())])
        .await
        .unwrap_err();
    assert!(e.contains("image_pull_timeout"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    slow.kill().ok();
    // A registry that stops sending 64 KiB into each answer: cancelled once nothing has
    // come for pull_activity_timeout, long before the registry timeout (30 s) would notice.
    let (mut stall, stall_port, _d2) =
        test_support::python_server("stall_proxy.py", &[&port, "65536"]);
    configure(&mut p, vec![("pull_activity_timeout", "2s".into())]).await;
    let image = format!("docker://127.0.0.1:{stall_port}/demo/busybox:latest");
    let t = Instant::now();
    let e = run(&mut p, &image, vec![]).await.unwrap_err();
    assert!(e.contains("pull_activity_timeout"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    stall.kill().ok();
    assert_eq!(
        pods(rkt_dir.path()),
        "",
        "no pod of a pull that never finished"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_docker_style_options_fail_clearly_and_leave_nothing() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let mut p = Plugin::start(rkt_dir.path()).await;
    configure(&mut p, vec![]).await;
    let image = registry().image();
    let map =
        |k: &str, v: &str| rmpv::Value::Array(vec![rmpv::Value::Map(vec![(k.into(), v.into())])]);
    let device = |host: &str| {
        rmpv::Value::Array(vec![rmpv::Value::Map(vec![
            ("host_path".into(), host.into()),
            ("container_path".into(), "/dev/x".into()),
        ])])
    };
    let tmpfs = |size: rmpv::Value| {
        rmpv::Value::Array(vec![rmpv::Value::Map(vec![
            ("type".into(), "tmpfs".into()),
            ("target".into(), "/scratch".into()),
            (
                "tmpfs_options".into(),
                rmpv::Value::Map(vec![("size".into(), size)]),
            ),
        ])])
    };
    let cases: Vec<(Vec<(&str, rmpv::Value)>, &str)> = vec![
        (
            vec![("privileged", true.into())],
            "privileged = true would give",
        ),
        (
            vec![("ipc_mode", "host".into())],
            "ipc_mode = \"host\" would give",
        ),
        (
            vec![("pid_mode", "host".into())],
            "pid_mode = \"host\" would give",
        ),
        (
            vec![("security_opt", strs(&["seccomp=unconfined"]))],
            "allow_privileged = true",
        ),
        (
            vec![("security_opt", strs(&["apparmor=x"]))],
            "security_opt \"apparmor=x\" is not supported",
        ),
        (
            vec![("cap_add", strs(&["sys_admin"]))],
            "does not allow the capabilities [\"sys_admin\"]",
        ),
        (
            vec![("cap_add", strs(&["not_a_cap"]))],
            "cap_add: unknown capability \"not_a_cap\"",
        ),
        (
            vec![("sysctl", map("vm.swappiness", "1"))],
            "sysctl vm.swappiness: not a parameter of the pod's own namespaces",
        ),
        (
            vec![("ulimit", map("files", "1"))],
            "ulimit files: unknown resource",
        ),
        (
            vec![("devices", device("/dev/no-such-device"))],
            "/dev/no-such-device",
        ),
        (
            vec![("mount", tmpfs("lots".into()))],
            "\"mount.tmpfs_options.size\" must be a whole number",
        ),
        (vec![("extra_hosts", strs(&["db"]))], "extra_hosts \"db\""),
        (
            vec![("oom_score_adj", (-500).into())],
            "oom_score_adj = -500",
        ),
        (
            vec![("image_pull_timeout", "soon".into())],
            "image_pull_timeout = \"soon\"",
        ),
        (vec![("work_dir", "rel".into())], "work_dir = \"rel\""),
        (
            vec![("cpu_cfs_period", 50_000.into())],
            "set cpu_hard_limit = true",
        ),
        (
            vec![
                ("cpu_hard_limit", true.into()),
                ("cpu_cfs_period", 10.into()),
            ],
            "cpu_cfs_period = 10",
        ),
        (
            vec![("memory_hard_limit", 16.into())],
            "memory_hard_limit = 16: less than the task's memory",
        ),
    ];
    for (set, expect) in cases {
        let mut fields: Vec<(&str, rmpv::Value)> = vec![
            ("image", image.clone().into()),
            ("command", "/bin/true".into()),
        ];
        fields.extend(set);
        let alloc = Alloc::new("bad");
        let e = p
            .driver
            .start_task(d::StartTaskRequest {
                task: Some(alloc.task_config(task_config(&fields))),
            })
            .await
            .unwrap_err();
        assert!(
            e.message().contains(expect),
            "{expect}: got {}",
            e.message()
        );
        assert_ne!(
            e.code(),
            tonic::Code::FailedPrecondition,
            "{expect}: not worth a retry"
        );
    }
    assert_eq!(pods(rkt_dir.path()), "", "a refused task leaves no pod");
}

/// The node's rkt `stage1.d` (read from the plugin's `--rkt-local-config`) applies to tasks
/// as to rkt's own pods: naming rkt's default flavour works; naming fly (the host's
/// namespaces, every privilege, no limits) or a stage1 image this rkt cannot run fails the
/// task with the file named and leaves no pod.
#[tokio::test]
async fn the_nodes_stage1_d_is_honoured_or_refused() {
    if !root_or_skip() {
        return;
    }
    let rkt_dir = RktDir::new();
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(local.path().join("stage1.d")).unwrap();
    let file = local.path().join("stage1.d/node.json");
    let name = |n: &str| {
        std::fs::write(
            &file,
            format!(r#"{{"rktKind":"stage1","rktVersion":"v1","name":"{n}","version":"1.30.0"}}"#),
        )
        .unwrap()
    };
    let flag = format!("--rkt-local-config={}", local.path().display());
    let mut p = Plugin::start_with(rkt_dir.path(), |c| {
        c.arg(&flag);
    })
    .await;
    configure(&mut p, vec![]).await;
    let image = registry().image();
    name("coreos.com/rkt/stage1-coreos");
    assert_eq!(run(&mut p, &image, vec![]).await, Ok(0));
    for (stage1, says) in [
        ("coreos.com/rkt/stage1-fly", "makes fly the default stage1"),
        (
            "coreos.com/rkt/stage1-kvm",
            "not one of this rkt's built-in",
        ),
    ] {
        name(stage1);
        let e = run(&mut p, &image, vec![]).await.unwrap_err();
        assert!(e.contains("node.json") && e.contains(says), "{stage1}: {e}");
    }
    assert_eq!(pods(rkt_dir.path()), "", "a refused task leaves no pod");
}
