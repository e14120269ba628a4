#!/usr/bin/env bash
# Puts broken and hostile images (tag `latest`) into a `plain` registry started by
# registry.sh, for the negative tests. STATEDIR is that registry's state directory: some
# fixtures are made by editing its storage (STATEDIR/storage) behind its back. Prints
# nothing but errors; checks every fixture with curl at the end.
#
#   bad_fixtures.sh PORT STATEDIR
#
# Every image is an OCI manifest (with its mediaType field) over a config whose diff_ids
# are right, so each is broken in exactly one way. Layers are made by evil_tar.py (Python
# tarfile, raw names kept) and gzip -n / zstd, and uploaded through the registry API (api.sh).
# No two repositories share a layer blob, so damaging one damages nothing else.
#
#   bad/dotdot           entries ../escape and a/../../escape2
#   bad/abs              entry /abs-escape (the header's name really starts with '/')
#   bad/symlink-write    symlink link -> /tmp, then a regular file link/pwned
#   bad/hardlink-out     hardlinks h => ../../etc/passwd and h2 => /etc/passwd
#   bad/corrupt-gzip     the layer blob's bytes in storage replaced by random bytes of the
#                        same length: the registry serves them under the old digest
#   bad/digest-mismatch  the same, but the replacement is another valid gzip'd tar of the
#                        same length, so only the digest check can catch it
#   bad/config-mismatch  the config blob's bytes in storage replaced by another valid config
#                        of the same length (its label's last letter changed): only the
#                        config's digest check can catch it
#   bad/truncated-gzip   the layer is a gzip stream cut in half, uploaded as such: its digest
#                        and size in the manifest are right, decompressing it fails
#   bad/truncated-zstd   the same with zstd (mediaType ...tar+zstd)
#   bad/unknown-media    a layer of mediaType application/vnd.example.unknown.layer
#   bad/bomb             a decompression bomb: a 0.5 MiB gzip layer holding one file of
#                        512 MiB of zeros (a ratio of 1000; its diff_id right), streamed
#                        through gzip, never on disk whole
#   bad/big-config       a config blob over 4 MiB (5 MiB)
#   bad/big-manifest     a 5 MiB manifest. Distribution 2.8 refuses to take one (PUT: 400
#                        MANIFEST_INVALID "http: request body too large"), so it is written
#                        into storage (blob data, revision link, tag links). The registry
#                        will not serve it either: GET and HEAD answer 500 UNKNOWN ("storage:
#                        read exceeds limit" in its log). For a client that receives an
#                        oversized manifest, use manifest_server.py instead.
#   edge/manifest-4mib   a valid image whose manifest is exactly 4 MiB (4194304 bytes, padded
#                        by an annotation): the largest the registry accepts and serves
#   bad/schema1          a Docker schema1 manifest. The registry refuses schema1 PUTs ("manifest
#                        schema v1 unsupported"), so the unsigned manifest is written into
#                        storage; on GET the registry signs it with its own key and serves
#                        application/vnd.docker.distribution.manifest.v1+prettyjws, 200, with
#                        Docker-Content-Digest = sha256 of the unsigned manifest (what schema1
#                        digests are). Its layer blob is uploaded and valid.
set -euo pipefail
usage="usage: bad_fixtures.sh PORT STATEDIR"
port=${1:?$usage}
state=${2:?$usage}
[[ $port =~ ^[0-9]+$ ]] || { echo "$usage" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
storage=$state/storage/docker/registry/v2
[[ -d $state/storage ]] || { echo "bad_fixtures.sh: $state/storage does not exist: is $state a registry.sh STATEDIR?" >&2; exit 1; }
for tool in python3 gzip zstd jq curl sha256sum; do
  command -v "$tool" >/dev/null || { echo "bad_fixtures.sh: $tool not found" >&2; exit 1; }
done
# shellcheck source=api.sh
source "$here/api.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/harness-bad.XXXXXX")
trap 'rm -rf "$work"' EXIT
reg=127.0.0.1:$port
fail() { echo "bad_fixtures.sh: $*" >&2; exit 1; }

OCI=application/vnd.oci.image.manifest.v1+json
OCI_CONFIG=application/vnd.oci.image.config.v1+json
GZ=application/vnd.oci.image.layer.v1.tar+gzip
ZST=application/vnd.oci.image.layer.v1.tar+zstd

