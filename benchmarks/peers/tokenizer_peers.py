#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Peer throughput for benchmarks/tokenizer: tiktoken and Hugging Face tokenizers (PyPI) encoding
# the same ~10 MB of documents as bench_tokenizer (corpus_public.txt repeated), one document per
# call, on 1 and 2 threads. Vocabularies come from ../shared/data/tokenizers (no downloads).
#
# usage: pip install tiktoken tokenizers
#        python3 benchmarks/peers/tokenizer_peers.py [--mb 10] [--repeat 3] [--json out.json]
# Prints MB/s (1e6 bytes of UTF-8 input per second), best of --repeat runs: per second of process
# CPU time for 1 thread (what bench_tokenizer's 1-thread counters use, robust on a shared
# machine) and per second of wall time for 2 threads (as bench_tokenizer's batch_2T).
import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data", "tokenizers"))


def documents(target_bytes):
    text = open(os.path.join(DATA, "corpus_public.txt"), "rb").read().decode("utf-8")
    base = text.split("\n\f\n")
    docs, total = [], 0
    while total < target_bytes:
        for d in base:
            docs.append(d)
            total += len(d.encode("utf-8"))
    return docs, total


def tiktoken_encoding(name):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    side = json.load(open(os.path.join(DATA, name + ".json")))
    ranks = load_tiktoken_bpe(os.path.join(DATA, name + ".tiktoken"))
    return tiktoken.Encoding(name=name, pat_str=side["pat_str"], mergeable_ranks=ranks, special_tokens=side["special_tokens"])


def hf_tokenizer(name):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(DATA, name))


def best_rate(fn, total, repeat, clock=time.perf_counter):
    best = 0.0
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = max(best, total / 1e6 / (clock() - t0))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    docs, total = documents(int(args.mb * 1e6))
    half = len(docs) // 2
    results = []

    def record(peer, vocab, threads, rate):
        results.append({"peer": peer, "vocab": vocab, "threads": threads, "MB_per_s": round(rate, 3)})
        print(f"{peer:28s} {vocab:16s} {threads}T {rate:8.2f} MB/s", flush=True)

    for name in ["cl100k_base", "o200k_base", "llama3"]:
        enc = tiktoken_encoding(name)
        record("tiktoken", name, 1, best_rate(lambda: [enc.encode_ordinary(d) for d in docs], total, args.repeat, time.process_time))
        # tiktoken releases the GIL inside encode, so Python threads run in parallel.
        with ThreadPoolExecutor(2) as pool:
            def two():
                list(pool.map(lambda part: [enc.encode_ordinary(d) for d in part], [docs[:half], docs[half:]]))
            record("tiktoken", name, 2, best_rate(two, total, args.repeat))
    for name in ["llama2_sp_bpe.tokenizer.json"]:
        tok = hf_tokenizer(name)
        record("hf_tokenizers encode", name.split(".")[0], 1,
               best_rate(lambda: [tok.encode(d, add_special_tokens=False) for d in docs], total, args.repeat, time.process_time))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
