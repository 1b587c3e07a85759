#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Peer for bench_align: per-token log-probs of labels under logits in PyTorch, the way TRL does it.

TRL 1.16 trl/trainer/utils.py selective_log_softmax: for fp32/fp64 logits,
  logits.gather(-1, labels) - logsumexp(logits, -1)
(bf16 logits: a row-by-row log_softmax loop). Same sizes as bench_align: 128 MiB of fp32 logits,
rows = 2^25 / V, vocab 32768 and 131072; GB/s of logits read, best of 5.

Run: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 benchmarks/peers/align_logprobs.py --threads 1
     /usr/bin/python3 benchmarks/peers/align_logprobs.py --threads 2
"""
import argparse
import time

import torch


def selective_log_softmax_fp32(logits, index):
    selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    return selected - torch.logsumexp(logits, dim=-1)


def selective_log_softmax_rowwise(logits, index):
    out = []
    for row_logits, row_labels in zip(logits, index):
        row_logps = torch.log_softmax(row_logits.float(), dim=-1)
        out.append(row_logps.gather(dim=-1, index=row_labels.unsqueeze(-1)).squeeze(-1))
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mib", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.mib * (1 << 20) // 4
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    for V in (32768, 131072):
        rows = n // V
        x = torch.randn(1, rows, V)
        y = torch.randint(0, V, (1, rows))
        for dtype, fn in ((torch.float32, selective_log_softmax_fp32), (torch.bfloat16, selective_log_softmax_rowwise)):
            xd = x.to(dtype)
            fn(xd, y)
            best = min(_timed(fn, xd, y) for _ in range(5))
            gbs = xd.numel() * xd.element_size() / best / 1e9
            print(f"V={V:6d} {str(dtype):15s} {best * 1e3:8.2f} ms  {gbs:6.2f} GB/s")


def _timed(fn, x, y):
    t0 = time.perf_counter()
    fn(x, y)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
