#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# The peer of bench_train's BM_train_step_gpt2: one training step of transformers'
# GPT2LMHeadModel (GPT-2 124M shape, random weights, fp32) with torch.optim.AdamW and
# clip_grad_norm_, B=4, T=64, on N threads. Prints the median step time (wall) and process CPU
# seconds per step, tokens/s, GFLOP per CPU-second by llm.c's count (bench_train's: 6 N + 12 L
# d_model T per token) and peak RSS.
#
#   /work/venv-tf/bin/python benchmarks/train/torch_step.py [--threads 2] [--steps 6] [--small]
import argparse
import resource
import statistics
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--small", action="store_true", help="bench_train's small shape (4 layers, d_model 256, vocab 4096)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    if a.small:
        cfg = transformers.GPT2Config(vocab_size=4096, n_positions=256, n_embd=256, n_layer=4, n_head=4)
    else:
        cfg = transformers.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    cfg.attn_pdrop = cfg.embd_pdrop = cfg.resid_pdrop = 0.0
    model = transformers.GPT2LMHeadModel(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    B, T = 4, 64
    i = torch.arange(B * T)
    x = ((i * 7919 + 13) % cfg.vocab_size).view(B, T)
    y = ((i * 7919 + 7932) % cfg.vocab_size).view(B, T)
    times, cpus = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        c0 = time.process_time()
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    med = statistics.median(times[1:] if len(times) > 1 else times)
    cpu = statistics.median(cpus[1:] if len(cpus) > 1 else cpus)
    n = sum(p.numel() for p in model.parameters())  # wte counted once (tied), wpe included
    gflop = B * T * (6.0 * n + 12.0 * cfg.n_layer * cfg.n_embd * T) * 1e-9
    print("torch %s transformers %s: %d params, %d threads, step %.3f s wall, %.3f CPU s (medians of %d after the first), %.1f tokens/s, "
          "%.2f GFLOP per step, %.1f GFLOP/cpu_s, peak RSS %.2f GB"
          % (torch.__version__, transformers.__version__, n, a.threads, med, cpu, len(times) - 1, B * T / med, gflop, gflop / cpu,
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6))


if __name__ == "__main__":
    main()
