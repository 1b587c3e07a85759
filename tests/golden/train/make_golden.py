#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden values for llm::train: torch.optim.AdamW and torch.optim.SGD (momentum, dampening,
Nesterov, weight decay) with torch.nn.utils.clip_grad_norm_, float32 tensors, 10 steps on small
random tensors; and the learning-rate schedules at every step, in float64.

AdamW case: two parameters, p0 [4, 5] (2-D: weight decay 0.1) and p1 [7] (1-D: no weight decay,
the llm.c / nanoGPT rule, as two param groups), betas (0.9, 0.95), eps 1e-4 (large enough that putting eps inside the square root, or
forgetting to divide sqrt(v) by sqrt(1 - beta2^t) before adding it, moves the result far beyond the
tolerance); the learning rate of
step k is the warmup + cosine schedule's (set on both groups before the step); the gradients of
each step are clipped to global norm 1 (they are drawn with norms between about 0.3 and 6, so some
steps clip and some do not). SGD cases: lr 0.05, weight decay 0.01, (momentum 0.9, dampening 0.1)
and (momentum 0.9, Nesterov); no clipping.

Schedules (step = 0-based update index, as llm.c's get_lr):
  cosine:  step < W: max (step + 1) / W; then min + (max - min) (1 + cos(pi (step - W) / (T - W))) / 2; min from T
  linear:  step < W: warmup; then max + (min - max) (step - W) / (T - W); min from T
  wsd:     warmup; max until T - D; then min + (max - min) f(x), x = (step - (T - D)) / D,
           f = 1 - x | (1 + cos(pi x)) / 2 | 1 - sqrt(x); min from T
  multi:   stage 1 (20 steps) cosine(1e-3, W 5, T 20, min 1e-4), then stage 2 cosine(5e-4, W 3, T 30, min 5e-5)
           seen from its own step 0 (re-warms).
The cosine part is checked here against torch.optim.lr_scheduler.CosineAnnealingLR's closed form.

Run: /usr/bin/python3 tests/golden/train/make_golden.py > tests/golden/train/golden.txt
Output: the format of tests/support/golden.hpp ("name d0 d1 ..." then one line of values).
"""
import math

import torch

torch.manual_seed(20261204)
STEPS = 10


def emit(name, t):
    t = torch.as_tensor(t, dtype=torch.float64)
    dims = " ".join(str(d) for d in t.shape) if t.dim() > 0 else "1"
    print(f"{name} {dims}")
    print(" ".join(repr(float(x)) for x in t.reshape(-1).tolist()))


def cosine(step, mx, w, total, mn):
    if step < w:
        return mx * (step + 1) / w
    if step >= total:
        return mn
    r = (step - w) / (total - w)
    return mn + (mx - mn) * 0.5 * (1.0 + math.cos(math.pi * r))


def linear(step, mx, w, total, mn):
    if step < w:
        return mx * (step + 1) / w
    if step >= total:
        return mn
    return mx + (mn - mx) * (step - w) / (total - w)


def wsd(step, mx, w, total, d, mn, shape):
    if step < w:
        return mx * (step + 1) / w
    if step >= total:
        return mn
    start = total - d
    if step < start:
        return mx
    x = (step - start) / d
    f = {"linear": 1 - x, "cosine": 0.5 * (1 + math.cos(math.pi * x)), "sqrt": 1 - math.sqrt(x)}[shape]
    return mn + (mx - mn) * f


def multi(step):
    if step < 20:
        return cosine(step, 1e-3, 5, 20, 1e-4)
    return cosine(step - 20, 5e-4, 3, 30, 5e-5)


print("# llm::train golden values: torch " + torch.__version__ + " (see make_golden.py)")

# ---- AdamW + clip_grad_norm_ + cosine schedule --------------------------------------------
p0 = torch.randn(4, 5, dtype=torch.float32)
p1 = torch.randn(7, dtype=torch.float32)
emit("adamw_p0_init", p0)
emit("adamw_p1_init", p1)
p0 = p0.clone().requires_grad_(True)
p1 = p1.clone().requires_grad_(True)
opt = torch.optim.AdamW([{"params": [p0], "weight_decay": 0.1}, {"params": [p1], "weight_decay": 0.0}],
                        lr=1.0, betas=(0.9, 0.95), eps=1e-4)
lrs, norms = [], []
# torch's closed form of CosineAnnealingLR agrees with ours after warmup
sched_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=6e-3)
cos_sched = torch.optim.lr_scheduler.CosineAnnealingLR(sched_opt, T_max=8 - 2, eta_min=6e-4)
for k in range(2, 8):
    cos_sched.last_epoch = k - 2
    closed = cos_sched._get_closed_form_lr()[0]
    assert abs(closed - cosine(k, 6e-3, 2, 8, 6e-4)) < 1e-15, (k, closed)
for k in range(STEPS):
    scale = [0.3, 2.0, 6.0, 0.5, 1.0, 4.0, 0.8, 3.0, 0.4, 2.5][k]
    g0 = torch.randn(4, 5, dtype=torch.float32)
    g1 = torch.randn(7, dtype=torch.float32)
    n = math.sqrt(float((g0.double() ** 2).sum() + (g1.double() ** 2).sum()))
    g0 = (g0 * (scale / n)).float()
    g1 = (g1 * (scale / n)).float()
    emit(f"adamw_g0_{k}", g0)
    emit(f"adamw_g1_{k}", g1)
    p0.grad = g0.clone()
    p1.grad = g1.clone()
    total = torch.nn.utils.clip_grad_norm_([p0, p1], 1.0)
    norms.append(float(total))
    lr = cosine(k, 6e-3, 2, 8, 6e-4)
    lrs.append(lr)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    emit(f"adamw_p0_{k}", p0.detach())
    emit(f"adamw_p1_{k}", p1.detach())
emit("adamw_lr", lrs)
emit("adamw_norm", norms)

# ---- SGD ----------------------------------------------------------------------------------
for case, kw in (("sgd_damp", dict(momentum=0.9, dampening=0.1)), ("sgd_nesterov", dict(momentum=0.9, nesterov=True))):
    w = torch.randn(3, 6, dtype=torch.float32)
    emit(f"{case}_init", w)
    w = w.clone().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=0.05, weight_decay=0.01, **kw)
    for k in range(STEPS):
        g = torch.randn(3, 6, dtype=torch.float32)
        emit(f"{case}_g_{k}", g)
        w.grad = g.clone()
        opt.step()
        emit(f"{case}_p_{k}", w.detach())

# ---- schedules ----------------------------------------------------------------------------
N = 50
emit("sched_cosine", [cosine(s, 1e-3, 5, 40, 1e-4) for s in range(N)])
emit("sched_linear", [linear(s, 1e-3, 5, 40, 0.0) for s in range(N)])
for shape in ("linear", "cosine", "sqrt"):
    emit(f"sched_wsd_{shape}", [wsd(s, 1e-3, 5, 40, 10, 1e-5, shape) for s in range(N)])
emit("sched_multi", [multi(s) for s in range(N)])
