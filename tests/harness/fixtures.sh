#!/usr/bin/env bash
# Builds the fixture images as one OCI image layout, OUTDIR/layout, with umoci (payload:
# busybox from busybox-static), one tag per image:
#
#   busybox      layer 1: /bin/busybox and applet symlinks, /etc/passwd and /etc/group (root;
#                user and group `app`, 1000:1000; group `staff`, 50, member app); layer 2:
#                /www/index.html "hello from rkt".
#                Config: Entrypoint ["/bin/sh","-c"], Cmd ["echo hello"], Env PATH and FOO=bar,
#                WorkingDir /www, User 1000:1000, ports 8080/tcp 53/udp, volumes /data and
#                /var/tmp, label org.example.purpose=test, linux/amd64.
#   special      the layer-application cases (see below)
#   multi-amd64, multi-arm64   tiny images whose /platform says amd64 / arm64, configs to match
#   multi        an OCI image index over the two, with platform fields (made with jq)
#   hostile      busybox whose paths point at the host directory /run/rkt-hostile-host (a
#                fixed path, as images are built once; the tests create it and check that it
#                stays untouched): /evil -> /run/rkt-hostile-host (absolute) with VOLUME
#                /evil/vol; /rel -> ../../../../../../../../run/rkt-hostile-host (relative)
#                with VOLUME /rel/vol2; /deep/a -> /run/rkt-hostile-host (a middle component,
#                for --mount targets); /loop -> /loop (a symlink loop); /etc/hosts,
#                /etc/hostname and /etc/resolv.conf -> files in /run/rkt-hostile-host
#   hostile-etc  busybox whose /etc, /proc and /dev are absolute symlinks into
#                /run/rkt-hostile-host and whose /sys is a relative one; VOLUME /data
#   probe        busybox plus /bin/escape_probe (tests/harness/escape_probe.c, built here
#                with gcc -static) for the escape tests, and two setuid copies of it:
#                /bin/probe-suid-root (0:0, 4755) and /bin/probe-suid-app (1000:1000, 4755,
#                a user the image's /etc/passwd maps); Cmd /bin/true, User 0:0
#   hostile-dev  busybox with device nodes a layer may carry: /disk (block 8:0, the host's
#                first SCSI disk), /kmem (char 1:2), /mem (char 1:1), /kmsg (char 1:11, the
#                host's kernel log), /null (char 1:3, harmless: it opens unless nodev), all 0666
#   hostile-whiteout  busybox with /link -> /run/rkt-hostile-host; then a layer (tarfile, raw
#                add-layer) of whiteouts through it: link/.wh.hosts, link/.wh..wh..opq
#   hostile-hardlink  the same /link; then a layer with the hardlink h => link/hosts
#   hostile-swap three layers: /lib/d/ a directory with a file; then /lib/d replaced by a
#                symlink to /run/rkt-hostile-host; then a layer (written here by tarfile,
#                added with `umoci raw add-layer`) with the entry lib/d/pwned, which would
#                land in the host directory if the symlink were followed
#
# Cached: does nothing when OUTDIR/.done is newer than this script. Builds into a scratch
# layout and renames it into place, so an interrupted build leaves no half layout behind;
# concurrent callers are serialized on OUTDIR/.lock.
#
# What umoci 0.4.7 emits (checked by looking into its layers):
#   - a directory deleted and recreated between two `umoci repack`s gets per-file whiteouts
#     (`replaced/.wh.a`, `replaced/.wh.sub`) next to its new contents, never `.wh..wh..opq`;
#     so the opaque-directory case is a layer written here by tarfile and added with
#     `umoci raw add-layer`: `opq/`, `opq/.wh..wh..opq`, `opq/fresh`, in that order;
#   - user.* xattrs survive, as PAX `SCHILY.xattr.user.rkt.test=hello` records;
#   - mtimes survive (old-mtime is 2001-02-03T00:00:00Z in the layer); whiteout entries are
#     mode 0, uid 0, mtime 0; hardlinks become a tar hardlink entry (hard2 -> hard1);
#     fifos and devices keep their type, device numbers and mode.
set -euo pipefail
out=${1:?usage: fixtures.sh OUTDIR}
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

