#!/usr/bin/env bash
# Uploads the image TAG of an OCI layout to REGISTRY/REPO:DEST_TAG through the registry API
# (curl), with its layers recompressed: COMPRESSION `none` gives application/vnd.oci.image.
# layer.v1.tar layers, `zstd` gives tar+zstd (made by the zstd tool); skopeo 1.9 cannot push
# either to a registry.
#
#   upload.sh REGISTRY CREDS REPO DEST_TAG LAYOUT TAG COMPRESSION
set -euo pipefail
reg=$1 creds=$2 repo=$3 dest=$4 layout=$5 tag=$6 compression=$7
case $compression in
  none) media=application/vnd.oci.image.layer.v1.tar; recompress=(cat) ;;
  zstd) media=application/vnd.oci.image.layer.v1.tar+zstd; recompress=(zstd -q -c) ;;
  *) echo "upload.sh: unknown compression $compression" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/api.sh"
api_init "$reg" "$creds" "$repo"

manifest=$(skopeo inspect --raw "oci:$layout:$tag")
config=$(jq -r .config.digest <<<"$manifest")
config_digest=$(api_blob "$layout/blobs/sha256/${config#sha256:}")
layers='[]'
for d in $(jq -r '.layers[].digest' <<<"$manifest"); do
  gunzip -c "$layout/blobs/sha256/${d#sha256:}" | "${recompress[@]}" >"$work/layer"
  ld=$(api_blob "$work/layer")
  layers=$(jq -c --arg d "$ld" --arg m "$media" --argjson s "$(stat -c %s "$work/layer")" \
    '. + [{mediaType: $m, digest: $d, size: $s}]' <<<"$layers")
done
jq -c --argjson l "$layers" --arg c "$config_digest" \
  '.layers = $l | .config.digest = $c | .mediaType = "application/vnd.oci.image.manifest.v1+json"' \
  <<<"$manifest" >"$work/manifest.json"
api_manifest "$dest" "$work/manifest.json" application/vnd.oci.image.manifest.v1+json
