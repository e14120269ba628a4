//! A job gets no more than its operator allows, seen through a real Nomad agent: a relative
//! volume through a symlink that a task of the allocation planted stays inside the
//! allocation directory; a job's values are never read as rkt flags; a task written like the
//! documentation page's first example runs with appc's default capabilities and the default
//! seccomp filter (and so does `nomad alloc exec` in it); `insecure_options` that weaken the
//! pod at run time need the plugin's `allow_privileged`; and the escape attempts of the
//! runtime's own tests end the same way in a task as in `rkt run`.
//!
//! Same prerequisites as `nomad_agent.rs` (root, a Nomad binary); see `agent/mod.rs`.

mod agent;
mod common;

use agent::*;
use std::path::Path;
use std::time::Duration;

const IMAGE: &str = "docker://127.0.0.1:5000/demo/httpd:latest";

/// The capability sets and seccomp mode of a process, from /proc/PID/status.
const STATUS_LINES: &str = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status";

/// appc's 14 default capabilities as /proc shows them.
const DEFAULT_CAPS: &str = "00000000a80425fb";

/// A batch job `name` of one group: a prestart task (when `prestart` is given, a shell
/// command run to completion first) and the main task `t` with `config`. No restarts.
fn job(name: &str, prestart: Option<&str>, config: &str) -> String {
    service_or_batch(name, "batch", prestart, config)
}

/// [`job`], as a service (a task that keeps running) or a batch job (one that finishes).
fn service_or_batch(name: &str, kind: &str, prestart: Option<&str>, config: &str) -> String {
    let prestart = prestart
        .map(|cmd| {
            format!(
                r#"task "plant" {{
      lifecycle {{
        hook = "prestart"
      }}
      # The image's user (1000) may not write to /alloc.
      user   = "root"
      driver = "rkt"
      config {{
        image   = "{IMAGE}"
        command = "/bin/sh"
        args    = ["-c", "{cmd}"]
      }}
    }}"#
            )
        })
        .unwrap_or_default();
    format!(
        r#"job "{name}" {{
  datacenters = ["dc1"]
  type        = "{kind}"
  group "g" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    {prestart}
    task "t" {{
      driver = "rkt"
      config {{
        {config}
      }}
      resources {{
        cpu    = 100
        memory = 64
      }}
    }}
  }}
}}
"#
    )
}

/// Submits the job (detached) and returns its allocation's ID.
fn submit(a: &Agent, dir: &Path, name: &str, hcl: &str) -> String {
    let file = dir.join(format!("{name}.nomad"));
    std::fs::write(&file, hcl).unwrap();
    a.cli(&["job", "run", "-detach", file.to_str().unwrap()])
        .ok("nomad job run -detach");
    wait_for(
        &format!("an allocation of {name}"),
        Duration::from_secs(60),
        || {
            a.allocs(name)
                .first()
                .and_then(|al| al["ID"].as_str().map(str::to_string))
        },
    )
}

/// Waits until task `t` has failed to start; returns its events as text.
fn failed_to_start(a: &Agent, alloc: &str) -> String {
    wait_for(
        &format!("allocation {alloc} to fail"),
        Duration::from_secs(90),
        || (a.alloc(alloc)["ClientStatus"] == "failed").then_some(()),
    );
    let events = a.events(alloc, "t");
    assert!(
        events.iter().any(|(t, _, _)| t == "Driver Failure"),
        "no Driver Failure: {}\nprestart task: {}\n{}",
        a.events_text(alloc, "t"),
        a.events_text(alloc, "plant"),
        a.cli(&["alloc", "logs", "-stderr", alloc, "plant"]).stdout
    );
    a.events_text(alloc, "t")
}

/// Waits until task `t` has finished; returns its stdout.
fn finished_logs(a: &Agent, alloc: &str) -> String {
    wait_for(
        &format!("allocation {alloc} to finish"),
        Duration::from_secs(90),
        || {
            let al = a.alloc(alloc);
            match al["ClientStatus"].as_str() {
                Some("complete") => Some(()),
                Some("failed") => {
                    panic!("allocation {alloc} failed: {}", a.events_text(alloc, "t"))
                }
                _ => None,
            }
        },
    );
    a.cli(&["alloc", "logs", alloc, "t"])
        .ok("nomad alloc logs")
        .stdout
}

