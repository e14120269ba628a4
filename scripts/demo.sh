#!/usr/bin/env bash
# The main job, end to end: build rkt, serve a demo image (busybox with a web page, built by
# umoci) from a local Distribution registry on 127.0.0.1, fetch it with rkt into a scratch
# store, and show it with `rkt image list` and `rkt image cat-manifest`. Cleans up after
# itself. Run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --locked -p rkt
rkt=$PWD/target/release/rkt

work=$(mktemp -d /tmp/rkt-demo.XXXXXX)
cleanup() {
  tests/harness/registry.sh stop "$work/registry" || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a local registry"
port=$(tests/harness/registry.sh start plain "$work/registry")
echo "== building a demo image with umoci and pushing it with skopeo"
tests/harness/fixtures.sh "$work/fixtures"
skopeo copy -q --dest-tls-verify=false "oci:$work/fixtures/layout:busybox" \
  "docker://127.0.0.1:$port/demo/httpd:latest" >/dev/null

image=docker://127.0.0.1:$port/demo/httpd:latest
echo "== rkt fetch $image"
"$rkt" --dir="$work/store" --insecure-options=image,http fetch "$image"
echo "== rkt image list"
"$rkt" --dir="$work/store" image list
echo "== the ports and volumes Nomad's port_map and volumes see (rkt image cat-manifest)"
"$rkt" --dir="$work/store" image cat-manifest 127.0.0.1:$port/demo/httpd:latest |
  jq -c '{name, exec: .app.exec, ports: [.app.ports[].name], mountPoints: [.app.mountPoints[].name]}'
