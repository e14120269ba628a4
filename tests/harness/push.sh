#!/usr/bin/env bash
# A thin wrapper over `skopeo copy` for the tests; prints nothing unless it fails.
#
#   push.sh SRC DEST [skopeo copy flags...]
#   e.g. push.sh oci:/x/layout:busybox docker://127.0.0.1:5000/busybox:latest --dest-creds tester:secret
#
# Flags it adds unless told otherwise:
#   --dest-tls-verify=false   unless a --dest-tls-verify* or --dest-cert-dir flag is given
#                             (for the tls registry: --dest-cert-dir STATEDIR/certs verifies)
#   --src-tls-verify=false    for docker:// sources, unless a --src-tls-verify* or
#                             --src-cert-dir flag is given
#   --all                     unless --all/-a or --multi-arch is given: copies every instance
#                             of an index or manifest list, and is harmless for one image
#   -q
#
# skopeo runs with a blob-info cache of its own, made for this one copy and removed after it
# (through containers/image's rootless paths: _CONTAINERS_ROOTLESS_UID and a scratch HOME),
# instead of root's shared /var/lib/containers/cache. That keeps pushes independent of what
# earlier test runs pushed to other registries that happened to use the same port, and keeps
# root's ~/.docker/config.json and auth.json out of it: pass credentials with --dest-creds.
#
# How to get each kind of image into a registry with skopeo 1.9 (all verified; the recipes
# are functions in push_fixtures.sh):
#   gzip layers         the default (umoci's layouts are gzip already)
#   zstd layers         --dest-compress-format zstd works only while the destination repo
#                       lacks the source's gzip blobs: skopeo 1.9 reuses a blob the registry
#                       already has under the source digest whatever format was asked for.
#                       Robust: copy into a scratch OCI layout with --dest-compress-format
#                       zstd, then push that with --preserve-digests.
#   uncompressed        no flag does it directly (--dest-decompress is for dir: only; the
#                       docker transport always compresses). Copy to dir: with
#                       --dest-decompress, then push that with --preserve-digests.
#   Docker schema2      --format v2s2
#   OCI index           --all (from an OCI index source)
#   manifest list       --all --format v2s2 (from an OCI index source)
set -euo pipefail
if (($# < 2)); then
  echo "usage: push.sh SRC DEST [skopeo copy flags...]" >&2
  exit 2
fi
src=$1 dest=$2
shift 2
command -v skopeo >/dev/null || { echo "push.sh: skopeo not found" >&2; exit 1; }

dest_tls=1 src_tls=1 all=1
for a in "$@"; do
  case $a in
    --dest-tls-verify* | --dest-cert-dir*) dest_tls=0 ;;
    --src-tls-verify* | --src-cert-dir*) src_tls=0 ;;
    --all | -a | --multi-arch*) all=0 ;;
  esac
done
flags=(-q)
((dest_tls)) && [[ $dest == docker://* ]] && flags+=(--dest-tls-verify=false)
((src_tls)) && [[ $src == docker://* ]] && flags+=(--src-tls-verify=false)
((all)) && flags+=(--all)

scratch=$(mktemp -d "${TMPDIR:-/tmp}/harness-skopeo.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if ! env _CONTAINERS_ROOTLESS_UID=65534 HOME="$scratch" XDG_DATA_HOME="$scratch" \
  XDG_CONFIG_HOME="$scratch" XDG_RUNTIME_DIR="$scratch" \
  skopeo copy "${flags[@]}" "$@" "$src" "$dest" >"$scratch/out.log" 2>&1; then
  echo "push.sh: skopeo copy ${flags[*]} $* $src $dest failed:" >&2
  cat "$scratch/out.log" >&2
  exit 1
fi
