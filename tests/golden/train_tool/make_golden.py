#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Golden losses for the `train` tool: PyTorch's AdamW + clip_grad_norm_ from a transformers
# checkpoint (the tiny GPT-2 and Llama of tests/golden/model/), llm.c's no-shuffle batch order,
# the tool's cosine schedule (linear warmup (step+1)/W, cosine to min_lr at --steps) and weight
# decay on tensors of 2+ dimensions only (llm.c / nanoGPT; two parameter groups here).
#
#   /work/venv-tf/bin/python tests/golden/train_tool/make_golden.py   (transformers 4.44.2, torch 1.13)
#
# Writes tokens.bin (llm.c format, version 1) and golden.json: the settings (the tool's flags)
# and, per model, the losses of each step (mean cross-entropy of the batch before the update),
# the learning rates and the gradient norms before clipping.
import json
import math
import os
import struct

import torch
import torch.nn.functional as F
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "model")
SETTINGS = dict(batch=2, seq=8, steps=6, lr=1e-2, warmup=2, min_lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8,
                weight_decay=0.1, clip=0.5, schedule="cosine")


def write_tokens(path, tokens):
    header = [0] * 256
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack("<%dH" % len(tokens), *tokens))


def lr_at(step, s):
    if step < s["warmup"]:
        return s["lr"] * (step + 1) / s["warmup"]
    if step >= s["steps"]:
        return s["min_lr"]
    r = (step - s["warmup"]) / (s["steps"] - s["warmup"])
    return s["min_lr"] + (s["lr"] - s["min_lr"]) * 0.5 * (1.0 + math.cos(math.pi * r))


def run(name, tokens, s):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), torch_dtype=torch.float32)
    model.train()  # dropout is 0 in these configs
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=s["lr"], betas=(s["beta1"], s["beta2"]), eps=s["eps"], foreach=False)
    B, T = s["batch"], s["seq"]
    batches = (len(tokens) - 1) // (B * T)
    t = torch.tensor(tokens, dtype=torch.long)
    losses, lrs, norms = [], [], []
    for step in range(s["steps"]):
        k = step % batches
        rows = [t[(k * B + i) * T:(k * B + i) * T + T + 1] for i in range(B)]  # llm.c's DataLoader order
        x = torch.stack([r[:T] for r in rows])
        y = torch.stack([r[1:] for r in rows])
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s["clip"])
        lr = lr_at(step, s)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(loss.item())
        lrs.append(lr)
        norms.append(norm.item())
    return {"loss": losses, "lr": lrs, "grad_norm": norms}


def main():
    g = torch.Generator().manual_seed(20240520)
    tokens = torch.randint(0, 64, (4 * SETTINGS["batch"] * SETTINGS["seq"] + 1,), generator=g).tolist()
    write_tokens(os.path.join(HERE, "tokens.bin"), tokens)
    out = {"settings": SETTINGS, "torch": torch.__version__, "transformers": transformers.__version__, "models": {}}
    for name in ("gpt2", "llama"):
        out["models"][name] = run(name, tokens, SETTINGS)
        print(name, out["models"][name]["loss"])
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
