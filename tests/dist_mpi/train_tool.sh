#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# train_tool.sh MPIEXEC TRAIN SRC WORK: the `train` tool data parallel under mpirun, same flags.
#  1. `mpirun -np 2 train --batch 2` logs the losses and gradient norms of `train --batch 4` (one
#     process, --no-shuffle data), plain and --zero1, within 1e-5 relative (the reassociated fp32
#     sums over 4 x 4 rows: measured ~1e-7; see tests/dist_mpi/train.cpp for the derivation), and
#     only rank 0 writes the log (one line per step);
#  2. a 2-rank run saved at step 3 and resumed with --resume to step 6 ends with the bytes of the
#     uninterrupted 2-rank run's model.safetensors and optimizer.safetensors, and logs the same
#     losses (bit for bit: the same operations in the same order), plain and --zero1.
# Exits 77 (ctest: skipped) when MPIEXEC or TRAIN is missing.
mpiexec=$1 train=$2 src=$3 work=$4
if [ ! -x "$mpiexec" ] || [ ! -x "$train" ]; then
    echo "skipped: $mpiexec or $train not found"
    exit 77
fi
set -e
rm -rf "$work" && mkdir -p "$work" && cd "$work"
common="--init $src/tests/golden/model/gpt2 --data $src/tests/golden/train_tool/tokens.bin --seq 4 --lr 1e-2 --no-shuffle --threads 1 --clip 0.5"
mpirun2() { timeout 120 "$mpiexec" -np 2 --oversubscribe --allow-run-as-root "$train" "$@"; }
# The losses and gradient norms of a log, one "step loss grad_norm" line per step.
fields() { sed -n 's/^{"step": \([0-9]*\), "loss": \([^,]*\), "lr": [^,]*, "grad_norm": \([^,]*\),.*/\1 \2 \3/p' "$1"; }
# compare A B: the same steps, losses and norms within 1e-5 relative.
compare() {
    fields "$1" > a.txt
    fields "$2" > b.txt
    test "$(wc -l < a.txt)" -eq "$(wc -l < b.txt)" || { echo "FAILED: $1 and $2 have different step counts"; exit 1; }
    paste a.txt b.txt | awk -v A="$1" -v B="$2" '
        function rel(x, y) { d = x - y; if (d < 0) d = -d; return d / (y < 0 ? -y : y) }
        { if ($1 != $4 || rel($2, $5) > 1e-5 || rel($3, $6) > 1e-5) { print "FAILED: step " $1 ": " A " loss " $2 " norm " $3 ", " B " loss " $5 " norm " $6; bad = 1 }
          if (rel($2, $5) > worst) worst = rel($2, $5) }
        END { printf "%s vs %s: %d steps, max loss rel diff %.3g\n", A, B, NR, worst; exit bad }'
}
"$train" $common --batch 4 --steps 5 --out one --log one.jsonl > one.out
test "$(fields one.jsonl | wc -l)" -eq 5
for z in "" "--zero1"; do
    tag=two${z#--}
    mpirun2 $common --batch 2 --steps 5 --out $tag --log $tag.jsonl $z > $tag.out
    test "$(wc -l < $tag.jsonl)" -eq 5 || { echo "FAILED: $tag.jsonl has $(wc -l < $tag.jsonl) lines (rank 0 alone writes 5)"; exit 1; }
    grep -q "2 ranks" $tag.out
    compare $tag.jsonl one.jsonl
    # restart: 3 steps, then --resume to 6; against 6 uninterrupted steps
    mpirun2 $common --batch 2 --steps 6 --out full$z --log full$z.jsonl $z > /dev/null
    mpirun2 $common --batch 2 --steps 3 --out part$z --log resumed$z.jsonl $z > /dev/null
    mpirun2 --resume part$z --data "$src/tests/golden/train_tool/tokens.bin" --seq 4 --lr 1e-2 --no-shuffle --threads 1 --clip 0.5 \
        --batch 2 --steps 6 --out resumed$z --log resumed$z.jsonl $z > /dev/null
    cmp full$z/model.safetensors resumed$z/model.safetensors
    cmp full$z/optimizer.safetensors resumed$z/optimizer.safetensors
    fields full$z.jsonl > f.txt
    fields resumed$z.jsonl > r.txt
    cmp f.txt r.txt || { echo "FAILED: the resumed run ($z) logged other losses"; exit 1; }
done
# The check can fail: other rows per rank (batch 1 each, 2 ranks: half the single process's batch).
mpirun2 $common --batch 1 --steps 5 --out wrong --log wrong.jsonl > /dev/null
if compare wrong.jsonl one.jsonl > /dev/null; then echo "FAILED: a run on other rows matched"; exit 1; fi
echo "train_tool.sh: passed"
