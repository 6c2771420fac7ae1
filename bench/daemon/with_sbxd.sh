#!/usr/bin/env bash
# Runs a daemon benchmark program against a release sbxd of its own and Docker: builds sbx, starts
# the local registry, dockerd if none runs, and sbxd (state in a temporary directory, cgroup
# parent sbx-NAME), then `python3 PROGRAM --socket SOCK --registry ADDR ARGS...`; stops sbxd and
# removes its state afterwards. Needs root and Docker's engine (Debian's docker.io).
#
#   bench/daemon/with_sbxd.sh NAME PROGRAM [ARGS...]
set -euo pipefail
name=$1 program=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tools/dev.sh build >&2
registry=$(tools/registry/registry.sh up)
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "install docker.io for the comparison" >&2; exit 1; }
  (dockerd >/tmp/sbx-bench-dockerd.log 2>&1 &)
  for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
state=$(mktemp -d "/tmp/sbx-$name-XXXXXX")
build/release/bin/sbxd --state-dir "$state/lib" --run-dir "$state/run" --cgroup-parent "sbx-$name" \
  --registry-mirror "http://$registry" --insecure-registry "$registry" --log-level warn \
  >"$state/sbxd.log" 2>&1 &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 100); do [[ -S $state/run/sbxd.sock ]] && break; sleep 0.05; done
/usr/bin/python3 "$program" --socket "$state/run/sbxd.sock" --registry "$registry" "$@"
