#!/usr/bin/env bash
# Side-by-side registry benchmark: pier (release build) and CNCF distribution 2.8.2
# (Debian's docker-registry), same machine, same run, loopback only.
#   bash bench/registry.sh [BLOB_MIB]
# Measures: manifest GET requests/s (wrk, 16 connections), single-stream blob upload and
# download (curl, monolithic POST / GET), idle RSS. Prints a Markdown table.
# pier runs with access control on (its only mode): pushes go in as admin over Basic auth,
# anonymous manifest GETs read the public project `library`, and one more wrk run reads a
# private project with a Bearer token, as docker does.
set -euo pipefail
cd "$(dirname "$0")/.."
BLOB_MIB=${1:-1024}
WRK_SECONDS=10
command -v wrk >/dev/null && command -v docker-registry >/dev/null && command -v curl >/dev/null || {
  echo "needs wrk, docker-registry and curl: apt-get install -y wrk docker-registry curl" >&2; exit 2; }

cargo build --release -q -p pier-cli
PIER=${CARGO_TARGET_DIR:-target}/release/pier
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

source bench/lib.sh
PIER_PORT=5101; DIST_PORT=5102
start_pier "$PIER" $PIER_PORT "$work/pier"; pier_pid=$started
start_dist $DIST_PORT "$work/dist"; dist_pid=$started
wait_ready $PIER_PORT $DIST_PORT
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
pier_idle=$(rss $pier_pid); dist_idle=$(rss $dist_pid)

head -c $((BLOB_MIB * 1024 * 1024)) /dev/urandom >"$work/blob"
blob_digest="sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)"
printf '{}' >"$work/config"
config_digest="sha256:$(sha256sum "$work/config" | cut -d' ' -f1)"

put_manifest() { # port repo
  curl -sf "${auth[@]}" -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data "$manifest" "127.0.0.1:$1/v2/$2/manifests/v1"
}

results=()
token_rps=""
for which in pier dist; do
  port=$PIER_PORT; auth=(-u "admin:$ADMIN_PASSWORD")
  [ $which = dist ] && { port=$DIST_PORT; auth=(); }
  # Start each registry's upload from a clean page cache: the previous run's gigabyte is
  # still being written back otherwise, and both registries would pay for it unevenly.
  sync; sleep 2
  up=$(push_blob $port "$work/blob" "$blob_digest")
  push_blob $port "$work/config" "$config_digest" >/dev/null
  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$config_digest" "$blob_digest" $((BLOB_MIB * 1024 * 1024)))
  put_manifest $port $REPO
  down=$(curl -sf -o /dev/null -w '%{time_total}' "127.0.0.1:$port/v2/$REPO/blobs/$blob_digest")
  rps=$(wrk -t2 -c16 -d${WRK_SECONDS}s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$port/v2/$REPO/manifests/v1" | awk '/Requests\/sec/ {print $2}')
  results+=("$which $up $down $rps")
  if [ $which = pier ]; then
    # The same GET on a private project, with the token docker would use.
    curl -sf "${auth[@]}" -o /dev/null -X POST "127.0.0.1:$port/api/v1/projects" -d '{"name":"private"}'
    push_blob $port "$work/config" "$config_digest" private/bench >/dev/null
    curl -sf "${auth[@]}" -o /dev/null -X POST "127.0.0.1:$port/v2/private/bench/blobs/uploads/?mount=$blob_digest&from=$REPO"
    put_manifest $port private/bench
    token=$(curl -sf "${auth[@]}" "127.0.0.1:$port/service/token?service=pier&scope=repository:private/bench:pull" \
      | sed 's/.*"token":"\([^"]*\)".*/\1/')
    token_rps=$(wrk -t2 -c16 -d${WRK_SECONDS}s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v2/private/bench/manifests/v1" \
      | awk '/Requests\/sec/ {print $2}')
  fi
done

mib=$BLOB_MIB
echo
echo "| registry | manifest GET req/s (c16) | upload ${mib} MiB (GB/s) | download (GB/s) | idle RSS (MiB) |"
echo "|---|---|---|---|---|"
for r in "${results[@]}"; do
  read -r which up down rps <<<"$r"
  idle=$pier_idle; name="pier"; [ $which = dist ] && { idle=$dist_idle; name="distribution 2.8.2"; }
  awk -v n="$name" -v up="$up" -v down="$down" -v rps="$rps" -v idle="$idle" -v mib="$mib" 'BEGIN {
    gb = mib * 1048576 / 1e9;
    printf "| %s | %.0f | %.2f | %.2f | %.1f |\n", n, rps, gb / up, gb / down, idle / 1024 }'
done
echo
echo "pier manifest GET on a private project with a Bearer token (c16): $token_rps req/s"
