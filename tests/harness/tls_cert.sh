#!/usr/bin/env bash
# Makes a test CA and a server certificate signed by it: OUTDIR/ca.pem, OUTDIR/server.pem,
# OUTDIR/server.key, valid for each NAME (DNS names, or IP addresses) for one day.
set -euo pipefail
out=${1:?usage: tls_cert.sh OUTDIR NAME...}
shift
mkdir -p "$out"
cd "$out"
san=""
for n in "$@"; do
  if [[ $n =~ ^[0-9.]+$ ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -subj "/CN=rkt discovery test CA" -keyout ca.key -out ca.pem 2>openssl.log
openssl req "${ec[@]}" -subj "/CN=$1" -keyout server.key -out server.csr 2>>openssl.log
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "${san%,}" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -extfile server.ext -out server.pem 2>>openssl.log
