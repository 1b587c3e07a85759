#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden values for llm::attention from PyTorch (float64), written to golden.txt beside this script.

Run: python3 tests/golden/attention/make_golden.py   (needs torch: Debian's python3-torch or PyPI)

The attention maths is written out here in torch ops, independently of the C++ code: scores
q k^T * scale, the soft-cap cap * tanh(s / cap), a boolean mask built from token positions,
softmax with the row maximum subtracted, o = P v, lse = log sum exp over the visible keys, and
dq, dk, dv of loss = sum(o * dout) by torch.autograd. GQA repeats each kv head over its
heads // kv_heads query heads (Hugging Face's repeat_kv). Masks are FlashAttention's (>= 2.1),
bottom-right aligned: with off = lk - lq, query i of a sequence sees key j when
i + off - left <= j <= i + off + right (causal: left unbounded, right 0). A query that sees no
key has o = 0 and lse = -inf. Varlen cases pack sequences along the token axis (batch 1) with
offsets cu_q, cu_k; no token sees another sequence's keys.

Inputs are drawn in float32 and widened, so the C++ test reads them exactly into float; the
scale is 1 / sqrt(D) with D a power of 4 (exact in float32) or a given float32 value.

Format: per array a header line `name d0 d1 ...` then one line of its values (row-major,
float64 repr precision, inputs 9 digits of their float32 value; `-inf` for an empty row's lse). Per case `<case>.params` holds
[scale (0 = 1/sqrt(D)), softcap (0 = off), left, right] (-1 = unbounded) and varlen cases
add `<case>.cu_q`, `<case>.cu_k`. Layouts: q, o, dout, dq (batch, seq_q, heads, D);
k, v, dk, dv (batch, seq_k, kv_heads, D); lse (batch, heads, seq_q).
"""
import math
import os

import torch

torch.manual_seed(20261204)
F64 = torch.float64
out = []


def emit(name, t, fmt=repr):
    t = torch.as_tensor(t).detach().to(F64).contiguous()
    dims = " ".join(str(d) for d in t.shape)
    out.append(f"{name} {dims}\n" + " ".join(fmt(float(v)) for v in t.flatten().tolist()) + "\n")


def f32(v):
    """A float32 value in 9 significant digits: read back into float exactly."""
    return f"{v:.9g}"


def randn32(*shape):
    """Standard normal values rounded to float32, held in float64."""
    return torch.randn(*shape, dtype=torch.float32).to(F64)


def band_mask(lq, lk, left, right):
    """(lq, lk) boolean: query i sees key j when i + off - left <= j <= i + off + right."""
    i = torch.arange(lq).unsqueeze(1)
    j = torch.arange(lk).unsqueeze(0)
    off = lk - lq
    lo = i + off - (left if left >= 0 else lk + lq)
    hi = i + off + (right if right >= 0 else lk + lq)
    return (j >= lo) & (j <= hi)


def packed_mask(cu_q, cu_k, left, right):
    """(total_q, total_k) boolean for packed sequences: the band inside each, False across."""
    m = torch.zeros(cu_q[-1], cu_k[-1], dtype=torch.bool)
    for s in range(len(cu_q) - 1):
        q0, q1, k0, k1 = cu_q[s], cu_q[s + 1], cu_k[s], cu_k[s + 1]
        m[q0:q1, k0:k1] = band_mask(q1 - q0, k1 - k0, left, right)
    return m


def attention(q, k, v, allowed, scale, cap):
    """q (B, Sq, H, D), k/v (B, Sk, Hk, D), allowed (Sq, Sk) -> o (B, Sq, H, D), lse (B, H, Sq)."""
    group = q.shape[2] // k.shape[2]
    kh = k.repeat_interleave(group, dim=2)  # query head h reads kv head h // group
    vh = v.repeat_interleave(group, dim=2)
    s = torch.einsum("bihd,bjhd->bhij", q, kh) * scale
    if cap > 0:
        s = cap * torch.tanh(s / cap)
    s = s.masked_fill(~allowed, -math.inf)
    m = s.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # empty rows: exp(-inf) = 0
    e = torch.exp(s - m)
    l = e.sum(dim=-1, keepdim=True)
    p = e / torch.where(l > 0, l, torch.ones_like(l))
    o = torch.einsum("bhij,bjhd->bihd", p, vh)
    lse = (m + torch.log(l)).squeeze(-1)
    # Cross-check the explicit softmax against torch.softmax on the rows that see some key.
    rows = allowed.any(dim=-1)
    if rows.any():
        ref = torch.softmax(s[..., rows, :], dim=-1)
        assert torch.allclose(p[..., rows, :], ref, rtol=1e-13, atol=1e-15)
    return o, lse


def case(name, B, Sq, Sk, H, Hk, D, left=-1, right=-1, scale=0.0, cap=0.0, cu=None):
    """One golden case; left/right -1 = unbounded (left=-1, right=-1 is no mask)."""
    if scale == 0.0:
        assert D in (1, 4, 16, 64), "default scale 1/sqrt(D) must be exact in float32"
        used_scale = 1.0 / math.sqrt(D)
    else:
        scale = float(torch.tensor(scale, dtype=torch.float32))  # options.scale is a float
        used_scale = scale
    q, k, v, dout = randn32(B, Sq, H, D), randn32(B, Sk, Hk, D), randn32(B, Sk, Hk, D), randn32(B, Sq, H, D)
    allowed = band_mask(Sq, Sk, left, right) if cu is None else packed_mask(cu[0], cu[1], left, right)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    o, lse = attention(*leaves, allowed, used_scale, cap)
    (o * dout).sum().backward()
    emit(f"{name}.params", [scale, cap, left, right])
    if cu is not None:
        emit(f"{name}.cu_q", cu[0])
        emit(f"{name}.cu_k", cu[1])
    for n, t in (("q", q), ("k", k), ("v", v), ("dout", dout)):
        emit(f"{name}.{n}", t, f32)
    emit(f"{name}.o", o)
    emit(f"{name}.lse", lse)
    for n, leaf in zip(("dq", "dk", "dv"), leaves):
        emit(f"{name}.{n}", leaf.grad)


case("full", B=2, Sq=5, Sk=7, H=2, Hk=2, D=4)
case("causal", B=1, Sq=4, Sk=7, H=2, Hk=2, D=4, right=0)          # lq < lk: rows see the prefix
case("causal_long_q", B=1, Sq=7, Sk=4, H=1, Hk=1, D=4, right=0)   # lq > lk: rows 0..2 see nothing
case("window", B=1, Sq=7, Sk=9, H=2, Hk=2, D=4, left=2, right=1)  # sliding_window(2, 1)
case("varlen_causal", B=1, Sq=8, Sk=12, H=2, Hk=1, D=4, right=0, cu=([0, 3, 3, 8], [0, 4, 6, 12]))
case("varlen_full", B=1, Sq=8, Sk=12, H=2, Hk=2, D=4, cu=([0, 3, 3, 8], [0, 4, 6, 12]))
case("gqa", B=1, Sq=6, Sk=6, H=4, Hk=2, D=4)
case("mqa", B=1, Sq=5, Sk=8, H=3, Hk=1, D=4, right=0)
case("softcap", B=1, Sq=5, Sk=5, H=2, Hk=1, D=16, right=0, cap=1.0)
case("scale", B=1, Sq=5, Sk=6, H=2, Hk=2, D=6, scale=0.3)
case("scale_softcap", B=1, Sq=6, Sk=7, H=2, Hk=1, D=5, left=3, right=0, scale=1.7, cap=2.5)

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.txt")
with open(path, "w") as f:
    f.write(f"# generated by make_golden.py with torch {torch.__version__}; do not edit\n")
    f.writelines(out)
