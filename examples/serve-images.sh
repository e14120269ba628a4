#!/usr/bin/env bash
# Serves the example jobs' image at docker://127.0.0.1:5000/demo/httpd:latest: a Distribution
# registry on 127.0.0.1:5000 with busybox (httpd and a web page), built by umoci and pushed
# by skopeo. Stop it with: examples/serve-images.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
state=/var/tmp/rkt-example-registry
if [[ ${1:-} == stop ]]; then
  tests/harness/registry.sh stop "$state"
  exit 0
fi
./scripts/install-deps.sh
port=$(REGISTRY_PORT=5000 HARNESS_LIFETIME=0 tests/harness/registry.sh start plain "$state")
tests/harness/fixtures.sh "$state/fixtures" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$state/fixtures/layout:busybox" \
  "docker://127.0.0.1:$port/demo/httpd:latest"
echo "serving docker://127.0.0.1:$port/demo/httpd:latest"
