//! `rkt config` (the merged configuration in rkt's JSON shape), `rkt completion bash|zsh`
//! (generated from the command line's own definitions), and `rkt help` naming every command.

mod common;

use common::{bin, Rkt};
use std::process::Command;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join("auth.d")).unwrap();
    std::fs::write(dir.join("auth.d").join(name), text).unwrap();
}

fn rkt_with(system: &std::path::Path, local: &std::path::Path, dir: &std::path::Path) -> Command {
    let mut c = Command::new(bin("rkt"));
    c.arg(format!("--dir={}", dir.display()))
        .arg(format!("--system-config={}", system.display()))
        .arg(format!("--local-config={}", local.display()));
    c
}

#[test]
fn config_prints_the_merged_configuration_as_rkt_did() {
    let system = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // rkt's documented example: the local entry for foo.com overrides the system one.
    write(
        system.path(),
        "basic.json",
        r#"{"rktKind":"auth","rktVersion":"v1","domains":["foo.com","bar.com","baz.com"],"type":"basic","credentials":{"user":"sysUser","password":"sysPassword"}}"#,
    );
    write(
        local.path(),
        "basic.json",
        r#"{"rktKind":"auth","rktVersion":"v1","domains":["foo.com"],"type":"basic","credentials":{"user":"user","password":"password"}}"#,
    );
    write(
        local.path(),
        "docker.json",
        r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"q","password":"qp"}}"#,
    );
    let o = rkt_with(system.path(), local.path(), dir.path())
        .arg("config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("\n\t\"stage0\": ["),
        "indented with tabs, as Go's: {text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = v["stage0"].as_array().unwrap();
    let auth: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["rktKind"] == "auth")
        .map(|e| {
            (
                e["domains"][0].as_str().unwrap().to_string(),
                e["credentials"]["user"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        auth,
        [
            ("bar.com".to_string(), "sysUser".to_string()),
            ("baz.com".into(), "sysUser".into()),
            ("foo.com".into(), "user".into())
        ]
    );
    let docker = entries
        .iter()
        .find(|e| e["rktKind"] == "dockerAuth")
        .unwrap();
    assert_eq!(docker["registries"], serde_json::json!(["quay.io"]));
    assert_eq!(docker["credentials"]["password"], "qp");
    let paths = entries.iter().find(|e| e["rktKind"] == "paths").unwrap();
    assert_eq!(paths["data"], dir.path().display().to_string());
    let stage1 = entries.iter().find(|e| e["rktKind"] == "stage1").unwrap();
    assert_eq!(stage1["location"], bin("rkt-stage1").display().to_string());
    assert_eq!(stage1["rktVersion"], "v1");

    let o = rkt_with(system.path(), local.path(), dir.path())
        .args(["config", "--pretty-print=false"])
        .output()
        .unwrap();
    let compact = String::from_utf8_lossy(&o.stdout);
    assert_eq!(compact.trim().lines().count(), 1, "{compact}");
    let again: serde_json::Value = serde_json::from_str(&compact).unwrap();
    assert_eq!(again, v);

    // A file rkt cannot use is named, as a fetch would name it.
    write(
        local.path(),
        "zz.json",
        r#"{"rktKind":"auth","rktVersion":"v9"}"#,
    );
    let o = rkt_with(system.path(), local.path(), dir.path())
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&o.stderr).contains("zz.json"));
}

#[test]
fn completion_scripts_are_generated_for_bash_and_zsh() {
    let rkt = Rkt::new();
    let bash = rkt.ok(&["completion", "bash"]);
    // The script loads into bash and registers rkt's completion; it knows the commands.
    let o = Command::new("bash")
        .arg("-c")
        .arg("source /dev/stdin; complete -p rkt")
        .stdin(std::fs::File::open(write_tmp(&bash).path()).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bash could not load it: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("rkt"));
    for word in [
        "export",
        "config",
        "completion",
        "cat-manifest",
        "--overwrite",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = rkt.ok(&["completion", "zsh"]);
    assert!(
        zsh.starts_with("#compdef rkt"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    assert!(zsh.contains("export") && zsh.contains("--pretty-print"));
    let e = rkt.fails(&["completion", "fish"]);
    assert!(e.contains("bash") && e.contains("zsh"), "{e}");
}

fn write_tmp(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn help_lists_every_command() {
    let rkt = Rkt::new();
    let help = rkt.ok(&["help"]);
    for command in [
        "version",
        "fetch",
        "trust",
        "image",
        "run",
        "prepare",
        "run-prepared",
        "status",
        "list",
        "stop",
        "rm",
        "gc",
        "enter",
        "cat-manifest",
        "export",
        "config",
        "completion",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "rkt help does not list {command}:\n{help}"
        );
    }
}
