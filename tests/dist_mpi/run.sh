#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run.sh MPIEXEC NP BINARY [ARGS...]: runs BINARY on NP ranks of one machine (oversubscribed, as root
# too). Exits 77 (ctest: skipped) when MPIEXEC or BINARY is missing, e.g. MPI was not found.
mpiexec=$1 np=$2 binary=$3
shift 3
if [ ! -x "$mpiexec" ] || [ ! -x "$binary" ]; then
    echo "skipped: $mpiexec or $binary not found"
    exit 77
fi
exec timeout 120 "$mpiexec" -np "$np" --oversubscribe --allow-run-as-root "$binary" "$@"
