#!/usr/bin/env bash
# Runs the density benchmark (bench/daemon/density.py) against a release sbxd with its default
# configuration and Docker. Needs root; starts dockerd if none runs.
#
#   bench/daemon/density.sh [--count N] [--docker-count N] [--network public|none]
set -euo pipefail
here=$(dirname "$0")
exec "$here/with_sbxd.sh" density "$here/density.py" "$@"
