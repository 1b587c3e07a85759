#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the main demo end to end (README command 1): builds the examples and runs each step.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target demo
bin=build/release/bin
echo "== demo: tensors, SIMD kernels, thread pool =="
"$bin/demo"
