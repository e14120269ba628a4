#!/usr/bin/env bash
# Starts and stops a real Distribution registry (Debian's docker-registry, 2.8) on 127.0.0.1
# for the tests, with its own storage under STATEDIR.
#
#   registry.sh start MODE STATEDIR   prints the port on stdout (and nothing else)
#   registry.sh stop STATEDIR         stops everything start started; fine if nothing runs
#
# MODE:
#   plain  HTTP, no auth
#   tls    HTTPS; a test CA is made in STATEDIR/ca.pem (also STATEDIR/certs/ca.crt, for
#          `skopeo --dest-cert-dir STATEDIR/certs`), and a server cert for IP 127.0.0.1 and
#          DNS localhost signed by it
#   basic  HTTP, htpasswd (bcrypt) auth: user tester, password secret
#   token  HTTP, Distribution token auth; the realm is token_server.py on another port
#          (anonymous: pull on public/*; tester:secret: pull+push everywhere; bad creds: 401)
#
# Every mode has filesystem storage in STATEDIR/storage and delete enabled. Files written:
#   port, pid, mode, config.yml, registry.log (the registry's log and access log),
#   watchdog.pid; token mode also token_port, token.pid, token.log, token.key, token.pem.
# `start` waits until GET /v2/ answers 200 or 401. A port is picked by binding port 0 and
# releasing it; if the registry then cannot bind it (a race), start retries on a new one.
# Calling `start` on a STATEDIR whose registry runs in the same mode just prints its port.
# STATEDIR's storage is kept between start/stop cycles. REGISTRY_PORT picks the port instead
# (examples/serve-images.sh serves on 5000).
#
# A watchdog (watchdog.py) ends the registry and token server when STATEDIR is removed,
# after HARNESS_LIFETIME seconds (default 7200; 0 = never), or, if HARNESS_OWNER_PID is set,
# when that process exits (a test binary can pass its own pid), so a crashed test or a
# registry kept in a static leaks nothing for long.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIFETIME=${HARNESS_LIFETIME:-7200}
OWNER=${HARNESS_OWNER_PID:-0}
[[ $LIFETIME =~ ^[0-9]+$ && $OWNER =~ ^[0-9]+$ ]] || { echo "registry.sh: HARNESS_LIFETIME and HARNESS_OWNER_PID must be numbers" >&2; exit 2; }
ISSUER=rkt-test-issuer
SERVICE=rkt-test-registry

die() { echo "registry.sh: $*" >&2; exit 1; }
# The interpreter itself, not a wrapper (pyenv's shim runs python as a child of a bash
# process on some paths, so $! would not be python's pid); also saves the shim's start-up.
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PY=python3
usage() { echo "usage: registry.sh start plain|tls|basic|token STATEDIR | registry.sh stop STATEDIR" >&2; exit 2; }

for tool in docker-registry openssl curl python3; do
  command -v "$tool" >/dev/null || die "$tool not found (see tests/harness/packages.txt)"
done

# alive PID WORD: PID runs (not a zombie) and its command line contains WORD (so a stale
# pid file whose number was reused by another process is not mistaken for ours).
alive() {
  local pid=$1 word=$2 state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$word"
}

# pidfile_alive FILE WORD
pidfile_alive() { [[ -f $1 ]] && alive "$(cat "$1")" "$2"; }

# kill_wait FILE WORD: TERM the process in pid file FILE, wait (then KILL), remove FILE.
kill_wait() {
  local f=$1 word=$2 pid i
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if alive "$pid" "$word"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do alive "$pid" "$word" || break; sleep 0.05; done
    if alive "$pid" "$word"; then
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do alive "$pid" "$word" || break; sleep 0.05; done
      alive "$pid" "$word" && die "could not stop pid $pid ($word)"
    fi
  fi
  rm -f "$f"
}

# owns_port PID PORT: PID itself listens on 127.0.0.1:PORT (so a probe that got an answer
# did not get it from some other server that took the port first).
owns_port() {
  "$PY" - "$1" "$2" <<'PY'
import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f[9])
try:
    fds = os.listdir("/proc/%s/fd" % pid)
except OSError:
    sys.exit(1)