sha() { sha256sum "$1" | cut -d' ' -f1; }
slug() { tr '/' '_' <<<"$1"; }

# config NAME TAR... : a config for layers whose uncompressed forms are TARs; prints its path
config() {
  local name=$1 f diff_ids='[]' t
  shift
  f=$work/$(slug "$name").config.json
  for t in "$@"; do
    [[ $t == sha256:* ]] || t=sha256:$(sha "$t") # a layer's diff_id, or the tar to digest
    diff_ids=$(jq -c --arg d "$t" '. + [$d]' <<<"$diff_ids")
  done
  jq -cjn --arg n "$name" --argjson d "$diff_ids" '{architecture: "amd64", os: "linux",
    config: {Cmd: ["/bin/true"], Labels: {"org.example.fixture": $n}},
    rootfs: {type: "layers", diff_ids: $d}}' >"$f"
  echo "$f"
}

# manifest CONFIG [MEDIA BLOB]... : uploads config and blobs (api_init done), prints the
# manifest JSON (one line) referencing them
manifest() {
  local cfg=$1 cd layers='[]' d
  shift
  cd=$(api_blob "$cfg")
  while (($#)); do
    d=$(api_blob "$2")
    layers=$(jq -c --arg m "$1" --arg d "$d" --argjson s "$(stat -c %s "$2")" \
      '. + [{mediaType: $m, digest: $d, size: $s}]' <<<"$layers")
    shift 2
  done
  jq -cn --arg m "$OCI" --arg cm "$OCI_CONFIG" --arg c "$cd" --argjson cs "$(stat -c %s "$cfg")" \
    --argjson l "$layers" '{schemaVersion: 2, mediaType: $m,
      config: {mediaType: $cm, digest: $c, size: $cs}, layers: $l}'
}

# image REPO CONFIG [MEDIA BLOB]... : the image, as REPO:latest
image() {
  local repo=$1
  shift
  api_init "$reg" "" "$repo"
  manifest "$@" >"$work/manifest.json"
  api_manifest latest "$work/manifest.json" "$OCI"
}

# store_manifest REPO TAG FILE : writes FILE as manifest REPO:TAG straight into storage
store_manifest() {
  local repo=$1 tag=$2 f=$3 hex m
  hex=$(sha "$f")
  mkdir -p "$storage/blobs/sha256/${hex:0:2}/$hex"
  cp "$f" "$storage/blobs/sha256/${hex:0:2}/$hex/data"
  m=$storage/repositories/$repo/_manifests
  mkdir -p "$m/revisions/sha256/$hex" "$m/tags/$tag/current" "$m/tags/$tag/index/sha256/$hex"
  printf 'sha256:%s' "$hex" >"$m/revisions/sha256/$hex/link"
  printf 'sha256:%s' "$hex" >"$m/tags/$tag/index/sha256/$hex/link"
  printf 'sha256:%s' "$hex" >"$m/tags/$tag/current/link"
}

# blob_path DIGEST : where the registry keeps that blob's bytes
blob_path() { local hex=${1#sha256:}; echo "$storage/blobs/sha256/${hex:0:2}/$hex/data"; }

# good NAME [BYTES] : a harmless layer unique to NAME; makes $work/NAME.tar (+ .gz, .zst)
good() {
  local base
  base=$work/$(slug "$1")
  python3 "$here/evil_tar.py" good "$base.tar" "$1" "${2:-20000}"
  gzip -n -c "$base.tar" >"$base.tar.gz"
  zstd -q -c "$base.tar" >"$base.tar.zst"
}

# --- hostile entries -------------------------------------------------------------------
for kind in dotdot abs symlink-write hardlink-out; do
  t=$work/$kind.tar
  python3 "$here/evil_tar.py" "$kind" "$t" "bad/$kind"
  gzip -n -c "$t" >"$t.gz"
  image "bad/$kind" "$(config "bad/$kind" "$t")" "$GZ" "$t.gz"
done

# --- damaged blobs ---------------------------------------------------------------------
good bad/corrupt-gzip 200000
b=$work/bad_corrupt-gzip.tar
image bad/corrupt-gzip "$(config bad/corrupt-gzip "$b")" "$GZ" "$b.gz"
data=$(blob_path "sha256:$(sha "$b.gz")")
head -c "$(stat -c %s "$data")" /dev/urandom >"$work/garbage"
cp "$work/garbage" "$data"

# Another tar differing only in its random bytes, both gzip'd at level 0 (stored deflate
# blocks, so the length depends on the input length alone): a valid replacement of exactly
# the same length.
gzip0() { python3 -c 'import sys, zlib
c = zlib.compressobj(0, zlib.DEFLATED, 31)
sys.stdout.buffer.write(c.compress(open(sys.argv[1], "rb").read()) + c.flush())' "$1"; }
good bad/digest-mismatch 200000
b=$work/bad_digest-mismatch.tar
gzip0 "$b" >"$b.gz0"
image bad/digest-mismatch "$(config bad/digest-mismatch "$b")" "$GZ" "$b.gz0"
python3 "$here/evil_tar.py" good "$work/other.tar" bad/digest-mismatch 200000
gzip0 "$work/other.tar" >"$work/other.tar.gz0"
data=$(blob_path "sha256:$(sha "$b.gz0")")
[[ $(stat -c %s "$work/other.tar.gz0") == "$(stat -c %s "$data")" ]] ||
  fail "bad/digest-mismatch: the replacement's length differs"
cp "$work/other.tar.gz0" "$data"

good bad/config-mismatch
b=$work/bad_config-mismatch.tar
cfg=$(config bad/config-mismatch "$b")
image bad/config-mismatch "$cfg" "$GZ" "$b.gz"
data=$(blob_path "sha256:$(sha "$cfg")")
sed 's/"bad\/config-mismatch"/"bad\/config-mismatcX"/' "$cfg" >"$work/config-swapped"
[[ $(stat -c %s "$work/config-swapped") == "$(stat -c %s "$data")" ]] && ! cmp -s "$cfg" "$work/config-swapped" ||
  fail "bad/config-mismatch: the swapped config is not a same-length change"
cp "$work/config-swapped" "$data"

for z in gzip zstd; do
  good "bad/truncated-$z" 200000
  b=$work/bad_truncated-$z.tar
  if [[ $z == gzip ]]; then full=$b.gz media=$GZ; else full=$b.zst media=$ZST; fi
  head -c $(($(stat -c %s "$full") / 2)) "$full" >"$work/truncated"
  image "bad/truncated-$z" "$(config "bad/truncated-$z" "$b")" "$media" "$work/truncated"
done

# --- a decompression bomb --------------------------------------------------------------
b=$work/bad_bomb.tar.gz
python3 "$here/evil_tar.py" bomb - bad/bomb $((512 << 20)) |
  tee >(sha256sum | cut -d' ' -f1 >"$work/bomb.diffid") | gzip -n -9 >"$b"
for _ in $(seq 100); do [[ -s $work/bomb.diffid ]] && break; sleep 0.1; done # the digest
[[ -s $work/bomb.diffid ]] || fail "bad/bomb: no digest of the uncompressed layer"
image bad/bomb "$(config bad/bomb "sha256:$(cat "$work/bomb.diffid")")" "$GZ" "$b"

# --- odd manifests and configs ---------------------------------------------------------
good bad/unknown-media
b=$work/bad_unknown-media.tar
image bad/unknown-media "$(config bad/unknown-media "$b")" application/vnd.example.unknown.layer "$b.gz"

good bad/big-config
b=$work/bad_big-config.tar
cfg=$(config bad/big-config "$b")
head -c $((5 << 20)) /dev/zero | tr '\0' x >"$work/pad"
jq -cj --rawfile pad "$work/pad" '.comment = $pad' "$cfg" >"$cfg.big"
image bad/big-config "$cfg.big" "$GZ" "$b.gz"

# pad FILE SIZE : sets annotations["org.example.padding"] so that FILE is exactly SIZE bytes
pad() {
  python3 - "$1" "$2" <<'PY'
import json, sys
path, size = sys.argv[1], int(sys.argv[2])
doc = json.load(open(path))
doc["annotations"] = {"org.example.padding": ""}
base = len(json.dumps(doc, separators=(",", ":")))
doc["annotations"]["org.example.padding"] = "x" * (size - base)
out = json.dumps(doc, separators=(",", ":"))
assert len(out) == size, (len(out), size)
open(path, "w").write(out)
PY
}

good bad/big-manifest
b=$work/bad_big-manifest.tar
api_init "$reg" "" bad/big-manifest
manifest "$(config bad/big-manifest "$b")" "$GZ" "$b.gz" >"$work/big.json"
pad "$work/big.json" $((5 << 20))
store_manifest bad/big-manifest latest "$work/big.json"

good edge/manifest-4mib
b=$work/edge_manifest-4mib.tar
api_init "$reg" "" edge/manifest-4mib
manifest "$(config edge/manifest-4mib "$b")" "$GZ" "$b.gz" >"$work/m4.json"
pad "$work/m4.json" $((4 << 20))
api_manifest latest "$work/m4.json" "$OCI"

good bad/schema1
b=$work/bad_schema1.tar
api_init "$reg" "" bad/schema1
d=$(api_blob "$b.gz")
jq -n --indent 3 --arg l "$d" '{schemaVersion: 1, name: "bad/schema1", tag: "latest",
  architecture: "amd64", fsLayers: [{blobSum: $l}],
  history: [{v1Compatibility: ({id: ("0" * 63 + "1"), created: "2001-02-03T00:00:00Z",
    os: "linux", architecture: "amd64", config: {Cmd: ["/bin/true"]}} | tojson)}]}' \
  >"$work/schema1.json"
truncate -s -1 "$work/schema1.json" # no trailing newline, as Distribution stores them
store_manifest bad/schema1 latest "$work/schema1.json"

# --- checks ----------------------------------------------------------------------------
# check REPO WANT_STATUS WANT_TYPE
check() {
  local repo=$1 want_status=$2 want_type=$3 status ctype
  api_init "$reg" "" "$repo"
  status=$(curl -sk -o "$work/got" -D "$work/headers" -w '%{http_code}' "${API_ACCEPT[@]}" \
    "$API_REG/v2/$repo/manifests/latest")
  ctype=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Cc]ontent-[Tt]ype: //p' | tail -1)
  [[ $status == "$want_status" ]] || fail "$repo: GET manifest answered $status, want $want_status"
  [[ $want_status != 200 || $ctype == "$want_type" ]] || fail "$repo: Content-Type $ctype, want $want_type"
}
# layer REPO : fetches the first layer of REPO:latest into $work/layer; prints its digest
layer() {
  check "$1" 200 "$OCI"
  local d
  d=$(jq -r '.layers[0].digest' "$work/got")
  api_curl -o "$work/layer" "$API_REG/v2/$1/blobs/$d"
  echo "$d"
}

for r in bad/dotdot bad/abs bad/symlink-write bad/hardlink-out bad/unknown-media bad/big-config bad/bomb bad/config-mismatch; do
  check "$r" 200 "$OCI"
done
check edge/manifest-4mib 200 "$OCI"
[[ $(stat -c %s "$work/got") == $((4 << 20)) ]] || fail "edge/manifest-4mib is not served whole"
check bad/schema1 200 application/vnd.docker.distribution.manifest.v1+prettyjws
jq -e '.schemaVersion == 1 and (.signatures | length) > 0' "$work/got" >/dev/null ||
  fail "bad/schema1 is not served as a signed schema1 manifest"
check bad/big-manifest 500 -
[[ -f $storage/repositories/bad/big-manifest/_manifests/tags/latest/current/link ]] ||
  fail "bad/big-manifest is not in storage"
for r in bad/corrupt-gzip bad/digest-mismatch; do
  d=$(layer "$r")
  [[ sha256:$(sha "$work/layer") != "$d" ]] || fail "$r: its layer still matches its digest"
  [[ $(stat -c %s "$work/layer") == "$(jq -r '.layers[0].size' "$work/got")" ]] ||
    fail "$r: the served layer's size changed"
done
gzip -t <"$work/layer" 2>/dev/null || fail "bad/digest-mismatch: the replacement is not valid gzip"
d=$(layer bad/truncated-gzip)
[[ sha256:$(sha "$work/layer") == "$d" ]] || fail "bad/truncated-gzip: digest does not match"
! gzip -t <"$work/layer" 2>/dev/null || fail "bad/truncated-gzip decompresses fine"
d=$(layer bad/truncated-zstd)
[[ sha256:$(sha "$work/layer") == "$d" ]] || fail "bad/truncated-zstd: digest does not match"
! zstd -q -t <"$work/layer" 2>/dev/null || fail "bad/truncated-zstd decompresses fine"
