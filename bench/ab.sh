#!/usr/bin/env bash
# Manifest GET throughput of two pier builds side by side (say main and a branch), for a
# change whose cost is a few percent: on a shared, noisy machine only many short runs,
# alternated and taken as medians, tell that from noise. Also gives each server's CPU
# time per request (user and system), which scheduling noise moves less than req/s.
#   bash bench/ab.sh BEFORE_BIN AFTER_BIN [ROUNDS] [SECONDS]
# Run it once more with the two swapped: the two ports are not quite alike either.
set -euo pipefail
B=$1; A=$2; ROUNDS=${3:-7}; SECS=${4:-5}
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
PW=bench-admin-password
start() { PIER_ADMIN_PASSWORD=$PW "$1" serve --listen 127.0.0.1:$2 --data-dir "$work/$3" --log warn >"$work/$3.log" 2>&1 & pids+=($!); }
start "$B" 5201 before; bpid=$!; start "$A" 5202 after; apid=$!
for port in 5201 5202; do for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$port/v2/" && break; sleep 0.1; done; done
printf '{}' >"$work/config"; cd="sha256:$(sha256sum "$work/config" | cut -d' ' -f1)"
head -c 1024 /dev/urandom >"$work/layer"; ld="sha256:$(sha256sum "$work/layer" | cut -d' ' -f1)"
manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":1024}]}' "$cd" "$ld")
for port in 5201 5202; do
  for f in config:$cd layer:$ld; do
    curl -sf -u "admin:$PW" -o /dev/null -X POST -H 'Content-Type: application/octet-stream' \
      --data-binary @"$work/${f%%:*}" "127.0.0.1:$port/v2/library/bench/blobs/uploads/?digest=${f#*:}"
  done
  curl -sf -u "admin:$PW" -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data "$manifest" "127.0.0.1:$port/v2/library/bench/manifests/v1"
done
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; } # utime stime, clock ticks
tck=$(getconf CLK_TCK)
# "<requests/s> <server CPU microseconds per request>"
run() {
  local port=$1 pid=$2 c0 c1 out
  c0=$(cpu "$pid")
  out=$(wrk -t2 -c16 -d${SECS}s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$port/v2/library/bench/manifests/v1")
  c1=$(cpu "$pid")
  echo "$out" | awk -v c0="$c0" -v c1="$c1" -v tck="$tck" '
    /requests in/ {n=$1} /Requests\/sec/ {r=$2}
    END {split(c0, a, " "); split(c1, b, " ");
      printf "%s %.2f %.2f", r, (b[1] - a[1]) / tck * 1e6 / n, (b[2] - a[2]) / tck * 1e6 / n}'
}
bs=(); as=(); bu=(); au=(); bk=(); ak=()
for i in $(seq "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then b=$(run 5201 $bpid); a=$(run 5202 $apid); else a=$(run 5202 $apid); b=$(run 5201 $bpid); fi
  read -r br bus bks <<<"$b"; read -r ar aus aks <<<"$a"
  bs+=("$br"); as+=("$ar"); bu+=("$bus"); au+=("$aus"); bk+=("$bks"); ak+=("$aks")
  echo "round $i: before $br req/s, user $bus + sys $bks us/req   after $ar req/s, user $aus + sys $aks us/req"
done
med() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
mb=$(med "${bs[@]}"); ma=$(med "${as[@]}")
echo "median req/s: before $mb  after $ma  ratio $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", a/b}')"
mb=$(med "${bu[@]}"); ma=$(med "${au[@]}")
echo "median server user CPU us/request: before $mb  after $ma  ratio $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", a/b}')"
mb=$(med "${bk[@]}"); ma=$(med "${ak[@]}")
echo "median server sys CPU us/request: before $mb  after $ma  ratio $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", a/b}')"
