#!/usr/bin/env python3
"""Writes a hostile ACI (an uncompressed tar) for the negative tests; actool refuses to
build these, which is the point.

Usage: evil_aci.py KIND OUT.aci

KIND:
  dotdot    a valid manifest; rootfs/ok and rootfs/../../aci-escape
  abs       a valid manifest; rootfs/ok and /aci-abs-escape (an absolute name)
  symlink   a valid manifest; rootfs/link -> /run/rkt-aci-host, then rootfs/link/pwned
            (a file written through the symlink)
  badjson   a manifest that is not JSON, and a rootfs
  badname   a manifest whose name, 127.0.0.1:5000/app, is not an AC identifier

Every ACI is named aci.test/evil-KIND, so that one trusted prefix covers them all.
"""
import io
import json
import sys
import tarfile

MTIME = 981158400


def add(tar, name, data=b"", kind=tarfile.REGTYPE, link="", mode=0o644):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.mtime, i.linkname = kind, mode, MTIME, link
    i.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def manifest(name):
    return json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": {"exec": ["/bin/sh"], "user": "0", "group": "0"},
    }).encode()


def main():
    kind, out = sys.argv[1], sys.argv[2]
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as t:
        name = {"badname": "127.0.0.1:5000/app"}.get(kind, f"aci.test/evil-{kind}")
        add(t, "manifest", b"{not json" if kind == "badjson" else manifest(name))
        add(t, "rootfs", kind=tarfile.DIRTYPE, mode=0o755)
        add(t, "rootfs/ok", b"ok\n")
        if kind == "dotdot":
            add(t, "rootfs/../../aci-escape", b"escaped\n")
        elif kind == "abs":
            add(t, "/aci-abs-escape", b"escaped\n")
        elif kind == "symlink":
            add(t, "rootfs/link", kind=tarfile.SYMTYPE, link="/run/rkt-aci-host")
            add(t, "rootfs/link/pwned", b"escaped\n")


if __name__ == "__main__":
    main()
