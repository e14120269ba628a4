# Sourced by the harness scripts: the Distribution API through curl.
#   api_init REGISTRY CREDS REPO   sets up auth (basic, or a bearer token for push)
#   api_blob FILE                  uploads a blob, prints its digest
#   api_manifest TAG FILE MEDIA    puts a manifest

api_init() {
  API_REPO=$3
  # https when the registry speaks it (tls mode), else http.
  if curl -sk -o /dev/null "https://$1/v2/"; then API_REG=https://$1; else API_REG=http://$1; fi
  API_AUTH=()
  [[ -n $2 ]] && API_AUTH=(-u "$2")
  local challenge
  challenge=$(curl -ks -o /dev/null -D - "$API_REG/v2/" | tr -d '\r' | grep -i '^www-authenticate:' || true)
  if [[ $challenge == *Bearer* ]]; then
    local realm service tok
    realm=$(sed -E 's/.*realm="([^"]+)".*/\1/' <<<"$challenge")
    service=$(sed -E 's/.*service="([^"]+)".*/\1/' <<<"$challenge")
    tok=$(curl -ksf "${API_AUTH[@]}" "$realm?service=$service&scope=repository:$API_REPO:pull,push" | jq -r .token)
    API_AUTH=(-H "Authorization: Bearer $tok")
  fi
}

api_blob() {
  local f=$1 d loc sep='?'
  d=sha256:$(sha256sum "$f" | cut -d' ' -f1)
  loc=$(curl -ksf "${API_AUTH[@]}" -X POST -D - -o /dev/null "$API_REG/v2/$API_REPO/blobs/uploads/" |
    tr -d '\r' | grep -i '^location:' | cut -d' ' -f2)
  [[ $loc == http* ]] || loc="$API_REG$loc"
  [[ $loc == *\?* ]] && sep='&'
  curl -ksf "${API_AUTH[@]}" -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$f" "$loc${sep}digest=$d" -o /dev/null
  echo "$d"
}

api_manifest() {
  curl -ksf "${API_AUTH[@]}" -X PUT -H "Content-Type: $3" --data-binary "@$2" \
    "$API_REG/v2/$API_REPO/manifests/$1" -o /dev/null
}
