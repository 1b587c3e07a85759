#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden data for tests/moe/mixtral.cpp: a tiny random MixtralForCausalLM built by Hugging
Face transformers (4.44.2, PyTorch fp32, eager attention), saved as the hub does (config.json +
model.safetensors), with the logits, the loss and a few parameter gradients of one batch.

Run from the repository root:  /work/venv-tf/bin/python tests/golden/moe/make_mixtral_golden.py
Writes tests/golden/moe/mixtral/{config.json, model.safetensors, golden.safetensors}.
"""
import os

import torch
import transformers
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mixtral")
BATCH, SEQ = 2, 8

GRADS = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
         "model.layers.0.block_sparse_moe.gate.weight", "model.layers.0.block_sparse_moe.experts.1.w1.weight",
         "model.layers.1.block_sparse_moe.experts.3.w2.weight", "model.layers.1.block_sparse_moe.experts.2.w3.weight",
         "model.norm.weight", "lm_head.weight"]


def main():
    assert transformers.__version__ == "4.44.2", transformers.__version__
    gen = torch.Generator().manual_seed(1234)
    # 4 experts top-2, GQA; no sliding window: transformers 4.44's eager (and sdpa) Mixtral
    # attention ignores config.sliding_window (only its flash-attention path applies it), as the
    # released Mixtral checkpoints have sliding_window = null
    config = transformers.MixtralConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
                                        rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=None,
                                        num_local_experts=4, num_experts_per_tok=2, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(config).float().eval()
    # larger than the default init (std 0.02), so the routing and every path move the numbers
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    ids = torch.randint(0, config.vocab_size, (BATCH, SEQ), generator=gen)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    params = dict(model.named_parameters())
    golden = {
        "input_ids": ids.to(torch.int32).contiguous(),
        "logits": out.logits.detach().contiguous(),
        "loss": out.loss.detach().reshape(1).contiguous(),
    }
    for name in GRADS:
        golden["grad." + name] = params[name].grad.detach().contiguous()
    save_file(golden, os.path.join(OUT, "golden.safetensors"), metadata={"transformers": transformers.__version__})
    print("mixtral loss", float(out.loss))


if __name__ == "__main__":
    main()
