#!/usr/bin/env bash
# Runs the daemon benchmark: a release sbxd and Docker side by side on python:3.11 from the local
# registry. Needs root and Docker's engine (Debian's docker.io); starts dockerd if none runs.
#
#   bench/daemon/run.sh [--runs N] [--burst N]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tools/dev.sh build >&2
registry=$(tools/registry/registry.sh up)
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "install docker.io for the comparison" >&2; exit 1; }
  (dockerd >/tmp/sbx-bench-dockerd.log 2>&1 &)
  for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
state=$(mktemp -d /tmp/sbx-bench-XXXXXX)
build/release/bin/sbxd --state-dir "$state/lib" --run-dir "$state/run" --cgroup-parent sbx-bench \
  --registry-mirror "http://$registry" --insecure-registry "$registry" --log-level warn \
  >"$state/sbxd.log" 2>&1 &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 100); do [[ -S $state/run/sbxd.sock ]] && break; sleep 0.05; done
/usr/bin/python3 bench/daemon/daemon_bench.py --socket "$state/run/sbxd.sock" --registry "$registry" "$@"
