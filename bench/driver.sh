#!/usr/bin/env bash
# The Nomad driver's benchmark: plugin idle memory, StartTask latency (cached image, to the
# app running) against plain `rkt run`, and node memory per running task beyond the app.
#
#   bench/driver.sh        ROUNDS=20 TASKS=20 by default
#
# Runs crates/nomad-driver/benches/driver.rs against release builds of rkt, rkt-stage1 and
# the plugin, with a local registry serving the busybox fixture image.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >/dev/null
cargo build --release --locked --workspace
mkdir -p bench/results
{
  ROUNDS=${ROUNDS:-20} TASKS=${TASKS:-20} cargo bench --locked -p nomad-driver-rkt --bench driver 2>/dev/null
  echo
  echo "Machine: $(nproc) CPUs, kernel $(uname -r), $(date -u +%F)."
  echo "Command: \`ROUNDS=${ROUNDS:-20} TASKS=${TASKS:-20} bench/driver.sh\`"
} | tee "bench/results/driver-$(date -u +%F).md"
