#!/usr/bin/env bash
# Tasks started through a real Nomad agent: from `nomad job run` to every allocation running,
# for 1, 20 and 100 tasks of one program in one agent, side by side:
#   - rkt:       nomad-driver-rkt (this project), the busybox image cached in its rkt store
#   - raw_exec:  Nomad's raw_exec driver, no isolation at all (the floor Nomad itself sets)
#   - exec:      Nomad's exec driver (a chroot copied per task; slow, so 1 and 20 tasks only
#                unless EXEC_MAX=100)
#   - docker:    not run: Debian's docker.io daemon changes the host's firewall (FORWARD
#                policy DROP) and would break this machine's pod networking; say so in the
#                report instead of measuring it
# and the node memory each running task costs: PSS of the driver's own processes per task
# (rkt: the pod's supervisor and init, plus a share of the plugin; raw_exec and exec: their
# executor), and Nomad's logmon per task, which every driver pays, separately.
#
#   bench/nomad.sh        ROUNDS=3 by default; SIZES="1 20 100"; NOMAD_BIN=path/to/nomad;
#                         KEEP=1 keeps the scratch directory (agent log, allocations)
#
# Needs root, a release build (built if missing) and a Nomad binary (NOMAD_BIN, else
# ../shared/tools/nomad/install.sh target/nomad).
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-1 20 100}
EXEC_MAX=${EXEC_MAX:-20}
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[[ $(id -u) == 0 ]] || { echo "bench/nomad.sh: needs root" >&2; exit 1; }
./scripts/install-deps.sh
[[ -x target/release/rkt && -x target/release/rkt-stage1 && -x target/release/nomad-driver-rkt ]] ||
  cargo build --release --locked
nomad=${NOMAD_BIN:-}
if [[ -z $nomad ]]; then
  ../shared/tools/nomad/install.sh target/nomad >/dev/null
  nomad=$root/target/nomad
fi

work=$(mktemp -d /var/tmp/rkt-bench-nomad.XXXXXX)
agent_pid=
cleanup() {
  if [[ -n $agent_pid ]]; then
    for j in $(curl -s "$addr/v1/jobs" | jq -r '.[].ID' 2>/dev/null); do
      curl -s -X DELETE "$addr/v1/job/$j?purge=true" >/dev/null || true
    done
    sleep 3
    curl -s -X PUT "$addr/v1/client/gc" >/dev/null || true
    sleep 2
    kill -INT "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  for u in $(target/release/rkt --dir="$work/rkt" list --no-legend --full 2>/dev/null | awk '$1 ~ /-/ {print $1}'); do
    target/release/rkt --dir="$work/rkt" stop --force "$u" >/dev/null 2>&1 || true
    target/release/rkt --dir="$work/rkt" rm "$u" >/dev/null 2>&1 || true
  done
  tests/harness/registry.sh stop "$work/registry" >/dev/null 2>&1 || true
  if [[ -n ${KEEP:-} ]]; then
    echo "kept $work" >&2
    return
  fi
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "preparing: registry, image, agent" >&2
port=$(tests/harness/registry.sh start plain "$work/registry")
tests/harness/fixtures.sh "$work/fixtures" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/fixtures/layout:busybox" "docker://127.0.0.1:$port/bench/busybox:latest"
image=docker://127.0.0.1:$port/bench/busybox:latest
target/release/rkt --dir="$work/rkt" --insecure-options=image,http fetch "$image" >/dev/null 2>&1

mkdir -p "$work/plugins"
cp target/release/nomad-driver-rkt "$work/plugins/"
read -r http rpc serf < <(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
cat >"$work/agent.hcl" <<EOF
data_dir = "$work/data"
plugin_dir = "$work/plugins"
bind_addr = "127.0.0.1"
disable_update_check = true
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
ports {
  http = $http
  rpc  = $rpc
  serf = $serf
}
server {
  enabled          = true
  bootstrap_expect = 1
}
client {
  enabled           = true
  network_interface = "lo"
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
    "driver.denylist"      = "docker,java,qemu"
  }
}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
plugin "nomad-driver-rkt" {
  args = ["--rkt=$root/target/release/rkt", "--rkt-dir=$work/rkt"]
}
EOF
addr=http://127.0.0.1:$http
export NOMAD_ADDR=$addr
"$nomad" agent -config="$work/agent.hcl" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 200); do
  curl -s "$addr/v1/nodes" | jq -e '.[0].Drivers.rkt.Healthy and .[0].Drivers.exec.Healthy and .[0].Drivers.raw_exec.Healthy' >/dev/null 2>&1 && break
  sleep 0.25
done
curl -s "$addr/v1/nodes" | jq -e '.[0].Drivers.rkt.Healthy' >/dev/null ||
  { echo "the agent did not become ready with its drivers:" >&2; tail -30 "$work/agent.log" >&2; exit 1; }

