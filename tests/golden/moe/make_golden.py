#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden values for llm::moe from Hugging Face transformers' Mixtral (float64), written to
golden.txt beside this script.

Run: /work/venv-tf/bin/python tests/golden/moe/make_golden.py   (transformers 4.44.2, torch)
Format: as tests/golden/nn (per array a header `name d0 d1 ...`, then one line of values).
The block is transformers' MixtralSparseMoeBlock with small random weights (hidden 8,
intermediate 12, 4 experts, top-2); the loss is sum(w * y) + coef * load_balancing_loss_func
(the Mixtral auxiliary loss as MixtralForCausalLM adds it, router_aux_loss_coef = coef), and
the gradients are torch.autograd's. Weights are written in nn.Linear layout: gate [E, d],
experts.E.w1 / w3 [ff, d], w2 [d, ff], stacked over experts. Inputs are float32 values (rounded once), outputs printed to 12 digits.
"""
import os

import torch
import transformers
from transformers.models.mixtral.configuration_mixtral import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock, load_balancing_loss_func

torch.manual_seed(20261204)
D = torch.float64
out = [f"# transformers {transformers.__version__}, torch {torch.__version__}\n"]


def emit(name, t):
    t = torch.as_tensor(t).detach().to(D).contiguous()
    dims = " ".join(str(d) for d in t.shape) if t.dim() else "1"
    out.append(f"{name} {dims}\n" + " ".join(f"{float(v):.12g}" for v in t.flatten().tolist()) + "\n")


E, d, ff, k, T = 4, 8, 12, 2, 10
coef = 0.02
cfg = MixtralConfig(hidden_size=d, intermediate_size=ff, num_local_experts=E, num_experts_per_tok=k,
                    router_jitter_noise=0.0)
block = MixtralSparseMoeBlock(cfg).to(D)
with torch.no_grad():
    block.gate.weight.copy_(torch.randn(E, d, dtype=D) * 0.5)
    for ex in block.experts:
        for lin in (ex.w1, ex.w2, ex.w3):
            lin.weight.copy_(torch.randn_like(lin.weight) * 0.3)
    # Inputs rounded to float32, so the fp32 kernel reads exactly the values the golden used.
    for p in block.parameters():
        p.copy_(p.float().double())
x = torch.randn(2, T // 2, d, dtype=D).float().double().requires_grad_(True)
y, router_logits = block(x)
aux = load_balancing_loss_func((router_logits,), E, k)
w = torch.randn_like(y)
((y * w).sum() + coef * aux).backward()

emit("x", x.reshape(T, d))
emit("gate", block.gate.weight)
emit("w1", torch.stack([e.w1.weight for e in block.experts]))
emit("w3", torch.stack([e.w3.weight for e in block.experts]))
emit("w2", torch.stack([e.w2.weight for e in block.experts]))
emit("y", y.reshape(T, d))
emit("router_logits", router_logits)
emit("aux_loss", aux)
emit("aux_coef", torch.tensor(coef))
emit("dy", w.reshape(T, d))
emit("dx", x.grad.reshape(T, d))
emit("dgate", block.gate.weight.grad)
emit("dw1", torch.stack([e.w1.weight.grad for e in block.experts]))
emit("dw3", torch.stack([e.w3.weight.grad for e in block.experts]))
emit("dw2", torch.stack([e.w2.weight.grad for e in block.experts]))

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.txt"), "w") as f:
    f.writelines(out)
