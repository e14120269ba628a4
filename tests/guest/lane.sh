#!/usr/bin/env bash
# The cgroup v2 lane: the project as operators run it. A Debian 12 guest (tests/guest/image.sh:
# debootstrap, systemd, cgroup v2 alone), booted under QEMU (TCG: these machines have no
# nested KVM), installs the package (scripts/deb.sh) and runs, inside, the tests that matter
# for cgroups and the driver, and Nomad 1.0.18 with the example jobs (tests/guest/run.sh).
#
#   tests/guest/lane.sh        run by scripts/test.sh; prints how long each part took
#
# The guest image is built once and kept in $RKT_GUEST_CACHE (default
# /var/cache/rkt-rs-guest), keyed on image.sh's digest: a change to the recipe builds it again.
# Test binaries are compiled here and copied in (compiling under TCG would take the lane's
# whole budget). The guest has no network device: everything its tests reach (a registry on
# its 127.0.0.1:5000 with images pushed here, pods, Nomad) is inside it.
#
# Without QEMU, debootstrap or root it skips, saying why; under CI=true a skip fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
start=$SECONDS
log=target/guest-lane.log

skip() {
  if [[ ${CI:-} == true ]]; then
    echo "guest lane: would skip ($1), and CI=true allows no skip: CI must run everything" >&2
    exit 1
  fi
  echo "guest lane: skipped: $1" >&2
  echo "guest lane: $1" >>target/test-skips.txt
  exit 0
}
step() { echo "guest lane: [$((SECONDS - start))s] $*" >&2; }

[[ $(id -u) == 0 ]] || skip "needs root (debootstrap, the guest's disk image)"
for tool in qemu-system-x86_64 debootstrap mkfs.ext4 jq; do
  command -v "$tool" >/dev/null || skip "$tool not found (scripts/install-deps.sh installs it)"
done
nomad_install=$repo/../shared/tools/nomad/install.sh
[[ -x $nomad_install ]] || skip "no Nomad agent to unpack ($nomad_install)"

# The guest image, cached on its recipe's digest.
cache=${RKT_GUEST_CACHE:-/var/cache/rkt-rs-guest}
key=$(sha256sum tests/guest/image.sh | cut -c1-16)
image=$cache/$key
if [[ ! -f $image/root.img ]]; then
  step "building the guest image (debootstrap; cached as $image)"
  # Older recipes' images are of no further use.
  rm -rf "$cache"
  mkdir -p "$cache"
  bash tests/guest/image.sh "$image.tmp"
  mv "$image.tmp" "$image"
fi
step "guest image ready"

# What goes into the guest: the package, the test binaries, the registry's storage with the
# test images, Nomad, the example jobs, the guest's script.
payload=$(mktemp -d /var/tmp/rkt-guest-payload.XXXXXX)
work=$(mktemp -d /var/tmp/rkt-guest-work.XXXXXX)
cleanup() {
  tests/harness/registry.sh stop "$work/registry" >/dev/null 2>&1 || true
  rm -rf "$payload" "$work"
}
trap cleanup EXIT

deb=$(DEB_PROFILE=dev scripts/deb.sh)
cp "$deb" "$payload/rkt-rs.deb"
step "package built: $deb"

# The tests run in the guest, as test.sh builds them (debug), without their debug info.
mkdir -p "$payload/bin"
cargo test --locked --no-run --message-format=json \
  -p rkt --test cgroups --test pods_lifecycle --test limits --test pods_confinement --test net \
  -p nomad-driver-rkt --test driver_tasks --test driver_cgroups 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .executable != null and .target.kind == ["test"]) | "\(.target.name) \(.executable)"' |
  while read -r name exe; do
    strip --strip-debug -o "$payload/bin/$name" "$exe"
  done
step "test binaries built"

# The images, pushed here into a registry whose storage the guest serves as it is.
port=$(HARNESS_LIFETIME=600 tests/harness/registry.sh start plain "$work/registry")
fixtures=$repo/target/test-fixtures
tests/harness/fixtures.sh "$fixtures" >/dev/null
tests/harness/push_fixtures.sh "$port" "$fixtures/layout"
for name in demo/busybox:latest demo/httpd:latest; do
  skopeo copy -q --dest-tls-verify=false "oci:$fixtures/layout:busybox" "docker://127.0.0.1:$port/$name"
done
tests/harness/registry.sh stop "$work/registry" >/dev/null
cp -a "$work/registry/storage" "$payload/registry"
step "test images pushed"

bash "$nomad_install" "$payload/nomad"
cp -a examples "$payload/examples"
cp tests/guest/run.sh tests/guest/nomad.sh "$payload/"
mkdir -p "$payload/harness" && cp -a tests/harness/. "$payload/harness/"
# The repository's path here: the test binaries find their workspace there (compiled in).
echo "$repo" >"$payload/repo"
echo "${CI:-}" >"$payload/ci"
# RKT_GUEST_OLD_STAGE1=PATH: an rkt-stage1 from before a fix; the guest first runs the
# multi-app test with it, which must fail (showing the test catches what was fixed).
if [[ -n ${RKT_GUEST_OLD_STAGE1:-} ]]; then
  cp "$RKT_GUEST_OLD_STAGE1" "$payload/old-stage1"
fi
size=$(du -sm "$payload" | cut -f1)
mkfs.ext4 -q -F -L payload -d "$payload" "$work/payload.img" "$((size + 200))M"
step "payload disk made (${size} MiB)"

# Boot. The guest's root disk is a snapshot (-snapshot: writes go to a temporary file), so
# the cached image stays as it was built. TCG: two vCPUs on the host's threads.
mkdir -p target
limit=${RKT_GUEST_TIMEOUT:-1200}
step "booting the guest (TCG; at most ${limit}s; console in $log)"
set +e
timeout "$limit" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -m 3072 -smp 2 \
  -nographic -no-reboot -nic none -snapshot \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -drive "file=$image/root.img,if=virtio,format=raw" \
  -drive "file=$work/payload.img,if=virtio,format=raw,readonly=on" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1 quiet systemd.show_status=0" \
  </dev/null 2>&1 | tee "$log" | grep --line-buffered -E '^(LANE|GUEST)' >&2
qemu=${PIPESTATUS[0]}
set -e
step "guest done (qemu exit $qemu)"
verdict=$(grep -a '^LANE-RESULT:' "$log" | tail -1 | tr -d '\r')
echo "guest lane: took $((SECONDS - start))s; ${verdict:-no verdict (timed out or crashed: see $log)}" >&2
[[ $verdict == "LANE-RESULT: PASS" ]]
