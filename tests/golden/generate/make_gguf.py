# SPDX-License-Identifier: Apache-2.0
# Writes GGUF files of the tiny checkpoints in llama.cpp's layout, as convert_hf_to_gguf.py does
# (tensor names, metadata keys, Q/K rows permuted for the "llama" architecture, tied Qwen2
# embeddings without output.weight), with gguf-py:
#   mistral.gguf: tests/golden/model/mistral as architecture "llama" (llama.cpp has no sliding
#                 window for it: the tests compare with the HF model without the window), f32
#   qwen2.gguf:   tests/golden/model/qwen2 as "qwen2", f32 (q/k/v biases, tied embeddings)
#   qwen2-f16.gguf: the same with 2-D weights in f16
#
#   /work/venv/bin/python tests/golden/generate/make_gguf.py   (needs gguf, numpy, safetensors or torch-free reading below)
import json
import os
import struct

import gguf
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "model")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]).copy()
    return out


def permute(w, n_head, n_head_kv):  # convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write(family, arch, out_name, f16=False):
    d = os.path.join(MODELS, family)
    cfg = json.load(open(os.path.join(d, "config.json")))
    t = read_safetensors(os.path.join(d, "model.safetensors"))
    w = gguf.GGUFWriter(os.path.join(HERE, out_name), arch)
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    w.add_name(family)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(cfg["hidden_size"] // heads)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(1 if f16 else 0)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                 "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                 "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                 "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
                 "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
    for name, a in t.items():
        if name.startswith("model.layers."):
            i, rest = name[len("model.layers."):].split(".", 1)
            out = "blk.%s.%s" % (i, per_layer[rest])
            if arch == "llama" and rest == "self_attn.q_proj.weight":
                a = permute(a, heads, heads)
            if arch == "llama" and rest == "self_attn.k_proj.weight":
                a = permute(a, heads, kv)
        else:
            out = names[name]
        if f16 and a.ndim == 2:
            a = a.astype(np.float16)
        w.add_tensor(out, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


write("mistral", "llama", "mistral.gguf")
write("qwen2", "qwen2", "qwen2.gguf")
write("qwen2", "qwen2", "qwen2-f16.gguf", f16=True)
