#!/usr/bin/env bash
# Builds the guest of the cgroup v2 lane (tests/guest/lane.sh): a Debian 12 root made by
# debootstrap from Debian's packages, with systemd as init (which mounts cgroup v2 alone),
# Debian's cloud kernel installed inside it (its initrd made there by initramfs-tools, so the
# host's /boot is never touched), and what the tests need from Debian that the package under
# test does not bring: the CNI plugins and iptables (the package's dependencies, so that
# `dpkg -i` needs no network in the guest) and docker-registry, which serves the test images
# on 127.0.0.1:5000 inside the guest, and curl, which the network tests reach pods with.
#
#   image.sh OUTDIR     writes OUTDIR/root.img (ext4), OUTDIR/vmlinuz, OUTDIR/initrd.img
#
# lane.sh keys its cache on this file's digest: any change here builds the guest again.
set -euo pipefail
out=${1:?usage: image.sh OUTDIR}
mkdir -p "$out"
work=$(mktemp -d /var/tmp/rkt-guest-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

# The mirror apt already uses on this machine (deb822 sources, else the classic list).
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[[ -n $mirror ]] || mirror=http://deb.debian.org/debian

debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,udev,kmod,iproute2,iptables,containernetworking-plugins,linux-image-cloud-amd64,docker-registry,curl \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -30 "$work/debootstrap.log" >&2
  exit 1
}

# Nomad's allocation directories need nobody (in minbase's passwd already; checked).
grep -q '^nobody:' "$root/etc/passwd"
echo rkt-guest >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost rkt-guest\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"
# A serial getty hangs up the console (vhangup) when it starts, and the lane's output on
# ttyS0 would go silent from then on.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
# Nothing in the guest needs these, and each costs seconds of boot under TCG.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
  systemd-timesyncd.service docker-registry.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# The lane's entry point: runs /payload/run.sh from the second disk, its output on the
# serial console, then powers the guest off (the lane reads the verdict from the console).
cat >"$root/etc/systemd/system/rkt-lane.service" <<'UNIT'
[Unit]
Description=rkt-rs guest test lane
After=multi-user.target
ConditionPathExists=/dev/vdb

[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStartPre=/bin/mkdir -p /payload
ExecStartPre=/bin/mount -o ro /dev/vdb /payload
ExecStart=/bin/bash /payload/run.sh
ExecStopPost=/bin/systemctl poweroff -f

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/rkt-lane.service "$root/etc/systemd/system/multi-user.target.wants/rkt-lane.service"

kernel=$(ls "$root"/boot/vmlinuz-* | head -1)
initrd=$(ls "$root"/boot/initrd.img-* | head -1)
[[ -f $kernel && -f $initrd ]] || { echo "image.sh: no kernel or initrd in the guest's /boot" >&2; exit 1; }
cp "$kernel" "$out/vmlinuz.tmp" && cp "$initrd" "$out/initrd.img.tmp"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
mkfs.ext4 -q -F -L rkt-guest -d "$root" "$out/root.img.tmp" 2500M
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
mv "$out/root.img.tmp" "$out/root.img"
