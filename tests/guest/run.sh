#!/usr/bin/env bash
# Runs inside the guest of tests/guest/lane.sh (from its payload disk, at /payload), as the
# guest's last unit; everything it prints goes to the serial console, which the lane reads.
# Lines starting with LANE are the lane's own; the last one is the verdict.
set -uo pipefail
P=/payload
start=$SECONDS
failed=()
say() { echo "LANE [$((SECONDS - start))s] $*"; }

say "guest up: kernel $(uname -r), $(stat -fc %T /sys/fs/cgroup) at /sys/fs/cgroup, controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || failed+=("the guest does not run cgroup v2 alone")

# The package, as an operator installs it (its dependencies are in the image: no network).
if dpkg -i $P/rkt-rs.deb >/tmp/dpkg.log 2>&1; then
  say "installed: $(dpkg-query -W rkt-rs), $(rkt version | head -1)"
else
  cat /tmp/dpkg.log
  failed+=("dpkg -i")
fi

# The test images, served on 127.0.0.1:5000 (the examples' address) from the storage pushed
# on the host.
mkdir -p /var/lib/lane-registry && cp -a $P/registry/. /var/lib/lane-registry/
cat >/tmp/registry.yml <<'EOF'
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/lane-registry
http:
  addr: 127.0.0.1:5000
EOF
docker-registry serve /tmp/registry.yml >/tmp/registry.log 2>&1 &
for _ in $(seq 100); do curl -sf http://127.0.0.1:5000/v2/ >/dev/null && break; sleep 0.2; done

# The test binaries find their workspace at the host's repository path (compiled in), and the
# binaries under test beside their deps/ directory: the installed package's.
repo=$(cat $P/repo)
mkdir -p "$repo/target/debug/deps" "$repo/tests"
cp -a $P/harness "$repo/tests/harness"
ln -sf /usr/bin/rkt /usr/bin/rkt-stage1 /opt/nomad/plugins/nomad-driver-rkt "$repo/target/debug/"
# A short soak (run_rm_cycles_leave_nothing_behind): 500 cycles by default, too many under TCG.
export RKT_TEST_REGISTRY=5000 CI=$(cat $P/ci) RUST_BACKTRACE=1 RKT_TEST_CYCLES=20
# Tests run one at a time: two vCPUs under TCG.
run_tests() {
  local bin=$1
  shift
  cp $P/bin/"$bin" "$repo/target/debug/deps/$bin"
  say "test $bin: $*"
  if ! timeout 600 "$repo/target/debug/deps/$bin" --test-threads=1 --exact "$@" 2>&1; then
    failed+=("$bin $*")
  fi
}

if [[ -f $P/old-stage1 ]]; then
  # The lane asked to see the multi-app test fail with a stage1 from before the fix.
  cp /usr/bin/rkt-stage1 /tmp/rkt-stage1.new
  install -m 0755 $P/old-stage1 /usr/bin/rkt-stage1
  cp $P/bin/cgroups "$repo/target/debug/deps/cgroups"
  say "before the fix: the multi-app test with the old rkt-stage1"
  if timeout 300 "$repo/target/debug/deps/cgroups" --exact two_apps_one_with_its_own_limits 2>&1; then
    failed+=("the multi-app test passed with the old rkt-stage1: it does not catch the bug")
  else
    say "before the fix: the multi-app test failed, as it should"
  fi
  install -m 0755 /tmp/rkt-stage1.new /usr/bin/rkt-stage1
fi
run_tests cgroups two_apps_one_with_its_own_limits resource_flags_reach_the_cgroups \
  resource_flags_that_cannot_work_are_refused devices_allowed_and_denied \
  cgroup_parent_is_recorded_and_found_again
run_tests pods_lifecycle prepare_run_prepared_status_stop_rm \
  killed_supervisor_cgroups_are_removed_by_rm_and_gc pod_survives_a_killed_supervisor \
  run_rm_cycles_leave_nothing_behind
run_tests limits a_memory_hog_dies_alone pids_limit_flag_sets_and_lifts_the_limit \
  the_pods_own_processes_are_never_the_oom_killers_choice
run_tests pods_confinement enter_is_confined_like_the_app
run_tests net ports_from_prepare_are_forwarded_by_run_prepared
run_tests driver_cgroups
run_tests driver_tasks stop_signals_then_kills_and_destroy_force_kills \
  uncatchable_signals_reach_the_app pids_limit_reaches_the_pods_cgroup

# Nomad 1.0.18 as server and client, as a systemd service the way HashiCorp's unit runs it,
# with the plugin where the package put it; then the example jobs.
say "nomad: starting"
bash $P/nomad.sh 2>&1 || failed+=("nomad examples")

# The package's prerm: no removal while a pod runs (it names the pod), then a clean removal.
say "package removal with a pod running"
rkt --insecure-options=image,http run --net=none --uuid-file-save=/tmp/uuid \
  docker://127.0.0.1:5000/demo/busybox:latest --exec /bin/sleep -- 600 >/dev/null 2>&1 &
for _ in $(seq 100); do [[ -s /tmp/uuid ]] && break; sleep 0.2; done
rkt status --wait-ready=30s "$(cat /tmp/uuid)" >/dev/null
if dpkg -r rkt-rs >/tmp/remove.log 2>&1; then
  failed+=("dpkg -r rkt-rs went ahead with a pod running")
elif ! grep -q "$(cat /tmp/uuid)" /tmp/remove.log; then
  failed+=("the refused removal did not name the pod: $(cat /tmp/remove.log)")
else
  say "removal refused: $(grep -m1 'still run' /tmp/remove.log)"
fi
rkt stop "$(cat /tmp/uuid)" >/dev/null && rkt status --wait=30s "$(cat /tmp/uuid)" >/dev/null
rkt rm "$(cat /tmp/uuid)" >/dev/null || failed+=("rkt rm")
if dpkg -r rkt-rs >/tmp/remove.log 2>&1 && [[ ! -e /usr/bin/rkt && ! -e /opt/nomad/plugins/nomad-driver-rkt ]]; then
  say "removed once no pod ran"
else
  failed+=("dpkg -r rkt-rs with no pod running: $(cat /tmp/remove.log)")
fi

# Nothing of any pod is left: no cgroup below the pods' parent, no pod process.
left=$(find /sys/fs/cgroup/rkt.slice -mindepth 1 -type d 2>/dev/null)
if [[ -n $left ]]; then
  say "cgroups left behind: $left"
  failed+=("cgroups left in /sys/fs/cgroup/rkt.slice")
fi
if pgrep -x rkt-stage1 >/dev/null; then
  say "pod supervisors left: $(pgrep -ax rkt-stage1)"
  failed+=("rkt-stage1 processes left")
fi

if ((${#failed[@]})); then
  for f in "${failed[@]}"; do say "FAILED: $f"; done
  echo "LANE-RESULT: FAIL"
else
  echo "LANE-RESULT: PASS"
fi
