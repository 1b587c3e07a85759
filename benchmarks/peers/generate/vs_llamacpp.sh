#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Inference speed against llama.cpp on the same GGUF files: the random Llama-shaped model of
# make_model.py converted by our `convert` to f16, bf16, q8_0, q4_0 and q4_K; for each type and
# 1 and 2 threads, llama-bench (-p P -n N) and our `generate` (a P-token prompt, N generated
# tokens) alternate in one run; the read bandwidth (read_bw.cpp) is measured in the same run for
# the decode ceiling. Prints one CSV line per measurement on stdout.
#   benchmarks/peers/generate/vs_llamacpp.sh BUILD_BIN LLAMA_BIN WORK [P N]   (env: TYPES, THREADS="1 2", PYTHON with numpy + safetensors)
set -euo pipefail
bin=$1 llama=$2 work=$3 P=${4:-128} N=${5:-32}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
[ -f "$work/model/model.safetensors" ] || "${PYTHON:-python3}" "$here/make_model.py" "$work/model" >&2
[ -x "$work/read_bw" ] || g++ -O3 -march=native -pthread "$here/read_bw.cpp" -o "$work/read_bw"
"$work/read_bw" | sed 's/^/# /'
ids=$(seq -s, 1 "$P" | awk -F, '{for(i=1;i<=NF;i++) printf "%s%d", (i>1?",":""), ($i*7919)%32000+3}')
echo "engine,type,threads,file_bytes,prefill_tps,decode_tps"
for type in ${TYPES:-f16 bf16 q8_0 q4_0 q4_K}; do
    f=$work/model-$type.gguf
    [ -f "$f" ] || "$bin/convert" "$work/model" "$f" --type "$type" >&2
    bytes=$(stat -c %s "$f")
    for t in ${THREADS:-1 2}; do
        # llama-bench: prompt processing (pp) and generation (tg) rows, one repetition each
        "$llama/llama-bench" -m "$f" -p "$P" -n "$N" -t "$t" -r 1 -o csv 2>/dev/null |
            python3 -c 'import csv, sys
pp = tg = ""
for r in csv.DictReader(sys.stdin):
    if int(r["n_prompt"]) > 0: pp = r["avg_ts"]
    else: tg = r["avg_ts"]
print("llama.cpp,%s,%s,%s,%s,%s" % (sys.argv[1], sys.argv[2], sys.argv[3], pp, tg))' "$type" "$t" "$bytes"
        err=$("$bin/generate" --model "$f" --prompt-ids "$ids" -n "$N" --ids --threads "$t" 2>&1 >/dev/null)
        pp=$(echo "$err" | sed -n 's/.*prefill \([0-9.]*\) tokens\/s.*/\1/p')
        tg=$(echo "$err" | sed -n 's/.*decode \([0-9.]*\) tokens\/s.*/\1/p')
        echo "llm,$type,$t,$bytes,$pp,$tg"
    done
done
