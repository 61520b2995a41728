#!/usr/bin/env bash
# Side-by-side build benchmark: `pier build` (release build) against buildah, same machine,
# same run, on the example examples/hello (one static C program, five platforms: amd64,
# arm64/v8, loong64, sw64 stand-in, mips64le).
#   bash bench/build.sh [COLD_RUNS]
# Env: CARGO_TARGET_DIR (default /work/target-rel), WARM_RUNS (default 10), CHANGE_RUNS
# (default 5), ZIG_COLD_RUNS (default 1; 0 skips the run with an empty zig cache),
# BUILDAH_DRIVER (default overlay).
#
# Both sides start from their own fresh copy of examples/hello (the example itself is never
# written to) and end with an OCI image layout on disk holding one index:
#   pier:    pier build -f SRC/pier.yaml --output oci:OUT --cache-dir CACHE
#   buildah: the example's compile commands (one background job per platform, as pier runs
#            its steps), then buildah build --layers --platform <5> --manifest hello on a
#            generated Containerfile (FROM scratch, COPY bin/$TARGETARCH/hello, same
#            entrypoint and labels), then buildah manifest push --all hello oci:OUT:1.0.
#            Its times include the compile, as pier's do; the split is printed too.
# Cases:
#   cold     pier: empty --cache-dir, fresh output dir, fresh source copy (no out/).
#            buildah: empty storage (--root/--runroot in a temp dir), fresh output dir,
#            fresh source copy. On both sides zig's own cache (~/.cache/zig) stays warm: the
#            compile of hello.c is a zig cache hit. Every cold run uses different
#            directories; the index digests of the cold runs are compared (reproducibility).
#   zig-cold the same with ZIG_GLOBAL_CACHE_DIR pointing at an empty directory (zig builds
#            musl for each target again), ZIG_COLD_RUNS runs each.
#   warm     the same command again with the same cache / storage, source and output,
#            nothing changed (hyperfine, WARM_RUNS runs after one warmup).
#   change   the sw64 stand-in's input (sw64-standin.sh's note) changed before every run:
#            one platform's layer differs, the other four hit the cache.
# Reproducibility: the cold runs' index digests on each side, and three more cold buildah
# runs with --timestamp SOURCE_DATE_EPOCH (buildah's option for reproducible builds).
# Every output is checked: the index lists exactly the expected platforms, each image's
# config has the same os/architecture/variant and entrypoint /hello, and its one layer holds
# /hello byte-identical to what the example's compile step produced. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
COLD_RUNS=${1:-3}
WARM_RUNS=${WARM_RUNS:-10}
CHANGE_RUNS=${CHANGE_RUNS:-5}
ZIG_COLD_RUNS=${ZIG_COLD_RUNS:-1}
BUILDAH_DRIVER=${BUILDAH_DRIVER:-overlay}
STEP_TIMEOUT=900 # seconds; bounds every build, compile and buildah call
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-rel}
# pier's image time (it would take the last commit's time anyway); buildah uses it only in
# the --timestamp runs (buildah 1.28 ignores SOURCE_DATE_EPOCH).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH

need_apt=()
command -v buildah >/dev/null || need_apt+=(buildah)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v hyperfine >/dev/null || need_apt+=(hyperfine)
command -v jq >/dev/null || need_apt+=(jq)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "needs ${need_apt[*]}: apt-get install -y ${need_apt[*]}" >&2; exit 2; }
  echo "bench/build.sh: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import ziglang' 2>/dev/null; then
  echo "bench/build.sh: pip install ziglang" >&2
  python3 -m pip install -q --disable-pip-version-check ziglang
fi

cargo build --release -q -p pier-cli

work=$(mktemp -d)
cleanup() {
  # Anything buildah left mounted under the temp dir (overlay), deepest first; nothing else.
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "bench/build.sh: FAIL: $*" >&2; exit 1; }
# A private copy: a concurrent cargo build in the same target dir cannot swap it mid-run.
PIER=$work/pier
cp "$CARGO_TARGET_DIR/release/pier" "$PIER"

# platform (as in the index) -> docker arch (TARGETARCH) and uname (pier's out/ directory)
PLATFORMS_PIER="linux/amd64 linux/arm64/v8 linux/loong64 linux/mips64le linux/sw64"
# buildah 1.28 gets linux/arm64 without the variant: given linux/arm64/v8 in a list of
# platforms, it puts variant v8 on other platforms' entries too, at random (a race).
PLATFORMS_BUILDAH="linux/amd64 linux/arm64 linux/loong64 linux/mips64le linux/sw64"
arch_of() { case $1 in linux/amd64) echo amd64 ;; linux/arm64*) echo arm64 ;; linux/loong64) echo loong64 ;;
  linux/mips64le) echo mips64le ;; linux/sw64) echo sw64 ;; *) fail "unknown platform $1" ;; esac; }
