#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# fault.sh MPIEXEC BINARY MODE MAX_SECONDS PATTERN: runs `MPIEXEC -np 2 BINARY MODE` and passes when the
# job ends with a non-zero status within MAX_SECONDS and its output matches PATTERN (grep -E).
# Exits 77 (ctest: skipped) when MPIEXEC or BINARY is missing.
mpiexec=$1 binary=$2 mode=$3 max=$4 pattern=$5
if [ ! -x "$mpiexec" ] || [ ! -x "$binary" ]; then
    echo "skipped: $mpiexec or $binary not found"
    exit 77
fi
start=$(date +%s)
out=$(timeout $((max + 30)) "$mpiexec" -np 2 --oversubscribe --allow-run-as-root "$binary" "$mode" 2>&1)
status=$?
elapsed=$(($(date +%s) - start))
echo "$out"
echo "fault.sh: mode $mode: exit status $status after ${elapsed} s (limit ${max} s)"
if [ "$status" -eq 0 ]; then echo "fault.sh: FAILED: the job succeeded"; exit 1; fi
if [ "$status" -eq 124 ]; then echo "fault.sh: FAILED: the job hung"; exit 1; fi
if [ "$elapsed" -gt "$max" ]; then echo "fault.sh: FAILED: took longer than ${max} s"; exit 1; fi
if ! printf '%s\n' "$out" | grep -Eq "$pattern"; then echo "fault.sh: FAILED: no line matches '$pattern'"; exit 1; fi
echo "fault.sh: passed"
