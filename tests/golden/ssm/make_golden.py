#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden values for llm::ssm from PyTorch (float64), written to golden.txt beside this script.

Run: python3 tests/golden/ssm/make_golden.py   (needs torch; einops is not needed)

Independent ports, in torch ops, of the two reference algorithms of the mamba-ssm project:
  - selective_scan_ref (mamba_ssm/ops/selective_scan_interface.py): delta + delta_bias, softplus,
    deltaA = exp(einsum(delta, A)), deltaB_u = einsum(delta, B, u), a sequential loop over L of
    x = deltaA x + deltaB_u, y = einsum(x, C), out = y + D u, out * silu(z); B and C either (D, N)
    or (batch, G, N, L) repeated over the D / G channels of each group;
  - ssd_minimal_discrete (mamba_ssm/modules/ssd_minimal.py): the chunked algorithm with segsum,
    intra-chunk Y_diag, chunk states, inter-chunk recurrence and Y_off, on X = x dt, A dt.
Gradients (of sum(out * dout) and sum(Y * dy)) come from torch.autograd through these ports, so
they check our hand-written backward passes independently.

Inputs are drawn in float32 and widened (the C++ test reads them exactly into float).
Format: per array a header line `name d0 d1 ...` then one line of its values (row-major, repr
12 significant digits; inputs 9 digits of their float32 value). Layouts: u, delta, z, out (batch, D, L); A (D, N); B, C (batch, G, N, L)
or (D, N); D, delta_bias (D); last_state (batch, D, N). SSD: x, y (batch, L, H, P); dt
(batch, L, H); A (H); B, C (batch, L, G, N); final_state (batch, H, P, N).
"""
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261204)
F64 = torch.float64
out = []


def emit(name, t, fmt="{:.12g}"):
    t = torch.as_tensor(t).detach().to(F64).contiguous()
    dims = " ".join(str(d) for d in t.shape)
    out.append(f"{name} {dims}\n" + " ".join(fmt.format(float(v)) for v in t.flatten().tolist()) + "\n")


def emit_input(name, t):
    """A float32 value in 9 significant digits: read back into float exactly."""
    emit(name, t, "{:.9g}")


def randn32(*shape, mean=0.0, std=1.0):
    return (torch.randn(*shape, dtype=torch.float32) * std + mean).to(F64)


def rand32(lo, hi, *shape):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).to(F64)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """mamba-ssm's selective_scan_ref (real A), written with torch ops."""
    batch, dim, L = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)  # beta 1, threshold 20
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    if B.dim() == 2:
        deltaB_u = torch.einsum("bdl,dn,bdl->bdln", delta, B, u)
    else:
        Bd = B.repeat_interleave(dim // B.shape[1], dim=1)  # (batch, D, N, L)
        deltaB_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bd, u)
    Cd = C if C.dim() == 2 else C.repeat_interleave(dim // C.shape[1], dim=1)
    x = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for i in range(L):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        if Cd.dim() == 2:
            y = torch.einsum("bdn,dn->bd", x, Cd)
        else:
            y = torch.einsum("bdn,bdn->bd", x, Cd[:, :, :, i])
        ys.append(y)
    y = torch.stack(ys, dim=2)
    res = y if D is None else y + u * D[..., None]
    if z is not None:
        res = res * F.silu(z)
    return res, x


def segsum(x):
    T = x.size(-1)
    cs = torch.cumsum(x, dim=-1)
    seg = cs[..., :, None] - cs[..., None, :]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=0)
    return seg.masked_fill(~mask, -torch.inf)


def ssd_minimal_discrete(X, A, B, C, block_len):
    """mamba-ssm's ssd_minimal_discrete: X (b, l, h, p), A (b, l, h), B, C (b, l, h, n)."""
    b, l, h, p = X.shape
    c = l // block_len

    def chunk(t):
        return t.reshape(b, c, block_len, *t.shape[2:])

    X, A, B, C = chunk(X), chunk(A), chunk(B), chunk(C)
    A = A.permute(0, 3, 1, 2)  # b h c l
    A_cumsum = torch.cumsum(A, dim=-1)
    Lm = torch.exp(segsum(A))
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, Lm, X)
    decay_states = torch.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_states, X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final_state = new_states[:, :-1], new_states[:, -1]
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(A_cumsum))
    return (Y_diag + Y_off).reshape(b, l, h, p), final_state


def scan_case(name, batch, dim, L, N, G, variable, with_z, with_d, with_bias, softplus):
    u = randn32(batch, dim, L).requires_grad_()
    delta = (randn32(batch, dim, L, mean=-1.0, std=0.7) if softplus else rand32(0.05, 0.8, batch, dim, L)).requires_grad_()
    A = rand32(-2.0, -0.1, dim, N).requires_grad_()
    if variable:
        B = randn32(batch, G, N, L).requires_grad_()
        C = randn32(batch, G, N, L).requires_grad_()
    else:
        B = randn32(dim, N).requires_grad_()
        C = randn32(dim, N).requires_grad_()
    D = randn32(dim).requires_grad_() if with_d else None
    z = randn32(batch, dim, L).requires_grad_() if with_z else None
    bias = randn32(dim, std=0.3).requires_grad_() if with_bias else None
    res, last = selective_scan_ref(u, delta, A, B, C, D, z, bias, softplus)
    dout = randn32(batch, dim, L)
    (res * dout).sum().backward()
    emit(f"{name}.flags", torch.tensor([float(variable), float(with_z), float(with_d), float(with_bias), float(softplus)]))
    for n, t in [("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z), ("delta_bias", bias)]:
        if t is not None:
            emit_input(f"{name}.{n}", t)
            emit(f"{name}.d{n}", t.grad)
    emit_input(f"{name}.dout", dout)
    emit(f"{name}.out", res)
    emit(f"{name}.last_state", last)


def ssd_case(name, batch, L, H, P, G, N, block_len):
    x = randn32(batch, L, H, P).requires_grad_()
    dt = rand32(0.01, 0.3, batch, L, H).requires_grad_()
    A = rand32(-3.0, -0.2, H).requires_grad_()
    B = randn32(batch, L, G, N).requires_grad_()
    C = randn32(batch, L, G, N).requires_grad_()
    rep = H // G
    Y, final = ssd_minimal_discrete(x * dt[..., None], A * dt, B.repeat_interleave(rep, dim=2),
                                    C.repeat_interleave(rep, dim=2), block_len)
    dy = randn32(batch, L, H, P)
    (Y * dy).sum().backward()
    emit(f"{name}.block_len", torch.tensor([float(block_len)]))
    for n, t in [("x", x), ("dt", dt), ("A", A), ("B", B), ("C", C)]:
        emit_input(f"{name}.{n}", t)
        emit(f"{name}.d{n}", t.grad)
    emit_input(f"{name}.dy", dy)
    emit(f"{name}.y", Y)
    emit(f"{name}.final_state", final)


scan_case("scan_full", 1, 4, 4, 2, 2, True, True, True, True, True)
scan_case("scan_fixed", 1, 2, 3, 2, 1, False, False, True, False, False)
ssd_case("ssd", 1, 4, 2, 2, 1, 2, 2)

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.txt")
with open(path, "w") as f:
    f.write("# Generated by make_golden.py (PyTorch " + torch.__version__.split("+")[0] + "); do not edit.\n")
    f.writelines(out)
print(path, os.path.getsize(path), "bytes")
