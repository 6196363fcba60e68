#!/usr/bin/env bash
# Installs the Debian 12 packages copro needs to build and test (only those missing).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git libgtest-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
      libopenmpi-dev openmpi-bin libucx-dev ucx-utils libsimgrid-dev libgloo-dev python3-torch libtorch-dev pybind11-dev
      python3-dev clang-14 libclang-rt-14-dev libibverbs-dev libhwloc-dev libssl-dev libbenchmark-dev
      libprotobuf-dev protobuf-compiler)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
