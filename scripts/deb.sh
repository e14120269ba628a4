#!/usr/bin/env bash
# Builds the Debian package operators install: target/debian/rkt-rs_<version>_amd64.deb
# (`cargo deb`; what goes in it is [package.metadata.deb] in crates/rkt/Cargo.toml).
#
#   scripts/deb.sh              from a release build (what operators get)
#   DEB_PROFILE=dev scripts/deb.sh
#                               from the debug build scripts/test.sh already made (the guest
#                               lane tests the package's layout and scripts, not the optimiser)
#
# Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${DEB_PROFILE:-release}
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing: cargo-deb" >&2
  cargo install cargo-deb --version 3.8.0 --locked
fi
# Every binary of the workspace: the package takes three of them from two crates.
cargo build --locked --workspace --bins --profile "$profile" >&2
mkdir -p target/debian
cargo deb --locked -p rkt --no-build --profile "$profile" --fast -o target/debian/ >&2
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
deb=target/debian/rkt-rs_${version}_amd64.deb
[[ -f $deb ]] || { echo "deb.sh: $deb was not made" >&2; ls target/debian >&2; exit 1; }
echo "$deb"
