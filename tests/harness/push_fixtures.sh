#!/usr/bin/env bash
# Pushes the standard fixture set to the registry on 127.0.0.1:PORT and checks what the
# registry then serves. Prints nothing but errors.
#
#   push_fixtures.sh PORT [CREDS]          fixtures from $HARNESS_FIXTURES (an OUTDIR of
#                                          fixtures.sh, built if needed; default
#                                          <repo>/target/test-fixtures)
#   push_fixtures.sh PORT LAYOUT [CREDS]   fixtures from an OCI layout built by fixtures.sh
#
# CREDS (user:password, e.g. tester:secret) for the basic and token registries. Works for
# every registry.sh mode (https is used unverified).
#
#   busybox:latest  OCI manifest, gzip layers      busybox:zstd   OCI manifest, zstd layers
#   busybox:plain   OCI manifest, tar layers       busybox:v2s2   Docker schema2, gzip
#   special:latest  layer-application cases        public/busybox:latest   (token mode)
#   multi:oci       OCI index (amd64, arm64)       multi:list     Docker manifest list
#   hostile:latest, hostile-etc:latest   images whose symlinks point at the host (fixtures.sh)
#
# Sourcing this file only defines the push_* recipes (SRC DEST [skopeo flags...]), one per
# kind of image; see push.sh for why each is done the way it is.
[[ ${BASH_SOURCE[0]} != "$0" ]] || set -euo pipefail
harness=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

push_gzip() { "$harness/push.sh" "$@"; }
push_v2s2() { "$harness/push.sh" "$@" --format v2s2; }
push_oci_index() { "$harness/push.sh" "$@" --all; }
push_manifest_list() { "$harness/push.sh" "$@" --all --format v2s2; }
push_zstd() {
  local src=$1 dest=$2 tmp rc=0
  shift 2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/harness-zstd.XXXXXX")
  { "$harness/push.sh" "$src" "oci:$tmp/layout:image" --dest-compress-format zstd &&
    "$harness/push.sh" "oci:$tmp/layout:image" "$dest" --preserve-digests "$@"; } || rc=$?
  rm -rf "$tmp"
  return $rc
}
push_uncompressed() {
  local src=$1 dest=$2 tmp rc=0
  shift 2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/harness-plain.XXXXXX")
  { "$harness/push.sh" "$src" "dir:$tmp/image" --dest-decompress &&
    "$harness/push.sh" "dir:$tmp/image" "$dest" --preserve-digests "$@"; } || rc=$?
  rm -rf "$tmp"
  return $rc
}

main() {
  local port=${1:-} layout creds
  [[ $port =~ ^[0-9]+$ ]] || { echo "usage: push_fixtures.sh PORT [LAYOUT] [CREDS]" >&2; exit 2; }
  if [[ -n ${2:-} && -f ${2:-}/index.json ]]; then
    layout=$2
    creds=${3:-}
  else
    creds=${2:-}
    local out=${HARNESS_FIXTURES:-$(cd "$harness/../.." && pwd)/target/test-fixtures}
    "$harness/fixtures.sh" "$out"
    layout=$out/layout
  fi
  layout=$(cd "$layout" && pwd)
  local reg=127.0.0.1:$port
  local c=()
  [[ -n $creds ]] && c=(--dest-creds "$creds")

  # zstd and uncompressed before gzip: see push.sh (skopeo reuses what the repo has).
  push_zstd "oci:$layout:busybox" "docker://$reg/busybox:zstd" "${c[@]}"
  push_uncompressed "oci:$layout:busybox" "docker://$reg/busybox:plain" "${c[@]}"
  push_gzip "oci:$layout:busybox" "docker://$reg/busybox:latest" "${c[@]}"
  push_v2s2 "oci:$layout:busybox" "docker://$reg/busybox:v2s2" "${c[@]}"
  push_gzip "oci:$layout:busybox" "docker://$reg/public/busybox:latest" "${c[@]}"
  push_gzip "oci:$layout:special" "docker://$reg/special:latest" "${c[@]}"
  push_gzip "oci:$layout:hostile" "docker://$reg/hostile:latest" "${c[@]}"
  push_gzip "oci:$layout:hostile-etc" "docker://$reg/hostile-etc:latest" "${c[@]}"
  push_oci_index "oci:$layout:multi" "docker://$reg/multi:oci" "${c[@]}"
  push_manifest_list "oci:$layout:multi" "docker://$reg/multi:list" "${c[@]}"

  verify "$reg" "$creds"
}

# verify REG CREDS: what the registry serves is what each recipe promised.
verify() {
  local reg=$1 creds=$2 tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/harness-verify.XXXXXX")
  # shellcheck source=api.sh
  source "$harness/api.sh"
  local OCI=application/vnd.oci.image.manifest.v1+json
  local V2=application/vnd.docker.distribution.manifest.v2+json
  local bad=0 line repo tag want_type want_layers ctype layers
  while read -r line; do
    read -r repo tag want_type want_layers <<<"$line"
    api_init "$reg" "$creds" "$repo"
    ctype=$(api_get_manifest "$tag" "$tmp/m") || { bad=1; continue; }
    if [[ $want_layers == - ]]; then
      layers=-
    else
      layers=$(jq -r '[.layers[].mediaType] | unique | join(",")' "$tmp/m")
    fi
    if [[ $ctype != "$want_type" || $layers != "$want_layers" ]]; then
      echo "push_fixtures.sh: $reg/$repo:$tag is $ctype with layers $layers; want $want_type with $want_layers" >&2
      bad=1
    fi
  done <<EOF
busybox latest $OCI application/vnd.oci.image.layer.v1.tar+gzip
busybox zstd $OCI application/vnd.oci.image.layer.v1.tar+zstd
busybox plain $OCI application/vnd.oci.image.layer.v1.tar
busybox v2s2 $V2 application/vnd.docker.image.rootfs.diff.tar.gzip
public/busybox latest $OCI application/vnd.oci.image.layer.v1.tar+gzip
special latest $OCI application/vnd.oci.image.layer.v1.tar+gzip
hostile latest $OCI application/vnd.oci.image.layer.v1.tar+gzip
hostile-etc latest $OCI application/vnd.oci.image.layer.v1.tar+gzip
multi oci application/vnd.oci.image.index.v1+json -
multi list application/vnd.docker.distribution.manifest.list.v2+json -
EOF
  rm -rf "$tmp"
  return $bad
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
