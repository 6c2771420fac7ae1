#!/usr/bin/env bash
# Runs the density benchmark (bench/daemon/density.py) against a release sbxd with its default
# configuration and Docker. Needs root; starts dockerd if none runs.
#
#   bench/daemon/density.sh [--count N] [--docker-count N] [--network public|none]
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
docker pull -q "$registry/library/busybox:latest" >/dev/null 2>&1 || true
state=$(mktemp -d /tmp/sbx-density-XXXXXX)
build/release/bin/sbxd --state-dir "$state/lib" --run-dir "$state/run" --cgroup-parent sbx-density \
  --registry-mirror "http://$registry" --insecure-registry "$registry" --log-level warn \
  >"$state/sbxd.log" 2>&1 &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 100); do [[ -S $state/run/sbxd.sock ]] && break; sleep 0.05; done
/usr/bin/python3 bench/daemon/density.py --socket "$state/run/sbxd.sock" --registry "$registry" "$@"
