#!/usr/bin/env bash
# The one entry point for building, testing and trying sbx; CI calls `tools/dev.sh ci`.
#
#   tools/dev.sh deps         install the Debian packages everything needs
#   tools/dev.sh build        release build (build/release)
#   tools/dev.sh quickstart   build, start the local registry and sbxd, run the seed example;
#                             sbxd keeps running
#   tools/dev.sh stop         stop the sbxd the quickstart started
#   tools/dev.sh deb          build the Debian package (build/deb/sbx_*.deb)
#   tools/dev.sh wheel        build the Python SDK's wheel and sdist (build/python)
#   tools/dev.sh test-deb     install the package into a fresh Debian 12 root and start sbxd
#   tools/dev.sh test         the whole test suite, as CI runs it
#   tools/dev.sh ci           deps + test
#   tools/dev.sh format       reformat C++ and proto sources
#   tools/dev.sh format-check fail if any source is not formatted
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SBX_CACHE_DIR=${SBX_CACHE_DIR:-/var/cache/sbx}

log() { printf '\n== %s\n' "$*" >&2; }

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "sbx needs root (namespaces, cgroups, mounts); run this as root" >&2
    exit 1
  fi
}

deps() {
  need_root
  log "installing Debian packages"
  tools/install-deps.sh
}

configure_build() {
  local preset=$1
  shift
  cmake --preset "$preset" -DBUILD_TESTING="${BUILD_TESTING:-ON}" "$@" >/dev/null
  cmake --build "build/$preset" -j"$(nproc)"
}

build() {
  log "building (release)"
  BUILD_TESTING=OFF configure_build release
}

venv() {
  # A venv on Debian's python3 (which has python3-grpcio), with the SDK installed.
  local dir=$1
  if [[ ! -x $dir/bin/python ]]; then
    /usr/bin/python3 -m venv --system-site-packages "$dir"
  fi
  # The distribution was named sbx before it became sbx-sandbox; both would own the package.
  "$dir/bin/pip" uninstall --yes --quiet --disable-pip-version-check sbx 2>/dev/null || true
  "$dir/bin/pip" install --quiet --no-index --disable-pip-version-check "$root/python"
}

start_sbxd() {
  # start_sbxd <bin dir> <state dir>: starts sbxd in the background with the local registry as
  # docker.io's mirror; prints its socket path.
  local bin=$1 state=$2
  local registry
  registry=$(tools/registry/registry.sh addr)
  mkdir -p "$state"
  "$bin/sbxd" --state-dir "$state/lib" --run-dir "$state/run" --cgroup-parent "sbx-$(basename "$state")" \
    --registry-mirror "http://$registry" --insecure-registry "$registry" \
    >"$state/sbxd.log" 2>&1 &
  echo $! >"$state/sbxd.pid"
  for _ in $(seq 1 200); do
    [[ -S $state/run/sbxd.sock ]] && break
    if ! kill -0 "$(cat "$state/sbxd.pid")" 2>/dev/null; then
      cat "$state/sbxd.log" >&2
      echo "sbxd did not start" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "$state/run/sbxd.sock"
}

stop_sbxd() {
  local state=$1
  if [[ -f $state/sbxd.pid ]]; then
    local pid
    pid=$(cat "$state/sbxd.pid")
    kill "$pid" 2>/dev/null || true
    # Started inside a command substitution, sbxd is not this shell's child: `wait` cannot wait
    # for it. Its graceful stop (warm sandboxes removed, cgroup parent left clean) is awaited here.
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && echo "sbxd (pid $pid) is still stopping after 60 s" >&2
    rm -f "$state/sbxd.pid"
  fi
}

