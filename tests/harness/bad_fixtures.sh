#!/usr/bin/env bash
# Puts broken and hostile images into a plain registry (started by registry.sh, whose
# STATEDIR holds its storage) for the negative tests. Malicious layers are tar files written
# by evil_tar.py; everything goes in through the registry API (api.sh), except where a
# registry would refuse it and the storage is edited instead (said below).
#
#   bad_fixtures.sh PORT STATEDIR
#
# bad/dotdot bad/abs bad/symlink-write bad/hardlink-out   hostile layer entries
# bad/corrupt-gzip     a layer blob whose stored bytes no longer match its digest
# bad/truncated-gzip, bad/truncated-zstd   layers cut short, with correct digests
# bad/big-config       a config blob over 4 MiB     bad/unknown-media   unknown layer type
set -euo pipefail
port=${1:?usage: bad_fixtures.sh PORT STATEDIR}
state=${2:?usage: bad_fixtures.sh PORT STATEDIR}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/api.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
reg=127.0.0.1:$port

printf '%s' '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]},"rootfs":{"type":"layers","diff_ids":[]}}' >"$work/config.json"

# image REPO MEDIA FILE... : an image whose layers are FILEs (already compressed as MEDIA says)
image() {
  local repo=$1 media=$2
  shift 2
  api_init "$reg" "" "$repo"
  local cfg layers='[]'
  cfg=$(api_blob "$work/config.json")
  for f in "$@"; do
    layers=$(jq -c --arg d "$(api_blob "$f")" --arg m "$media" --argjson s "$(stat -c %s "$f")" \
      '. + [{mediaType: $m, digest: $d, size: $s}]' <<<"$layers")
  done
  jq -cn --arg c "$cfg" --argjson s "$(stat -c %s "$work/config.json")" --argjson l "$layers" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $s}, layers: $l}' \
    >"$work/manifest.json"
  api_manifest latest "$work/manifest.json" application/vnd.oci.image.manifest.v1+json
}
GZ=application/vnd.oci.image.layer.v1.tar+gzip

for kind in dotdot abs symlink-write hardlink-out; do
  python3 "$here/evil_tar.py" "$kind" "$work/$kind.tar"
  gzip -n -c "$work/$kind.tar" >"$work/$kind.tar.gz"
  image "bad/$kind" "$GZ" "$work/$kind.tar.gz"
done

# A good layer: a few files, big enough to cut short.
mkdir -p "$work/good/etc"
head -c 200000 /dev/urandom >"$work/good/etc/random"
echo ok >"$work/good/etc/ok"
tar --numeric-owner --owner=0 --group=0 -C "$work/good" -cf "$work/good.tar" etc
gzip -n -c "$work/good.tar" >"$work/good.tar.gz"
zstd -q -c "$work/good.tar" >"$work/good.tar.zst"

# Digest mismatch: a valid upload whose stored bytes are then replaced (same length), as a
# corrupt disk or a tampering registry would serve them.
image bad/corrupt-gzip "$GZ" "$work/good.tar.gz"
hex=$(sha256sum "$work/good.tar.gz" | cut -d' ' -f1)
data=$state/storage/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data
head -c "$(stat -c %s "$data")" /dev/urandom >"$data"

# Truncated streams whose digests are right: the damage shows only when decompressing.
head -c 100000 "$work/good.tar.gz" >"$work/trunc.tar.gz"
image bad/truncated-gzip "$GZ" "$work/trunc.tar.gz"
head -c 100000 "$work/good.tar.zst" >"$work/trunc.tar.zst"
image bad/truncated-zstd application/vnd.oci.image.layer.v1.tar+zstd "$work/trunc.tar.zst"

# Unknown layer media type.
image bad/unknown-media application/vnd.example.unknown.layer "$work/good.tar.gz"

# A config blob over 4 MiB: manifests and configs are read whole, so both are capped. (The
# registry itself refuses to store or serve manifests over 4 MiB; manifest_server.py serves
# one for that test.)
python3 - >"$work/big-config.json" <<'PY'
import json
print(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
                  "rootfs": {"type": "layers", "diff_ids": []}, "comment": "x" * (5 << 20)}), end="")
PY
cp "$work/big-config.json" "$work/config.json"
image bad/big-config "$GZ" "$work/good.tar.gz"
