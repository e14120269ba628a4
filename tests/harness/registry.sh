#!/usr/bin/env bash
# Starts and stops a real Distribution registry (Debian's docker-registry) on 127.0.0.1 for
# tests, with its own storage.
#
#   registry.sh start MODE STATEDIR   prints the port; writes STATEDIR/port and STATEDIR/pid
#   registry.sh stop STATEDIR
#
# MODE: plain (HTTP), tls (HTTPS with a test CA in STATEDIR/ca.pem), basic (HTTP, htpasswd
# user tester/secret), token (HTTP, token auth; see token_server.py for the policy).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL PIDFILE
  for _ in $(seq 1 200); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' "$1" || true)
    [[ $code == 200 || $code == 401 ]] && return 0
    kill -0 "$(cat "$2")" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

make_tls() { # STATEDIR
  local d=$1
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rkt test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
}

start() {
  local mode=$1 d=$2
  mkdir -p "$d/storage"
  d=$(cd "$d" && pwd)
  local scheme=http extra=""
  case $mode in
    plain) ;;
    tls)
      make_tls "$d"
      scheme=https
      extra="  tls:
    certificate: $d/server.pem
    key: $d/server.key"
      ;;
    basic)
      htpasswd -Bbn tester secret >"$d/htpasswd"
      ;;
    token)
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rkt test token signer" \
        -keyout "$d/token.key" -out "$d/token.pem" 2>/dev/null
      local tport
      tport=$(free_port)
      python3 "$here/token_server.py" "$tport" "$d/token.key" "$d/token.pem" \
        >"$d/token.log" 2>&1 &
      echo $! >"$d/token.pid"
      echo "$tport" >"$d/token_port"
      wait_http "http://127.0.0.1:$tport/health" "$d/token.pid" ||
        { echo "token server did not start: $(cat "$d/token.log")" >&2; exit 1; }
      ;;
    *) echo "unknown mode $mode (plain, tls, basic, token)" >&2; exit 2 ;;
  esac
  for attempt in 1 2 3; do
    local port
    port=$(free_port)
    {
      echo "version: 0.1"
      echo "log:"
      echo "  level: info"
      echo "  formatter: text"
      echo "storage:"
      echo "  filesystem:"
      echo "    rootdirectory: $d/storage"
      echo "  delete:"
      echo "    enabled: true"
      echo "http:"
      echo "  addr: 127.0.0.1:$port"
      echo "  secret: rkt-tests"
      [[ -n $extra ]] && echo "$extra"
      if [[ $mode == basic ]]; then
        echo "auth:"
        echo "  htpasswd:"
        echo "    realm: rkt-test"
        echo "    path: $d/htpasswd"
      fi
      if [[ $mode == token ]]; then
        echo "auth:"
        echo "  token:"
        echo "    realm: http://127.0.0.1:$(cat "$d/token_port")/token"
        echo "    service: rkt-test-registry"
        echo "    issuer: rkt-test-issuer"
        echo "    rootcertbundle: $d/token.pem"
      fi
    } >"$d/config.yml"
    docker-registry serve "$d/config.yml" >>"$d/registry.log" 2>&1 &
    echo $! >"$d/pid"
    if wait_http "$scheme://127.0.0.1:$port/v2/" "$d/pid"; then
      echo "$port" >"$d/port"
      echo "$port"
      return 0
    fi
    kill "$(cat "$d/pid")" 2>/dev/null || true
    echo "registry did not start on port $port (attempt $attempt)" >&2
  done
  tail -20 "$d/registry.log" >&2
  exit 1
}

stop() {
  local d=$1
  for f in pid token.pid; do
    [[ -f $d/$f ]] || continue
    local pid
    pid=$(cat "$d/$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$d/$f"
  done
}

case ${1:-} in
  start) [[ $# == 3 ]] || { echo "usage: $0 start MODE STATEDIR" >&2; exit 2; }; start "$2" "$3" ;;
  stop) [[ $# == 2 ]] || { echo "usage: $0 stop STATEDIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 start MODE STATEDIR | stop STATEDIR" >&2; exit 2 ;;
esac
