#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The long fuzz run recorded in TESTING.md: builds every libFuzzer harness (clang, ASan+UBSan)
# and runs each for a fixed number of executions, then prints one Markdown table row per
# harness (executions, seconds, final corpus size, crashes).
#
#   tools/fuzz_long.sh [RUNS] [HARNESS...]     # RUNS defaults to 10000000; all harnesses if none named
#   LLM_FUZZ_NO_BUILD=1 tools/fuzz_long.sh ...  # reuse the build (several harnesses in parallel)
#
# New corpus entries go to build/fuzzlong/corpus/<name> (never into the committed seeds). A crash
# leaves its input in build/fuzzlong/crashes/<name>/ and is counted; the script then exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true
build=build/fuzzlong
# Configured every time, so harnesses added since the last run are known (LLM_FUZZ_NO_BUILD=1
# skips configure and build, to run several harnesses in parallel from one build).
[ -n "${LLM_FUZZ_NO_BUILD:-}" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DLLM_LIBFUZZER=ON \
    -DLLM_WITH_CUDA=OFF -DLLM_WITH_OPENMP=OFF -DLLM_BUILD_BENCHMARKS=OFF -DLLM_BUILD_EXAMPLES=OFF >/dev/null
if (($# == 0)); then
    set -- $(cd tests/fuzz && ls ./*.cpp | sed 's#^\./##; s#\.cpp$##')
fi
targets=()
for name in "$@"; do targets+=("fuzz_$name"); done
[ -n "${LLM_FUZZ_NO_BUILD:-}" ] || cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null

status=0
echo "| harness | executions | seconds | corpus files | crashes |"
echo "| --- | --- | --- | --- | --- |"
for name in "$@"; do
    corpus="$build/corpus/$name"
    crashes="$build/crashes/$name"
    mkdir -p "$corpus" "$crashes"
    log="$build/fuzz_$name.log"
    start=$(date +%s)
    rc=0
    "$build/bin/fuzz_$name" -runs="$runs" -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" "tests/fuzz/$name" >"$log" 2>&1 || rc=$?
    seconds=$(($(date +%s) - start))
    done_runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
    found=$(find "$crashes" -type f | wc -l)
    if ((rc != 0)) && ((found == 0)); then found="failed (exit $rc, see $log)"; fi
    [ "$found" = "0" ] || status=1
    echo "| $name | $done_runs | $seconds | $(find "$corpus" -type f | wc -l) | $found |"
done
exit $status
