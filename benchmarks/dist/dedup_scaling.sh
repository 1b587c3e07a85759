#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# dedup_scaling.sh DEDUP [DOCUMENTS] [THREADS]: throughput of the dedup tool on 1 rank and on 2 ranks
# (mpirun -np 2, one machine) on the same synthetic corpus (~2 KB documents, 30% planted
# near-duplicates), THREADS signature threads per rank (default 1), --verify. Prints documents/s
# and MB/s for each and checks the kept documents are byte-identical.
set -e
dedup=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") docs=${2:-20000} threads=${3:-1}
mpirun=${MPIEXEC:-mpirun}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$dedup" --make-corpus "$docs" --output corpus.jsonl 2> /dev/null
bytes=$(wc -c < corpus.jsonl)
run() {
    start=$(date +%s.%N)
    "$@" --input corpus.jsonl --output "kept$np.jsonl" --threads "$threads" --verify 2> "report$np.txt"
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v d="$docs" -v b="$bytes" -v np="$np" -v t="$threads" \
        'BEGIN { w = e - s; printf "%d rank(s) x %d thread(s): %.2f s, %.0f docs/s, %.2f MB/s\n", np, t, w, d / w, b / 1e6 / w }'
}
np=1 run "$mpirun" -np 1 --allow-run-as-root "$dedup"
np=2 run "$mpirun" -np 2 --oversubscribe --allow-run-as-root "$dedup"
cmp kept1.jsonl kept2.jsonl && echo "kept documents identical ($(wc -l < kept1.jsonl) of $docs)"
