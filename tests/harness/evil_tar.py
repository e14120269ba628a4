#!/usr/bin/env python3
"""Writes a layer tarball (uncompressed) for the negative tests.

Usage: evil_tar.py KIND OUT.tar [LABEL [PAYLOAD_BYTES]]

KIND:
  dotdot         ok, ../escape, a/../../escape2
  abs            ok, /abs-escape                   (the raw header name starts with '/')
  symlink-write  ok, link -> /tmp, link/pwned      (a file written through the symlink)
  hardlink-out   ok, h => ../../etc/passwd, h2 => /etc/passwd   (hardlinks out of the root)
  good           etc/, etc/label (LABEL), etc/random (PAYLOAD_BYTES random bytes; 0 if not
                 given): a harmless layer, unique per LABEL, that other fixtures damage
  bomb           ok, zeros (PAYLOAD_BYTES zero bytes): a decompression bomb once gzip'd.
                 OUT may be "-" (stdout, streamed: nothing that size is written to disk)

Python's tarfile writes names and link names exactly as given to addfile() (only add() and
gettarinfo() strip a leading '/'), which is what a hostile image would contain. Every entry
is root-owned with a fixed mtime; the written names are checked by reading the raw headers
back. The LABEL also goes into each hostile layer (as ok's content), so layers of different
repositories never share a blob.
"""
import io
import os
import sys
import tarfile

MTIME = 981158400  # 2001-02-03T00:00:00Z


def info(name, kind=tarfile.REGTYPE, mode=0o644):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.mtime, i.uid, i.gid = kind, mode, MTIME, 0, 0
    return i


def add_file(tar, name, data=b"pwned\n", mode=0o644):
    i = info(name, mode=mode)
    i.size = len(data)
    tar.addfile(i, io.BytesIO(data))


def add_link(tar, name, target, kind):
    i = info(name, kind, 0o777 if kind == tarfile.SYMTYPE else 0o644)
    i.linkname = target
    tar.addfile(i)


class Zeros:
    """A file of `size` zero bytes that is never in memory whole."""

    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def bomb(out, label, size):
    stream = sys.stdout.buffer if out == "-" else open(out, "wb")
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        add_file(tar, "ok", label)
        i = info("zeros")
        i.size = size
        tar.addfile(i, Zeros(size))
    stream.flush()


def raw_names(path):
    """(name, linkname) of every ustar/GNU header, straight from the 512-byte blocks."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 512 <= len(data):
        block = data[off:off + 512]
        if block == b"\0" * 512:
            break
        name = block[0:100].rstrip(b"\0").decode()
        link = block[157:257].rstrip(b"\0").decode()
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        out.append((name, link))
        off += 512 + (size + 511) // 512 * 512
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    kind, out = sys.argv[1], sys.argv[2]
    label = (sys.argv[3] if len(sys.argv) > 3 else kind).encode() + b"\n"
    payload = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    expect = []
    if kind == "bomb":
        return bomb(out, label, payload)
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        if kind == "good":
            tar.addfile(info("etc/", tarfile.DIRTYPE, 0o755))
            add_file(tar, "etc/label", label)
            add_file(tar, "etc/random", os.urandom(payload))
            expect = [("etc/", ""), ("etc/label", ""), ("etc/random", "")]
        else:
            add_file(tar, "ok", label)
            expect.append(("ok", ""))
            if kind == "dotdot":
                add_file(tar, "../escape")
                add_file(tar, "a/../../escape2")
                expect += [("../escape", ""), ("a/../../escape2", "")]
            elif kind == "abs":
                add_file(tar, "/abs-escape")
                expect.append(("/abs-escape", ""))
            elif kind == "symlink-write":
                add_link(tar, "link", "/tmp", tarfile.SYMTYPE)
                add_file(tar, "link/pwned")
                expect += [("link", "/tmp"), ("link/pwned", "")]
            elif kind == "hardlink-out":
                add_link(tar, "h", "../../etc/passwd", tarfile.LNKTYPE)
                add_link(tar, "h2", "/etc/passwd", tarfile.LNKTYPE)
                expect += [("h", "../../etc/passwd"), ("h2", "/etc/passwd")]
            else:
                sys.exit("evil_tar.py: unknown kind " + kind)
    got = raw_names(out)
    if got != expect:
        sys.exit("evil_tar.py: %s has %r, wanted %r" % (out, got, expect))


if __name__ == "__main__":
    main()
