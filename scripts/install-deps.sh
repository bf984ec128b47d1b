#!/usr/bin/env bash
# Installs the Debian packages SVE builds with and the real NBD clients its
# tests drive. Does nothing when everything is present.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev libboost-dev liburing-dev libisal-dev libmsgpack-cxx-dev libspdlog-dev
  nlohmann-json3-dev catch2 libedit-dev libcli11-dev libgnutls28-dev libsodium-dev libcpp-httplib-dev openssl curl
  qemu-utils libnbd-bin python3-libnbd fio nbdkit python3
  libiscsi-bin libiscsi-dev qemu-block-extra tgt
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
