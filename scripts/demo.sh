#!/usr/bin/env bash
# The main job, end to end: build rkt, serve a demo image (busybox with a web page, built by
# umoci) from a local Distribution registry on 127.0.0.1, fetch it with rkt into a scratch
# store, run it as a pod on rkt's default network (busybox httpd, its port 8080 forwarded to a
# host port), fetch the page at the pod's IP and at the forwarded port, then stop and remove
# the pod. Cleans up after itself. Run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --locked -p rkt -p stage1
rkt=$PWD/target/release/rkt

work=$(mktemp -d /tmp/rkt-demo.XXXXXX)
cleanup() {
  [[ -f $work/uuid ]] && { "$rkt" --dir="$work/store" stop --force --uuid-file="$work/uuid" >/dev/null 2>&1 || true;
    "$rkt" --dir="$work/store" rm --uuid-file="$work/uuid" >/dev/null 2>&1 || true; }
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

web=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "== rkt run: busybox httpd in a pod on the default network, port 8080-tcp forwarded to $web"
"$rkt" --dir="$work/store" run --net=default --port="8080-tcp:$web" --uuid-file-save="$work/uuid" \
  "$image" --exec /bin/httpd -- -f -p 8080 -h /www &
pod=$!
until [[ -s $work/uuid ]]; do
  kill -0 "$pod" 2>/dev/null || { echo "rkt run failed" >&2; exit 1; }
  sleep 0.05
done
"$rkt" --dir="$work/store" status --wait-ready=10s --uuid-file="$work/uuid"
ip=$("$rkt" --dir="$work/store" status --format=json --uuid-file="$work/uuid" | jq -r '.networks[0].ip')
for _ in $(seq 1 100); do curl -sf "http://$ip:8080/" >/dev/null && break; sleep 0.05; done
echo "== curl http://$ip:8080/ (the pod's own address)"
curl -sf "http://$ip:8080/"
echo "== curl http://127.0.0.1:$web/ (the forwarded host port)"
curl -sf "http://127.0.0.1:$web/"
echo "== rkt list"
"$rkt" --dir="$work/store" list
echo "== rkt stop, then rkt rm"
"$rkt" --dir="$work/store" stop --uuid-file="$work/uuid"
wait || true
"$rkt" --dir="$work/store" status --uuid-file="$work/uuid"
"$rkt" --dir="$work/store" rm --uuid-file="$work/uuid"
rm -f "$work/uuid"