uname_of() { case $1 in amd64) echo x86_64 ;; arm64) echo aarch64 ;; loong64) echo loongarch64 ;;
  mips64le) echo mips64 ;; sw64) echo sw_64 ;; *) fail "unknown arch $1" ;; esac; }

fresh_src() { # DIR: a copy of the example without build output
  mkdir -p "$1"
  cp -a examples/hello/. "$1/"
  rm -rf "${1:?}/out" "${1:?}/bin"
}

# The buildah side, as one script hyperfine can run: compile (the example's commands, from
# pier.yaml and the architecture profiles, writing bin/<TARGETARCH>/hello instead of
# out/<uname>/hello), then build the manifest list and push it.
cat >"$work/buildah-build.sh" <<'SH'
#!/usr/bin/env bash
# buildah-build.sh SRC STORAGE OUT TIMES [buildah build options...]
set -euo pipefail
src=$1 storage=$2 out=$3 times=$4; shift 4
B=(buildah --root "$storage/root" --runroot "$storage/run" --storage-driver "$BUILDAH_DRIVER")
cd "$src"
t0=$EPOCHREALTIME
steps=(
  "mkdir -p bin/amd64 && python3 -m ziglang cc -target x86_64-linux-musl -static -O2 -s -o bin/amd64/hello hello.c"
  "mkdir -p bin/arm64 && python3 -m ziglang cc -target aarch64-linux-musl -static -O2 -s -o bin/arm64/hello hello.c"
  "mkdir -p bin/loong64 && python3 -m ziglang cc -target loongarch64-linux-musl -mcpu=generic_la64+d -static -O2 -s -o bin/loong64/hello hello.c"
  "sh sw64-standin.sh bin/sw64/hello"
  "mkdir -p bin/mips64le && python3 -m ziglang cc -target mips64el-linux-muslabi64 -static -O2 -s -o bin/mips64le/hello hello.c"
)
pids=()
for s in "${steps[@]}"; do timeout "$STEP_TIMEOUT" sh -c "$s" >>compile.log 2>&1 & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || { echo "compile step failed, see $src/compile.log" >&2; exit 1; }; done
t1=$EPOCHREALTIME
cat >Containerfile <<'CF'
FROM scratch
ARG TARGETARCH
COPY bin/${TARGETARCH}/hello /hello
ENTRYPOINT ["/hello"]
LABEL org.opencontainers.image.title=hello \
      org.opencontainers.image.description="prints a greeting and the machine it runs on" \
      org.opencontainers.image.source=https://example.invalid/pier/examples/hello \
      org.opencontainers.image.licenses=Apache-2.0
CF
# A rebuild needs a new list: --manifest adds to an existing one (a changed platform would be
# listed twice).
if "${B[@]}" manifest exists hello; then "${B[@]}" manifest rm hello >/dev/null; fi
timeout "$STEP_TIMEOUT" "${B[@]}" build -q --layers "$@" --platform "$PLATFORMS" --manifest hello -f Containerfile . >>buildah.log 2>&1 \
  || { tail -20 buildah.log >&2; exit 1; }
timeout "$STEP_TIMEOUT" "${B[@]}" manifest push -q --all hello "oci:$out:1.0" >>buildah.log 2>&1 \
  || { tail -20 buildah.log >&2; exit 1; }
t2=$EPOCHREALTIME
echo "$t0 $t1 $t2" >>"$times"
SH
export BUILDAH_DRIVER STEP_TIMEOUT
PLATFORMS=$(tr ' ' ',' <<<"$PLATFORMS_BUILDAH")
export PLATFORMS

