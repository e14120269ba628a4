#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need. Idempotent: it asks
# apt only for what is missing. The Rust toolchain (cargo) must already be installed.
set -euo pipefail

packages=(
  # building (libc6-dev: the escape tests' probe is linked static, tests/harness/escape_probe.c)
  gcc libc6-dev pkg-config
  # the test harness: a real registry, fixture images built by umoci and pushed by skopeo
  docker-registry skopeo umoci busybox-static apache2-utils openssl jq curl python3 attr tar zstd gzip
  # pod networks: the real CNI plugins, iptables for masquerading and forwarded ports, and
  # iproute2 for the tests' own "other host" namespace
  containernetworking-plugins iptables iproute2
  # the driver's end-to-end tests unpack the test Nomad agent (../shared/tools/nomad) with xz
  xz-utils
  # ACIs: actool (appc-spec) builds and validates ACIs and every manifest we write; appc's
  # Go types (and the Go toolchain appc-spec already depends on) build
  # tests/harness/appc-roundtrip; gpg makes keys and signatures; bzip2 and xz are the other
  # compressions appc allows
  appc-spec golang-github-appc-spec-dev gnupg bzip2
  # the cgroup v2 lane (tests/guest/lane.sh): a Debian 12 guest built by debootstrap, booted
  # by QEMU; binutils strips the test binaries copied into it, e2fsprogs makes its disks
  qemu-system-x86 debootstrap binutils e2fsprogs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain (rustup, stable >= 1.85) first" >&2
  exit 1
fi

# The style and lint checks test.sh runs first.
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi

# The Debian package (scripts/deb.sh): cargo-deb, pinned so that a new release cannot change
# the package under us.
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing: cargo-deb" >&2
  cargo install cargo-deb --version 3.8.0 --locked
fi

# Fuzzing (scripts/fuzz.sh; the test suite runs it in short form): cargo-fuzz on the nightly
# toolchain.
if command -v rustup >/dev/null && ! rustup toolchain list | grep -q '^nightly'; then
  echo "installing: the nightly Rust toolchain (for cargo-fuzz)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing: cargo-fuzz" >&2
  cargo +stable install cargo-fuzz --locked
fi
