#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Checks and times our BPE trainer against the peers:
# 1. trains with our `train-tokenizer` on corpus_public.txt repeated to --mb megabytes;
# 2. loads the written PREFIX.tokenizer.json with Hugging Face `tokenizers` and PREFIX.tiktoken
#    with `tiktoken`, encodes every corpus document with both and with our `tokenize`, and
#    counts documents where any two differ (must be 0);
# 3. trains Hugging Face's BpeTrainer with the same settings on the same text and reports both times.
#
# usage: pip install tiktoken tokenizers
#        python3 benchmarks/peers/tokenizer_trainer.py --bin BUILD/bin [--mb 10] [--vocab-size 32000]
import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data", "tokenizers"))
PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
SPECIAL = "<|endoftext|>"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory holding train-tokenizer and tokenize")
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--vocab-size", type=int, default=32000)
    args = ap.parse_args()
    import tiktoken
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = open(os.path.join(DATA, "corpus_public.txt"), "rb").read().decode("utf-8")
    docs = corpus.split("\n\f\n")
    text_docs, total = [], 0
    while total < args.mb * 1e6:
        text_docs += docs
        total += len(corpus.encode("utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8", newline="") as f:
            f.write("\n\f\n".join(text_docs))
        prefix = os.path.join(tmp, "ours")
        t0 = time.perf_counter()
        subprocess.run([os.path.join(args.bin, "train-tokenizer"), "--corpus", train_file, "--out", prefix, "--vocab-size",
                        str(args.vocab_size), "--pattern", "cl100k", "--special", SPECIAL], check=True)
        ours_s = time.perf_counter() - t0

        # Identity of encodings on the corpus documents.
        hf = Tokenizer.from_file(prefix + ".tokenizer.json")
        ranks = {}
        for line in open(prefix + ".tiktoken", "rb"):
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
        tt = tiktoken.Encoding("ours", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={SPECIAL: len(ranks)})
        tool = subprocess.run([os.path.join(args.bin, "tokenize"), "--vocab", prefix + ".tokenizer.json", "--special", "all"],
                              input=corpus.encode("utf-8"), capture_output=True, check=True).stdout.decode().split("\n")
        bad_hf = bad_tt = 0
        for d, doc in enumerate(docs):
            mine = [int(x) for x in tool[d].split()]
            bad_hf += hf.encode(doc, add_special_tokens=False).ids != mine
            bad_tt += tt.encode(doc, allowed_special="all") != mine
        print(f"documents: {len(docs)}; differing from ours: tokenizers {bad_hf}, tiktoken {bad_tt}")

        # Hugging Face's trainer on the same text and settings.
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=args.vocab_size, min_frequency=2, special_tokens=[SPECIAL], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        t0 = time.perf_counter()
        tok.train_from_iterator(text_docs, trainer)
        hf_s = time.perf_counter() - t0
        print(f"train vocab {args.vocab_size} on {total / 1e6:.1f} MB: ours {ours_s:.2f} s (process, incl. load/write/metrics), "
              f"HF tokenizers {hf_s:.2f} s (RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'all')})")
        return 1 if bad_hf or bad_tt else 0


if __name__ == "__main__":
    sys.exit(main())
