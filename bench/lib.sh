# Shared by the pod benchmarks (sourced): packages, a scratch directory, a local registry with
# the busybox fixture image cached by both rkt and podman, and timing helpers.
#
# Sets: root, work, RKT, R (rkt command), P (podman command), port, image (docker:// ref),
# podman_image. Defines: ms CMD… (milliseconds, -1 on failure), stats "T T T" (median min max).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
RKT=${RKT:-$root/target/release/rkt}

need=()
for p in runc podman umoci skopeo docker-registry jq python3 iptables; do
  command -v "$p" >/dev/null || need+=("$p")
done
[[ -x /usr/lib/cni/ptp ]] || need+=(containernetworking-plugins)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc podman umoci \
    skopeo docker-registry jq python3 iptables containernetworking-plugins >/dev/null
fi
[[ -x $RKT && -x $(dirname "$RKT")/rkt-stage1 ]] || cargo build --release --locked -p rkt -p stage1

work=$(mktemp -d /var/tmp/rkt-bench.XXXXXX)
# podman: crun refuses this host's hybrid cgroups, so runc; and podman's default rlimits
# (nofile and nproc far above this machine's hard limits) make runc fail, so none are set.
printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
P=(podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" --runtime=runc)
R=("$RKT" --dir="$work/rkt" --insecure-options=image,http)
bench_cleanup() {
  for u in $("${R[@]}" list --no-legend --full 2>/dev/null | awk '$1 ~ /-/ {print $1}'); do
    "${R[@]}" stop --force "$u" >/dev/null 2>&1 || true
    "${R[@]}" rm "$u" >/dev/null 2>&1 || true
  done
  "${P[@]}" system reset -f >/dev/null 2>&1 || true
  tests/harness/registry.sh stop "$work/registry" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

# Time a command in milliseconds (monotonic clock, around the process only).
ms() {
  python3 -c 'import subprocess,sys,time
t=time.monotonic_ns(); r=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print((time.monotonic_ns()-t)/1e6 if r.returncode==0 else -1)' "$@"
}

stats() {
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.1f %.1f %.1f", m, v[1], v[NR]}'
}

echo "preparing: registry and image" >&2
port=$(tests/harness/registry.sh start plain "$work/registry")
tests/harness/fixtures.sh "$work/fixtures" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/fixtures/layout:busybox" "docker://127.0.0.1:$port/bench/busybox:latest"
image=docker://127.0.0.1:$port/bench/busybox:latest
podman_image=127.0.0.1:$port/bench/busybox:latest
"${R[@]}" fetch "$image" >/dev/null 2>&1
"${P[@]}" pull -q --tls-verify=false "$podman_image" >/dev/null
