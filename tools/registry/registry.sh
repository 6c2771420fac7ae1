#!/usr/bin/env bash
# The local registry fixture: Debian's docker-registry on loopback, serving the images of
# tools/images/build.sh as a mirror of docker.io. See tools/registry/README.md.
#
# Usage: registry.sh start|stop|status|addr|push|up
#   start   start the registry in the background (idempotent) and wait until it answers
#   stop    stop the registry this script started
#   status  print whether it runs (exit 0) or not (exit 3)
#   addr    print 127.0.0.1:PORT
#   push    build the images (cached) and push those the registry does not hold yet
#   up      start + push; prints the address on its last line (the only line on stdout)
#
# Environment: SBX_CACHE_DIR (default /var/cache/sbx), SBX_REGISTRY_PORT (default 5000),
# SBX_REGISTRY_TIMEOUT (seconds to wait for the registry to answer, default 30).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_dir=${SBX_CACHE_DIR:-/var/cache/sbx}
port=${SBX_REGISTRY_PORT:-5000}
timeout=${SBX_REGISTRY_TIMEOUT:-30}
dir=$cache_dir/registry
config=$dir/config.yml
log_file=$dir/registry.log
pidfile=$dir/registry.pid
registry_bin=/usr/bin/docker-registry

log() { echo "registry.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((10#$port == 0 || 10#$port > 65535)); then
  die "SBX_REGISTRY_PORT=$port is not a TCP port"
fi
port=$((10#$port))
[[ $timeout =~ ^[0-9]+$ ]] || die "SBX_REGISTRY_TIMEOUT=$timeout is not a number of seconds"
addr=127.0.0.1:$port

# answers: whether a v2 registry answers at addr.
answers() {
  local headers
  headers=$(curl -fsS -o /dev/null --max-time 2 -D - "http://$addr/v2/" 2>/dev/null) || return 1
  grep -qi '^docker-distribution-api-version: *registry/2\.0' <<<"$headers"
}

# our_pid: prints the pid of the registry this script started, if it still runs.
our_pid() {
  local pid exe
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ $exe == "$registry_bin" ]] || return 1
  echo "$pid"
}

lock() {
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
}

unlock() { exec 9>&-; }

write_config() {
  local secret
  # Signs upload state between requests; only this process checks it.
  secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  cat >"$config.tmp" <<EOF
# Written by tools/registry/registry.sh start; edits are overwritten.
version: 0.1
log:
  level: info
  fields:
    service: sbx-registry-fixture
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $addr
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  chmod 0600 "$config.tmp"
  mv "$config.tmp" "$config"
}

cmd_start() {
  lock
  if answers; then
    log "a registry already answers at $addr"
    unlock
    return
  fi
  local pid deadline
  if pid=$(our_pid); then
    log "registry (pid $pid) runs but does not answer at $addr yet"
  else
    [[ -x $registry_bin ]] || die "$registry_bin is missing (run tools/install-deps.sh)"
    mkdir -p "$dir/data"
    write_config
    echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) start on $addr" >>"$log_file"
    # Detached from this shell and its terminal; fd 9 (the lock) must not leak into it.
    setsid "$registry_bin" serve "$config" </dev/null >>"$log_file" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$pidfile"
  fi
  deadline=$((SECONDS + timeout))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"
      tail -n 20 "$log_file" >&2
      die "the registry exited (log: $log_file)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$log_file" >&2
      die "the registry (pid $pid) did not answer at http://$addr/v2/ within ${timeout}s (log: $log_file)"
    fi
    sleep 0.1
  done
  log "registry (pid $pid) answers at $addr"
  unlock
}

cmd_stop() {
  lock
  local pid deadline
  if ! pid=$(our_pid); then
    rm -f "$pidfile"
    if answers; then
      log "a registry answers at $addr but this script did not start it; leaving it alone"
    else
      log "not running"
    fi
    unlock
    return
  fi
  kill -TERM "$pid"
  deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "registry (pid $pid) ignored SIGTERM for 10s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.1
  done
  rm -f "$pidfile"
  log "stopped registry (pid $pid)"
  unlock
}

cmd_status() {
  local pid
  if pid=$(our_pid) && answers; then
    echo "running: pid $pid, http://$addr, data in $dir/data"
  elif answers; then
    echo "running: a registry answers at http://$addr (not started by this script)"
  elif pid=$(our_pid); then
    echo "starting or stuck: pid $pid does not answer at http://$addr (log: $log_file)"
    return 3
  else
    echo "not running"
    return 3
  fi
}

# remote_digest REPO TAG: the digest the registry holds for REPO:TAG, empty if none.
remote_digest() {
  curl -fsS --max-time 10 -o /dev/null -D - -I \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$addr/v2/$1/manifests/$2" 2>/dev/null |
    tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }' || true
}

cmd_push() {
  answers || die "no registry answers at $addr (run: $0 start)"
  command -v skopeo >/dev/null || die "skopeo is missing (run tools/install-deps.sh)"
  local images repo layout tag local_digest remote pushed=0
  images=$("$here/../images/build.sh")
  lock
  while read -r repo layout; do
    # Tags and their index digests, from the layout's index.json.
    while read -r tag local_digest; do
      remote=$(remote_digest "$repo" "$tag")
      if [[ $remote == "$local_digest" ]]; then
        log "$repo:$tag is up to date ($local_digest)"
        continue
      fi
      log "pushing $repo:$tag ($local_digest)"
      skopeo --policy "$here/policy.json" copy --quiet --all --preserve-digests \
        --dest-tls-verify=false "oci:$layout:$tag" "docker://$addr/$repo:$tag" >&2
      remote=$(remote_digest "$repo" "$tag")
      [[ $remote == "$local_digest" ]] ||
        die "after the push the registry holds $repo:$tag as '$remote', want $local_digest"
      pushed=$((pushed + 1))
    done < <(/usr/bin/python3 -c '
import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    print(m["annotations"]["org.opencontainers.image.ref.name"], m["digest"])
' "$layout/index.json")
  done <<<"$images"
  unlock
  log "pushed $pushed tag(s) to $addr"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  addr) echo "$addr" ;;
  push) cmd_push ;;
  up)
    cmd_start
    cmd_push
    echo "$addr"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
