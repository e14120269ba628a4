# shellcheck shell=bash
# Sourced by the harness scripts: the Distribution HTTP API through curl, for what skopeo
# cannot do (hand-made layers and manifests) and for checking what a registry serves.
#
#   api_init HOST:PORT CREDS REPO   picks http or https, and auth: none, basic (CREDS is
#                                   user:password), or a bearer token from the registry's
#                                   realm (pull,push with CREDS, pull without)
#   api_blob FILE                   uploads FILE as a blob (POST, then PUT ?digest=); prints
#                                   its digest
#   api_manifest REF FILE MEDIA     PUTs FILE as the manifest REF (tag or digest), with
#                                   Content-Type MEDIA
#   api_get_manifest REF OUT        GETs manifest REF into OUT (accepting every manifest
#                                   type); prints the Content-Type the registry sent
#   api_curl ARGS...                curl with the auth set up, TLS unverified, failing on
#                                   HTTP errors (with the body shown)
# Everything talks to 127.0.0.1 only. Errors go to stderr and return non-zero.

API_ACCEPT=(
  -H 'Accept: application/vnd.oci.image.manifest.v1+json'
  -H 'Accept: application/vnd.oci.image.index.v1+json'
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json'
  -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json'
  -H 'Accept: application/vnd.docker.distribution.manifest.v1+prettyjws'
  -H 'Accept: application/vnd.docker.distribution.manifest.v1+json'
)

api_curl() {
  curl -sS -k --fail-with-body --max-time 120 "${API_AUTH[@]}" "$@"
}

api_init() {
  local hostport=$1 creds=$2 challenge realm service scope tok
  API_REPO=$3
  if curl -sk -o /dev/null --max-time 5 "https://$hostport/v2/"; then
    API_REG=https://$hostport
  else
    API_REG=http://$hostport
  fi
  API_AUTH=()
  [[ -n $creds ]] && API_AUTH=(-u "$creds")
  challenge=$(curl -sk -o /dev/null -D - --max-time 10 "$API_REG/v2/" | tr -d '\r' |
    grep -i '^www-authenticate:' || true)
  if [[ $challenge == *[Bb]earer* ]]; then
    realm=$(sed -nE 's/.*realm="([^"]*)".*/\1/p' <<<"$challenge")
    service=$(sed -nE 's/.*service="([^"]*)".*/\1/p' <<<"$challenge")
    scope="repository:$API_REPO:pull"
    [[ -n $creds ]] && scope+=",push"
    tok=$(curl -sS -k --fail-with-body --max-time 30 "${API_AUTH[@]}" -G "$realm" \
      --data-urlencode "service=$service" --data-urlencode "scope=$scope" | jq -r .token) || {
      echo "api.sh: no token from $realm for $scope" >&2
      return 1
    }
    API_AUTH=(-H "Authorization: Bearer $tok")
  fi
}

api_blob() {
  local f=$1 d loc sep='?'
  d=sha256:$(sha256sum "$f" | cut -d' ' -f1)
  loc=$(api_curl -X POST -D - -o /dev/null "$API_REG/v2/$API_REPO/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p') || { echo "api.sh: cannot start an upload to $API_REPO" >&2; return 1; }
  [[ -n $loc ]] || { echo "api.sh: no Location in the upload answer for $API_REPO" >&2; return 1; }
  [[ $loc == http* ]] || loc=$API_REG$loc
  [[ $loc == *\?* ]] && sep='&'
  api_curl -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" \
    "$loc${sep}digest=$d" -o /dev/null || { echo "api.sh: uploading $f to $API_REPO failed" >&2; return 1; }
  echo "$d"
}

api_manifest() {
  api_curl -X PUT -H "Content-Type: $3" --data-binary "@$2" \
    "$API_REG/v2/$API_REPO/manifests/$1" -o /dev/null ||
    { echo "api.sh: PUT manifest $API_REPO:$1 ($3) failed" >&2; return 1; }
}

api_get_manifest() {
  api_curl "${API_ACCEPT[@]}" -D "$2.headers" -o "$2" "$API_REG/v2/$API_REPO/manifests/$1" ||
    { echo "api.sh: GET manifest $API_REPO:$1 failed" >&2; return 1; }
  tr -d '\r' <"$2.headers" | sed -n 's/^[Cc]ontent-[Tt]ype: //p' | tail -1
  rm -f "$2.headers"
}
