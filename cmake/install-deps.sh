#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages the build needs, only those missing (idempotent, quiet when
# everything is there). Usage: cmake/install-deps.sh [extra packages...]
set -euo pipefail

packages=(cmake make g++ clang libclang-rt-14-dev libomp-14-dev pkg-config libeigen3-dev libxsimd-dev xtl-dev libhwy-dev doctest-dev
          libbenchmark-dev libopenblas-dev unicode-data python3-venv doxygen libopenmpi-dev openmpi-bin gnuplot-nox
          bible-kjv bible-kjv-text fortunes-min "$@")
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
