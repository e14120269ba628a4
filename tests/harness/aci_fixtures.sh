#!/usr/bin/env bash
# Builds the ACI fixtures into OUTDIR: images made by actool (Debian's appc-spec), keys made
# and signatures written by gpg, hostile archives written by evil_aci.py (actool refuses to
# build those).
#
#   gnupg/                 the signing keyring (GNUPGHOME)
#   keys/signer.asc        ed25519 "ACI Signer <signer@aci.test>", valid for 10 years
#   keys/other.asc         ed25519 "Other Signer <other@aci.test>": never trusted
#   keys/expired.asc       made with a faked clock in 2020, expired a day later
#   keys/revoked.asc       valid, then revoked (its revocation certificate imported)
#   hello.aci              name aci.test/hello, version 1.0, busybox; exec /bin/sh -c 'echo
#                          hello from aci'; port www 8080/tcp; mount point data at /data;
#                          gzip (actool's default); hello.aci.asc signed by signer
#   hello-plain.aci, hello-bz2.aci, hello-xz.aci   the same tar, uncompressed, bzip2
#                          and xz (one image ID for all four)
#   hello-plain.aci.asc    signer's signature of the plain one; hello-other.asc, -expired.asc,
#                          -revoked.asc: hello.aci signed by the other keys
#   tampered.aci           hello-plain.aci with one byte of /bin/busybox changed (signature:
#                          hello-plain's)
#   base.aci               aci.test/base: busybox, /etc/base-file "from base", /junk/file
#   app.aci                aci.test/app: depends on aci.test/base (by imageID, in
#                          base.id), /etc/app-file "from app", pathWhitelist keeping
#                          /bin/busybox, /bin/sh, /bin/cat, /bin/ls, /etc/base-file,
#                          /etc/app-file (so /junk goes)
#   cycle-a.aci, cycle-b.aci   aci.test/cycle-a depends on aci.test/cycle-b and back
#   isolated.aci           aci.test/isolated: busybox with isolators of its own (memory 48Mi,
#                          cpu 300m, capabilities retain-set CAP_CHOWN and CAP_KILL, seccomp
#                          remove-set uname with errno ENOSYS, no-new-privileges,
#                          oom-score-adj 300, cpu-shares 256); exec sleeps
#   etcd.aci               coreos.com/etcd, version v2.0.4: a stand-in for the page's example
#                          whose /etcd prints "etcd stand-in v2.0.4 serving" and sleeps
#   evil-*.aci             hostile archives (see evil_aci.py), signed by signer
#   *.asc                  every ACI has a detached ASCII-armoured signature by signer
#
# Cached: does nothing when OUTDIR/.done is newer than this script and evil_aci.py.
set -euo pipefail
out=${1:?usage: aci_fixtures.sh OUTDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")

fresh() { [[ -f $out/.done && $out/.done -nt $self && $out/.done -nt $here/evil_aci.py ]]; }
fresh && exit 0
for tool in actool gpg python3 bzip2 xz gzip sha512sum flock; do
  command -v "$tool" >/dev/null || { echo "aci_fixtures.sh: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[[ -x /bin/busybox ]] || { echo "aci_fixtures.sh: /bin/busybox not found (busybox-static)" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out.lock"
flock 9
fresh && exit 0

work=$(mktemp -d "$out.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/log
run() { "$@" >>"$log" 2>&1 || { echo "aci_fixtures.sh: failed: $*" >&2; tail -20 "$log" >&2; exit 1; }; }

export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpgq() { run gpg --batch --pinentry-mode loopback --passphrase '' "$@"; }
mkdir "$work/keys"
gpgq --quick-gen-key "ACI Signer <signer@aci.test>" ed25519 sign 10y
gpgq --quick-gen-key "Other Signer <other@aci.test>" ed25519 sign 10y
gpgq --faked-system-time 20200101T000000! --quick-gen-key "Expired Signer <expired@aci.test>" ed25519 sign 1d
gpgq --quick-gen-key "Revoked Signer <revoked@aci.test>" ed25519 sign 10y
for who in signer other expired revoked; do
  gpg --batch --armor --export "$who@aci.test" >"$work/keys/$who.asc"
done
sign() { # KEY FILE [OUT]
  local key=$1 file=$2 sig=${3:-$2.asc} extra=()
  [[ $key == expired ]] && extra=(--faked-system-time 20200101T060000!)
  gpgq "${extra[@]}" --local-user "$key@aci.test" --armor --detach-sign -o "$sig" "$file"
}

# A layout with busybox and its applets used by the tests.
layout() { # DIR
  mkdir -p "$1/rootfs/bin" "$1/rootfs/etc"
  cp /bin/busybox "$1/rootfs/bin/busybox"
  for a in sh cat ls echo sleep; do ln -s busybox "$1/rootfs/bin/$a"; done
}
manifest() { # NAME VERSION EXTRA_APP_JSON EXTRA_TOP_JSON
  cat <<EOF
{"acKind":"ImageManifest","acVersion":"0.8.11","name":"$1",
 "labels":[{"name":"version","value":"$2"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
 "app":{"exec":["/bin/sh","-c","echo hello from aci"],"user":"0","group":"0",
        "environment":[{"name":"PATH","value":"/bin"}]$3}$4}
EOF
}

W=$work/img
layout "$W/hello"
manifest aci.test/hello 1.0 ',"ports":[{"name":"www","protocol":"tcp","port":8080}],"mountPoints":[{"name":"data","path":"/data"}]' '' >"$W/hello/manifest"
run actool build "$W/hello" "$work/hello.aci"
run actool build --no-compression "$W/hello" "$work/hello-plain.aci"
gzip -dc "$work/hello.aci" | bzip2 >"$work/hello-bz2.aci"
gzip -dc "$work/hello.aci" | xz >"$work/hello-xz.aci"
gzip -dc "$work/hello.aci" | sha512sum | cut -c1-128 | sed 's/^/sha512-/' >"$work/hello.id"
sign signer "$work/hello.aci"
for v in plain bz2 xz; do sign signer "$work/hello-$v.aci"; done
for who in other expired revoked; do sign "$who" "$work/hello.aci" "$work/hello-$who.asc"; done
# Tampered: the same size, one byte of the busybox binary flipped, far from any tar header.
cp "$work/hello-plain.aci" "$work/tampered.aci"
python3 - "$work/tampered.aci" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
i = b.index(b'BusyBox') # inside /bin/busybox's contents
b[i] ^= 0x20
open(p, 'wb').write(b)
EOF
cp "$work/hello-plain.aci.asc" "$work/tampered.aci.asc"

layout "$W/base"
echo "from base" >"$W/base/rootfs/etc/base-file"
mkdir -p "$W/base/rootfs/junk" && echo junk >"$W/base/rootfs/junk/file"
manifest aci.test/base 1.0 '' '' >"$W/base/manifest"
run actool build --no-compression "$W/base" "$work/base.aci"
sha512sum "$work/base.aci" | cut -c1-128 | sed 's/^/sha512-/' >"$work/base.id"
mkdir -p "$W/app/rootfs/etc"
echo "from app" >"$W/app/rootfs/etc/app-file"
manifest aci.test/app 1.0 '' ",\"dependencies\":[{\"imageName\":\"aci.test/base\",\"imageID\":\"$(cat "$work/base.id")\",\"labels\":[{\"name\":\"version\",\"value\":\"1.0\"}]}],\"pathWhitelist\":[\"/bin/busybox\",\"/bin/sh\",\"/bin/cat\",\"/bin/ls\",\"/etc/base-file\",\"/etc/app-file\"]" \
  | sed 's|echo hello from aci|cat /etc/base-file /etc/app-file; ls /junk 2>\&1; ls /bin|' >"$W/app/manifest"
run actool build "$W/app" "$work/app.aci"
for x in a b; do
  y=$([[ $x == a ]] && echo b || echo a)
  mkdir -p "$W/cycle-$x/rootfs"
  manifest "aci.test/cycle-$x" 1.0 '' ",\"dependencies\":[{\"imageName\":\"aci.test/cycle-$y\"}]" >"$W/cycle-$x/manifest"
  run actool build "$W/cycle-$x" "$work/cycle-$x.aci"
done
layout "$W/isolated"
ln -s busybox "$W/isolated/rootfs/bin/grep"
ln -s busybox "$W/isolated/rootfs/bin/uname"
manifest aci.test/isolated 1.0 ',"isolators":[
  {"name":"resource/memory","value":{"limit":"48Mi"}},
  {"name":"resource/cpu","value":{"limit":"300m"}},
  {"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_CHOWN","CAP_KILL"]}},
  {"name":"os/linux/seccomp-remove-set","value":{"set":["uname"],"errno":"ENOSYS"}},
  {"name":"os/linux/no-new-privileges","value":true},
  {"name":"os/linux/oom-score-adj","value":300},
  {"name":"os/linux/cpu-shares","value":256}]' '' >"$W/isolated/manifest"
run actool build "$W/isolated" "$work/isolated.aci"

# A stand-in for the documentation page's coreos.com/etcd:v2.0.4 (examples/etcd.nomad):
# /etcd says so and stays up.
layout "$W/etcd"
printf '#!/bin/sh\necho "etcd stand-in v2.0.4 serving"\nsleep 3600\n' >"$W/etcd/rootfs/etcd"
chmod 755 "$W/etcd/rootfs/etcd"
manifest coreos.com/etcd v2.0.4 '' '' | sed 's|"/bin/sh","-c","echo hello from aci"|"/etcd"|' >"$W/etcd/manifest"
run actool build "$W/etcd" "$work/etcd.aci"
sign signer "$work/etcd.aci"

for kind in dotdot abs symlink badjson badname; do
  run python3 "$here/evil_aci.py" "$kind" "$work/evil-$kind.aci"
done
for f in base app cycle-a cycle-b evil-dotdot evil-abs evil-symlink evil-badjson evil-badname; do
  sign signer "$work/$f.aci"
done
for f in "$work"/*.aci; do
  case $f in *evil-*|*tampered*) continue ;; esac
  run actool validate "$f"
done

# Revoke the revoked key now that it has signed: import its revocation certificate (gpg
# writes one at key generation, its armour escaped with a leading ':') and export it again.
fpr=$(gpg --batch --with-colons --fingerprint revoked@aci.test | awk -F: '/^fpr/ {print $10; exit}')
sed 's/^:-----/-----/' "$GNUPGHOME/openpgp-revocs.d/$fpr.rev" >"$work/revoke.asc"
gpgq --import "$work/revoke.asc"
gpg --batch --armor --export revoked@aci.test >"$work/keys/revoked.asc"
rm "$work/revoke.asc"

rm -rf "$W" "$work/log"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
touch "$out/.done"
