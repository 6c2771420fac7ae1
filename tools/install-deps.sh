#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the local image fixture need.
# Idempotent; safe to run on a fresh Debian 12 machine as root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libseccomp-dev libcap-dev libarchive-dev libcurl4-openssl-dev libsqlite3-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libspdlog-dev libfmt-dev libzstd-dev zlib1g-dev libabsl-dev libnftables-dev
  python3-grpcio python3-protobuf python3-pytest python3-venv python3-pip
  busybox-static e2fsprogs iproute2 nftables util-linux procps fish
  docker-registry mmdebstrap skopeo umoci zstd curl
  clang-format
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
