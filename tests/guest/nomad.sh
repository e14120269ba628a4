#!/usr/bin/env bash
# Inside the guest (tests/guest/run.sh): Nomad 1.0.18 as server and client, run by systemd as
# HashiCorp's unit runs it (KillMode=process, Delegate=yes), with the plugin the package put
# in /opt/nomad/plugins and examples/agent.hcl's plugin block; then the example jobs. Exits
# non-zero on the first thing that does not work, saying what.
set -euo pipefail
P=/payload
say() { echo "LANE nomad: $*"; }
die() {
  say "FAILED: $*"
  journalctl -u nomad --no-pager 2>/dev/null | grep -a 'rkt\|ERROR\|WARN' | tail -40
  # The jobs go, so that what follows in the lane starts clean.
  for n in "${names[@]}"; do nomad job stop -purge "$n" >/dev/null 2>&1; done
  sleep 10
  exit 1
}
names=()
api() { curl -sf "http://127.0.0.1:4646/v1/$1"; }

install -m 0755 $P/nomad /usr/local/bin/nomad
mkdir -p /etc/nomad.d /var/lib/nomad
cp $P/examples/agent.hcl /etc/nomad.d/plugin.hcl
# The guest has no network device; still, nothing here asks for anything beyond it.
cat >/etc/nomad.d/node.hcl <<'EOF'
datacenter           = "dc1"
bind_addr            = "127.0.0.1"
disable_update_check = true
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
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
    "driver.denylist"      = "docker,exec,java,qemu,raw_exec"
  }
}
consul {
  auto_advertise   = false
  server_auto_join = false
  client_auto_join = false
}
EOF
cat >/etc/systemd/system/nomad.service <<'EOF'
[Unit]
Description=Nomad
After=network.target

[Service]
ExecStart=/usr/local/bin/nomad agent -config /etc/nomad.d
KillMode=process
Delegate=yes
Restart=on-failure
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl start nomad

# The node is ready, with the driver healthy.
ready=
for _ in $(seq 300); do
  node=$(api nodes 2>/dev/null | grep -o '"ID":"[^"]*"' | head -1 | cut -d'"' -f4 || true)
  # The rkt driver's own entry, up to its UpdateTime (its Attributes hold braces).
  if [[ -n $node ]] && api "nodes" | grep -q '"Status":"ready"' &&
    api "node/$node" | grep -o '"rkt":{.*' | sed 's/"UpdateTime".*//' | grep -q '"Healthy":true'; then
    ready=1
    break
  fi
  sleep 1
done
[[ -n $ready ]] || die "the node never became ready with a healthy rkt driver"
say "agent ready, driver rkt healthy"

# running JOB: the job's allocation runs (its ID on stdout). Each allocation in the list has
# exactly one "ClientStatus" and one "ID" key of its own (nested objects have neither), so
# taken in order they pair up, whichever comes first.
running() {
  local job=$1 alloc
  for _ in $(seq 240); do
    alloc=$(api "job/$job/allocations" | grep -o '"ClientStatus":"[a-z]*"\|"ID":"[0-9a-f-]*"' |
      paste - - | grep '"ClientStatus":"running"' | grep -o '"ID":"[0-9a-f-]*"' | head -1 | cut -d'"' -f4 || true)
    [[ -n $alloc ]] && { echo "$alloc"; return 0; }
    sleep 1
  done
  api "job/$job/allocations" | head -c 3000 >&2
  return 1
}

pods() { find /sys/fs/cgroup/rkt.slice -mindepth 1 -maxdepth 1 -type d -name 'rkt-*' 2>/dev/null | wc -l; }

# etcd.nomad fetches coreos.com/etcd by appc discovery from a server the host suite's
# nomad_agent test starts; there is none in the guest.
jobs=(webservice constraint dns port-map volumes)
names=(webservice docs dns redis-like volumes)
for i in "${!jobs[@]}"; do
  nomad job run -detach "$P/examples/${jobs[$i]}.nomad" >/dev/null || die "nomad job run ${jobs[$i]}.nomad"
done
for i in "${!names[@]}"; do
  alloc=$(running "${names[$i]}") || die "job ${names[$i]} never ran"
  say "job ${names[$i]} running (allocation ${alloc:0:8})"
done
[[ $(pods) == "${#jobs[@]}" ]] || die "$(pods) pods below /sys/fs/cgroup/rkt.slice, not ${#jobs[@]}"
# The pods' supervisors are in their pods' cgroups, not in nomad.service's: stopping or
# restarting Nomad cannot take them along.
if grep -qx "$(pgrep -x rkt-stage1 | head -1)" /sys/fs/cgroup/system.slice/nomad.service/cgroup.procs; then
  die "a pod supervisor is still in nomad.service's cgroup"
fi

# port-map: Nomad's static port 12345 forwarded to the pod's 8080.
page=$(curl -sf -m 5 http://127.0.0.1:12345/) || die "port-map's forwarded port 12345 does not answer"
say "port-map answers on 12345: $(echo "$page" | head -1)"

# Statistics through Nomad from the pod's cgroups.
alloc=$(running webservice)
api "client/allocation/$alloc/stats" | grep -q '"RSS":[1-9]' || die "no memory figures for webservice: $(api "client/allocation/$alloc/stats" | head -c 600)"
say "webservice statistics: $(api "client/allocation/$alloc/stats" | grep -o '"RSS":[0-9]*' | head -1)"

# Nomad restarted: the same pods keep running and are recovered.
before=$(rkt list --no-legend | sort)
systemctl restart nomad
sleep 5
for i in "${!names[@]}"; do running "${names[$i]}" >/dev/null || die "job ${names[$i]} lost after a restart of Nomad"; done
after=$(rkt list --no-legend | sort)
[[ $(echo "$before" | cut -c1-8) == "$(echo "$after" | cut -c1-8)" ]] || die "pods changed across Nomad's restart: $before / $after"
say "Nomad restarted: the same $(pods) pods run"

for n in "${names[@]}"; do nomad job stop -purge "$n" >/dev/null || die "nomad job stop $n"; done
for _ in $(seq 120); do [[ $(pods) == 0 ]] && break; sleep 1; done
[[ $(pods) == 0 ]] || die "$(pods) pods still below rkt.slice after the jobs stopped"
left=$(rkt list --no-legend | wc -l)
[[ $left == 0 ]] || die "rkt still lists $left pods after the jobs stopped: $(rkt list)"
say "jobs stopped: no pod, no cgroup left"
systemctl stop nomad
