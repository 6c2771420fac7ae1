#!/usr/bin/env bash
# Runs the daemon benchmark: a release sbxd and Docker side by side on python:3.11 from the local
# registry. Needs root and Docker's engine (Debian's docker.io); starts dockerd if none runs.
#
#   bench/daemon/run.sh [--runs N] [--burst N]
set -euo pipefail
here=$(dirname "$0")
exec "$here/with_sbxd.sh" bench "$here/daemon_bench.py" "$@"
