#!/usr/bin/env bash
# The Debian package as a user meets it: `apt install ./sbx_*.deb` into a fresh Debian 12 root
# (mmdebstrap), then sbxd started by the command line of the installed unit, answering `sbx`
# inside that root and running a sandbox there.
#
#   tests/packaging/deb_test.sh [sbx_*.deb]     root; builds the package when none is given
#
# systemd cannot run the unit here, so sbxd runs with the root as its root, in a mount and
# network namespace of its own (nothing it mounts or creates reaches the host's), in a cgroup parent of
# its own. Everything is removed on exit, failure included. Needs access to a Debian mirror
# (SBX_DEBIAN_MIRROR, SBX_DEBIAN_SECURITY_MIRROR).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
started=$SECONDS

log() { printf '\n== %s\n' "$*" >&2; }
fail() {
  echo "deb test: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "needs root (mmdebstrap, chroot, namespaces)"
command -v mmdebstrap >/dev/null || fail "mmdebstrap is missing (tools/dev.sh deps)"

work=""
cgroup_parent=""
namespace_pid=""

# Mounts made by a failed mmdebstrap or left in the namespace's view never outlive the test; the
# namespace's own mounts go with it.
unmount_under() {
  local mount
  findmnt --list --noheadings --output TARGET | { grep "^$1/" || true; } | sort -r |
    while read -r mount; do umount --lazy "$mount" || true; done
}

stop_sbxd() {
  [[ -n $namespace_pid ]] || return 0
  if [[ -s $work/sbxd.pid ]]; then kill -TERM "$(cat "$work/sbxd.pid")" 2>/dev/null || true; fi
  local deadline=$((SECONDS + 60))
  while kill -0 "$namespace_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$namespace_pid" 2>/dev/null; then
    echo "sbxd did not stop within 60 s; killing it" >&2
    kill -KILL "$(cat "$work/sbxd.pid")" 2>/dev/null || true
  fi
  wait "$namespace_pid" 2>/dev/null || true
  namespace_pid=""
}

cleanup() {
  local status=$?
  [[ -n $work ]] || exit "$status"
  stop_sbxd
  if ((status != 0)) && [[ -s $work/sbxd.log ]]; then
    echo "--- sbxd's log" >&2
    tail -40 "$work/sbxd.log" >&2
  fi
  unmount_under "$work"
  losetup --list --noheadings --output NAME,BACK-FILE | awk -v dir="$work/" \
    'index($2, dir) == 1 { print $1 }' | xargs -r -n1 losetup --detach 2>/dev/null || true
  [[ -z $cgroup_parent ]] || rmdir "/sys/fs/cgroup/$cgroup_parent" 2>/dev/null || true
  if mountpoint -q "$work"; then umount "$work" || umount --lazy "$work"; fi
  rm -rf --one-file-system "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d "${TMPDIR:-/tmp}/sbx-deb-test.XXXXXX")
# In memory: the root is written fast and goes at once.
mount -t tmpfs -o size=4g,mode=0700 sbx-deb-test "$work"
target=$work/root
cgroup_parent=sbx-deb-test-${work##*.}

deb=${1:-}
if [[ -z $deb ]]; then
  deb=$("$root/packaging/build-deb.sh" "$work")
fi
[[ -f $deb ]] || fail "no package at $deb"
deb=$(realpath "$deb")

log "installing $(basename "$deb") into a fresh Debian 12 root (mmdebstrap, apt install)"
suite=bookworm
mirror=${SBX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mirrors=(
  "deb $mirror $suite main"
  "deb $mirror $suite-updates main"
  "deb ${SBX_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $suite-security main"
)
# shellcheck disable=SC2016 # $1 is the hook's argument, expanded by mmdebstrap's shell
mmdebstrap --mode=root --variant=minbase --format=directory --quiet \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --customize-hook="copy-in $(printf %q "$deb") /root" \
  --customize-hook='chroot "$1" sh -c "cd /root && apt install --yes ./sbx_*.deb"' \
  "$suite" "$target" "${mirrors[@]}"

log "checking what the package installed"
# shellcheck disable=SC2016 # dpkg-query's fields, not the shell's
[[ $(chroot "$target" dpkg-query --show --showformat='${Status}' sbx) == "install ok installed" ]] ||
  fail "dpkg does not list sbx as installed"
for file in /usr/sbin/sbxd /usr/bin/sbx /usr/libexec/sbx/sbx-runtime /usr/libexec/sbx/sbx-init; do
  [[ -x $target$file ]] || fail "$file is missing"
done
for file in /etc/sbx/sbxd.json /lib/systemd/system/sbxd.service \
  /usr/share/bash-completion/completions/sbx; do
  [[ -f $target$file ]] || fail "$file is missing"
done
# shellcheck disable=SC2016 # dpkg-query's fields, not the shell's
chroot "$target" dpkg-query --show --showformat='${Conffiles}' sbx | grep -q ' /etc/sbx/sbxd.json ' ||
  fail "/etc/sbx/sbxd.json is not a conffile"
unit=$target/lib/systemd/system/sbxd.service
[[ $(readlink "$target/etc/systemd/system/multi-user.target.wants/sbxd.service") == \
  /lib/systemd/system/sbxd.service ]] || fail "postinst did not enable sbxd.service"
# Without systemd running, postinst starts nothing: sbxd would have made its run directory.
[[ ! -e $target/run/sbx ]] || fail "postinst started sbxd in a chroot"
grep -qx 'KillMode=process' "$unit" || fail "the unit would kill sandboxes when sbxd stops"
grep -qx 'Delegate=yes' "$unit" || fail "the unit does not delegate cgroups"
chroot "$target" /usr/sbin/sbxd --config /etc/sbx/sbxd.json --print-config >/dev/null ||
  fail "sbxd does not accept its default configuration"

exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
read -ra command <<<"$exec_start"
[[ ${command[0]} == /* ]] || fail "ExecStart is not an absolute command line: $exec_start"

log "starting sbxd as the unit does: $exec_start"
# The root becomes the namespace's root by pivot_root, not by chroot alone: the kernel refuses
# user namespaces (which every sandbox needs) to a chrooted process. The shell records its pid,
# which the sh and sbxd it execs keep.
# shellcheck disable=SC2016 # expanded by those shells
unshare --mount --net --propagation private --fork -- bash -c '
  set -e
  root=$1
  echo $$ >"$2"
  shift 2
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
  mount --rbind /dev "$root/dev"
  cd "$root"
  pivot_root . mnt
  exec chroot . /bin/sh -c "umount --lazy /mnt && exec \"\$@\"" sh "$@"' \
  _ "$target" "$work/sbxd.pid" "${command[@]}" --cgroup-parent "$cgroup_parent" \
  >"$work/sbxd.log" 2>&1 &
namespace_pid=$!

# The CLI runs where sbxd does: in its mount namespace, under its root.
in_root() {
  nsenter --target "$(cat "$work/sbxd.pid")" --mount --root --wd "$@"
}

deadline=$((SECONDS + 120))
until [[ -s $work/sbxd.pid ]] && in_root sbx version >"$work/version" 2>&1; do
  kill -0 "$namespace_pid" 2>/dev/null || fail "sbxd exited: $(tail -5 "$work/sbxd.log")"
  ((SECONDS < deadline)) || fail "sbxd did not answer on /run/sbx/sbxd.sock within 120 s"
  sleep 0.2
done
grep -q '^sbxd ' "$work/version" || fail "sbx version did not show sbxd's: $(cat "$work/version")"
listing=$(in_root sbx ls) || fail "sbx ls failed"
[[ $listing == *"SANDBOX ID"* ]] || fail "sbx ls printed no table: $listing"
[[ -S $target/run/sbx/sbxd.sock ]] || fail "no socket at /run/sbx/sbxd.sock"

log "running a sandbox with the installed sbx-runtime and sbx-init"
# The local registry fixture's busybox image (built from Debian's busybox-static, cached), loaded
# from a file: sbxd's network namespace has no way to a registry.
layout=$("$root/tools/images/build.sh" busybox | awk '$1 == "library/busybox" { print $2 }')
[[ -d $layout ]] || fail "no busybox image layout from tools/images/build.sh"
tar -C "$layout" -cf "$target/root/busybox.tar" .
in_root sbx images load -i /root/busybox.tar --tag busybox:latest >/dev/null ||
  fail "sbx images load failed"
# A sandbox's host name is its id.
output=$(in_root sbx run --rm --network none busybox hostname) || fail "sbx run failed: $output"
[[ -n $output && $output != "$(hostname)" ]] || fail "the sandbox printed '$output'"
[[ -z $(in_root sbx ls -q) ]] || fail "sbx run --rm left a sandbox running"

log "stopping sbxd"
stop_sbxd
grep -q 'sbxd stopped' "$work/sbxd.log" || fail "sbxd did not stop gracefully"
if [[ -f /sys/fs/cgroup/cgroup.controllers && -e /sys/fs/cgroup/$cgroup_parent ]]; then
  fail "sbxd left its cgroup parent behind"
fi

log "deb test passed in $((SECONDS - started))s"
