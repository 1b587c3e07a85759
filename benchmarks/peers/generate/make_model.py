# SPDX-License-Identifier: Apache-2.0
# A Llama-shaped checkpoint with random weights for the inference benchmarks (speed does not
# depend on the values): d_model 1024, 16 layers, 16 heads / 4 kv heads, d_ff 2816, vocab 32000
# (246M parameters: 0.98 GB fp32, 0.49 GB f16, 0.14 GB q4_0; MODEL_SCALE=large: d_model 2048,
# d_ff 5632, 852M), saved as Hugging Face does
# (config.json + model.safetensors, fp32; tokenizer.json below). Weights N(0, 0.02), norms 1.
#   PYTHON benchmarks/peers/generate/make_model.py OUT_DIR   (a Python with numpy and safetensors)
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
D, L, H, KV, FF, V = 1024, 16, 16, 4, 2816, 32000
if os.environ.get("MODEL_SCALE") == "large":  # 852M parameters: q4_0 0.48 GB, past a 260 MiB L3
    D, FF = 2048, 5632
HD = D // H
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D, "num_hidden_layers": L,
       "num_attention_heads": H, "num_key_value_heads": KV, "intermediate_size": FF, "vocab_size": V,
       "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
       "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
       "bos_token_id": 1, "eos_token_id": 2}
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
rng = np.random.default_rng(0)
w = lambda *s: (rng.standard_normal(s, dtype=np.float32) * 0.02)
t = {"model.embed_tokens.weight": w(V, D), "model.norm.weight": np.ones(D, np.float32), "lm_head.weight": w(V, D)}
for i in range(L):
    p = "model.layers.%d." % i
    t[p + "input_layernorm.weight"] = np.ones(D, np.float32)
    t[p + "post_attention_layernorm.weight"] = np.ones(D, np.float32)
    t[p + "self_attn.q_proj.weight"] = w(H * HD, D)
    t[p + "self_attn.k_proj.weight"] = w(KV * HD, D)
    t[p + "self_attn.v_proj.weight"] = w(KV * HD, D)
    t[p + "self_attn.o_proj.weight"] = w(D, H * HD)
    t[p + "mlp.gate_proj.weight"] = w(FF, D)
    t[p + "mlp.up_proj.weight"] = w(FF, D)
    t[p + "mlp.down_proj.weight"] = w(D, FF)
save_file(t, os.path.join(out, "model.safetensors"))

# A 32000-token byte-level BPE tokenizer (llama.cpp loads no model without a vocabulary): GPT-2's
# 256 byte characters, then 31744 merges of two of them (pairs in byte order).
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
chars = [chr(c) for c in cs]
vocab = {c: i for i, c in enumerate(chars)}
merges = []
for a in chars:
    for b in chars:
        if len(vocab) == V:
            break
        vocab[a + b] = len(vocab)
        merges.append(a + " " + b)
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
       "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                 "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges}}
json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
print("params", sum(a.size for a in t.values()))
