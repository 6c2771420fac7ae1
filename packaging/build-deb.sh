#!/usr/bin/env bash
# Builds the sbx Debian package: sbxd, sbx, sbx-runtime, sbx-init, the systemd unit, the default
# configuration and the completions, from a release build of their own.
#
#   packaging/build-deb.sh [output dir]     prints the path of the .deb it wrote
#
# The build directory is build/deb (SBX_DEB_BUILD_DIR overrides it); the output directory
# defaults to it. Needs the build dependencies (tools/dev.sh deps) and dpkg-dev; not root.
# Progress goes to stderr, the path of the package alone to stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SBX_DEB_BUILD_DIR:-$root/build/deb}
out=${1:-$build}
maintainer=${SBX_DEB_MAINTAINER:-"sbx developers <sbx@localhost>"}

log() { printf '\n== %s\n' "$*" >&2; }

log "building (release, in $build)"
# Release without debug information (the package ships stripped binaries), at the release
# preset's -O2: g++ 12 at -O3 reports false -Wrestrict warnings, which -Werror turns into errors.
# No tests.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DBUILD_TESTING=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr -DSBX_SYSTEMD_UNIT_DIR=/lib/systemd/system >/dev/null
cmake --build "$build" -j"$(nproc)" --target sbxd sbx sbx-runtime sbx-init >&2

stage=$(mktemp -d "${TMPDIR:-/tmp}/sbx-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# dpkg-shlibdeps expects a source tree: debian/control, and the package's files in debian/sbx.
pkg=$stage/debian/sbx
DESTDIR=$pkg cmake --install "$build" --component runtime --strip >/dev/null

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
arch=$(dpkg --print-architecture)

log "deriving dependencies (dpkg-shlibdeps)"
printf 'Source: sbx\n\nPackage: sbx\nArchitecture: any\n' >"$stage/debian/control"
# The dynamically linked executables (sbx-init is static).
mapfile -t linked < <(cd "$stage" && find debian/sbx -type f -perm -u+x -exec sh -c \
  'readelf -d "$1" 2>/dev/null | grep -q "(NEEDED)" && echo "$1"' _ {} \; | sort)
shlibs=$(cd "$stage" && dpkg-shlibdeps -O "${linked[@]}")
shlibs=${shlibs#shlibs:Depends=}
[[ -n $shlibs ]] || {
  echo "dpkg-shlibdeps found no shared libraries" >&2
  exit 1
}

mkdir -p "$pkg/DEBIAN"
install -m 0755 "$root"/packaging/debian/{postinst,prerm,postrm} "$pkg/DEBIAN/"
(cd "$pkg" && find etc -type f | sed 's|^|/|' | sort) >"$pkg/DEBIAN/conffiles"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
# mkfs.ext4 formats the writable layers (writable_layer "loop", the default).
cat >"$pkg/DEBIAN/control" <<EOF
Package: sbx
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: $shlibs, e2fsprogs
Section: admin
Priority: optional
Description: self-hosted sandboxes for AI agents
 sbxd creates isolated Linux sandboxes from OCI images and serves the gRPC API of the hosted
 "Serverless Sandboxes" product on /run/sbx/sbxd.sock; sbx is its command line. The sbxd
 service is enabled and started on installation where systemd runs.
EOF

mkdir -p "$out"
deb=$out/sbx_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
