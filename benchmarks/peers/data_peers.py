#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Measures MinHash peers (datasketch, rensa) on the same JSONL corpus as bench_data / dedup, 1 thread.
# Usage:
#   build/release/bin/dedup --make-corpus 2000 --output /tmp/corpus.jsonl
#   RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 python3 benchmarks/peers/data_peers.py /tmp/corpus.jsonl [N]
# Needs: pip install datasketch rensa. Prints docs/s and MB/s (text bytes) per peer and num_perm.
# "end-to-end" includes Python shingling (lowercased whitespace-split word 5-grams, as dedup does);
# "sketch only" starts from pre-built shingle lists (the peer's best case).
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")

import datasketch  # noqa: E402
import rensa  # noqa: E402


def shingles(text, n=5):
    words = text.lower().split()
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def timed(fn, docs, bytes_total, repeat=3):
    # CPU time of this process (one thread), like Google Benchmark's CPU column: the shared
    # machine's load inflates wall time.
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return len(docs) / best, bytes_total / 1e6 / best


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with open(path, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for _, line in zip(range(n), f)]
    total = sum(len(d.encode()) for d in docs)
    print(f"{len(docs)} documents, {total / len(docs):.0f} bytes each on average; datasketch {getattr(datasketch, '__version__', '?')}, 1 thread")
    pre = [shingles(d) for d in docs]
    pre_bytes = [[s.encode() for s in sh] for sh in pre]
    rows = []
    for k in (128, 256):
        def ds(scheme, inputs):
            def run():
                for sh in inputs:
                    m = datasketch.MinHash(num_perm=k, seed=1, scheme=scheme)
                    m.update_batch(sh)
            return run
        def ds_e2e(scheme):
            def run():
                for d in docs:
                    m = datasketch.MinHash(num_perm=k, seed=1, scheme=scheme)
                    m.update_batch([s.encode() for s in shingles(d)])
            return run
        rows.append((f"datasketch legacy (sha1), end-to-end", k, *timed(ds_e2e("legacy"), docs, total, 1)))
        rows.append((f"datasketch legacy (sha1), sketch only", k, *timed(ds("legacy", pre_bytes), docs, total, 1)))
        rows.append((f"datasketch affine32 (sha1), sketch only", k, *timed(ds("affine32", pre_bytes), docs, total, 1)))
        def rensa_obj(cls, inputs):
            def run():
                for sh in inputs:
                    m = cls(num_perm=k, seed=1)
                    m.update(sh)
                    m.digest()
            return run
        def rensa_e2e(cls):
            def run():
                for d in docs:
                    m = cls(num_perm=k, seed=1)
                    m.update(shingles(d))
                    m.digest()
            return run
        rows.append((f"rensa RMinHash, end-to-end", k, *timed(rensa_e2e(rensa.RMinHash), docs, total)))
        rows.append((f"rensa RMinHash, sketch only", k, *timed(rensa_obj(rensa.RMinHash, pre), docs, total)))
        rows.append((f"rensa CMinHash, sketch only", k, *timed(rensa_obj(rensa.CMinHash, pre), docs, total)))
        rows.append((f"rensa RMinHash.digests_from_token_sets (bulk)", k,
                     *timed(lambda: rensa.RMinHash.digests_from_token_sets(pre, k, 1), docs, total)))
    print(f"{'peer':52s} {'num_perm':>8s} {'docs/s':>10s} {'MB/s':>8s}")
    for name, k, dps, mbs in rows:
        print(f"{name:52s} {k:8d} {dps:10.0f} {mbs:8.2f}")
    # LSH insert + query (threshold 0.8, 128 permutations).
    sigs_ds = []
    for sh in pre_bytes:
        m = datasketch.MinHash(num_perm=128, seed=1, scheme="legacy")
        m.update_batch(sh)
        sigs_ds.append(m)
    t = time.process_time()
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    for i, m in enumerate(sigs_ds):
        lsh.query(m)
        lsh.insert(i, m)
    ds_lsh = len(docs) / (time.process_time() - t)
    sigs_r = []
    for sh in pre:
        m = rensa.RMinHash(num_perm=128, seed=1)
        m.update(sh)
        sigs_r.append(m)
    t = time.process_time()
    rl = rensa.RMinHashLSH(threshold=0.8, num_perm=128, num_bands=16)  # rensa needs bands | num_perm
    for i, m in enumerate(sigs_r):
        rl.query(m)
        rl.insert(i, m)
    r_lsh = len(docs) / (time.process_time() - t)
    print(f"LSH query+insert, num_perm 128, threshold 0.8: datasketch {ds_lsh:.0f} docs/s, rensa {r_lsh:.0f} docs/s")


if __name__ == "__main__":
    main()
