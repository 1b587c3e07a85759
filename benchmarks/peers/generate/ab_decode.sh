#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Decode tokens/s of two builds of our `generate` (A, B: before and after a change) against
# llama-bench on the same GGUF files (vs_llamacpp.sh's WORK directory), alternating per type:
# llama-bench with its default weight repacking, with --repack 0, then A, then B. One CSV line
# per type and round on stdout.
#   benchmarks/peers/generate/ab_decode.sh A_BIN B_BIN LLAMA_BIN WORK   (env: TYPES, T threads, P, N, REPS="1 2 3")
set -euo pipefail
a=$1 b=$2 llama=$3 work=$4
P=${P:-128} N=${N:-32} T=${T:-1}
ids=$(seq -s, 1 "$P" | awk -F, '{for(i=1;i<=NF;i++) printf "%s%d", (i>1?",":""), ($i*7919)%32000+3}')
tg() { python3 -c 'import csv, sys
print([r["avg_ts"] for r in csv.DictReader(sys.stdin)][-1])'; }
echo "# $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) threads $T"
echo "type,threads,llama,llama_repack0,a,b"
for rep in ${REPS:-1}; do
    for type in ${TYPES:-q4_0 q8_0 q4_K f16}; do
        f=$work/model-$type.gguf
        l=$("$llama/llama-bench" -m "$f" -p 0 -n "$N" -t "$T" -r 1 -o csv 2>/dev/null | tg)
        l0=$("$llama/llama-bench" -m "$f" -p 0 -n "$N" -t "$T" -r 1 --repack 0 -o csv 2>/dev/null | tg)
        out=""
        for bin in "$a" "$b"; do
            err=$("$bin/generate" --model "$f" --prompt-ids "$ids" -n "$N" --ids --threads "$T" 2>&1 >/dev/null)
            out="$out,$(echo "$err" | sed -n 's/.*decode \([0-9.]*\) tokens\/s.*/\1/p')"
        done
        echo "$type,$T,$l,$l0$out"
    done
done
echo "# end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
