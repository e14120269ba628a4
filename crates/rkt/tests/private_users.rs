//! `--private-users`: each pod's apps in a user namespace of its own, mapped to a range of
//! 65536 host IDs that no other pod of the store uses; inside, root owns the image's files;
//! outside, the pod's root is an unprivileged user of that range. (The escape attempts with
//! it on are in escapes.rs.)

mod common;

use common::pods::*;
use common::Rkt;

/// The range a pod records: its first host ID.
fn shift_of(rkt: &Rkt, uuid: &str) -> u32 {
    let text = std::fs::read_to_string(
        rkt.dir
            .path()
            .join("pods/run")
            .join(uuid)
            .join("stage1/private-users"),
    )
    .unwrap();
    let (shift, count) = text.split_once(':').unwrap();
    assert_eq!(count, "65536");
    shift.parse().unwrap()
}

const INSIDE: &str = "id -u; id -g; stat -c '%u %g' /bin/busybox /data; cat /proc/self/uid_map; \
                      echo hi > /data/made; exec sleep 60";

#[test]
fn pods_get_ranges_of_their_own_and_root_inside_is_a_stranger_outside() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let volume = "--volume=data,kind=empty,uid=5,gid=6";
    let mount = "--mount=volume=data,target=/data";
    let (mut a, ua) = start_pod(
        &rkt,
        &["--private-users", volume],
        &[
            mount,
            "--user=0",
            "--group=0",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            INSIDE,
        ],
    );
    let (mut b, ub) = start_pod(
        &rkt,
        &["--private-users", volume],
        &[
            mount,
            "--user=0",
            "--group=0",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            INSIDE,
        ],
    );
    let (sa, sb) = (shift_of(&rkt, &ua), shift_of(&rkt, &ub));
    assert_ne!(sa, sb, "two pods share a range");
    assert!(sa >= 0x8_0000 && sb >= 0x8_0000 && sa.abs_diff(sb) >= 65536);

    // Inside: root, owning the image's files; the empty volume as asked, inside.
    let o = rkt.run(&[
        "enter",
        &ua,
        "/bin/sh",
        "-c",
        "id -u; stat -c '%u %g' /bin/busybox /data; cat /proc/self/uid_map",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<String> = stdout.split_whitespace().map(str::to_string).collect();
    assert_eq!(&lines[..5], ["0", "0", "0", "5", "6"], "{stdout}");
    assert_eq!(
        &lines[5..],
        ["0".to_string(), sa.to_string(), "65536".into()],
        "{stdout}"
    );

    // Outside: the app runs as the range's first user; what it made is owned from there.
    use std::os::unix::fs::MetadataExt;
    let made = rkt
        .dir
        .path()
        .join("pods/run")
        .join(&ua)
        .join("volumes/data/made");
    common::eventually(std::time::Duration::from_secs(10), "the app's file", || {
        made.exists().then_some(())
    });
    let m = std::fs::metadata(&made).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (sa, sa),
        "the pod's root is host user {sa}"
    );
    let busybox_on_host = rkt
        .dir
        .path()
        .join("pods/run")
        .join(&ub)
        .join("stage1/rootfs/opt/stage2/busybox/rootfs/bin/busybox");
    assert_eq!(
        std::fs::symlink_metadata(busybox_on_host).unwrap().uid(),
        sb
    );

    // Its root cannot write what the host's root owns (the pod's /etc/hosts, bound in).
    let o = rkt.run(&[
        "enter",
        &ua,
        "/bin/sh",
        "-c",
        "echo x > /etc/hosts 2>/dev/null && echo wrote-hosts; echo done",
    ]);
    assert_eq!(out(&o).0, "done\n", "{}", out(&o).1);

    // The range is free again once its pod is gone.
    rkt.ok(&["stop", "--force", &ua]);
    let _ = a.wait();
    rkt.ok(&["rm", &ua]);
    let (mut c, uc) = start_pod(
        &rkt,
        &["--private-users"],
        &["--exec", "/bin/sleep", "--", "60"],
    );
    assert_eq!(
        shift_of(&rkt, &uc),
        sa,
        "the first pod's range, the lowest, is free again"
    );
    for (child, uuid) in [(&mut b, &ub), (&mut c, &uc)] {
        rkt.ok(&["stop", "--force", uuid]);
        let _ = child.wait();
    }
}

#[test]
fn what_private_users_cannot_do_is_refused() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let e = rkt.fails(&[
        "run",
        "--private-users",
        "--stage1-from-dir=stage1-fly.aci",
        &busybox(),
    ]);
    assert!(e.contains("--private-users") && e.contains("fly"), "{e}");
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--private-users",
        &busybox(),
        "--exec=/bin/true",
    ]);
    assert!(o.status.success(), "{}", out(&o).1);
    assert_eq!(
        pod_dirs(&rkt).len(),
        1,
        "the refused pod left nothing: {:?}",
        pod_dirs(&rkt)
    );
}

/// Exported, a private-users pod's app is owned as the image was (the pod's range moved
/// back down), valid for actool and runnable elsewhere.
#[test]
fn an_export_moves_the_owners_back() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let uuid_file = rkt.config.path().join("uuid");
    let o = rkt.run(&[
        "run",
        "--net=none",
        "--private-users",
        &format!("--uuid-file-save={}", uuid_file.display()),
        &busybox(),
        "--user=0",
        "--group=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "echo made > /www/new.txt; chown 1000:1000 /www/new.txt",
    ]);
    assert!(o.status.success(), "{}", out(&o).1);
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    let work = tempfile::tempdir().unwrap();
    let aci = work.path().join("p.aci");
    rkt.ok(&["export", &uuid, &aci.display().to_string()]);
    let v = std::process::Command::new("actool")
        .arg("validate")
        .arg(&aci)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", out(&v).1);
    let listing = std::process::Command::new("tar")
        .args(["--numeric-owner", "-tzvf"])
        .arg(&aci)
        .output()
        .unwrap();
    let listing = out(&listing).0;
    let owner = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(path))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{path} not in {listing}"))
            .to_string()
    };
    assert_eq!(owner("rootfs/bin/busybox"), "0/0");
    assert_eq!(owner("rootfs/www/new.txt"), "1000/1000");
    let other = Rkt::new();
    let id = other.ok(&["fetch", &aci.display().to_string()]);
    let o = other.run(&[
        "run",
        "--net=none",
        id.trim(),
        "--exec",
        "/bin/cat",
        "--",
        "/www/new.txt",
    ]);
    assert_eq!(out(&o).0, "made\n", "{}", out(&o).1);
}

#[test]
fn pods_of_several_apps_on_the_default_network_work_with_it() {
    if !common::require_root() {
        return;
    }
    let rkt = Rkt::new();
    let o = rkt.run(&[
        "run",
        "--private-users",
        &busybox(),
        "--name=one",
        "--user=0",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "cat /proc/self/uid_map; ip -4 addr show eth0 | grep -c 172.16.28.; id -u",
        "---",
        &busybox(),
        "--name=two",
        "--exec=/bin/true",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words[0], "0", "{stdout}");
    assert!(words[1].parse::<u32>().unwrap() >= 0x8_0000, "{stdout}");
    assert_eq!(&words[2..], ["65536", "1", "0"], "{stdout}");
}
