#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden data for tests/model/golden.cpp: tiny random models built by Hugging Face
transformers (4.44.2, PyTorch fp32, eager attention), saved as the hub does (config.json +
model.safetensors), with the logits, the loss and a few parameter gradients of one batch
(PyTorch autograd) in golden.safetensors.

Run from the repository root:  /work/venv-tf/bin/python tests/golden/model/make_golden.py
Writes tests/golden/model/<family>/{config.json, model.safetensors, golden.safetensors}.
"""
import os

import torch
import transformers
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)))
BATCH, SEQ = 2, 8

COMMON = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
              rms_norm_eps=1e-5, attn_implementation="eager")

FAMILIES = {
    # Llama 3 style: GQA, rope_theta 5e5 and llama3 frequency scaling (original context 16, so
    # the scaling changes the frequencies at these sizes)
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
              dict(COMMON, rope_theta=500000.0,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=16))),
    # Mistral: sliding window 4 < SEQ, so the window masks keys
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM,
                dict(COMMON, sliding_window=4, rope_theta=10000.0)),
    # Qwen2: q/k/v biases, tied embeddings
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
              dict(COMMON, tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False)),
    # GPT-2: learned positions, LayerNorm, fused Conv1D attention, gelu_new, tied head
    "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel,
             dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32, n_inner=None,
                  layer_norm_epsilon=1e-5, attn_implementation="eager",
                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)),
}

# gradients stored per family (names as in the checkpoint)
GRADS = {
    "llama": ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
              "model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight",
              "model.layers.1.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight"],
    "mistral": ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
                "model.layers.0.mlp.gate_proj.weight", "lm_head.weight"],
    "qwen2": ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.bias",
              "model.layers.0.self_attn.k_proj.bias", "model.layers.1.self_attn.o_proj.weight"],
    "gpt2": ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
             "transformer.h.0.attn.c_attn.bias", "transformer.h.1.mlp.c_fc.weight",
             "transformer.h.1.ln_2.bias", "transformer.ln_f.weight"],
}


def randomize(model, gen):
    # Larger than the default init (std 0.02), so logits and gradients are far from uniform
    # and every path of the model moves the numbers the test compares.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def main():
    assert transformers.__version__ == "4.44.2", transformers.__version__
    for family, (config_cls, model_cls, kwargs) in FAMILIES.items():
        gen = torch.Generator().manual_seed(1234)
        config = config_cls(**kwargs)
        torch.manual_seed(0)
        model = model_cls(config).float().eval()
        randomize(model, gen)
        ids = torch.randint(0, config.vocab_size, (BATCH, SEQ), generator=gen)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        d = os.path.join(OUT, family)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        params = dict(model.named_parameters())
        golden = {
            "input_ids": ids.to(torch.int32).contiguous(),
            "logits": out.logits.detach().contiguous(),
            "loss": out.loss.detach().reshape(1).contiguous(),
        }
        for name in GRADS[family]:
            golden["grad." + name] = params[name].grad.detach().contiguous()
        save_file(golden, os.path.join(d, "golden.safetensors"), metadata={"transformers": transformers.__version__})
        print(family, "loss", float(out.loss))


if __name__ == "__main__":
    main()
