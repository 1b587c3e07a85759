#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ctest script: `conan create` of llm fully offline (conancenter disabled; Eigen, xsimd and
# Highway from Debian through the wrapper recipes in ports/conan/system/), once with every
# backend and once with none, then checks both produced the same single package id.
# Usage: cmake/conan-check.sh WORK_DIR
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$1"
mkdir -p "$work"
if ! command -v conan >/dev/null; then
    if [ ! -x "$work/venv/bin/conan" ]; then
        python3 -m venv "$work/venv"
        "$work/venv/bin/pip" install -q "conan>=2,<3"
    fi
    export PATH="$work/venv/bin:$PATH"
fi
export CONAN_HOME="$work/home"   # never touch the user's ~/.conan2
rm -rf "$CONAN_HOME"
conan profile detect --force >/dev/null 2>&1
conan remote disable conancenter >/dev/null
for dep in eigen xsimd highway; do
    conan export "$src/ports/conan/system/$dep" >/dev/null 2>&1
done
# The test package builds in its own folder: use a copy so the source tree stays clean.
rm -rf "$work/test_package"
cp -r "$src/test_package" "$work/test_package"
common=(-s compiler.cppstd=20 -s build_type=Release --build=missing -tf "$work/test_package")
conan create "$src" "${common[@]}" -o 'llm/*:with_eigen=True' -o 'llm/*:with_xsimd=True' \
      -o 'llm/*:with_highway=True' 2>&1 | tail -n 3
conan create "$src" "${common[@]}" 2>&1 | tail -n 3
ids=$(conan list 'llm/0.1.0:*' --format=json | python3 -c '
import json, sys
data = json.load(sys.stdin)["Local Cache"]
print(sum(len(rev.get("packages", {})) for ref in data.values() for rev in ref["revisions"].values()))')
if [ "$ids" != "1" ]; then
    echo "conan check: expected one package id for every option set, found $ids"
    exit 1
fi
echo "conan check: ok (one package id for all option sets)"
