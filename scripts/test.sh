#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, and runs every test (unit and
# integration, against real registries on 127.0.0.1). Run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo test --workspace --locked 2>&1
