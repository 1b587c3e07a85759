#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden values for llm::nn from PyTorch (float64), written to golden.txt beside this script.

Run: python3 tests/golden/nn/make_golden.py   (needs torch: Debian's python3-torch or PyPI)
Format: for each array a header line `name d0 d1 ...` then one line of its values (row-major,
repr precision). Gradients are of loss = sum(w * y) for a fixed random w, by torch.autograd.
RMSNorm, SwiGLU and RoPE are written with torch ops as Llama / Hugging Face write them
(torch 1.13 has no F.rms_norm); the Llama 3 frequency scaling transcribes Hugging Face's
_compute_llama3_parameters.
"""
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261123)
D = torch.float64
out = []


def emit(name, t):
    t = t.detach().to(D).contiguous()
    dims = " ".join(str(d) for d in t.shape)
    out.append(f"{name} {dims}\n" + " ".join(repr(float(v)) for v in t.flatten().tolist()) + "\n")


def grad_of(fn, *inputs):
    """Returns fn(*inputs), the grads of sum(w * y) w.r.t. inputs, and w."""
    leaves = [i.clone().requires_grad_(True) for i in inputs]
    y = fn(*leaves)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    return y, [l.grad for l in leaves], w


# softmax / log-softmax
x = torch.randn(3, 10, dtype=D) * 3
for name, fn in (("softmax", lambda a: F.softmax(a, -1)), ("log_softmax", lambda a: F.log_softmax(a, -1))):
    y, (dx,), w = grad_of(fn, x)
    emit(f"{name}.x", x); emit(f"{name}.y", y); emit(f"{name}.dy", w); emit(f"{name}.dx", dx)

# RMSNorm (Llama): x * rsqrt(mean(x^2) + eps) * weight
x = torch.randn(4, 12, dtype=D)
wt = torch.rand(12, dtype=D) + 0.5
eps = 1e-6
y, (dx, dwt), w = grad_of(lambda a, g: a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + eps) * g, x, wt)
emit("rmsnorm.x", x); emit("rmsnorm.weight", wt); emit("rmsnorm.y", y); emit("rmsnorm.dy", w)
emit("rmsnorm.dx", dx); emit("rmsnorm.dweight", dwt)

# LayerNorm
x = torch.randn(4, 12, dtype=D) + 3
wt = torch.rand(12, dtype=D) + 0.5
bs = torch.randn(12, dtype=D)
y, (dx, dwt, dbs), w = grad_of(lambda a, g, b: F.layer_norm(a, (12,), g, b, 1e-5), x, wt, bs)
emit("layernorm.x", x); emit("layernorm.weight", wt); emit("layernorm.bias", bs); emit("layernorm.y", y)
emit("layernorm.dy", w); emit("layernorm.dx", dx); emit("layernorm.dweight", dwt); emit("layernorm.dbias", dbs)

# activations
x = torch.linspace(-9, 9, 37, dtype=D).reshape(1, 37)
for name, fn in (("silu", F.silu), ("gelu_erf", lambda a: F.gelu(a)), ("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"))):
    y, (dx,), w = grad_of(fn, x)
    emit(f"{name}.x", x); emit(f"{name}.y", y); emit(f"{name}.dy", w); emit(f"{name}.dx", dx)
g = torch.randn(2, 9, dtype=D) * 3
u = torch.randn(2, 9, dtype=D)
y, (dg, du), w = grad_of(lambda a, b: F.silu(a) * b, g, u)
emit("swiglu.gate", g); emit("swiglu.up", u); emit("swiglu.y", y); emit("swiglu.dy", w)
emit("swiglu.dgate", dg); emit("swiglu.dup", du)

# cross-entropy: ignore_index and label smoothing, mean and sum
logits = torch.randn(6, 11, dtype=D) * 4
targets = torch.tensor([3, -100, 10, 0, 7, -100])
for name, kw in (("ce_mean", dict(reduction="mean")), ("ce_sum_smooth", dict(reduction="sum", label_smoothing=0.1))):
    lg = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(lg, targets, ignore_index=-100, **kw)
    loss.backward()
    emit(f"{name}.logits", logits); emit(f"{name}.targets", targets.to(D)); emit(f"{name}.loss", loss.reshape(1))
    emit(f"{name}.dlogits", lg.grad)

# embedding (repeated ids: the backward sums them)
table = torch.randn(7, 5, dtype=D)
ids = torch.tensor([1, 3, 1, 6, 0, 1])
y, (dt,), w = grad_of(lambda t: F.embedding(ids, t), table)
emit("embedding.table", table); emit("embedding.ids", ids.to(D)); emit("embedding.dy", w); emit("embedding.dtable", dt)


# RoPE, Hugging Face style
def llama3_inv_freq(dim, theta, factor=8.0, low=1.0, high=4.0, old=8192):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=D) / dim))
    low_wl, high_wl = old / low, old / high
    wl = 2 * math.pi / inv
    scaled = torch.where(wl > low_wl, inv / factor, inv)
    smooth = (old / wl - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wl < high_wl) * ~(wl > low_wl)
    return torch.where(medium, smoothed, scaled)


def rotate_half(v):
    h = v.shape[-1] // 2
    return torch.cat((-v[..., h:], v[..., :h]), dim=-1)


def rope_half(v, pos, inv):  # v [tokens, heads, dim]
    ang = pos.to(D)[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    return v * emb.cos()[:, None, :] + rotate_half(v) * emb.sin()[:, None, :]


def rope_interleaved(v, pos, inv):  # GPT-J: pairs (2i, 2i+1)
    ang = pos.to(D)[:, None] * inv[None, :]
    c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
    a, b = v[..., 0::2], v[..., 1::2]
    return torch.stack((a * c - b * s, b * c + a * s), dim=-1).flatten(-2)


q = torch.randn(5, 2, 16, dtype=D)
pos = torch.tensor([0, 1, 7, 4000, 100000])
inv_plain = 1.0 / (10000.0 ** (torch.arange(0, 16, 2, dtype=D) / 16))
inv_l3 = llama3_inv_freq(16, 500000.0)
emit("rope.x", q); emit("rope.positions", pos.to(D))
emit("rope.half", rope_half(q, pos, inv_plain))
emit("rope.interleaved", rope_interleaved(q, pos, inv_plain))
emit("rope.half_linear4", rope_half(q, pos, inv_plain / 4.0))
emit("rope.half_llama3", rope_half(q, pos, inv_l3))
emit("rope.inv_freq_llama3_128", llama3_inv_freq(128, 500000.0))

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.txt")
tmp = path + ".tmp"
with open(tmp, "w") as f:
    f.write(f"# generated by make_golden.py with torch {torch.__version__}; do not edit\n")
    f.writelines(out)
os.replace(tmp, path)
print(f"wrote {path}: {len(out)} arrays")
