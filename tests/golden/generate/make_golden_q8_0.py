# SPDX-License-Identifier: Apache-2.0
# First greedy tokens of the tiny Mixtral (tests/golden/moe/mixtral) with its weights rounded as a
# q8_0 GGUF file stores them (convert --type q8_0, llama.cpp's convert_hf_to_gguf.py --outtype
# q8_0): matrices whose rows are whole blocks of 32 (attention, w1 / w3, the token table and the
# head) in Q8_0 (d = max|x| / 127 in f32, q = round-half-away(x / d), d stored as f16), the others
# (w2, rows of 48) in f16, the router (ffn_gate_inp) and the norms in f32. transformers (fp32, eager) on those
# weights: prompt [1]'s fp32 top two logits are 0.02 apart, and Q8_0 rounding flips them, so the
# q8_0 file's first tokens are checked against these, not the fp32 goldens.
# Writes tests/golden/generate/mixtral-q8_0.txt: per prompt of make_golden.py one line "prompt: ids"
# and one line "first: id".
#
#   /work/venv-tf/bin/python tests/golden/generate/make_golden_q8_0.py
import os

import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = [[1], [3, 17, 9, 40], [5, 6, 7, 8, 9, 10, 11, 12, 13, 2, 33]]


def q8_0(w):
    r = w.reshape(-1, 32)
    d = r.abs().max(dim=1, keepdim=True).values / 127
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    x = r * inv
    q = torch.sign(x) * torch.floor(x.abs() + 0.5)
    return (q * d.half().float()).reshape(w.shape)


model = AutoModelForCausalLM.from_pretrained(os.path.join(HERE, "..", "moe", "mixtral"), torch_dtype=torch.float32,
                                             attn_implementation="eager").eval()
with torch.no_grad():
    for name, v in model.state_dict().items():
        if v.dim() < 2 or name.endswith("block_sparse_moe.gate.weight"):
            continue  # norms and the router stay f32
        v.copy_(q8_0(v) if v.shape[-1] % 32 == 0 else v.half().float())
    lines = []
    for prompt in PROMPTS:
        logits = model(torch.tensor([prompt])).logits[0, -1]
        top = torch.topk(logits, 2)
        print(prompt, top.indices.tolist(), "gap", float(top.values[0] - top.values[1]))
        lines += ["prompt: " + " ".join(map(str, prompt)), "first: %d" % int(top.indices[0])]
with open(os.path.join(HERE, "mixtral-q8_0.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
