#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds everything and runs the whole test suite (README command 2; .ci/run calls it):
#   1. release build with -Wall -Wextra -Wpedantic -Werror (tests, benchmarks, examples,
#      every-header-alone check, nvcc check when nvcc exists), then ctest without label gpu
#      (unit tests, benchmark smoke runs, the downstream consumer checks);
#   2. an ASan+UBSan build of the tests (clang), and ctest on it;
#   3. libFuzzer (clang) over every fuzz harness.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake/install-deps.sh
jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1

echo "== release build (-Werror) == (at ${SECONDS} s)"
cmake --preset ci >/dev/null
cmake --build --preset ci -j "$jobs"
ctest --preset ci -j "$jobs" | tee build/ci/ctest-summary.txt | grep -Ev '^ +[0-9]+/[0-9]+ Test' || true
grep -q "100% tests passed" build/ci/ctest-summary.txt || { cat build/ci/ctest-summary.txt; exit 1; }

echo "== ASan + UBSan build of the tests (clang -O1 -g1) == (at ${SECONDS} s)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ctest --preset asan -j "$jobs" | tee build/asan/ctest-summary.txt | grep -Ev '^ +[0-9]+/[0-9]+ Test' || true
grep -q "100% tests passed" build/asan/ctest-summary.txt || { cat build/asan/ctest-summary.txt; exit 1; }

if command -v clang++ >/dev/null; then
    echo "== libFuzzer (clang) over every fuzz harness == (at ${SECONDS} s)"
    cmake --preset fuzz >/dev/null
    cmake --build --preset fuzz -j "$jobs" --target libfuzzers
    ctest --preset fuzz -j "$jobs" --no-tests=ignore | tail -n 4
fi

if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
    echo "nvcc check: built llm_nvcc_check for sm_80 and sm_90 (see the release build above)"
else
    echo "nvcc check: skipped, nvcc not found"
fi
echo "== all tests passed == (${SECONDS} s in all)"
