#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, nightly toolchain) for SECONDS seconds each
# (default 5), starting from the seed corpus in fuzz/corpus/TARGET. New inputs the fuzzer
# finds go to a scratch directory, not the repository; a crash stops the script with the
# failing input saved in fuzz/artifacts/TARGET/ (add it to fuzz/corpus/TARGET once fixed).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment: FUZZ_SANITIZER (default none: the code is Rust, and a build without
# AddressSanitizer is several times cheaper; use address for long runs by hand),
# FUZZ_JOBS (parallel fuzzing processes per target, default 1), FUZZ_DEV=1 (an unoptimized
# build: half the build time, for short runs such as the test suite's).
# The tar_layer target writes into temporary directories, as root when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
shift || true
sanitizer=${FUZZ_SANITIZER:-none}
# Its own target directory whatever the caller's cargo uses (the test suite sets its own).
export CARGO_TARGET_DIR="$PWD/fuzz/target"
unset RUSTFLAGS RUSTC RUSTC_WRAPPER CARGO_BUILD_TARGET_DIR
jobs=${FUZZ_JOBS:-1}
build=(-s "$sanitizer" -a) # -a: debug assertions (integer overflow panics) on
if [[ ${FUZZ_DEV:-} == 1 ]]; then build+=(--dev); fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is needed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build for every target.
cargo +nightly fuzz build "${build[@]}"
parallel=()
if ((jobs > 1)); then parallel=(-jobs="$jobs" -workers="$jobs"); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  echo "fuzz.sh: $t for ${seconds}s" >&2
  # The scratch corpus first: libFuzzer writes what it finds into the first directory.
  if ! cargo +nightly fuzz run "${build[@]}" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    "${parallel[@]}" -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
    cp "$scratch/$t.log" "fuzz/artifacts/$t/fuzz.log"
    grep -v -e '^Output of' -e '^	\[' "$scratch/$t.log" | grep -B2 -A12 -m3 -e panicked -e ERROR >&2 || tail -n 40 "$scratch/$t.log" >&2
    echo "fuzz.sh: $t failed; the input and the whole log are in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units' "$scratch/$t.log" | sed "s/^/  $t: /" >&2 || true
done
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each: no crash" >&2
