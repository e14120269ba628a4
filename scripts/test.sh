#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, and runs every test (unit and
# integration, against real registries on 127.0.0.1). Run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# The binaries first: rkt's integration tests run rkt-stage1 from beside rkt, and cargo test
# builds the binaries of a package only for that package's own tests.
cargo build --workspace --locked
cargo test --workspace --locked 2>&1
