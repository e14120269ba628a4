#!/usr/bin/env bash
# Pushes the standard fixture set from the OCI layout LAYOUT (made by fixtures.sh) to the
# registry on 127.0.0.1:PORT, with skopeo. CREDS (user:password) for auth'd registries.
#
#   busybox:latest  OCI manifest, gzip layers       busybox:zstd   OCI manifest, zstd layers
#                   (uncompressed and zstd variants are uploaded by upload.sh)
#   busybox:plain   OCI manifest, uncompressed      busybox:v2s2   Docker schema2
#   special:latest  layer-application cases         public/busybox:latest  (token mode)
#   multi:oci       OCI index (amd64, arm64)        multi:list     Docker manifest list
set -euo pipefail
port=${1:?usage: push_fixtures.sh PORT LAYOUT [CREDS]}
layout=${2:?usage: push_fixtures.sh PORT LAYOUT [CREDS]}
creds=${3:-}
reg=127.0.0.1:$port
flags=(--dest-tls-verify=false -q)
[[ -n $creds ]] && flags+=(--dest-creds "$creds")
curl_auth=()
[[ -n $creds ]] && curl_auth=(-u "$creds")

copy() { skopeo copy "${flags[@]}" "$@" >/dev/null; }

copy "oci:$layout:busybox" "docker://$reg/busybox:latest"
copy --format v2s2 "oci:$layout:busybox" "docker://$reg/busybox:v2s2"
copy "oci:$layout:busybox" "docker://$reg/public/busybox:latest"
copy "oci:$layout:special" "docker://$reg/special:latest"
copy --all "oci:$layout:multi" "docker://$reg/multi:oci"
copy --all --format v2s2 "oci:$layout:multi" "docker://$reg/multi:list"

# Uncompressed and zstd layers: skopeo 1.9 always gzips for registries (and its blob cache
# swaps in blobs it pushed before), so the layers umoci made are recompressed with the zstd
# tool (or not at all) and uploaded with curl through the registry API.
"$(dirname "$0")/upload.sh" "$reg" "${creds}" busybox plain "$layout" busybox none
"$(dirname "$0")/upload.sh" "$reg" "${creds}" busybox zstd "$layout" busybox zstd
