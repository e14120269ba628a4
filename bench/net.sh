#!/usr/bin/env bash
# Start latency on a contained network, against podman's default network.
#
#   bench/net.sh        ROUNDS=20 by default; RKT=path/to/rkt (default target/release/rkt)
#
# From a cached image, alternating round by round, medians:
#   - rkt:          rkt run --net=default IMAGE --exec /bin/true
#   - rkt, port:    the same with --port=8080-tcp:HOSTPORT
#   - podman:       podman run --rm IMAGE /bin/true          (its default network)
#   - podman, port: the same with -p HOSTPORT:8080
# Each rkt run ends with the network torn down by the pod's supervisor (CNI DEL, rules);
# the pod directory is removed afterwards (rkt rm), untimed. podman runs with runc (crun
# refuses this machine's hybrid cgroups).
ROUNDS=${ROUNDS:-20}
source "$(dirname "$0")/lib.sh"

declare -A times
for ((i = 1; i <= ROUNDS; i++)); do
  times[rkt]+="$(ms "${R[@]}" run --net=default --uuid-file-save="$work/uuid" "$image" --exec /bin/true) "
  "${R[@]}" rm --uuid-file="$work/uuid" >/dev/null
  times[rkt_port]+="$(ms "${R[@]}" run --net=default --port=8080-tcp:18080 --uuid-file-save="$work/uuid" "$image" --exec /bin/true) "
  "${R[@]}" rm --uuid-file="$work/uuid" >/dev/null
  times[podman]+="$(ms "${P[@]}" run --rm "$podman_image" /bin/true) "
  times[podman_port]+="$(ms "${P[@]}" run --rm -p 18081:8080 "$podman_image" /bin/true) "
done

read -r rkt_med _ <<<"$(stats "${times[rkt]}")"
read -r rkt_port_med _ <<<"$(stats "${times[rkt_port]}")"
mkdir -p bench/results
{
  echo "| tool | median (ms) | min | max | median / rkt's (same port setting) |"
  echo "|---|---|---|---|---|"
  for t in rkt podman rkt_port podman_port; do
    read -r med min max <<<"$(stats "${times[$t]}")"
    base=$rkt_med
    [[ $t == *_port ]] && base=$rkt_port_med
    case $t in
      rkt) name="rkt run --net=default" ;;
      podman) name="podman run --rm (default network)" ;;
      rkt_port) name="rkt run --net=default --port" ;;
      podman_port) name="podman run --rm -p" ;;
    esac
    if [[ $med == -1* ]]; then echo "| $name | failed | | | |"; continue; fi
    echo "| $name | $med | $min | $max | $(awk -v a="$med" -v b="$base" 'BEGIN{printf "%.2f", a/b}') |"
  done
  echo
  echo "Machine: $(nproc) CPUs, kernel $(uname -r), $(date -u +%F). Rounds: $ROUNDS, alternating."
  echo "Versions: $(podman --version); $(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo '?') network backend."
  echo "Command: \`ROUNDS=$ROUNDS bench/net.sh\`"
} | tee "bench/results/net-$(date -u +%F).md"
