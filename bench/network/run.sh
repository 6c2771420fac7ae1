#!/usr/bin/env bash
# Runs the network benchmark: create and teardown rates of a release sbxd with networking on and
# off, and a burst of concurrent creates. Needs root; sbxd runs in a network namespace of its own.
#
#   bench/network/run.sh [--runs N] [--burst N] [--pool N] [--json out.json]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tools/dev.sh build >&2
registry=$(tools/registry/registry.sh up)
/usr/bin/python3 bench/network/network_bench.py --bin build/release/bin --registry "$registry" "$@"