probe_src=$(dirname "$self")/escape_probe.c
fresh() { [[ -f $out/.done && $out/.done -nt $self && $out/.done -nt $probe_src && -f $out/layout/index.json ]]; }
fresh && exit 0

for tool in umoci skopeo jq python3 setfattr mknod sha256sum flock gcc; do
  command -v "$tool" >/dev/null || { echo "fixtures.sh: $tool not found (see tests/harness/packages.txt)" >&2; exit 1; }
done
[[ -x /bin/busybox ]] || { echo "fixtures.sh: /bin/busybox not found (busybox-static)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "fixtures.sh: must run as root (mknod, chown)" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out/.lock"
flock 9
fresh && exit 0 # built by whoever held the lock before us

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
L=$work/layout
log=$work/umoci.log
run() { "$@" >>"$log" 2>&1 || { echo "fixtures.sh: failed: $*" >&2; tail -20 "$log" >&2; exit 1; }; }

run umoci init --layout "$L"

# new_image TAG: an empty image and its unpacked bundle in $work/TAG
new_image() {
  run umoci new --image "$L:$1"
  run umoci unpack --image "$L:$1" "$work/$1"
}
# --refresh-bundle: the next repack diffs against this one, so every layer holds only the
# changes since the previous repack (deletions become whiteouts).
repack() { run umoci repack --refresh-bundle --image "$L:$1" "$work/$1"; }

busybox_layer() { # ROOTFS
  local r=$1 c
  mkdir -p "$r/bin" "$r/etc" "$r/tmp"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for c in sh ls cat echo httpd sleep true false id env nc wget; do ln -s busybox "$r/bin/$c"; done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'app:x:1000:1000:app:/home/app:/bin/sh' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'app:x:1000:' 'staff:x:50:app' >"$r/etc/group"
}

# --- busybox ---------------------------------------------------------------------------
new_image busybox
busybox_layer "$work/busybox/rootfs"
repack busybox
mkdir -p "$work/busybox/rootfs/www"
echo "hello from rkt" >"$work/busybox/rootfs/www/index.html"
repack busybox
run umoci config --image "$L:busybox" \
  --config.entrypoint /bin/sh --config.entrypoint -c --config.cmd "echo hello" \
  --config.env PATH=/usr/bin:/bin --config.env FOO=bar --config.workingdir /www \
  --config.user 1000:1000 --config.exposedports 8080/tcp --config.exposedports 53/udp \
  --config.volume /data --config.volume /var/tmp --config.label org.example.purpose=test \
  --os linux --architecture amd64

# --- special ---------------------------------------------------------------------------
# layer 1: busybox, and things later layers delete or replace
new_image special
r=$work/special/rootfs
busybox_layer "$r"
echo doomed >"$r/doomed"
mkdir -p "$r/replaced/sub" "$r/opq/sub" "$r/keep"
echo old-a >"$r/replaced/a"
echo old-b >"$r/replaced/sub/b"
echo old >"$r/opq/old"
echo old2 >"$r/opq/sub/old2"
echo kept >"$r/keep/file"
repack special
# layer 2: a whiteout, a replaced directory (per-file whiteouts), and every odd file kind
rm "$r/doomed"
rm -rf "$r/replaced"
mkdir "$r/replaced"
echo new-c >"$r/replaced/c"
echo data >"$r/hard1"
ln "$r/hard1" "$r/hard2"
mkdir "$r/links"
ln -s ../keep/file "$r/links/rel-link"
ln -s /etc/passwd "$r/links/abs-link"
ln -s /nowhere/at/all "$r/links/dangling"
mkfifo "$r/fifo"
mknod "$r/dev-null-copy" c 1 3
echo suid >"$r/suid"
chmod 4755 "$r/suid"
mkdir "$r/sgid-dir"
chmod 2775 "$r/sgid-dir"
echo u1000 >"$r/owned-1000"
chown 1000:1000 "$r/owned-1000"
echo u1234 >"$r/owned-1234"
chown 1234:5678 "$r/owned-1234"
echo secret >"$r/mode-0600"
chmod 0600 "$r/mode-0600"
echo x >"$r/xattr-file"
setfattr -n user.rkt.test -v hello "$r/xattr-file"
echo old >"$r/old-mtime"
touch -d 2001-02-03T00:00:00Z "$r/old-mtime"
repack special
# layer 3: an explicit opaque whiteout (umoci never writes one, see the top)
python3 - "$work/opq.tar" <<'PY'
import io, sys, tarfile, time
now = int(time.time())
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name, data in (("opq", None), ("opq/.wh..wh..opq", b""), ("opq/fresh", b"fresh\n")):
        i = tarfile.TarInfo(name)
        i.mtime = now
        if data is None:
            i.type, i.mode = tarfile.DIRTYPE, 0o755
            t.addfile(i)
        else:
            i.mode, i.size = 0o644, len(data)
            t.addfile(i, io.BytesIO(data))
PY
run umoci raw add-layer --image "$L:special" "$work/opq.tar"

# --- hostile ---------------------------------------------------------------------------
H=/run/rkt-hostile-host
new_image hostile
r=$work/hostile/rootfs
busybox_layer "$r"
ln -s "$H" "$r/evil"
ln -s "../../../../../../../..$H" "$r/rel"
mkdir "$r/deep"
ln -s "$H" "$r/deep/a"
ln -s /loop "$r/loop"
for f in hosts hostname resolv.conf; do ln -s "$H/$f" "$r/etc/$f"; done
repack hostile
run umoci config --image "$L:hostile" --config.cmd /bin/true \
  --config.volume /evil/vol --config.volume /rel/vol2 --os linux --architecture amd64

new_image hostile-etc
r=$work/hostile-etc/rootfs
busybox_layer "$r"
rm -rf "$r/etc"
ln -s "$H/etc" "$r/etc"
ln -s "$H/proc" "$r/proc"
ln -s "$H/dev" "$r/dev"
ln -s "../../../..$H/sys" "$r/sys"
repack hostile-etc
run umoci config --image "$L:hostile-etc" --config.cmd /bin/true --config.volume /data \
  --os linux --architecture amd64

# --- probe -----------------------------------------------------------------------------
new_image probe
r=$work/probe/rootfs
busybox_layer "$r"
gcc -static -O2 -o "$r/bin/escape_probe" "$probe_src" 2>>"$log" ||
  { echo "fixtures.sh: cannot build escape_probe.c (gcc, libc6-dev)" >&2; tail -5 "$log" >&2; exit 1; }
cp "$r/bin/escape_probe" "$r/bin/probe-suid-root"
chmod 4755 "$r/bin/probe-suid-root"
cp "$r/bin/escape_probe" "$r/bin/probe-suid-app"
chown 1000:1000 "$r/bin/probe-suid-app"
chmod 4755 "$r/bin/probe-suid-app"
repack probe
run umoci config --image "$L:probe" --config.cmd /bin/true --config.user 0:0 \
  --os linux --architecture amd64

# --- hostile-dev -----------------------------------------------------------------------
new_image hostile-dev
r=$work/hostile-dev/rootfs
busybox_layer "$r"
mknod -m 0666 "$r/disk" b 8 0
mknod -m 0666 "$r/kmem" c 1 2
mknod -m 0666 "$r/mem" c 1 1
mknod -m 0666 "$r/kmsg" c 1 11
mknod -m 0666 "$r/null" c 1 3
repack hostile-dev
run umoci config --image "$L:hostile-dev" --config.cmd /bin/true --os linux --architecture amd64

# --- hostile-swap ----------------------------------------------------------------------
new_image hostile-swap
r=$work/hostile-swap/rootfs
busybox_layer "$r"
mkdir -p "$r/lib/d"
echo lower >"$r/lib/d/file"
repack hostile-swap
rm -rf "$r/lib/d"
ln -s "$H" "$r/lib/d"
repack hostile-swap
python3 - "$work/swap.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo("lib/d/pwned")
    data = b"written through a symlink of a lower layer\n"
    i.mode, i.size, i.mtime = 0o644, len(data), 981158400
    t.addfile(i, io.BytesIO(data))
PY
run umoci raw add-layer --image "$L:hostile-swap" "$work/swap.tar"
run umoci config --image "$L:hostile-swap" --config.cmd /bin/true --os linux --architecture amd64

# --- hostile-whiteout, hostile-hardlink --------------------------------------------------
# raw_layer OUT KIND: a layer tarfile writes with entries umoci would never produce
raw_layer() {
  python3 - "$1" "$2" <<'PY'
import sys, tarfile
out, kind = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, type_=tarfile.REGTYPE, link=""):
        i = tarfile.TarInfo(name)
        i.type, i.linkname, i.mtime = type_, link, 981158400
        i.mode = 0 if name.rsplit("/", 1)[-1].startswith(".wh.") else 0o644
        t.addfile(i)
    if kind == "whiteout":
        add("link/.wh.hosts")
        add("link/.wh..wh..opq")
    else:
        add("h", tarfile.LNKTYPE, "link/hosts")
PY
}
for kind in whiteout hardlink; do
  new_image "hostile-$kind"
  r=$work/hostile-$kind/rootfs
  busybox_layer "$r"
  ln -s "$H" "$r/link"
  repack "hostile-$kind"
  raw_layer "$work/$kind.tar" "$kind"
  run umoci raw add-layer --image "$L:hostile-$kind" "$work/$kind.tar"
  run umoci config --image "$L:hostile-$kind" --config.cmd /bin/true --os linux --architecture amd64
