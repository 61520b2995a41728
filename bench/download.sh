#!/usr/bin/env bash
# Bulk blob downloads, side by side on loopback: pier (one or more builds), CNCF
# distribution 2.8.2 (Debian's docker-registry) and a plain sendfile server
# (bench/sendfile_server.py: the ceiling of this machine's loopback with this curl).
#   bash bench/download.sh [BLOB_MIB] [label=PIER_BINARY ...]
# Without binaries it builds and measures this checkout's release build as `pier`.
# For each server, RUNS rounds (the servers alternate within a round): one curl GET of
# the blob, then STREAMS concurrent GETs (aggregate GB/s = bytes / wall time). Peak RSS is
# VmHWM, reset before the concurrent downloads, read after them. Server CPU is the
# server's user + system time per GiB sent (from /proc/PID/stat), which other load on the
# machine disturbs far less than GB/s. Prints a Markdown table of medians (all runs listed
# below it) and the load average before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
BLOB_MIB=${1:-1024}; shift || true
RUNS=${RUNS:-3}
STREAMS=${STREAMS:-16}
command -v docker-registry >/dev/null && command -v curl >/dev/null && command -v python3 >/dev/null || {
  echo "needs docker-registry, curl and python3: apt-get install -y docker-registry curl python3" >&2; exit 2; }

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q -p pier-cli
  bins=("pier=${CARGO_TARGET_DIR:-target}/release/pier")
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
source bench/lib.sh

head -c $((BLOB_MIB * 1024 * 1024)) /dev/urandom >"$work/blob"
digest="sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)"

# name port pid url, one server a line.
servers=()
port=5110
for b in "${bins[@]}"; do
  label=${b%%=*}; bin=${b#*=}
  start_pier "$bin" $port "$work/$label"
  wait_ready $port
  auth=(-u "admin:$ADMIN_PASSWORD")
  push_blob $port "$work/blob" "$digest" >/dev/null
  servers+=("$label $port $started http://127.0.0.1:$port/v2/$REPO/blobs/$digest")
  port=$((port + 1))
done
start_dist $port "$work/dist"
wait_ready $port
auth=()
push_blob $port "$work/blob" "$digest" >/dev/null
servers+=("distribution $port $started http://127.0.0.1:$port/v2/$REPO/blobs/$digest")
port=$((port + 1))
python3 bench/sendfile_server.py $port "$work/blob" & pids+=($!)
servers+=("sendfile $port $! http://127.0.0.1:$port/blob")
sleep 0.5
# Every copy into the page cache before timing anything; and the check that each server
# hands out the right bytes.
for s in "${servers[@]}"; do
  read -r name _ _ url <<<"$s"
  got="sha256:$(curl -sf "$url" | sha256sum | cut -d' ' -f1)"
  [ "$got" = "$digest" ] || { echo "$name served $got, not $digest" >&2; exit 1; }
done
sync

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
now() { date +%s.%N; }
gbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.2f", b / t / 1e9 }'; }
bytes=$((BLOB_MIB * 1024 * 1024))
declare -A single multi hwm cpu1 cpun
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# CPU milliseconds per GiB: ticks (1/CLK_TCK s) spent over GiB sent.
cpu_ms() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v b="$2" 'BEGIN { printf "%.0f", t * 1000 / hz / (b / 1073741824) }'; }
for round in $(seq "$RUNS"); do
  for s in "${servers[@]}"; do
    read -r name _ pid url <<<"$s"
    c0=$(cpu_ticks "$pid")
    t=$(curl -sf -o /dev/null -w '%{time_total}' "$url")
    single[$name]+="$(gbps $bytes "$t") "
    cpu1[$name]+="$(cpu_ms $(($(cpu_ticks "$pid") - c0)) $bytes) "
    # Peak RSS from here on (writing 5 to clear_refs resets VmHWM).
    echo 5 >"/proc/$pid/clear_refs"
    c0=$(cpu_ticks "$pid"); start=$(now); cpids=()
    for _ in $(seq "$STREAMS"); do curl -sf -o /dev/null "$url" & cpids+=($!); done
    for p in "${cpids[@]}"; do wait "$p"; done
    t=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
    multi[$name]+="$(gbps $((bytes * STREAMS)) "$t") "
    cpun[$name]+="$(cpu_ms $(($(cpu_ticks "$pid") - c0)) $((bytes * STREAMS))) "
    hwm[$name]+="$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status") "
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "| server | 1 stream GB/s | $STREAMS streams GB/s | server CPU ms/GiB, 1 stream | $STREAMS streams | peak RSS MiB ($STREAMS streams) |"
echo "|---|---|---|---|---|---|"
for s in "${servers[@]}"; do
  read -r name _ <<<"$s"
  echo "| $name | $(median <<<"${single[$name]}") | $(median <<<"${multi[$name]}") | $(median <<<"${cpu1[$name]}") | $(median <<<"${cpun[$name]}") | $(median <<<"${hwm[$name]}") |"
done
echo
echo "medians of $RUNS runs, ${BLOB_MIB} MiB blob; every run:"
for s in "${servers[@]}"; do
  read -r name _ <<<"$s"
  echo "  $name: 1 stream ${single[$name]}| $STREAMS streams ${multi[$name]}| CPU ms/GiB ${cpu1[$name]}| ${cpun[$name]}| peak RSS ${hwm[$name]}"
done
echo "load average before: $load_before; after: $load_after"
