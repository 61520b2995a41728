# Shared by the registry benchmarks: start pier and distribution side by side on loopback
# and push blobs to either the same way. Source it after `set -euo pipefail`; it needs
# $work (a scratch directory) and the array pids (processes to stop on exit).

ADMIN_PASSWORD=bench-admin-password
REPO=library/bench

start_pier() { # binary port data-dir -> pid in $started
  PIER_ADMIN_PASSWORD=$ADMIN_PASSWORD "$1" serve --listen "127.0.0.1:$2" --data-dir "$3" --log warn \
    >"$3.log" 2>&1 &
  started=$!; pids+=("$started")
}

start_dist() { # port root-dir -> pid in $started
  cat >"$2.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $2 }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$1 }
YML
  docker-registry serve "$2.yml" >"$2.log" 2>&1 &
  started=$!; pids+=("$started")
}

wait_ready() { # port...
  local port
  for port in "$@"; do
    for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$port/v2/" && break; sleep 0.1; done
  done
}

auth=()
push_blob() { # port file digest [repo] -> seconds of the PUT that carries the bytes
  # The same flow on both registries (distribution 2.8 has no monolithic POST): open a
  # session, then one PUT with the whole body. Set auth=(-u admin:...) for pier.
  local loc sep repo=${4:-$REPO}
  loc=$(curl -sf "${auth[@]}" -D - -o /dev/null -X POST "127.0.0.1:$1/v2/$repo/blobs/uploads/" \
    | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  case "$loc" in http*) ;; *) loc="http://127.0.0.1:$1$loc" ;; esac
  sep='?'; case "$loc" in *\?*) sep='&' ;; esac
  curl -sf "${auth[@]}" -o /dev/null -w '%{time_total}' -X PUT -H 'Content-Type: application/octet-stream' \
    -T "$2" "${loc}${sep}digest=$3"
}
