#!/usr/bin/env bash
# Pod start-up benchmark and per-pod memory.
#
#   bench/run.sh        ROUNDS=20 by default; RKT=path/to/rkt (default target/release/rkt)
#
# 1. Start latency from a cached image, alternating round by round:
#    - rkt:    rkt run --net=none IMAGE --memory=64Mi --cpu=500m --exec /bin/true
#    - runc:   runc run of an equivalent OCI bundle (umoci unpack of the same image, same
#              limits, its own network namespace); runc run creates, starts, waits, deletes
#    - podman: podman run --rm --network=none --memory=64m --cpus=0.5 IMAGE /bin/true
#              (with runc: crun refuses this machine's hybrid cgroup layout)
#    The rkt pod is removed (rkt rm) after each timed run, untimed.
# 2. The start latency of the 200th pod while 199 others keep running, against the first.
# 3. Memory of a running pod's own processes (supervisor and pod init, not the app):
#    RSS and USS (private pages) from /proc/PID/smaps_rollup.
ROUNDS=${ROUNDS:-20}
RUNNING=${RUNNING:-199}
source "$(dirname "$0")/lib.sh"

umoci unpack --image "$work/fixtures/layout:busybox" "$work/bundle" >/dev/null
jq '.process.args = ["/bin/true"] | .process.terminal = false | .process.user = {uid: 0, gid: 0}
    | .linux.resources = {memory: {limit: 67108864}, cpu: {quota: 50000, period: 100000}}' \
  "$work/bundle/config.json" >"$work/config.json"
mv "$work/config.json" "$work/bundle/config.json"

declare -A times
for ((i = 1; i <= ROUNDS; i++)); do
  t=$(ms "${R[@]}" run --net=none --uuid-file-save="$work/uuid" "$image" --memory=64Mi --cpu=500m --exec /bin/true)
  "${R[@]}" rm --uuid-file="$work/uuid" >/dev/null
  times[rkt]+="$t "
  times[runc]+="$(ms runc run --bundle "$work/bundle" "bench-$i") "
  times[podman]+="$(ms "${P[@]}" run --rm --network=none --memory=64m --cpus=0.5 "$podman_image" /bin/true) "
done

echo "starting $RUNNING pods that keep running" >&2
# Five starts each, before and after, so that one noisy start does not decide the ratio.
starts() {
  local all=""
  for _ in 1 2 3 4 5; do
    all+="$(ms "${R[@]}" run --net=none --uuid-file-save="$work/uuid" "$image" --exec /bin/true) "
    "${R[@]}" rm --uuid-file="$work/uuid" >/dev/null
  done
  read -r med _ <<<"$(stats "$all")"
  echo "$med"
}
first=$(starts)
for ((i = 1; i <= RUNNING; i++)); do
  "${R[@]}" run --net=none --uuid-file-save="$work/u$i" "$image" --exec /bin/sleep -- 3600 >/dev/null 2>&1 &
done
for ((i = 1; i <= RUNNING; i++)); do
  until [[ -s $work/u$i ]]; do sleep 0.02; done
  "${R[@]}" status --wait-ready=30s --uuid-file="$work/u$i" >/dev/null
done
nth=$(starts)

# Memory of one running pod's own processes.
u=$(cat "$work/u1")
podpath=$(ls -d "$work"/rkt/pods/run/"$u")
sup=$(cat "$podpath/ppid")
init=$(cat "$podpath/pid")
mem() { awk '/^Rss:/ {r=$2} /^Private_(Clean|Dirty):/ {u+=$2} END {print r, u}' "/proc/$1/smaps_rollup"; }
read -r sup_rss sup_uss <<<"$(mem "$sup")"
read -r init_rss init_uss <<<"$(mem "$init")"

read -r rkt_med _ <<<"$(stats "${times[rkt]}")"
mkdir -p bench/results
{
  echo "| tool | median (ms) | min | max | median / rkt's |"
  echo "|---|---|---|---|---|"
  for t in rkt runc podman; do
    read -r med min max <<<"$(stats "${times[$t]}")"
    echo "| $t | $med | $min | $max | $(awk -v a="$med" -v b="$rkt_med" 'BEGIN{printf "%.2f", a/b}') |"
  done
  echo
  echo "| start latency | ms |"
  echo "|---|---|"
  echo "| a pod started with none running (median of 5) | $first |"
  echo "| a pod started with $RUNNING running (median of 5) | $nth ($(awk -v a="$nth" -v b="$first" 'BEGIN{printf "%.2f", a/b}')×) |"
  echo
  echo "| per running pod (not counting the app) | RSS KiB | USS KiB |"
  echo "|---|---|---|"
  echo "| supervisor (rkt-stage1, host side) | $sup_rss | $sup_uss |"
  echo "| pod init (rkt-stage1, PID 1 in the pod) | $init_rss | $init_uss |"
  echo "| total | $((sup_rss + init_rss)) | $((sup_uss + init_uss)) |"
  echo
  echo "Machine: $(nproc) CPUs, kernel $(uname -r), $(date -u +%F). Rounds: $ROUNDS, alternating."
  echo "Versions: $(runc --version | head -1); $(podman --version)."
  echo "Command: \`ROUNDS=$ROUNDS bench/run.sh\`"
} | tee "bench/results/run-$(date -u +%F).md"