for fd in fds:
    try:
        if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in {"socket:[%s]" % i for i in inodes}:
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
PY
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PIDFILE WORD [CURL_ARGS...]: until URL answers 200/401 (30 s at most), or the
# process dies.
wait_http() {
  local url=$1 pidfile=$2 word=$3 code i
  shift 3
  for ((i = 0; i < 600; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true)
    [[ $code == 200 || $code == 401 ]] && return 0
    pidfile_alive "$pidfile" "$word" || return 1
    sleep 0.05
  done
  return 1
}

make_tls() { # STATEDIR: CA + server cert, kept while valid for another day
  local d=$1
  if [[ -f $d/server.pem && -f $d/ca.pem ]] &&
    openssl x509 -checkend 86400 -noout -in "$d/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=rkt test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>"$d/openssl.log" || die "openssl (CA): $(cat "$d/openssl.log")"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>"$d/openssl.log" || die "openssl (CSR): $(cat "$d/openssl.log")"
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 7 -extfile "$d/server.ext" -out "$d/server.pem" 2>"$d/openssl.log" ||
    die "openssl (server cert): $(cat "$d/openssl.log")"
  openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null || die "the server cert does not verify"
  mkdir -p "$d/certs"
  cp "$d/ca.pem" "$d/certs/ca.crt"
  rm -f "$d/server.csr" "$d/openssl.log"
}

start_token_server() { # STATEDIR
  local d=$1 i
  if [[ ! -f $d/token.key || ! -f $d/token.pem ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=rkt test token signer" \
      -keyout "$d/token.key" -out "$d/token.pem" 2>"$d/openssl.log" || die "openssl (token cert): $(cat "$d/openssl.log")"
    rm -f "$d/openssl.log"
  fi
  rm -f "$d/token_port"
  HARNESS_LIFETIME=$LIFETIME "$PY" "$here/token_server.py" "$d/token_port" "$d/token.key" "$d/token.pem" \
    "$ISSUER" "$SERVICE" </dev/null >>"$d/token.log" 2>&1 &
  echo $! >"$d/token.pid"
  for ((i = 0; i < 600; i++)); do
    [[ -s $d/token_port ]] && break
    pidfile_alive "$d/token.pid" "$d/token_port" || die "the token server died: $(tail -5 "$d/token.log")"
    sleep 0.05
  done
  [[ -s $d/token_port ]] || die "the token server did not start: $(tail -5 "$d/token.log")"
  wait_http "http://127.0.0.1:$(cat "$d/token_port")/health" "$d/token.pid" "$d/token_port" ||
    die "the token server does not answer: $(tail -5 "$d/token.log")"
}

write_config() { # MODE STATEDIR PORT
  local mode=$1 d=$2 port=$3
  cat <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $d/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: rkt-harness-secret
EOF
  case $mode in
    tls)
      cat <<EOF
  tls:
    certificate: $d/server.pem
    key: $d/server.key
EOF
      ;;
    basic)
      cat <<EOF
auth:
  htpasswd:
    realm: rkt-test
    path: $d/htpasswd
EOF
      ;;
    token)
      cat <<EOF
auth:
  token:
    realm: http://127.0.0.1:$(cat "$d/token_port")/token
    service: $SERVICE
    issuer: $ISSUER
    rootcertbundle: $d/token.pem
EOF
      ;;
  esac
}

start() {
  local mode=$1 d=$2
  case $mode in plain | tls | basic | token) ;; *) usage ;; esac
  mkdir -p "$d/storage" || die "cannot create $d"
  d=$(cd "$d" && pwd)

  if pidfile_alive "$d/pid" "$d/config.yml"; then
    local running
    running=$(cat "$d/mode" 2>/dev/null || echo unknown)
    [[ $running == "$mode" ]] || die "a $running registry already runs in $d: stop it first"
    if [[ $mode != token ]] || pidfile_alive "$d/token.pid" "$d/token_port"; then
      cat "$d/port"
      return 0
    fi
  fi
  # Whatever is left of an earlier run (a dead registry, a lone token server) goes.
  stop "$d"

  local scheme=http check=()
  case $mode in
    tls)
      make_tls "$d"
      scheme=https
      check=(--cacert "$d/ca.pem")
      ;;
    basic)
      command -v htpasswd >/dev/null || die "htpasswd not found (apache2-utils)"
      htpasswd -Bbn tester secret >"$d/htpasswd"
      ;;
    token) start_token_server "$d" ;;
  esac
  echo "$mode" >"$d/mode"

  local attempt port retry
  for attempt in 1 2 3 4 5; do
    port=${REGISTRY_PORT:-$(free_port)}
    write_config "$mode" "$d" "$port" >"$d/config.yml"
    echo "== $(date -u +%FT%TZ) registry.sh start $mode on 127.0.0.1:$port (attempt $attempt)" >>"$d/registry.log"
    docker-registry serve "$d/config.yml" </dev/null >>"$d/registry.log" 2>&1 &
    echo $! >"$d/pid"
    retry=0
    if wait_http "$scheme://127.0.0.1:$port/v2/" "$d/pid" "$d/config.yml" "${check[@]}"; then
      if owns_port "$(cat "$d/pid")" "$port"; then
        echo "$port" >"$d/port"
        local pids=("$(cat "$d/pid")")
        [[ $mode == token ]] && pids+=("$(cat "$d/token.pid")")
        "$PY" "$here/watchdog.py" "$d" "$LIFETIME" "$OWNER" "${pids[@]}" </dev/null >/dev/null 2>&1 &
        echo $! >"$d/watchdog.pid"
        echo "$port"
        return 0
      fi
      retry=1 # something else took the port between free_port and the registry's bind
      echo "== port $port is someone else's; retrying" >>"$d/registry.log"
    elif tail -5 "$d/registry.log" | grep -q "address already in use"; then
      retry=1
    fi
    kill_wait "$d/pid" "$d/config.yml"
    ((retry)) || break
  done
  stop "$d"
  die "the registry did not start ($mode, STATEDIR $d); last lines of $d/registry.log:
$(tail -15 "$d/registry.log")"
}

stop() {
  local d=$1
  [[ -d $d ]] || return 0
  d=$(cd "$d" && pwd)
  kill_wait "$d/watchdog.pid" "watchdog.py $d "
  kill_wait "$d/pid" "$d/config.yml"
  kill_wait "$d/token.pid" "$d/token_port"
}

case ${1:-} in
  start) [[ $# == 3 ]] || usage; start "$2" "$3" ;;
  stop) [[ $# == 2 ]] || usage; stop "$2" ;;
  *) usage ;;
esac