pier_build() { # SRC CACHE OUT: one pier build, timed (seconds on stdout)
  local t0 t1
  t0=$EPOCHREALTIME
  timeout "$STEP_TIMEOUT" "$PIER" build -f "$1/pier.yaml" --output "oci:$3" --cache-dir "$2" >>"$work/pier.log" 2>&1 \
    || { tail -20 "$work/pier.log" >&2; fail "pier build -f $1/pier.yaml"; }
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
buildah_build() { # SRC STORAGE OUT [opts]: one buildah pipeline, timed; its split goes to $work/split
  local t
  timeout $((3 * STEP_TIMEOUT)) bash "$work/buildah-build.sh" "$1" "$2" "$3" "$work/split" "${@:4}" \
    || fail "buildah pipeline for $1"
  t=$(tail -1 "$work/split")
  awk '{ printf "%.3f\n", $3 - $1 }' <<<"$t"
}

index_digest() { # OUT: digest of the index tagged 1.0
  echo "sha256:$(skopeo inspect --raw "oci:$1:1.0" | sha256sum | cut -d' ' -f1)"
}
order() { # OUT: the architectures in the order the index lists them
  skopeo inspect --raw "oci:$1:1.0" | jq -r '[.manifests[].platform.architecture] | join(",")'
}

verify() { # OUT "PLATFORMS" REFDIR NAMING(uname|arch) LABEL
  local out=$1 want=$2 ref=$3 naming=$4 label=$5 index got m mf cfg layer arch file member plat
  index=$(skopeo inspect --raw "oci:$out:1.0") || fail "$label: no index tagged 1.0 in $out"
  [ "$(jq -r .mediaType <<<"$index")" = application/vnd.oci.image.index.v1+json ] || fail "$label: 1.0 is not an OCI index"
  got=$(jq -r '.manifests[].platform | [.os, .architecture, .variant // empty] | join("/")' <<<"$index" | sort | tr '\n' ' ')
  [ "$got" = "$(tr ' ' '\n' <<<"$want" | sort | tr '\n' ' ')" ] || fail "$label: index lists [$got], expected [$want]"
  while read -r m plat; do
    mf="$out/blobs/${m/://}"
    [ -f "$mf" ] || fail "$label: manifest $m missing"
    cfg="$out/blobs/$(jq -r '.config.digest | sub(":"; "/")' "$mf")"
    [ "$(jq -r '[.os, .architecture, .variant // empty] | join("/")' "$cfg")" = "$plat" ] \
      || fail "$label: $plat: config says $(jq -c '[.os, .architecture, .variant]' "$cfg")"
    [ "$(jq -c .config.Entrypoint "$cfg")" = '["/hello"]' ] || fail "$label: $plat: entrypoint is not [/hello]"
    [ "$(jq '.layers | length' "$mf")" = 1 ] || fail "$label: $plat: not one layer"
    layer="$out/blobs/$(jq -r '.layers[0].digest | sub(":"; "/")' "$mf")"
    member=$(tar -tf "$layer" | grep -E '^(\./)?hello$') || fail "$label: $plat: no /hello in the layer"
    arch=$(arch_of "$plat")
    file=$ref/bin/$arch/hello
    [ "$naming" = uname ] && file=$ref/out/$(uname_of "$arch")/hello
    cmp -s <(tar -xOf "$layer" "$member") "$file" || fail "$label: $plat: /hello differs from $file"
  done < <(jq -r '.manifests[] | "\(.digest) \(.platform | [.os, .architecture, .variant // empty] | join("/"))"' <<<"$index")
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s – %s", lo, hi }'; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$("$PIER" --version), $(buildah --version), zig $(python3 -m ziglang version)," \
  "buildah storage driver $BUILDAH_DRIVER, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, load average $load_start" >&2

# --- cold: alternating, every run in its own directories -----------------------------------
pier_cold=(); pier_digests=(); buildah_cold=(); buildah_digests=(); buildah_compile=(); buildah_orders=(); pier_orders=()
for i in $(seq "$COLD_RUNS"); do
  fresh_src "$work/p$i/src"
  pier_cold+=("$(pier_build "$work/p$i/src" "$work/p$i/cache" "$work/p$i/oci")")
  verify "$work/p$i/oci" "$PLATFORMS_PIER" "$work/p$i/src" uname "pier cold $i"
  pier_digests+=("$(index_digest "$work/p$i/oci")")
  pier_orders+=("$(order "$work/p$i/oci")")
  fresh_src "$work/b$i/src"
  buildah_cold+=("$(buildah_build "$work/b$i/src" "$work/b$i/storage" "$work/b$i/oci")")
  buildah_compile+=("$(tail -1 "$work/split" | awk '{ printf "%.3f", $2 - $1 }')")
  verify "$work/b$i/oci" "$PLATFORMS_BUILDAH" "$work/b$i/src" arch "buildah cold $i"
  # Both sides compiled the same bytes.
  for a in amd64 arm64 loong64 mips64le sw64; do
    cmp -s "$work/p$i/src/out/$(uname_of $a)/hello" "$work/b$i/src/bin/$a/hello" || fail "cold $i: $a binaries differ"
  done
  buildah_digests+=("$(index_digest "$work/b$i/oci")")
  buildah_orders+=("$(order "$work/b$i/oci")")
  echo "cold $i: pier ${pier_cold[-1]} s ${pier_digests[-1]}; buildah ${buildah_cold[-1]} s" \
    "(compile ${buildah_compile[-1]} s) ${buildah_digests[-1]} [${buildah_orders[-1]}]" >&2
done

# buildah with --timestamp (its option for reproducible builds), for the digests.
TS_RUNS=3
ts_digests=(); ts_images=()
for i in $(seq "$TS_RUNS"); do
  fresh_src "$work/t$i/src"
  buildah_build "$work/t$i/src" "$work/t$i/storage" "$work/t$i/oci" --timestamp "$SOURCE_DATE_EPOCH" >/dev/null
  verify "$work/t$i/oci" "$PLATFORMS_BUILDAH" "$work/t$i/src" arch "buildah --timestamp $i"
  ts_digests+=("$(index_digest "$work/t$i/oci")")
  ts_images+=("$(skopeo inspect --raw "oci:$work/t$i/oci:1.0" | jq -r '[.manifests[].digest] | sort | join(",")')")
  buildah_orders+=("$(order "$work/t$i/oci")")
  echo "buildah --timestamp $i: ${ts_digests[-1]} [${buildah_orders[-1]}]" >&2
done

# --- zig-cold: an empty zig cache too ------------------------------------------------------
pier_zig=(); buildah_zig=()
for i in $(seq "$ZIG_COLD_RUNS"); do
  fresh_src "$work/pz$i/src"
  pier_zig+=("$(ZIG_GLOBAL_CACHE_DIR=$work/pz$i/zig pier_build "$work/pz$i/src" "$work/pz$i/cache" "$work/pz$i/oci")")
  verify "$work/pz$i/oci" "$PLATFORMS_PIER" "$work/pz$i/src" uname "pier zig-cold $i"
  [ "$(index_digest "$work/pz$i/oci")" = "${pier_digests[0]}" ] || fail "pier zig-cold $i: index differs from the cold runs'"
  rm -rf "$work/pz$i/zig"
  fresh_src "$work/bz$i/src"
  buildah_zig+=("$(ZIG_GLOBAL_CACHE_DIR=$work/bz$i/zig buildah_build "$work/bz$i/src" "$work/bz$i/storage" "$work/bz$i/oci")")
  verify "$work/bz$i/oci" "$PLATFORMS_BUILDAH" "$work/bz$i/src" arch "buildah zig-cold $i"
  rm -rf "$work/bz$i/zig"
  echo "zig-cold $i: pier ${pier_zig[-1]} s; buildah ${buildah_zig[-1]} s" >&2
done

# --- warm: run 1's directories, nothing changed --------------------------------------------
hf() { # NAME RUNS [hyperfine options...] CMD: mean and stddev in seconds
  local name=$1 runs=$2; shift 2
  timeout $((runs * STEP_TIMEOUT)) hyperfine -N --style basic --runs "$runs" --export-json "$work/$name.json" "$@" >&2 \
    || fail "hyperfine $name"
  jq -r '.results[0] | "\(.mean) \(.stddev) \(.min) \(.max)"' "$work/$name.json"
}
pier_cmd="$PIER build -f $work/p1/src/pier.yaml --output oci:$work/p1/oci --cache-dir $work/p1/cache"
buildah_cmd="bash $work/buildah-build.sh $work/b1/src $work/b1/storage $work/b1/oci $work/split"
: >"$work/split"
read -r pw_mean pw_sd pw_min pw_max <<<"$(hf pier-warm "$WARM_RUNS" --warmup 1 "$pier_cmd")"
verify "$work/p1/oci" "$PLATFORMS_PIER" "$work/p1/src" uname "pier warm"
[ "$(index_digest "$work/p1/oci")" = "${pier_digests[0]}" ] || fail "pier warm: index differs from the cold run's"
read -r bw_mean bw_sd bw_min bw_max <<<"$(hf buildah-warm "$WARM_RUNS" --warmup 1 "$buildah_cmd")"
bw_compile=$(awk '{ s += $2 - $1 } END { printf "%.3f", s / NR }' "$work/split")
verify "$work/b1/oci" "$PLATFORMS_BUILDAH" "$work/b1/src" arch "buildah warm"

# --- change: the sw64 stand-in's note gets one more word before every run -------------------
cat >"$work/change.sh" <<'SH'
#!/bin/sh
# change.sh SRC: a new sw64 stand-in input (its note grows by one word)
set -eu
sed -i "s/^\(note='.*\)'\$/\1 changed'/" "$1/sw64-standin.sh"
SH
: >"$work/split"
read -r pc_mean pc_sd pc_min pc_max <<<"$(hf pier-change "$CHANGE_RUNS" --prepare "sh $work/change.sh $work/p1/src" "$pier_cmd")"
verify "$work/p1/oci" "$PLATFORMS_PIER" "$work/p1/src" uname "pier change"
grep -q "changed'" "$work/p1/src/sw64-standin.sh" || fail "change.sh changed nothing"
: >"$work/split"
read -r bc_mean bc_sd bc_min bc_max <<<"$(hf buildah-change "$CHANGE_RUNS" --prepare "sh $work/change.sh $work/b1/src" "$buildah_cmd")"
bc_compile=$(awk '{ s += $2 - $1 } END { printf "%.3f", s / NR }' "$work/split")
verify "$work/b1/oci" "$PLATFORMS_BUILDAH" "$work/b1/src" arch "buildah change"
# The changed pier build reused the four other layers: its cache holds exactly 5 + CHANGE_RUNS.
pier_layers=$(find "$work/p1/cache/blobs" -type f | wc -l)

# --- summary -------------------------------------------------------------------------------
distinct() { printf '%s\n' "$@" | sort -u | wc -l; }
short() { printf '%s' "${1:0:19}…"; }
pier_distinct=$(distinct "${pier_digests[@]}")
[ "$pier_distinct" = 1 ] || fail "pier's cold runs gave $pier_distinct different index digests: ${pier_digests[*]}"
fmt() { awk -v m="$1" -v s="$2" -v lo="$3" -v hi="$4" 'BEGIN { printf "%.2f ± %.2f (%.2f – %.2f)", m, s, lo, hi }'; }
echo
echo "| case | pier build (s) | buildah, compile + build + push (s) | of which compile (s) |"
echo "|---|---|---|---|"
echo "| cold, median of $COLD_RUNS (range) | $(median <<<"${pier_cold[*]}") ($(range <<<"${pier_cold[*]}")) |" \
  "$(median <<<"${buildah_cold[*]}") ($(range <<<"${buildah_cold[*]}")) | $(median <<<"${buildah_compile[*]}") |"
if [ "$ZIG_COLD_RUNS" -gt 0 ]; then
  echo "| cold with an empty zig cache, $ZIG_COLD_RUNS run(s) | ${pier_zig[*]} | ${buildah_zig[*]} | |"
fi
echo "| warm, nothing changed: mean ± sd (min – max), $WARM_RUNS runs | $(fmt "$pw_mean" "$pw_sd" "$pw_min" "$pw_max") |" \
  "$(fmt "$bw_mean" "$bw_sd" "$bw_min" "$bw_max") | $bw_compile |"
echo "| sw64 input changed: mean ± sd (min – max), $CHANGE_RUNS runs | $(fmt "$pc_mean" "$pc_sd" "$pc_min" "$pc_max") |" \
  "$(fmt "$bc_mean" "$bc_sd" "$bc_min" "$bc_max") | $bc_compile |"
echo "| platforms in the index | $(wc -w <<<"$PLATFORMS_PIER") | $(wc -w <<<"$PLATFORMS_BUILDAH") | |"
echo "| distinct index digests over the $COLD_RUNS cold runs | $pier_distinct ($(short "${pier_digests[0]}")) |" \
  "$(distinct "${buildah_digests[@]}") | |"
echo "| buildah --timestamp $SOURCE_DATE_EPOCH, $TS_RUNS cold runs: distinct index / image-set digests | | $(distinct "${ts_digests[@]}") / $(distinct "${ts_images[@]}") | |"
echo "| platform orders in the index over all cold runs | $(distinct "${pier_orders[@]}") | $(distinct "${buildah_orders[@]}") | |"
echo
echo "pier cold index digests: ${pier_digests[*]}"
echo "buildah cold index digests: ${buildah_digests[*]}"
echo "buildah --timestamp index digests: ${ts_digests[*]}"
echo "index platform orders: pier ${pier_orders[*]}; buildah ${buildah_orders[*]}"
echo "pier layer cache after the change runs: $pier_layers blobs (5 from cold + $CHANGE_RUNS sw64)"
echo "load average (1, 5, 15 min): $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