# job DRIVER COUNT: a job of COUNT tasks sleeping an hour
job() {
  local driver=$1 count=$2 config
  case $driver in
    rkt) config="image = \"$image\"
        command = \"/bin/sleep\"
        args = [\"3600\"]
        net = [\"none\"]
        insecure_options = [\"image\", \"http\"]" ;;
    *) config="command = \"/bin/sleep\"
        args = [\"3600\"]" ;;
  esac
  cat <<EOF
job "bench-$driver-$count" {
  datacenters = ["dc1"]
  group "g" {
    count = $count
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "t" {
      driver = "$driver"
      config {
        $config
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
EOF
}

running() { curl -s "$addr/v1/job/$1/allocations" | jq '[.[] | select(.ClientStatus == "running")] | length'; }

# pss PID…: the summed PSS (KiB) of these processes.
pss() {
  local total=0 pid kb
  for pid in "$@"; do
    kb=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

# matching PATTERN: PIDs whose command line matches PATTERN.
matching() { pgrep -f -- "$1" || true; }

# agent_role ROLE: PIDs of the processes the agent started as `<its binary> ROLE …` (executor,
# logmon), found by executable and first argument: a pattern on the command line misses them
# when the binary is not called `nomad` (NOMAD_BIN=/usr/local/bin/nomad-1.0.18, say).
agent_role() {
  local exe pid
  exe=$(readlink -f "$nomad")
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$exe" ]] || continue
    [[ $(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 2p) == "$1" ]] && echo "$pid"
  done
  return 0
}

# role_pss ROLE N: the PSS of the agent's ROLE processes, per task; fails the run when there
# are fewer than N of them (a table of zeros would read as a measurement).
role_pss() {
  local pids
  pids=$(agent_role "$1")
  if (($(wc -w <<<"$pids") < $2)); then
    echo "bench/nomad.sh: found $(wc -w <<<"$pids") '$1' processes of $nomad for $2 tasks" >&2
    exit 1
  fi
  echo $(($(pss $pids) / $2))
}

declare -A secs mem logmon
for n in $SIZES; do
  for d in raw_exec rkt exec; do
    if [[ $d == exec && $n -gt $EXEC_MAX ]]; then continue; fi
    for ((r = 1; r <= ROUNDS; r++)); do
      name=bench-$d-$n
      job "$d" "$n" >"$work/$name.nomad"
      start=$(date +%s%N)
      "$nomad" job run -detach "$work/$name.nomad" >/dev/null
      until [[ $(running "$name") == "$n" ]]; do
        sleep 0.05
        failed=$(curl -s "$addr/v1/job/$name/allocations" | jq '[.[] | select(.ClientStatus == "failed")] | length')
        if [[ $failed != 0 ]]; then
          echo "$name: $failed allocations failed; their events:" >&2
          curl -s "$addr/v1/job/$name/allocations" |
            jq -r '.[] | select(.ClientStatus == "failed") | .ID as $id | .TaskStates.t.Events[] | "\($id[:8]) \(.Type): \(.DisplayMessage)"' >&2
          for a in $(curl -s "$addr/v1/job/$name/allocations" | jq -r '.[] | select(.ClientStatus == "failed") | .ID'); do
            echo "stderr of $a:" >&2
            "$nomad" alloc logs -stderr "$a" t >&2 || true
          done
          exit 1
        fi
      done
      end=$(date +%s%N)
      secs[$d-$n]+="$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", (b - a) / 1e9}') "
      if ((r == ROUNDS)); then
        sleep 2
        case $d in
          rkt) mem[$d-$n]=$((($(pss $(matching rkt-stage1)) + $(pss $(matching nomad-driver-rkt))) / n)) ;;
          *) mem[$d-$n]=$(role_pss executor "$n") ;;
        esac
        logmon[$d-$n]=$(role_pss logmon "$n")
      fi
      curl -s -X DELETE "$addr/v1/job/$name?purge=true" >/dev/null
      until [[ $(running "$name") == 0 ]]; do sleep 0.2; done
      curl -s -X PUT "$addr/v1/client/gc" >/dev/null
      sleep 1
    done
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.2f", m}'; }
echo
echo "| tasks | raw_exec (s) | rkt (s) | rkt / raw_exec | exec (s) | exec / rkt |"
echo "|---|---|---|---|---|---|"
for n in $SIZES; do
  raw=$(median "${secs[raw_exec-$n]}")
  ours=$(median "${secs[rkt-$n]}")
  ex=-
  exr=-
  if [[ -n ${secs[exec-$n]:-} ]]; then
    ex=$(median "${secs[exec-$n]}")
    exr=$(ratio "$ex" "$ours")
  fi
  echo "| $n | $raw | $ours | $(ratio "$ours" "$raw") | $ex | $exr |"
done
echo
echo "| tasks | PSS per task, KiB: rkt pod + plugin share | raw_exec executor | exec executor | logmon (every driver) |"
echo "|---|---|---|---|---|"
for n in $SIZES; do
  echo "| $n | ${mem[rkt-$n]} | ${mem[raw_exec-$n]} | ${mem[exec-$n]:--} | ${logmon[rkt-$n]} |"
done
echo
echo "docker: not measured (Debian's docker.io daemon would set this host's FORWARD policy to DROP and break pod networking)."
echo "Machine: $(nproc) CPUs, kernel $(uname -r), $(date +%F). Rounds: $ROUNDS (medians). Nomad: $("$nomad" version | head -1)."
echo "Command: \`ROUNDS=$ROUNDS bench/nomad.sh\`"
