#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the main demo end to end (README command 1): builds examples/pipeline and makes a small
# language model from Debian's public-domain text (bible-kjv): curate, tokenize, pretrain,
# align, quantize, generate (~10 minutes on 2 cores). Outputs stay in build/release/pipeline_out;
# a rerun skips finished stages. Arguments go to the pipeline (--force redoes every stage,
# --quick is the one-minute version). `cmake/demo.sh --modules` runs the module demos instead.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake/install-deps.sh
cmake --preset release >/dev/null
if [ "${1:-}" != "--modules" ]; then
    cmake --build --preset release -j "$(nproc)" --target pipeline
    exec build/release/bin/pipeline --out build/release/pipeline_out --threads "$(nproc)" "$@"
fi
cmake --build --preset release -j "$(nproc)" --target demo nn_demo tokenize train-tokenizer dedup preference attention_demo
bin=build/release/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== 1. foundation: tensors, element types, SIMD kernels per backend, thread pool =="
"$bin/demo"

echo
echo "== 2. gemm and nn: GEMM GFLOP/s vs the FMA peak, GEMV, a tiny model with gradient check =="
"$bin/nn_demo"

echo
echo "== 3. tokenizer: o200k_base (tiktoken-exact) over the public corpus, then train a 4k BPE on it =="
tok_data=../shared/data/tokenizers
"$bin/tokenize" --vocab "$tok_data/o200k_base.tiktoken" --threads 2 --stats < "$tok_data/corpus_public.txt" > /dev/null
"$bin/train-tokenizer" --corpus "$tok_data/corpus_public.txt" --out "$work/demo_bpe" --vocab-size 4000 --special '<|endoftext|>'

echo
echo "== 4. data: MinHash + LSH near-duplicate removal of a synthetic corpus with planted duplicates =="
"$bin/dedup" --make-corpus 20000 --output "$work/corpus.jsonl"
"$bin/dedup" --input "$work/corpus.jsonl" --output "$work/kept.jsonl" --clusters "$work/clusters.tsv" --verify

echo
echo "== 5. align: preference losses (DPO family, SimPO, CPO, ORPO, KTO) and log-prob GB/s =="
"$bin/preference" --pairs 8 --tokens 64 --vocab 32000 --threads 2

echo
echo "== 6. attention: RoPE, flash prefill (GQA, causal) vs reference, backward, paged-cache decode =="
"$bin/attention_demo"