discard_sbxd() {
  # discard_sbxd <state dir>: for test runs, stops sbxd and removes what its sandboxes leave
  # (they outlive a graceful stop: running ones, and ended ones keeping their files).
  local state=$1 parent group pid left
  stop_sbxd "$state"
  parent="sbx-$(basename "$state")"
  for _ in $(seq 1 100); do
    left=0
    for group in /sys/fs/cgroup/*/"$parent"/*/ /sys/fs/cgroup/"$parent"/*/; do
      [[ -d $group ]] || continue
      while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$group/cgroup.procs"
      rmdir "$group" 2>/dev/null || left=1
    done
    ((left)) || break
    sleep 0.1
  done
  rmdir /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent" 2>/dev/null || true
}

# Where the quickstart keeps its sbxd (state, socket, log, pid) and the SDK's venv.
quickstart_state=${SBX_QUICKSTART_DIR:-/tmp/sbx-quickstart}

quickstart() {
  need_root
  deps
  build
  log "starting the local registry (images built from Debian packages, cached)"
  tools/registry/registry.sh up >/dev/null
  local state=$quickstart_state
  stop_sbxd "$state"
  log "starting sbxd"
  local socket
  socket=$(start_sbxd "$root/build/release/bin" "$state")
  # Until the example has run, a failure stops sbxd again; then it keeps running for the user.
  trap 'stop_sbxd '"$state" EXIT
  log "installing the Python SDK into $state/venv"
  venv "$state/venv"
  log "running the seed example"
  SBX_BASE_URL="unix://$socket" "$state/venv/bin/python" - <<'PY'
from sbx import Sandbox

with Sandbox.run() as sandbox:
    result = sandbox.exec(["python", "--version"]).result()
    print(result.stdout, end="")
    print("sandbox", sandbox.sandbox_id, "ran it, exit code", result.returncode)
PY
  trap - EXIT
  local stop_command="sudo tools/dev.sh stop"
  [[ -z ${SBX_QUICKSTART_DIR:-} ]] || stop_command="sudo SBX_QUICKSTART_DIR=$state tools/dev.sh stop"
  cat <<EOF

sbxd keeps running (pid $(cat "$state/sbxd.pid"), log $state/sbxd.log). Use it with:

  export SBX_BASE_URL=unix://$socket
  build/release/bin/sbx run --rm python:3.11 python --version
  $state/venv/bin/python          # the Python SDK: from sbx import Sandbox

Stop it with: $stop_command
EOF
}

stop() {
  need_root
  if [[ ! -f $quickstart_state/sbxd.pid ]]; then
    echo "no sbxd started by the quickstart is running" >&2
    return 0
  fi
  log "stopping sbxd (sandboxes it still runs keep running: sbx rm them first)"
  stop_sbxd "$quickstart_state"
}

deb() {
  log "building the Debian package"
  packaging/build-deb.sh
}

wheel() {
  # The SDK's distributions, written by its in-tree backend: no pip, no network.
  local out=$root/build/python
  mkdir -p "$out"
  log "building the Python SDK's wheel and sdist into $out"
  (cd python && /usr/bin/python3 -c '
import sys
import _sbx_build as backend
print(sys.argv[1] + "/" + backend.build_wheel(sys.argv[1]))
print(sys.argv[1] + "/" + backend.build_sdist(sys.argv[1]))' "$out")
}

test_deb() {
  need_root
  local started=$SECONDS package
  package=$(packaging/build-deb.sh)
  tests/packaging/deb_test.sh "$package"
  log "package built and tested in $((SECONDS - started))s"
}

format() {
  git ls-files '*.cc' '*.h' '*.proto' | xargs clang-format -i
}

format_check() {
  log "checking formatting"
  git ls-files '*.cc' '*.h' '*.proto' | xargs clang-format --dry-run -Werror
}

test_all() {
  need_root
  local started=$SECONDS
  format_check
  log "building (asan)"
  configure_build asan
  local build=$root/build/asan
  export SBX_TEST_REQUIRE=root,userns,overlayfs,cgroups,favordynmods
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
  log "unit tests"
  ctest --test-dir "$build" -L 'unit|fuzz-replay' -j2 --output-on-failure
  log "privileged tests (real kernel)"
  ctest --test-dir "$build" -L privileged --output-on-failure
  log "local registry"
  tools/registry/registry.sh up
  export SBX_TEST_REGISTRY
  SBX_TEST_REGISTRY=$(tools/registry/registry.sh addr)
  if ctest --test-dir "$build" -N -L registry | grep -q "Total Tests: [1-9]"; then
    log "image store tests against the local registry"
    ctest --test-dir "$build" -L registry --output-on-failure
  fi
  log "python SDK unit tests"
  /usr/bin/python3 -m pytest -q python/tests/unit
  log "end-to-end tests of sbxd's API (each run starts its own sbxd)"
  SBX_BIN_DIR=$build/bin SBX_E2E=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
  log "adversarial suite (tests/security) against a real sbxd"
  SBX_BIN_DIR=$build/bin SBX_E2E=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/security
  log "end-to-end tests of the Python SDK against a real sbxd"
  local venv_dir=/tmp/sbx-ci-venv state=/tmp/sbx-ci-sdk
  rm -rf "$venv_dir" "$state"
  venv "$venv_dir"
  local socket
  socket=$(start_sbxd "$build/bin" "$state")
  SBX_E2E=1 SBX_BASE_URL="unix://$socket" "$venv_dir/bin/python" -m pytest -q -p no:cacheprovider \
    python/tests/e2e || { discard_sbxd "$state"; tail -50 "$state/sbxd.log" >&2; return 1; }
  discard_sbxd "$state"
  log "the Debian package: a release build of its own, installed into a fresh Debian 12 root"
  test_deb
  log "all tests passed in $((SECONDS - started))s"
}

case ${1:-} in
  deps) deps ;;
  build) build ;;
  quickstart) quickstart ;;
  stop) stop ;;
  deb) deb ;;
  wheel) wheel ;;
  test-deb) test_deb ;;
  test) test_all ;;
  ci)
    deps
    test_all
    ;;
  format) format ;;
  format-check) format_check ;;
  *)
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac
