#!/usr/bin/env bash
# Compares two builds of sbxd on the daemon benchmark, in one session on one machine: the runs
# alternate (A, B, A, B, ...) so that both see the same moments of a machine whose speed drifts.
# Each run gets a fresh sbxd with its own state; python:3.11 comes from the local registry.
#
#   bench/daemon/compare.sh <bin dir A> <bin dir B> [--rounds N] [daemon_bench.py options]
#
# e.g. an older commit built in a worktree against this one:
#   git worktree add /tmp/sbx-old <commit> && (cd /tmp/sbx-old && tools/dev.sh build)
#   bench/daemon/compare.sh /tmp/sbx-old/build/release/bin build/release/bin --runs 30 --burst 50
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[[ $# -ge 2 ]] || { sed -n '2,11p' "$0" >&2; exit 2; }
a=$(cd "$1" && pwd) b=$(cd "$2" && pwd)
shift 2
rounds=2
if [[ ${1:-} == --rounds ]]; then rounds=$2; shift 2; fi
registry=$(tools/registry/registry.sh up)
out=$(mktemp -d /tmp/sbx-compare-XXXXXX)

run_one() {
  local label=$1 bin=$2 round=$3
  shift 3
  local state
  state=$(mktemp -d /tmp/sbx-bench-XXXXXX)
  "$bin/sbxd" --state-dir "$state/lib" --run-dir "$state/run" --cgroup-parent "sbx-cmp-$label" \
    --registry-mirror "http://$registry" --insecure-registry "$registry" --log-level warn \
    >"$state/sbxd.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 200); do [[ -S $state/run/sbxd.sock ]] && break; sleep 0.05; done
  /usr/bin/python3 bench/daemon/daemon_bench.py --socket "$state/run/sbxd.sock" \
    --registry "$registry" --no-docker --json "$out/$label-$round.json" "$@" >&2 &&
    status=0 || status=$?
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$state"
  return "$status"
}

for round in $(seq 1 "$rounds"); do
  run_one A "$a" "$round" "$@"
  run_one B "$b" "$round" "$@"
done

/usr/bin/python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def p50s(label):
    merged = {}
    for r in range(1, rounds + 1):
        for name, stats in json.load(open(f"{out}/{label}-{r}.json")).items():
            if "p50_ms" in stats:
                merged.setdefault(name, []).append(stats["p50_ms"])
    return merged
a, b = p50s("A"), p50s("B")
print(f"| Measurement (median of {rounds} alternating runs' p50) | A | B | B / A |")
print("|---|---|---|---|")
for name, values in a.items():
    if name not in b:
        continue
    ma, mb = statistics.median(values), statistics.median(b[name])
    print(f"| {name} | {ma:.2f} ms | {mb:.2f} ms | {mb / ma:.2f} |")
PY
