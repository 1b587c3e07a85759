#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# The peer of bench_train's BM_train_step_gpt2: one training step of transformers'
# GPT2LMHeadModel (GPT-2 124M shape, random weights, fp32) with torch.optim.AdamW and
# clip_grad_norm_, B=4, T=64, on N threads. Prints the median step time, tokens/s and peak RSS.
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
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[1:] if len(times) > 1 else times)
    n = sum(p.numel() for p in model.parameters())
    print("torch %s transformers %s: %d params, %d threads, step %.3f s (median of %d after the first), %.1f tokens/s, peak RSS %.2f GB"
          % (torch.__version__, transformers.__version__, n, a.threads, med, len(times) - 1, B * T / med,
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6))


if __name__ == "__main__":
    main()
