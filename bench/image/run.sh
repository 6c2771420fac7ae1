#!/usr/bin/env bash
# Pull + unpack of python:3.11 from the local registry: sbx's image store against `docker pull`
# of the same image from the same registry, in the same run. Needs root and Docker's engine
# (Debian's docker.io); starts dockerd if none runs.
#
#   bench/image/run.sh [--runs N]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=5
[[ ${1:-} == --runs ]] && runs=$2
tools/dev.sh build >&2
registry=$(tools/registry/registry.sh up)
if ! docker info >/dev/null 2>&1; then
  (dockerd >/tmp/sbx-bench-dockerd.log 2>&1 &)
  for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
echo "== sbx image store (cold = empty store; warm = layers cached; get = local lookup)"
build/release/bin/image_pull_bench --mirror "http://$registry" --image python:3.11 --runs "$runs"
echo "== docker pull $registry/library/python:3.11 (cold = image removed first)"
image=$registry/library/python:3.11
times=()
for _ in $(seq 1 "$runs"); do
  docker rmi -f "$image" >/dev/null 2>&1 || true
  docker builder prune -af >/dev/null 2>&1 || true
  start=$(date +%s%N)
  docker pull -q "$image" >/dev/null
  end=$(date +%s%N)
  times+=($(((end - start) / 1000000)))
done
start=$(date +%s%N)
docker pull -q "$image" >/dev/null
end=$(date +%s%N)
printf 'docker pull cold (ms): %s\n' "${times[*]}"
printf 'docker pull warm (ms): %s\n' "$(((end - start) / 1000000))"
