#!/usr/bin/env bash
# Builds the OCI image layouts the local registry fixture serves (see tools/registry/README.md):
#
#   library/python:3.11      Debian bookworm minbase (layer 1) + python3, python-is-python3,
#                            ca-certificates, netbase (layer 2); also tagged 3.13 and 3.15, the
#                            tags the product's examples use (same image, Debian's Python 3.11)
#   library/busybox:latest   Debian's busybox-static, one layer; also tagged 1.36
#
# Every image is an OCI image index with one entry for this machine's platform, pointing at an OCI
# manifest with gzip layers. Layers are reproducible: the same Debian packages give the same
# digests.
#
# Usage: build.sh [--rebuild] [python|busybox]...      (default: both)
#
# Prints "REPOSITORY LAYOUT_DIR" per image on stdout; progress goes to stderr.
# Results are cached under ${SBX_CACHE_DIR:-/var/cache/sbx}/images/<name>/, keyed on this script,
# oci.py, the architecture and the Debian package versions: the python image is rebuilt when the
# host's apt lists know a newer version of one of its packages, busybox when the installed
# busybox-static changes. Building python needs root (mmdebstrap) and access to a Debian mirror
# (SBX_DEBIAN_MIRROR, default http://deb.debian.org/debian, for bookworm and bookworm-updates;
# SBX_DEBIAN_SECURITY_MIRROR, default http://deb.debian.org/debian-security).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_dir=${SBX_CACHE_DIR:-/var/cache/sbx}
images_dir=$cache_dir/images
suite=bookworm
python_packages=(python3 python-is-python3 ca-certificates netbase)
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
oci=(/usr/bin/python3 "$here/oci.py")
# Time stamps written by maintainer scripts (e.g. /etc/shadow) derive from this; the bookworm
# release date.
export SOURCE_DATE_EPOCH=1686355200

log() { echo "build.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

work_dirs=()
cleanup() {
  local d
  for d in "${work_dirs[@]}"; do
    # --one-file-system: never descend into a mount a failed mmdebstrap may have left behind.
    rm -rf --one-file-system "$d"
  done
}
trap cleanup EXIT

# new_work_dir: sets the caller's $work to a new directory, removed on exit.
new_work_dir() {
  work=$(mktemp -d "$images_dir/.work.XXXXXX")
  work_dirs+=("$work")
}

dpkg_arch=$(dpkg --print-architecture)
case $dpkg_arch in
  amd64 | arm64 | s390x | riscv64) arch=$dpkg_arch ;;
  ppc64el) arch=ppc64le ;;
  i386) arch=386 ;;
  *) die "unsupported architecture $dpkg_arch" ;;
esac

script_hash=$(cat "$here/build.sh" "$here/oci.py" | sha256sum | cut -c1-64)

# cached DIR KEY: whether DIR holds a complete layout built with KEY.
cached() {
  [[ -f $1/key && -f $1/oci/index.json && "$(<"$1/key")" == "$2" ]]
}

# newer_in_debian PACKAGES_FILE: whether the host's apt lists know a newer version of one of the
# packages ("NAME VERSION" lines) an image was built from. Only meaningful on a host of the same
# suite; elsewhere the image is kept until --rebuild.
newer_in_debian() {
  local list=$1 name built cand codename
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ $codename == "$suite" ]] || return 1
  declare -A cands=()
  while read -r name cand; do
    cands[$name]=$cand
  done < <(cut -d' ' -f1 "$list" | xargs -r apt-cache policy 2>/dev/null |
    awk '/^[^ ]/ { p = $1; sub(/:.*/, "", p) } /^  Candidate:/ { print p, $2 }')
  while read -r name built; do
    cand=${cands[$name]:-}
    [[ -n $cand && $cand != "(none)" ]] || continue
    if dpkg --compare-versions "$cand" gt "$built"; then
      log "Debian has $name $cand, the image has $built: rebuilding"
      return 0
    fi
  done <"$list"
  return 1
}

# install_layout WORK DIR KEY: replaces DIR with WORK/out (layout, records) and stamps KEY.
install_layout() {
  echo "$3" >"$1/out/key"
  rm -rf "$2"
  mv "$1/out" "$2"
}

