#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden data for the whole-model Mamba test (tests/ssm/mamba_lm.cpp): a tiny random
MambaForCausalLM built by Hugging Face transformers 4.44.2 (slow path, no CUDA kernels), saved as
the hub does (config.json + model.safetensors, float32, lm_head tied to the embeddings), and the
logits of one batch of token ids computed by transformers in float64 from those float32 weights
(golden.safetensors: input_ids int32 [2, 8], logits float32 [2, 8, vocab]).

Run from the repository root:  /work/venv-tf/bin/python tests/golden/ssm/make_mamba_lm_golden.py
Writes tests/golden/ssm/mamba_lm/{config.json, model.safetensors, golden.safetensors}.
"""
import os

import torch
import transformers
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mamba_lm")
BATCH, SEQ = 2, 8

torch.manual_seed(20261205)
cfg = transformers.MambaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, state_size=16, expand=2, conv_kernel=4,
                               time_step_rank="auto", use_bias=False, use_conv_bias=True, hidden_act="silu",
                               layer_norm_epsilon=1e-5, tie_word_embeddings=True)
model = transformers.MambaForCausalLM(cfg).eval()
with torch.no_grad():
    # random values of a scale that makes every part matter (the default init leaves norms at 1,
    # D at 1 and A_log at log(1..N)); A_log and dt_proj.bias stay near their usual ranges
    for name, p in model.named_parameters():
        if name.endswith("A_log"):
            p.add_(0.3 * torch.randn(p.shape))
        elif name.endswith("dt_proj.bias"):
            p.copy_(torch.randn(p.shape) * 0.5 - 1.0)
        elif name.endswith("norm.weight") or name.endswith("norm_f.weight") or name.endswith(".D"):
            p.copy_(1.0 + 0.2 * torch.randn(p.shape))
        else:
            p.copy_(torch.randn(p.shape) * (0.5 if p.dim() > 1 and p.shape[-1] <= 4 else 0.2))
os.makedirs(OUT, exist_ok=True)
model.save_pretrained(OUT, safe_serialization=True)
ids = torch.randint(0, cfg.vocab_size, (BATCH, SEQ), dtype=torch.int64)
with torch.no_grad():
    logits = model.double()(input_ids=ids, use_cache=False).logits
save_file({"input_ids": ids.to(torch.int32).contiguous(), "logits": logits.to(torch.float32).contiguous()},
          os.path.join(OUT, "golden.safetensors"), metadata={"transformers": transformers.__version__})
for f in sorted(os.listdir(OUT)):
    print(f, os.path.getsize(os.path.join(OUT, f)))
print("logits max", float(logits.abs().max()))
