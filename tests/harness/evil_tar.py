#!/usr/bin/env python3
"""Writes a hostile layer tarball for the negative tests. Python's tarfile writes names as
given (it does not sanitize on writing), which is what a hostile image would do.

Usage: evil_tar.py KIND OUT.tar  (KIND: dotdot, abs, symlink-write, hardlink-out)
"""
import io
import sys
import tarfile


def add_file(tar, name, data=b"pwned\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def add_link(tar, name, target, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        add_file(tar, "ok")
        if kind == "dotdot":
            add_file(tar, "../escape")
            add_file(tar, "a/../../escape2")
        elif kind == "abs":
            add_file(tar, "/abs-escape")
        elif kind == "symlink-write":
            add_link(tar, "link", "/tmp", tarfile.SYMTYPE)
            add_file(tar, "link/pwned")
        elif kind == "hardlink-out":
            add_link(tar, "h", "../../etc/passwd", tarfile.LNKTYPE)
            add_link(tar, "h2", "/etc/passwd", tarfile.LNKTYPE)
        else:
            sys.exit("unknown kind " + kind)


if __name__ == "__main__":
    main()
