#!/usr/bin/env bash
# Builds the fixture images as one OCI image layout, OUTDIR/layout, with umoci (payload:
# busybox from busybox-static). Cached: does nothing when OUTDIR/.done is newer than this
# script. Tags:
#   busybox      2 layers; config with entrypoint, cmd, env, workdir, user, ports, volumes
#   special      whiteouts, an opaque directory, hardlinks, symlinks, a fifo, a char device,
#                setuid/setgid, non-root owners, odd modes, an xattr, an old mtime
#   multi-amd64, multi-arm64   one per platform, and `multi`: an OCI index of the two
set -euo pipefail
out=${1:?usage: fixtures.sh OUTDIR}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
if [[ -f $out/.done && $out/.done -nt $self ]]; then exit 0; fi
rm -rf "$out"
mkdir -p "$out"
L=$out/layout
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

umoci init --layout "$L"

# new_image TAG: an empty image and its unpacked bundle in $work/TAG
new_image() {
  umoci new --image "$L:$1"
  umoci unpack --image "$L:$1" "$work/$1" >/dev/null
}
# --refresh-bundle: later repacks diff against the previous one, so layers hold only changes
# (and deletions become whiteouts).
repack() { umoci repack --refresh-bundle --image "$L:$1" "$work/$1"; }

busybox_layer() { # ROOTFS
  local r=$1
  mkdir -p "$r/bin" "$r/etc" "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for c in sh ls cat echo httpd sleep true false id env nc wget; do ln -s busybox "$r/bin/$c"; done
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\nstaff:x:50:app\n' >"$r/etc/group"
}

# busybox
new_image busybox
busybox_layer "$work/busybox/rootfs"
repack busybox
mkdir -p "$work/busybox/rootfs/www"
echo "hello from rkt" >"$work/busybox/rootfs/www/index.html"
repack busybox
umoci config --image "$L:busybox" \
  --config.entrypoint /bin/sh --config.entrypoint -c --config.cmd "echo hello" \
  --config.env PATH=/usr/bin:/bin --config.env FOO=bar --config.workingdir /www \
  --config.user 1000:1000 --config.exposedports 8080/tcp --config.exposedports 53/udp \
  --config.volume /data --config.volume /var/tmp --config.label org.example.purpose=test \
  --os linux --architecture amd64

# special: layer 1 lays things out, layer 2 deletes and replaces some of them
new_image special
r=$work/special/rootfs
busybox_layer "$r"
mkdir -p "$r/opaque/sub" "$r/keep"
echo old1 >"$r/opaque/a"; echo old2 >"$r/opaque/sub/b"
echo doomed >"$r/doomed"; echo kept >"$r/keep/file"
repack special
rm "$r/doomed"
rm -rf "$r/opaque"; mkdir "$r/opaque"; echo new >"$r/opaque/c"
echo data >"$r/hard1"; ln "$r/hard1" "$r/hard2"
ln -s ../keep/file "$r/keep/rel-link"; ln -s /etc/passwd "$r/abs-link"; ln -s /nowhere "$r/dangling"
mkfifo "$r/fifo"
mknod "$r/dev-null-copy" c 1 3
echo suid >"$r/suid"; chmod 4755 "$r/suid"
mkdir "$r/sgid-dir"; chmod 2775 "$r/sgid-dir"
echo u1000 >"$r/owned-1000"; chown 1000:1000 "$r/owned-1000"
echo u1234 >"$r/owned-1234"; chown 1234:5678 "$r/owned-1234"
echo secret >"$r/mode-0600"; chmod 0600 "$r/mode-0600"
echo x >"$r/xattr-file"; setfattr -n user.rkt.test -v hello "$r/xattr-file"
echo old >"$r/old-mtime"; touch -h -d 2001-02-03 "$r/old-mtime"
repack special
# umoci writes per-file whiteouts; an opaque directory marker comes from a layer that GNU tar
# builds from files on disk, added with umoci raw add-layer.
mkdir -p "$work/opq/keep"
: >"$work/opq/keep/.wh..wh..opq"
echo fresh >"$work/opq/keep/fresh"
tar --numeric-owner --owner=0 --group=0 -C "$work/opq" -cf "$work/opq.tar" keep
umoci raw add-layer --image "$L:special" "$work/opq.tar"

# multi-platform: two tiny images and an OCI index over them
for arch in amd64 arm64; do
  new_image "multi-$arch"
  busybox_layer "$work/multi-$arch/rootfs"
  echo "$arch" >"$work/multi-$arch/rootfs/platform"
  repack "multi-$arch"
  umoci config --image "$L:multi-$arch" --os linux --architecture "$arch"
done
entry() { # TAG ARCH -> index entry JSON for that tag's manifest
  jq -c --arg t "$1" --arg a "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$t)
    | {mediaType, digest, size, platform: {architecture: $a, os: "linux"}}' "$L/index.json"
}
index=$(jq -cn --argjson a "$(entry multi-amd64 amd64)" --argjson b "$(entry multi-arm64 arm64)" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$a, $b]}')
printf '%s' "$index" >"$work/index.json"
hex=$(sha256sum "$work/index.json" | cut -d' ' -f1)
cp "$work/index.json" "$L/blobs/sha256/$hex"
size=$(stat -c %s "$work/index.json")
jq --arg d "sha256:$hex" --argjson s "$size" '.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json",
   digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": "multi"}}]' "$L/index.json" >"$work/top.json"
cp "$work/top.json" "$L/index.json"

skopeo inspect --raw "oci:$L:multi" | jq -e '.manifests | length == 2' >/dev/null
touch "$out/.done"
