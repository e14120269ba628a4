#!/usr/bin/env bash
# Pull-speed benchmark: a cold `rkt fetch` of a ~200 MB, 5-layer image from a local plain-HTTP
# registry, next to `podman pull` and `skopeo copy` + `umoci unpack` of the same image.
#
# Usage, as root, from anywhere:
#   bench/fetch.sh
# Environment:
#   ROUNDS=5                      timed rounds; a round times every tool once, and the order of
#                                 the tools rotates from round to round
#   RKT=<repo>/target/release/rkt the rkt binary; if it is not executable, rkt is skipped
#   BENCH_CACHE=/var/tmp/rkt-bench where the test image is built once and kept (OCI layout)
#   BENCH_WORK=/var/tmp           where the registry and each run's fresh store live (removed
#                                 on exit); keep it on a disk, not a tmpfs, like real storage
#   MIRROR=http://...             Debian mirror for debootstrap (default: the one apt uses)
#   PODMAN_DRIVER=overlay         podman's storage driver; falls back to vfs if overlay fails
#   DROP_CACHES=1                 sync and drop the page cache before every timed run (0: no)
#
# Prints a markdown table (median, min, max, ratio to rkt) and writes it to
# bench/results/fetch-<date>.md. Installs the Debian packages in bench/packages.txt if missing.
#
# Every timed run starts with empty storage (a new directory, removed after the run), so each
# tool downloads, verifies and unpacks all five layers. The clock is monotonic (Python's
# time.monotonic_ns around the tool's process), with ms resolution.
set -euo pipefail

# The command line as given, with the settings that came from the environment.
invocation=""
for v in ROUNDS RKT BENCH_CACHE BENCH_WORK MIRROR PODMAN_DRIVER DROP_CACHES; do
  [[ -v $v ]] && invocation+="$v=$(printf '%q' "${!v}") "
done
invocation+="$0${*:+ $*}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
ROUNDS=${ROUNDS:-5}
RKT=${RKT:-$root/target/release/rkt}
BENCH_CACHE=${BENCH_CACHE:-/var/tmp/rkt-bench}
BENCH_WORK=${BENCH_WORK:-/var/tmp}
PODMAN_DRIVER=${PODMAN_DRIVER:-overlay}
DROP_CACHES=${DROP_CACHES:-1}

# Bump RECIPE when the image recipe changes: a cache built by another recipe is rebuilt.
RECIPE=1
# debootstrap's bookworm minbase is ~120 MB once apt's lists and downloaded .debs are cleaned
# out, so these packages (no recommends; ~82 MB installed) pad it to ~200 MB uncompressed, with
# real package contents: shared libraries, interpreters and many small files, like an
# application base image.
PAD_PACKAGES=(python3 perl)
LAYERS=5

log() { printf 'bench/fetch.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $EUID == 0 ]] || die "run as root (debootstrap, podman's storage and drop_caches need it)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ -x $root/tests/harness/registry.sh ]] || die "missing $root/tests/harness/registry.sh"