done

# --- multi-platform --------------------------------------------------------------------
for arch in amd64 arm64; do
  new_image "multi-$arch"
  busybox_layer "$work/multi-$arch/rootfs"
  echo "$arch" >"$work/multi-$arch/rootfs/platform"
  repack "multi-$arch"
  run umoci config --image "$L:multi-$arch" --os linux --architecture "$arch" --config.cmd /bin/sh
done
# entry TAG ARCH: the index entry for that tag's manifest
entry() {
  jq -ce --arg t "$1" --arg a "$2" '.manifests[]
    | select(.annotations["org.opencontainers.image.ref.name"] == $t)
    | {mediaType, digest, size, platform: {architecture: $a, os: "linux"}}' "$L/index.json"
}
jq -cjn --argjson a "$(entry multi-amd64 amd64)" --argjson b "$(entry multi-arm64 arm64)" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$a, $b]}' \
  >"$work/multi-index.json"
hex=$(sha256sum "$work/multi-index.json" | cut -d' ' -f1)
cp "$work/multi-index.json" "$L/blobs/sha256/$hex"
jq --arg d "sha256:$hex" --argjson s "$(stat -c %s "$work/multi-index.json")" \
  '.manifests |= (map(select(.annotations["org.opencontainers.image.ref.name"] != "multi")) + [{
     mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
     annotations: {"org.opencontainers.image.ref.name": "multi"}}])' \
  "$L/index.json" >"$work/top.json"
cp "$work/top.json" "$L/index.json"

# --- checks ----------------------------------------------------------------------------
skopeo inspect --raw "oci:$L:multi" |
  jq -e '.mediaType == "application/vnd.oci.image.index.v1+json" and
    ([.manifests[].platform.architecture] == ["amd64", "arm64"])' >/dev/null ||
  { echo "fixtures.sh: oci:$L:multi is not the expected index" >&2; exit 1; }
for t in busybox special hostile hostile-etc probe hostile-dev hostile-swap hostile-whiteout hostile-hardlink multi-amd64 multi-arm64; do
  skopeo inspect "oci:$L:$t" >/dev/null 2>>"$log" || { echo "fixtures.sh: skopeo cannot read $t" >&2; tail -5 "$log" >&2; exit 1; }
done
[[ $(skopeo inspect --config "oci:$L:multi-arm64" | jq -r .architecture) == arm64 ]] ||
  { echo "fixtures.sh: multi-arm64's config does not say arm64" >&2; exit 1; }

rm -rf "$out/layout" "$out/.done"
mv "$L" "$out/layout"
cp "$work/multi-index.json" "$out/multi-index.json"
touch "$out/.done"