# prune ROOT: removes what has no place in an image and what makes it unreproducible.
prune() {
  local root=$1
  rm -rf --one-file-system "${root:?}"/dev/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
    "$root"/tmp/* "$root"/run/*
  rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
  find "$root/var/log" -type f -delete
}

build_python() {
  local dir=$images_dir/python key="python $script_hash $arch"
  if [[ $rebuild == 0 ]] && cached "$dir" "$key" && ! newer_in_debian "$dir/packages.txt"; then
    log "library/python:3.11 is up to date ($dir)"
    return
  fi
  [[ $(id -u) == 0 ]] || die "building library/python needs root (mmdebstrap --mode=root)"
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (run tools/install-deps.sh)"
  local work base full
  new_work_dir
  base=$work/base full=$work/full
  mkdir -p "$work/out/oci"

  local mirror=${SBX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  local mirrors=(
    "deb $mirror $suite main"
    "deb $mirror $suite-updates main"
    "deb ${SBX_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $suite-security main"
  )
  local common=(
    --mode=root --format=directory --architectures="$dpkg_arch"
    # Slim like Docker's debian:*-slim; kept in the image so later installs stay slim too.
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
  )
  # Host specific (mmdebstrap copies the host's); the runtime provides both. Runs last.
  # shellcheck disable=SC2016 # $1 is the hook's argument, expanded by mmdebstrap's shell
  local forget_host=(--customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"')

  log "library/python:3.11: debootstrapping $suite (minbase)"
  # The merged-usr hook sets up /bin -> usr/bin itself and installs usr-is-merged; apt would
  # otherwise pick usrmerge, which drags perl into the image.
  mmdebstrap --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${common[@]}" \
    "${forget_host[@]}" "$suite" "$base" "${mirrors[@]}"
  prune "$base"

  log "library/python:3.11: installing ${python_packages[*]}"
  mmdebstrap --variant=custom "${common[@]}" \
    --setup-hook="cp -a $(printf %q "$base")/. \"\$1\"/" \
    --customize-hook="chroot \"\$1\" apt-get install --yes --no-install-recommends ${python_packages[*]}" \
    "${forget_host[@]}" "$suite" "$full" "${mirrors[@]}"
  prune "$full"

  local version
  version=$(chroot "$full" python --version 2>&1) || die "python --version failed in the image"
  [[ $version == "Python 3.11."* ]] || die "python --version printed '$version', want Python 3.11.x"
  # shellcheck disable=SC2016 # expanded by the image's shell
  chroot "$full" /bin/sh -c 'for c in sh sleep cat ls tar python3; do command -v $c >/dev/null ||
    { echo "missing $c" >&2; exit 1; }; done' || die "the image misses a basic command"

  local epoch layers=$work/layers.jsonl layout=$work/out/oci
  epoch=$("${oci[@]}" epoch "$full")
  "${oci[@]}" layer --layout "$layout" --root "$base" --clamp "$epoch" \
    --created-by "mmdebstrap --variant=minbase $suite" >>"$layers"
  "${oci[@]}" layer --layout "$layout" --root "$full" --base "$base" --clamp "$epoch" \
    --created-by "apt-get install --no-install-recommends ${python_packages[*]}" >>"$layers"
  cat >"$work/config.json" <<EOF
{"created": $epoch, "architecture": "$arch",
 "config": {"Env": ["$path_env", "LANG=C.UTF-8"], "Cmd": ["python3"]}}
EOF
  local deb_version
  deb_version=$(dpkg-query --admindir="$full/var/lib/dpkg" -W -f='${Version}' python3)
  # The product's documented examples name python:3.13 and python:3.15; the fixture answers those
  # tags with the same Debian image (its interpreter is 3.11) so the examples run offline.
  "${oci[@]}" image --layout "$layout" --layers "$layers" --config "$work/config.json" \
    --tag 3.11 --tag 3.13 --tag 3.15 \
    --annotation "org.opencontainers.image.version=$deb_version" >/dev/null
  dpkg-query --admindir="$full/var/lib/dpkg" -W -f='${Package} ${Version}\n' |
    sort >"$work/out/packages.txt"
  install_layout "$work" "$dir" "$key"
  log "library/python:3.11 built ($version, Debian python3 $deb_version)"
}

build_busybox() {
  local dir=$images_dir/busybox
  local status version bin key
  status=$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) || true
  [[ $status == "install ok installed" ]] ||
    die "busybox-static is not installed (run tools/install-deps.sh)"
  version=$(dpkg-query -W -f='${Version}' busybox-static)
  bin=$(dpkg -L busybox-static | grep -E '^(/usr)?/bin/busybox$') ||
    die "busybox-static ships no bin/busybox"
  bin=${bin%%$'\n'*}
  key="busybox $script_hash $arch busybox-static=$version"
  if [[ $rebuild == 0 ]] && cached "$dir" "$key"; then
    log "library/busybox:latest is up to date ($dir)"
    return
  fi
  local work root
  new_work_dir
  root=$work/root
  mkdir -p "$work/out/oci" "$root"/{bin,dev,etc,proc,root,sys,tmp}
  chmod 0755 "$root" "$root"/{bin,dev,etc,proc,sys}
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  cp --preserve=timestamps "$bin" "$root/bin/busybox"
  chmod 0755 "$root/bin/busybox"
  local applet
  for applet in $("$bin" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
  done
  [[ -L $root/bin/sh ]] || die "busybox has no sh applet"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
    >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"

  local epoch layers=$work/layers.jsonl layout=$work/out/oci
  epoch=$(stat -c %Y "$bin")
  "${oci[@]}" layer --layout "$layout" --root "$root" --clamp "$epoch" --root-owned \
    --created-by "busybox-static $version" >>"$layers"
  cat >"$work/config.json" <<EOF
{"created": $epoch, "architecture": "$arch",
 "config": {"Env": ["$path_env"], "Cmd": ["sh"]}}
EOF
  "${oci[@]}" image --layout "$layout" --layers "$layers" --config "$work/config.json" \
    --tag latest --tag 1.36 --annotation "org.opencontainers.image.version=$version" >/dev/null
  install_layout "$work" "$dir" "$key"
  log "library/busybox:latest built (Debian busybox-static $version)"
}

rebuild=0
targets=()
for arg in "$@"; do
  case $arg in
    --rebuild) rebuild=1 ;;
    python | busybox) targets+=("$arg") ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (want --rebuild, python, busybox)" ;;
  esac
done
((${#targets[@]})) || targets=(python busybox)

mkdir -p "$images_dir"
# One build at a time per cache directory.
exec 9>"$images_dir/.lock"
flock 9

for t in "${targets[@]}"; do
  "build_$t"
  echo "library/$t $images_dir/$t/oci"
done