install_packages() {
  local missing=() p
  while read -r p || [[ -n $p ]]; do
    [[ -z $p || $p == \#* ]] && continue
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] ||
      missing+=("$p")
  done <"$here/packages.txt"
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# The first http(s) URI that apt uses for the bookworm suite (one-line or deb822 sources).
find_mirror() {
  if [[ -n ${MIRROR:-} ]]; then
    echo "$MIRROR"
    return
  fi
  local found=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    mapfile -t -O "${#found[@]}" found < <(awk '
      $1 == "deb" {
        i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == "bookworm" && $i ~ /^https?:\/\//) print $i
      }' "$f")
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    mapfile -t -O "${#found[@]}" found < <(awk '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (k = 1; k <= NF; k++) {
          line = $k
          if (line ~ /^#/) continue
          key = tolower(line); sub(/:.*/, "", key)
          val = line; sub(/^[^:]*:[ \t]*/, "", val)
          if (key == "types") types = val
          else if (key == "uris") uris = val
          else if (key == "suites") suites = val
          else if (key == "enabled") enabled = tolower(val)
        }
        if (enabled != "no" && (" " types " ") ~ / deb / && (" " suites " ") ~ / bookworm /) {
          n = split(uris, u, /[ \t]+/)
          for (j = 1; j <= n; j++) if (u[j] ~ /^https?:\/\//) print u[j]
        }
      }' "$f")
  done
  echo "${found[0]:-}"
}

# Unmounts whatever is mounted under DIR (deepest first), then removes DIR.
clean_dir() {
  local dir=$1 m
  [[ -e $dir ]] || return 0
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done < <(findmnt -rn -o TARGET | awk -v p="$dir" '$0 == p || index($0, p "/") == 1' | sort -r)
  rm -rf --one-file-system "$dir"
}

work="" build=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n $work && -d $work ]]; then
    [[ -f $work/registry/pid ]] && "$root/tests/harness/registry.sh" stop "$work/registry"
    clean_dir "$work"
  fi
  [[ -n $build ]] && clean_dir "$build"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

image_ready() {
  [[ -f $BENCH_CACHE/image.env && -f $BENCH_CACHE/oci/index.json ]] &&
    grep -qx "recipe=$RECIPE" "$BENCH_CACHE/image.env"
}

# Builds the image into $BENCH_CACHE/oci (tag "bench") and records its sizes in image.env.
build_image() {
  local mirror r L b total thr line size path rel top d k j
  mirror=$(find_mirror)
  [[ -n $mirror ]] || die "no bookworm mirror in /etc/apt/sources.list{,.d/*}; set MIRROR=http://..."
  rm -rf "$BENCH_CACHE/oci" "$BENCH_CACHE/image.env"
  build=$BENCH_CACHE/build
  clean_dir "$build"
  mkdir -p "$build"
  r=$build/rootfs
  log "building the test image once, into $BENCH_CACHE (a few minutes)"
  log "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$r" "$mirror" >"$build/debootstrap.log" 2>&1 ||
    { tail -20 "$build/debootstrap.log" >&2; die "debootstrap failed"; }

  log "padding with ${PAD_PACKAGES[*]}"
  mount -t proc proc "$r/proc"
  chroot "$r" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${PAD_PACKAGES[@]}" >"$build/apt.log" 2>&1 ||
    { tail -20 "$build/apt.log" >&2; die "installing ${PAD_PACKAGES[*]} in the chroot failed"; }
  chroot "$r" apt-get clean
  umount "$r/proc"
  # As in Debian's own container images: no apt lists, no device nodes, nothing of the host's.
  rm -rf "${r:?}"/var/lib/apt/lists/* "${r:?}"/dev/* "${r:?}"/tmp/* "${r:?}"/var/tmp/* \
    "${r:?}"/var/cache/apt/*.bin
  rm -f "$r/etc/resolv.conf"
  echo localhost >"$r/etc/hostname"

  # Split the tree into $LAYERS parts of about equal size: a directory larger than half a part
  # is split into its entries (recursively), then the pieces go, largest first, into the part
  # that is smallest so far. du -l lists every name of a hard-linked file.
  total=$(du -sb "$r" | cut -f1)
  thr=$((total / LAYERS / 2))
  : >"$build/chunks"
  local pending=(".")
  while ((${#pending[@]})); do
    d=${pending[0]}
    pending=("${pending[@]:1}")
    top=$r
    [[ $d != . ]] && top=$r/$d
    while IFS= read -r -d '' line; do
      size=${line%%$'\t'*}
      path=${line#*$'\t'}
      [[ $path == "$top" ]] && continue
      rel=${path#"$r"/}
      if [[ -d $path && ! -L $path ]] && ((size > thr)); then
        pending+=("$rel")
      else
        printf '%s\t%s\0' "$size" "$rel" >>"$build/chunks"
      fi
    done < <(du -0 -abl --max-depth=1 "$top")
  done
  local -a part=()
  for ((k = 0; k < LAYERS; k++)); do part[k]=0; : >"$build/layer$k.list"; done
  while IFS= read -r -d '' line; do
    size=${line%%$'\t'*}
    k=0
    for ((j = 1; j < LAYERS; j++)); do
      if ((part[j] < part[k])); then k=$j; fi
    done
    part[k]=$((part[k] + size))
    printf '%s\0' "${line#*$'\t'}" >>"$build/layer$k.list"
  done < <(sort -z -t $'\t' -k1,1nr "$build/chunks")

  L=$build/oci
  b=$build/bundle
  umoci init --layout "$L"
  umoci new --image "$L:bench"
  umoci unpack --image "$L:bench" "$b" >/dev/null
  for ((k = 0; k < LAYERS; k++)); do
    log "layer $((k + 1)): $((part[k] / 1000000)) MB"
    (cd "$r" && xargs -0 -a "$build/layer$k.list" cp -a --parents -t "$b/rootfs/")
    umoci repack --refresh-bundle --image "$L:bench" "$b"
  done
  umoci config --image "$L:bench" --config.cmd /bin/bash
  umoci gc --layout "$L"

  # Sizes: gzip blobs as pushed, their tar streams, and the tree on disk.
  local sizes
  sizes=$(python3 - "$L" <<'PY'
import json, os, sys, zlib
layout = sys.argv[1]
def blob(digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
packed = unpacked = 0
per_layer = []
for layer in manifest["layers"]:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    n = 0
    with open(blob(layer["digest"]), "rb") as f:
        while chunk := f.read(1 << 20):
            n += len(d.decompress(chunk))
    n += len(d.flush())
    packed += layer["size"]
    unpacked += n
    per_layer.append("%.1f/%.1f" % (layer["size"] / 1e6, n / 1e6))
print("layer_count=%d" % len(manifest["layers"]))
print("compressed=%d" % packed)
print("uncompressed=%d" % unpacked)
print("per_layer='%s'" % " ".join(per_layer))
PY
  )
  grep -qx "layer_count=$LAYERS" <<<"$sizes" || die "built image does not have $LAYERS layers: $sizes"
  mv "$L" "$BENCH_CACHE/oci"
  {
    echo "$sizes"
    echo "rootfs=$(du -sb "$r" | cut -f1)"
    echo "mirror=$(printf '%q' "$mirror")"
    echo "pad_packages=$(printf '%q' "${PAD_PACKAGES[*]}")"
    echo "built=$(date -u +%Y-%m-%dT%H:%MZ)"
    echo "recipe=$RECIPE"
  } >"$BENCH_CACHE/image.env.tmp"
  mv "$BENCH_CACHE/image.env.tmp" "$BENCH_CACHE/image.env"
  clean_dir "$build"
  build=""
}

drop_caches() {
  ((DROP_CACHES)) || return 0
  sync
  if ! echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
    log "cannot write /proc/sys/vm/drop_caches; the page cache is not dropped"
    DROP_CACHES=0
  fi
}

podman_in() { # DIR ARGS...: sets PODMAN to a podman command line with all its state under DIR
  local d=$1
  shift
  PODMAN=(podman --root "$d/root" --runroot "$d/runroot" --tmpdir "$d/tmp"
    --storage-driver "$PODMAN_DRIVER" "$@")
}

# Times one command: prints "MS RC"; the command's output goes to LOG.
# Times one command: prints "MS RC"; the command's output goes to LOG. On ^C the command gets
# the signal and the timer still reports, so that the script's exit trap can clean up.
TIMER='import signal, subprocess, sys, time
out = open(sys.argv[1], "ab")
t = time.monotonic_ns()
p = subprocess.Popen(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)
signal.signal(signal.SIGINT, signal.SIG_IGN)
rc = p.wait()
print((time.monotonic_ns() - t) // 1000000, rc)'

declare -A times=() fails=()
run_one() { # TOOL ROUND
  local t=$1 round=$2 d=$work/${1/+/-} ms rc ok=1
  local -a cmd
  clean_dir "$d"
  mkdir -p "$d"
  case $t in
    rkt) # shellcheck disable=SC2054 # the comma is part of the flag's value
      cmd=("$RKT" --dir="$d" --insecure-options=image,http fetch "docker://$ref") ;;
    podman) podman_in "$d" pull --tls-verify=false "$ref" && cmd=("${PODMAN[@]}") ;;
    skopeo+umoci)
      # shellcheck disable=SC2016 # expanded by the inner bash
      cmd=(bash -c 'skopeo copy --src-tls-verify=false "docker://$1" "oci:$2/oci:bench" &&
        umoci unpack --image "$2/oci:bench" "$2/bundle"' bash "$ref" "$d") ;;
  esac
  # Temporary files (podman and skopeo stage blobs in $TMPDIR, default /var/tmp) go to the
  # fresh directory too, so that nothing is left behind even if the run is interrupted.
  mkdir -p "$d/tmpfiles"
  drop_caches
  ms="" rc=""
  read -r ms rc < <(TMPDIR=$d/tmpfiles python3 -c "$TIMER" "$d.log" "${cmd[@]}") || true
  [[ -n $rc ]] || die "the timer failed for $t"
  # Not timed: check that the tool really has the image.
  if [[ $rc != 0 ]]; then
    ok=0
  else
    case $t in
      podman) podman_in "$d" image exists "$ref" && "${PODMAN[@]}" || ok=0 ;;
      skopeo+umoci) [[ -x $d/bundle/rootfs/bin/bash ]] || ok=0 ;;
    esac
  fi
  if ((ok)); then
    times[$t]=${times[$t]:+${times[$t]} }$ms
    log "round $round: $t $ms ms"
  else
    fails[$t]=$((${fails[$t]:-0} + 1))
    log "round $round: $t FAILED (exit $rc) after $ms ms; its output ends with:"
    tail -15 "$d.log" >&2
  fi
  clean_dir "$d"
  rm -f "$d.log"
}

stats() { # "MS MS ..." -> "median min max", in seconds
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[++n] = $1 }
    END {
      m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      printf "%.3f %.3f %.3f\n", m / 1000, v[1] / 1000, v[n] / 1000
    }'
}

install_packages
image_ready || build_image
# Sets layer_count, compressed, uncompressed, per_layer, rootfs, mirror, pad_packages, built.
# shellcheck disable=SC1091
source "$BENCH_CACHE/image.env"

mkdir -p "$BENCH_WORK"
work=$(mktemp -d "$BENCH_WORK/rkt-bench-run.XXXXXX")
port=$("$root/tests/harness/registry.sh" start plain "$work/registry")
ref=127.0.0.1:$port/bench:latest
log "pushing the image to $ref"
skopeo copy -q --dest-tls-verify=false "oci:$BENCH_CACHE/oci:bench" "docker://$ref" >/dev/null

# Podman's storage: overlay (what users get by default) if it works here, else vfs.
probe=$work/podman-probe
# shellcheck disable=SC2016 # a Go template
fmt='{{.Store.GraphDriverName}} ({{range $k, $v := .Store.GraphStatus}}{{$k}}: {{$v}}; {{end}})'
podman_in "$probe" info --format "$fmt"
if ! driver_info=$("${PODMAN[@]}" 2>"$work/probe.log"); then
  log "podman cannot use $PODMAN_DRIVER here ($(tail -1 "$work/probe.log")); using vfs"
  clean_dir "$probe"
  PODMAN_DRIVER=vfs
  podman_in "$probe" info --format "$fmt"
  driver_info=$("${PODMAN[@]}")
fi
clean_dir "$probe"
driver_info=${driver_info/%; )/)}

tools=()
if [[ -x $RKT ]]; then
  tools+=(rkt)
else
  log "SKIPPING rkt: $RKT is not an executable file (build it, or set RKT=/path/to/rkt)"
fi
tools+=(podman skopeo+umoci)

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 0; i < ROUNDS; i++)); do
  for ((j = 0; j < ${#tools[@]}; j++)); do
    run_one "${tools[(i + j) % ${#tools[@]}]}" "$((i + 1))"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
leftover=$(findmnt -rn -o TARGET | awk -v p="$work/" 'index($0, p) == 1' || true)
[[ -z $leftover ]] || log "WARNING: mounts left under $work: $leftover"

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
rkt_median=""
[[ -n ${times[rkt]:-} ]] && read -r rkt_median _ <<<"$(stats "${times[rkt]}")"
if [[ -x $RKT ]]; then
  rkt_version="$RKT: $("$RKT" version 2>/dev/null | head -1 || true), built $(date -u -r "$RKT" +%Y-%m-%dT%H:%MZ) from tree $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"
else
  rkt_version="not run ($RKT is not executable)"
fi
if ((DROP_CACHES)); then cache_note="dropped (sync; echo 3 >/proc/sys/vm/drop_caches) before each timed run"; else cache_note="not dropped"; fi

# shellcheck disable=SC2154 # the image's facts come from image.env
report=$(
  echo "# rkt fetch benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Cold pull of a 5-layer image from a plain-HTTP registry (docker-registry) on 127.0.0.1;"
  echo "$ROUNDS round(s), tools in rotating order, each run into new empty storage."
  echo
  echo "| tool | median (s) | min (s) | max (s) | ratio vs rkt (median / rkt median) |"
  echo "|---|---|---|---|---|"
  for t in rkt podman skopeo+umoci; do
    if [[ $t == rkt && ! -x $RKT ]]; then
      echo "| rkt | skipped | | | |"
      continue
    fi
    if [[ -z ${times[$t]:-} ]]; then
      echo "| $t | failed | | | |"
      continue
    fi
    read -r med min max <<<"$(stats "${times[$t]}")"
    ratio=n/a
    [[ -n $rkt_median ]] && ratio=$(awk -v a="$med" -v b="$rkt_median" 'BEGIN { printf "%.2f", a / b }')
    note=""
    [[ -n ${fails[$t]:-} ]] && note=" (${fails[$t]} of $ROUNDS runs failed)"
    echo "| $t$note | $med | $min | $max | $ratio |"
  done
  echo
  echo "- Image: $layer_count layers, $(mb "$compressed") MB compressed (gzip), $(mb "$uncompressed") MB uncompressed (tar), $(mb "$rootfs") MB on disk; per layer, compressed/uncompressed MB: $per_layer. Debian bookworm minbase (debootstrap from $mirror) plus $pad_packages, split by umoci into layers of about equal size; OCI manifest; built $built."
  echo "- Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"); storage on $(findmnt -n -o FSTYPE -T "$BENCH_WORK") ($BENCH_WORK); load average $load_before before, $load_after after."
  echo "- Page cache: $cache_note. Clock: monotonic, around each tool's process."
  echo "- Command: \`$invocation\`"
  echo "- Timed commands (FRESH is a new empty directory for each run):"
  echo "  - rkt: \`\$RKT --dir=\$FRESH --insecure-options=image,http fetch docker://127.0.0.1:PORT/bench:latest\`"
  echo "  - podman: \`podman --root \$FRESH/root --runroot \$FRESH/runroot --tmpdir \$FRESH/tmp --storage-driver $PODMAN_DRIVER pull --tls-verify=false 127.0.0.1:PORT/bench:latest\`"
  echo "  - skopeo+umoci: \`skopeo copy --src-tls-verify=false docker://127.0.0.1:PORT/bench:latest oci:\$FRESH/oci:bench && umoci unpack --image \$FRESH/oci:bench \$FRESH/bundle\`"
  echo "- Versions: rkt $rkt_version; $(podman --version); podman storage: $driver_info; $(skopeo --version); $(umoci --version); docker-registry $(dpkg-query -W -f='${Version}' docker-registry)."
  raw=""
  for t in "${tools[@]}"; do raw+="; $t: ${times[$t]:-none}"; done
  echo "- Raw times (ms), in round order: ${raw#; }"
)
echo "$report"
mkdir -p "$here/results"
out=$here/results/fetch-$(date -u +%Y-%m-%d).md
n=2
while [[ -e $out ]]; do
  out=$here/results/fetch-$(date -u +%Y-%m-%d)-$n.md
  n=$((n + 1))
done
echo "$report" >"$out"
log "written to ${out#"$root"/}"
((${#fails[@]} == 0))
