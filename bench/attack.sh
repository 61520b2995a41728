#!/usr/bin/env bash
# Resource-attack replay: the attacks of the security review, each for a bounded time,
# against a release build of pier with a fresh data dir, loopback only.
#   bash bench/attack.sh [PIER_BINARY]
# Default binary: target/release/pier (built with cargo if absent). Phases: baseline, long
# login names, audit growth through long token scopes, idle and slow connections, argon2
# memory from 50 connections, one address flooding wrong passwords. During each phase a
# second address (127.0.0.2) measures a cached pull and an uncached login, and pier's RSS
# and CPU are sampled every 200 ms. Prints a Markdown table; bench/attack.py has the knobs
# (ATTACK_SECONDS, BASELINE_SECONDS, RECOVER_SECONDS, PHASES=1,2,..., P2_MAX, ...).
# About 2-3 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { # command package
  command -v "$1" >/dev/null && return 0
  echo "installing $2 ..." >&2
  local sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -q "$2" >/dev/null
}
need python3 python3
need curl curl

PIER=${1:-}
if [ -z "$PIER" ]; then
  PIER=${CARGO_TARGET_DIR:-target}/release/pier
  [ -x "$PIER" ] || cargo build --release -q -p pier-cli
fi
[ -x "$PIER" ] || { echo "no pier binary at $PIER" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=${PIER_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
ADMIN_PASSWORD=bench-admin-password
PIER_ADMIN_PASSWORD=$ADMIN_PASSWORD "$PIER" serve --listen 127.0.0.1:$PORT --data-dir "$work/data" --log warn \
  >"$work/pier.log" 2>&1 & pids+=($!)
pier_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
curl -sf -o /dev/null "127.0.0.1:$PORT/healthz" || { echo "pier did not start:" >&2; cat "$work/pier.log" >&2; exit 1; }

echo "pier: $PIER ($(sha256sum "$PIER" | cut -c1-12)), pid $pier_pid, 127.0.0.1:$PORT, data $work/data"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
status=0
PIER_PORT=$PORT PIER_PID=$pier_pid PIER_DATA="$work/data" PIER_ADMIN_PASSWORD=$ADMIN_PASSWORD \
  PIER_LABEL="$PIER" python3 bench/attack.py || status=$?
if ! kill -0 "$pier_pid" 2>/dev/null; then
  echo "pier exited during the run; its log ends with:"; tail -n 20 "$work/pier.log"
elif [ -s "$work/pier.log" ]; then
  echo "pier log: $(wc -l <"$work/pier.log") lines at warn and above; the last 5:"
  tail -n 5 "$work/pier.log" | cut -c1-300
fi
exit $status
