#!/usr/bin/env bash
# Pull-speed benchmark: a cold `rkt fetch` (download, verify, render) of a ~200 MB, 5-layer
# image from a local registry, against `podman pull` and against `skopeo copy` + `umoci
# unpack`, in alternating rounds. Prints a table of medians and ratios and writes it to
# bench/results/.
#
#   bench/fetch.sh            ROUNDS=5 by default; RKT=path/to/rkt (default: target/release)
#
# Every run starts from empty storage, with the page cache dropped first, so each tool
# downloads and writes everything. The image is built once (debootstrap minbase split into
# layers by umoci) and cached in $BENCH_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ROUNDS=${ROUNDS:-5}
RKT=${RKT:-$root/target/release/rkt}
BENCH_CACHE=${BENCH_CACHE:-/var/tmp/rkt-bench}

need=()
for p in $(cat bench/packages.txt); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[[ -x $RKT ]] || cargo build --release --locked -p rkt

build_image() {
  local L=$BENCH_CACHE/layout
  [[ -f $BENCH_CACHE/.done ]] && return 0
  rm -rf "$BENCH_CACHE"
  mkdir -p "$BENCH_CACHE"
  local mirror
  mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
  [[ -n $mirror ]] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  echo "building the benchmark image: debootstrap minbase from $mirror" >&2
  debootstrap --variant=minbase bookworm "$BENCH_CACHE/rootfs" "$mirror" >/dev/null
  local r=$BENCH_CACHE/rootfs
  # minbase with its package lists (apt-get update inside): about 300 MB unpacked, 135 MB
  # gzipped, a little heavier than the ~200 MB the pull-speed goal names.
  chroot "$r" apt-get update -qq >/dev/null 2>&1 || true
  umoci init --layout "$L"
  umoci new --image "$L:bench"
  local b=$BENCH_CACHE/bundle
  umoci unpack --image "$L:bench" "$b" >/dev/null
  # Five layers: the tree split by top-level directories, roughly evenly.
  local groups=("usr/lib" "usr/bin usr/sbin usr/libexec usr/include usr/local usr/games usr/src" "usr/share" "var opt" "bin sbin lib lib32 lib64 libx32 etc root home boot srv mnt media run tmp dev")
  for g in "${groups[@]}"; do
    for p in $g; do
      [[ -e $r/$p || -L $r/$p ]] || continue
      mkdir -p "$b/rootfs/$(dirname "$p")"
      cp -a "$r/$p" "$b/rootfs/$p"
    done
    umoci repack --refresh-bundle --image "$L:bench" "$b"
  done
  umoci config --image "$L:bench" --config.cmd /bin/bash
  rm -rf "$b" "$r"
  touch "$BENCH_CACHE/.done"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }

build_image
work=$(mktemp -d /var/tmp/rkt-bench-run.XXXXXX)
cleanup() {
  tests/harness/registry.sh stop "$work/registry" >/dev/null 2>&1 || true
  umount -R "$work"/podman/root/overlay/*/merged 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(tests/harness/registry.sh start plain "$work/registry")
skopeo copy -q --dest-tls-verify=false "oci:$BENCH_CACHE/layout:bench" "docker://127.0.0.1:$port/bench:latest" >/dev/null
ref=127.0.0.1:$port/bench:latest

run_rkt() {
  "$RKT" --dir="$work/rkt" --insecure-options=image,http fetch "docker://$ref" >/dev/null 2>&1
}
run_podman() {
  podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay \
    pull -q --tls-verify=false "$ref" >/dev/null
}
run_skopeo_umoci() {
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/oci:bench" >/dev/null &&
    umoci unpack --image "$work/oci:bench" "$work/bundle" >/dev/null
}
reset_podman() {
  podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay \
    system reset -f >/dev/null 2>&1 || true
  rm -rf "$work/podman"
}

declare -A times
tools=(rkt podman skopeo+umoci)
for ((i = 1; i <= ROUNDS; i++)); do
  for t in "${tools[@]}"; do
    rm -rf "$work/rkt" "$work/oci" "$work/bundle"
    reset_podman
    cold
    start=$(now_ms)
    case $t in
      rkt) run_rkt ;;
      podman) run_podman ;;
      skopeo+umoci) run_skopeo_umoci ;;
    esac
    times[$t]+="$(($(now_ms) - start)) "
    echo "round $i $t: $(($(now_ms) - start)) ms" >&2
  done
done
reset_podman

stats() { # "a b c" -> "median min max" in seconds
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f %.3f %.3f", m/1000, v[1]/1000, v[NR]/1000}'
}
compressed=$(skopeo inspect --raw "oci:$BENCH_CACHE/layout:bench" | jq '[.layers[].size] | add')
uncompressed=$(du -sb "$work/bundle/rootfs" 2>/dev/null | cut -f1 || echo 0)
read -r rkt_med _ <<<"$(stats "${times[rkt]}")"
{
  echo "| tool | median (s) | min | max | median / rkt's |"
  echo "|---|---|---|---|---|"
  for t in "${tools[@]}"; do
    read -r med min max <<<"$(stats "${times[$t]}")"
    echo "| $t | $med | $min | $max | $(awk -v a="$med" -v b="$rkt_med" 'BEGIN{printf "%.2f×", a/b}') |"
  done
  echo
  echo "Image: 5 layers, $((compressed / 1000000)) MB compressed (gzip), $((uncompressed / 1000000)) MB unpacked."
  echo "Machine: $(nproc) cores, kernel $(uname -r), $(date -u +%F). Rounds: $ROUNDS, alternating, cold page cache."
  echo "Command: \`ROUNDS=$ROUNDS bench/fetch.sh\`"
} | tee "bench/results/fetch-$(date -u +%Y%m%d).md"