/// What a task planted in the shared allocation directory before the main task starts:
/// symlinks out of it (absolute, and relative through `..`), and one that stays inside.
const PLANT: &str = "ln -s /etc /alloc/evil && ln -s ../../../../../../../../etc /alloc/evil2 \
    && mkdir /alloc/mine && echo inside > /alloc/mine/f && ln -s mine /alloc/inner";

/// `s` inside an HCL string literal: quotes and backslashes escaped, and `${`/`%{` kept
/// from being read as interpolation.
fn hcl_string(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace("${", "$${")
        .replace("%{", "%%{")
}

/// Host files the escape would have made, removed again if it happened.
struct Probes(Vec<std::path::PathBuf>);

impl Drop for Probes {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn symlinked_volumes_stay_inside(volumes_enabled: bool) {
    let Some(nomad) = prerequisites() else { return };
    let setup = Setup {
        plugin_config: Some(format!("volumes_enabled = {volumes_enabled}")),
        ..Setup::default()
    };
    let a = Agent::start_with(&nomad, &setup);
    let dir = tempfile::tempdir().unwrap();
    for (n, link) in ["evil", "evil2"].iter().enumerate() {
        let marker = format!("rkt-escape-{}-{n}", std::process::id());
        let probes = Probes(vec![Path::new("/etc").join(&marker)]);
        let name = format!("symlink-{link}");
        let hcl = job(
            &name,
            Some(PLANT),
            &format!(
                r#"image   = "{IMAGE}"
        command = "/bin/sh"
        args    = ["-c", "touch /h/{marker}; ls /h"]
        volumes = ["alloc/{link}:/h"]"#
            ),
        );
        let alloc = submit(&a, dir.path(), &name, &hcl);
        let events = failed_to_start(&a, &alloc);
        assert!(
            events.contains("leads outside that directory")
                && events.contains(&format!("alloc/{link}")),
            "the failure names the volume and why: {events}"
        );
        assert!(!probes.0[0].exists(), "the task wrote into the host's /etc");
        a.stop_job(&name);
    }
    // A symlink that stays inside the allocation directory is followed.
    let hcl = job(
        "symlink-inner",
        Some(PLANT),
        &format!(
            r#"image   = "{IMAGE}"
        command = "/bin/sh"
        args    = ["-c", "cat /d/f"]
        volumes = ["alloc/inner:/d"]"#
        ),
    );
    let alloc = submit(&a, dir.path(), "symlink-inner", &hcl);
    assert_eq!(finished_logs(&a, &alloc).trim(), "inside");
}

/// The probe of the issue that found it: with `volumes_enabled = false`, `alloc/evil:/h1`
/// gave the task the host's /etc, read-write.
#[test]
fn a_relative_volume_through_a_symlink_stays_in_the_allocation_when_volumes_are_disabled() {
    symlinked_volumes_stay_inside(false);
}

#[test]
fn a_relative_volume_through_a_symlink_stays_in_the_allocation_when_volumes_are_enabled() {
    symlinked_volumes_stay_inside(true);
}

/// Values that would be rkt flags on a command line are values: an image named like a
/// volume flag is an image name that does not exist, a command named like a network flag is
/// a command the image does not have.
#[test]
fn values_that_look_like_flags_are_values() {
    let Some(nomad) = prerequisites() else { return };
    let a = Agent::start(&nomad);
    let dir = tempfile::tempdir().unwrap();
    let hcl = job(
        "flag-image",
        None,
        r#"image = "--volume=h,kind=host,source=/etc""#,
    );
    let alloc = submit(&a, dir.path(), "flag-image", &hcl);
    let events = failed_to_start(&a, &alloc);
    assert!(
        events.contains("--volume=h,kind=host,source=/etc") && !events.contains("--exec"),
        "the image name is named as an image: {events}"
    );
    let hcl = job(
        "flag-command",
        None,
        &format!(
            r#"image   = "{IMAGE}"
        command = "--net=host""#
        ),
    );
    let alloc = submit(&a, dir.path(), "flag-command", &hcl);
    let events = failed_to_start(&a, &alloc);
    assert!(
        events.contains("\"--net=host\"") && events.contains("not found"),
        "the command is looked up as a command: {events}"
    );
    assert!(a.pods().is_empty(), "pods left: {:?}", a.pods());
}

/// The documentation page's first example's shape (an image, no `trust_prefix`, no
/// `insecure_options`): the task gets appc's default capabilities, no_new_privs and the
/// default seccomp filter, and so does a command `nomad alloc exec` runs in it.
#[test]
fn a_default_task_runs_confined_and_so_does_alloc_exec() {
    let Some(nomad) = prerequisites() else { return };
    let probe = serve_probe_image();
    let a = Agent::start(&nomad);
    let dir = tempfile::tempdir().unwrap();
    let hcl = service_or_batch(
        "confined",
        "service",
        None,
        &format!(
            r#"image   = "{probe}"
        command = "/bin/sh"
        args    = ["-c", "{STATUS_LINES}; sleep 300"]"#
        ),
    );
    let file = dir.path().join("confined.nomad");
    std::fs::write(&file, hcl).unwrap();
    a.cli(&["job", "run", file.to_str().unwrap()])
        .ok("nomad job run");
    let alloc = a.wait_running("confined", "t", Duration::from_secs(90));
    let logs = wait_for("the task's status lines", Duration::from_secs(30), || {
        let out = a.cli(&["alloc", "logs", &alloc, "t"]).stdout;
        out.contains("Seccomp").then_some(out)
    });
    let exec = a
        .cli(&[
            "alloc",
            "exec",
            "-t=false",
            "-task",
            "t",
            &alloc,
            "/bin/sh",
            "-c",
            STATUS_LINES,
        ])
        .ok("nomad alloc exec")
        .stdout;
    for (how, out) in [("the task", &logs), ("alloc exec", &exec)] {
        for want in [
            format!("CapEff:\t{DEFAULT_CAPS}"),
            format!("CapBnd:\t{DEFAULT_CAPS}"),
            "NoNewPrivs:\t1".to_string(),
            "Seccomp:\t2".to_string(),
        ] {
            assert!(out.contains(&want), "{how}: no {want:?} in:\n{out}");
        }
    }
    a.stop_job("confined");
}

/// `insecure_options` that take the pod's run-time isolation away fail, naming the option,
/// on a plugin that does not allow them; with `allow_privileged = true` they apply.
#[test]
fn run_time_insecure_options_need_the_operators_allow_privileged() {
    let Some(nomad) = prerequisites() else { return };
    let probe = serve_probe_image();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"image            = "{probe}"
        insecure_options = ["image", "http", "all-run"]
        command          = "/bin/sh"
        args             = ["-c", "{STATUS_LINES}"]"#
    );
    let a = Agent::start(&nomad);
    let alloc = submit(&a, dir.path(), "all-run", &job("all-run", None, &config));
    let events = failed_to_start(&a, &alloc);
    assert!(
        events.contains("insecure_options = [\"all-run\"]")
            && events.contains("allow_privileged = true"),
        "{events}"
    );
    drop(a);
    let setup = Setup {
        plugin_config: Some("allow_privileged = true".into()),
        ..Setup::default()
    };
    let a = Agent::start_with(&nomad, &setup);
    let alloc = submit(&a, dir.path(), "all-run", &job("all-run", None, &config));
    let logs = finished_logs(&a, &alloc);
    assert!(logs.contains("Seccomp:\t0"), "{logs}");
    let eff = logs
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .unwrap_or_else(|| panic!("{logs}"));
    let eff = u64::from_str_radix(eff, 16).unwrap();
    assert!(eff & (1 << 21) != 0, "CAP_SYS_ADMIN, as asked: {logs}");
}

/// The runtime's escape attempts (`test_support::escapes`), made by a task of a default
/// plugin: each ends exactly as it does under `rkt run`.
#[test]
fn a_task_cannot_escape() {
    use test_support::escapes::{assert_refused, script, HostSecret};
    let Some(nomad) = prerequisites() else { return };
    let probe = serve_probe_image();
    let a = Agent::start_with(
        &nomad,
        &Setup {
            plugin_config: Some(String::new()),
            ..Setup::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let secret = HostSecret::new();
    let hcl = job(
        "escape",
        None,
        &format!(
            r#"image   = "{probe}"
        command = "/bin/sh"
        args    = ["-c", "{}"]"#,
            hcl_string(&script(&secret, "/alloc"))
        ),
    );
    let alloc = submit(&a, dir.path(), "escape", &hcl);
    let logs = finished_logs(&a, &alloc);
    assert_refused(
        "a task",
        &logs,
        &secret,
        &["rkt-stage1", "sh", "busybox", "escape_probe"],
    );
}
