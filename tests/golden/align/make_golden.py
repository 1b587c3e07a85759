#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden values for llm::align preference losses: loss, per-example losses, logged rewards and
gradients w.r.t. the policy's summed chosen/rejected log-probs, by PyTorch autograd in float64.

Formulas are those of TRL 1.16.0 (pip download trl==1.16.0):
  - trl/trainer/dpo_trainer.py  DPOTrainer._compute_loss, every loss_type whose inputs are
    per-sequence log-probs: sigmoid hinge ipo exo_pair nca_pair robust bco_pair sppo_hard aot
    aot_unpaired apo_zero apo_down discopop sft sigmoid_norm;
  - trl/experimental/cpo/cpo_trainer.py  CPOTrainer.cpo_loss + get_batch_loss_metrics
    (loss_type sigmoid = CPO, loss_type simpo = SimPO, loss = mean + cpo_alpha * nll);
  - trl/experimental/orpo/orpo_trainer.py  ORPOTrainer.odds_ratio_loss (loss = nll - mean);
  - trl/trainer/kto_trainer.py  KTOTrainer._compute_loss (loss_type kto, apo_zero_unpaired).
Features TRL 1.16 dropped but the issue asks for come from TRL 0.27.2's DPOTrainer.dpo_loss:
label smoothing of the sigmoid loss (cDPO) and reference_free (reference log-probs = 0).
R-DPO (Park et al. 2024, arXiv 2403.19159, eq. 9) is in no TRL version: sigmoid loss of
beta*delta - alpha*(|y_w| - |y_l|).

The NLL terms (CPO, SimPO with cpo_alpha, ORPO, sft) are TRL's token-mean cross entropy over the
chosen responses, which in terms of per-sequence sums is -sum(chosen) / sum(chosen_tokens).
SimPO and ORPO use average log-probs (sum / tokens), as TRL's average_log_prob=True does.

Where TRL's literal formula overflows for the extreme cases (discopop's exp(-z) * sigmoid(z/tau)
at z = -1e3: inf * 0), the same quantity is written in log form, exp(-z + logsigmoid(z/tau));
the script asserts both forms agree on every non-extreme case.

Run: /usr/bin/python3 tests/golden/align/make_golden.py > tests/golden/align/losses.txt
Output: line-based text ("case", "param", "vec", "scalar", "end" lines) parsed by tests/align/losses.cpp.
"""
import math
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
gen = torch.Generator().manual_seed(20261123)


def rand(n, lo, hi):
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def randint(n, lo, hi):
    return torch.randint(lo, hi + 1, (n,), generator=gen).double()


# ------------------------------------------------------------------------------------------
# DPOTrainer (TRL 1.16.0) loss_types, plus cDPO label smoothing / reference_free (0.27.2) and R-DPO
# ------------------------------------------------------------------------------------------
def dpo(loss_type, p, c, r, rc, rr, lc, lr, stable=False):
    beta = p["beta"]
    ls = p.get("label_smoothing", 0.0)
    if p.get("reference_free", 0):
        rc = torch.zeros_like(rc)
        rr = torch.zeros_like(rr)
    chosen_logratios = c - rc
    rejected_logratios = r - rr
    delta_score = chosen_logratios - rejected_logratios
    if loss_type == "sigmoid":
        z = beta * delta_score - p.get("rdpo_alpha", 0.0) * (lc - lr)
        per = -F.logsigmoid(z) * (1 - ls) - F.logsigmoid(-z) * ls
    elif loss_type == "hinge":
        per = torch.relu(1 - beta * delta_score)
    elif loss_type == "ipo":
        ipo_delta = chosen_logratios / lc.clamp(min=1.0) - rejected_logratios / lr.clamp(min=1.0)
        per = (ipo_delta - 1 / (2 * beta)) ** 2
    elif loss_type == "exo_pair":
        eps = torch.tensor(ls)
        z = beta * delta_score
        per = torch.sigmoid(z) * (F.logsigmoid(z) - torch.log1p(-eps)) + torch.sigmoid(-z) * (
            F.logsigmoid(-z) - torch.log(eps)
        )
    elif loss_type == "nca_pair":
        a = beta * chosen_logratios
        b = beta * rejected_logratios
        per = -F.logsigmoid(a) - 0.5 * F.logsigmoid(-a) - 0.5 * F.logsigmoid(-b)
    elif loss_type == "robust":
        clean = -(1 - ls) * F.logsigmoid(beta * delta_score)
        flipped = -ls * F.logsigmoid(-beta * delta_score)
        per = (clean - flipped) / (1 - 2 * ls)
    elif loss_type == "bco_pair":
        per = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
    elif loss_type == "sppo_hard":
        per = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    elif loss_type == "aot":
        lrs, _ = torch.sort(c - r, dim=0)
        refs, _ = torch.sort(rc - rr, dim=0)
        d = lrs - refs
        per = -F.logsigmoid(beta * d) * (1 - ls) - F.logsigmoid(-beta * d) * ls
    elif loss_type == "aot_unpaired":
        cs, _ = torch.sort(chosen_logratios, dim=0)
        rs, _ = torch.sort(rejected_logratios, dim=0)
        d = cs - rs
        per = -F.logsigmoid(beta * d) * (1 - ls) - F.logsigmoid(-beta * d) * ls
    elif loss_type == "apo_zero":
        per = (1 - torch.sigmoid(beta * chosen_logratios)) + torch.sigmoid(beta * rejected_logratios)
    elif loss_type == "apo_down":
        per = torch.sigmoid(beta * chosen_logratios) + (1 - torch.sigmoid(beta * delta_score))
    elif loss_type == "discopop":
        tau = p["discopop_tau"]
        z = delta_score * beta
        m = torch.sigmoid(z / tau)
        if stable:
            per = -F.logsigmoid(z) * (1 - m) + torch.exp(-z + F.logsigmoid(z / tau))
        else:
            per = -F.logsigmoid(z) * (1 - m) + torch.exp(-z) * m
    elif loss_type == "sft":
        per = (-c.sum() / lc.sum()).expand(c.shape[0])
    elif loss_type == "sigmoid_norm":
        d = chosen_logratios / lc.clamp(min=1.0) - rejected_logratios / lr.clamp(min=1.0)
        per = -F.logsigmoid(beta * d)
    else:
        raise ValueError(loss_type)
    loss = per.mean()
    cr = beta * chosen_logratios.detach()
    rj = beta * rejected_logratios.detach()
    return loss, per, cr, rj, {}


def nll(c, lc):
    return -c.sum() / lc.sum()


def cpo_family(loss_type, p, c, r, rc, rr, lc, lr, stable=False):
    beta = p["beta"]
    ls = p.get("label_smoothing", 0.0)
    if loss_type == "simpo":
        cl, rl = c / lc, r / lr  # average_log_prob=True
        logits = cl - rl - p["simpo_gamma"] / beta
    else:  # "cpo": CPOTrainer loss_type sigmoid, summed log-probs
        cl, rl = c, r
        logits = cl - rl
    per = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
    n = nll(c, lc)
    loss = per.mean() + p["cpo_alpha"] * n
    return loss, per, beta * cl.detach(), beta * rl.detach(), {"nll": n.detach()}


def log1mexp(x):
    t = -0.6931471805599453
    return torch.where(x < t, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo(loss_type, p, c, r, rc, rr, lc, lr, stable=False):
    beta = p["beta"]
    cl, rl = c / lc, r / lr
    log_odds = (cl - rl) - (log1mexp(cl) - log1mexp(rl))
    ratio = F.logsigmoid(log_odds)
    trl_losses = beta * ratio
    n = nll(c, lc)
    loss = n - trl_losses.mean()
    # per-example losses are reported as -beta * logsigmoid(log_odds) (TRL's -losses), so that
    # loss = nll + mean(per-example) like every other family
    return loss, -trl_losses, beta * cl.detach(), beta * rl.detach(), {
        "nll": n.detach(),
        "log_odds_ratio": ratio.mean().detach(),
        "log_odds_chosen": log_odds.mean().detach(),
    }


def kto(loss_type, p, x, ref, desirable, kl):
    beta = p["beta"]
    lr_ = x - ref
    if loss_type == "kto":
        per = torch.where(
            desirable,
            p["desirable_weight"] * (1 - torch.sigmoid(beta * (lr_ - kl))),
            p["undesirable_weight"] * (1 - torch.sigmoid(beta * (kl - lr_))),
        )
    else:  # apo_zero_unpaired
        per = torch.where(
            desirable,
            p["desirable_weight"] * (1 - torch.sigmoid(beta * lr_)),
            p["undesirable_weight"] * torch.sigmoid(beta * lr_),
        )
    # TRL concatenates chosen then rejected before the mean; the mean does not depend on the order,
    # and per-example values are kept in input order here.
    loss = per.mean()
    rewards = beta * lr_.detach()
    return loss, per, rewards


def fmt(v):
    return repr(float(v))


def emit_vec(out, name, t):
    out.append(f"vec {name} {t.numel()} " + " ".join(fmt(v) for v in t.tolist()))


def pair_case(out, name, family, loss_type, params, c, r, rc, rr, lc, lr, stable=False):
    fn = {"dpo": dpo, "cpo": cpo_family, "orpo": orpo}[family]
    c = c.clone().requires_grad_(True)
    r = r.clone().requires_grad_(True)
    loss, per, cr, rj, extra = fn(loss_type, params, c, r, rc, rr, lc, lr, stable)
    dc, dr = torch.autograd.grad(loss, (c, r), allow_unused=True)
    dc = torch.zeros_like(c) if dc is None else dc
    dr = torch.zeros_like(r) if dr is None else dr
    if family == "dpo" and loss_type == "discopop" and not stable:
        s = dpo(loss_type, params, c.detach(), r.detach(), rc, rr, lc, lr, stable=True)[0]
        assert abs(float(s) - float(loss)) <= 1e-12 * max(1.0, abs(float(loss))), (name, s, loss)
    vals = [loss, per, dc, dr]
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in vals), name
    out.append(f"case {name} {family} {loss_type}")
    for k, v in params.items():
        out.append(f"param {k} {fmt(v)}")
    for k, v in (("chosen", c), ("rejected", r), ("ref_chosen", rc), ("ref_rejected", rr),
                 ("chosen_tokens", lc), ("rejected_tokens", lr)):
        emit_vec(out, k, v.detach())
    out.append(f"scalar loss {fmt(loss)}")
    emit_vec(out, "losses", per.detach())
    emit_vec(out, "d_chosen", dc)
    emit_vec(out, "d_rejected", dr)
    emit_vec(out, "chosen_rewards", cr)
    emit_vec(out, "rejected_rewards", rj)
    out.append(f"scalar accuracy {fmt((cr > rj).double().mean())}")
    out.append(f"scalar margin {fmt((cr - rj).mean())}")
    for k, v in extra.items():
        out.append(f"scalar {k} {fmt(v)}")
    out.append("end")


def kto_case(out, name, loss_type, params, x, ref, desirable, kl):
    x = x.clone().requires_grad_(True)
    loss, per, rewards = kto(loss_type, params, x, ref, desirable, kl)
    (dx,) = torch.autograd.grad(loss, (x,))
    out.append(f"case {name} kto {loss_type}")
    for k, v in params.items():
        out.append(f"param {k} {fmt(v)}")
    out.append(f"param kl {fmt(kl)}")
    emit_vec(out, "logps", x.detach())
    emit_vec(out, "ref_logps", ref)
    emit_vec(out, "desirable", desirable.double())
    out.append(f"scalar loss {fmt(loss)}")
    emit_vec(out, "losses", per.detach())
    emit_vec(out, "d_logps", dx)
    emit_vec(out, "rewards", rewards)
    nd = int(desirable.sum())
    nu = desirable.numel() - nd
    rc = rewards[desirable].sum() / nd if nd else 0.0
    rr = rewards[~desirable].sum() / nu if nu else 0.0
    out.append(f"scalar chosen_reward {fmt(rc)}")
    out.append(f"scalar rejected_reward {fmt(rr)}")
    out.append("end")


def main():
    out = [f"# llm::align golden values: torch {torch.__version__}, formulas of TRL 1.16.0 (see make_golden.py)"]
    dpo_types = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                 "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]
    extra_params = {"exo_pair": {"label_smoothing": 1e-3}, "robust": {"label_smoothing": 0.1},
                    "aot": {"label_smoothing": 0.05}, "aot_unpaired": {"label_smoothing": 0.05},
                    "discopop": {"discopop_tau": 0.05}}
    for B in (1, 7, 20):
        # moderate inputs: summed log-probs of responses of 1..60 tokens
        lc = randint(B, 1, 60)
        lr = randint(B, 1, 60)
        c = -lc * rand(B, 0.2, 3.0)
        r = -lr * rand(B, 0.2, 3.0)
        rc = c + rand(B, -8.0, 8.0)
        rr = r + rand(B, -8.0, 8.0)
        for t in dpo_types:
            p = {"beta": 0.1}
            p.update(extra_params.get(t, {}))
            pair_case(out, f"{t}_B{B}", "dpo", t, p, c, r, rc, rr, lc, lr)
        pair_case(out, f"cdpo_B{B}", "dpo", "sigmoid", {"beta": 0.3, "label_smoothing": 0.2}, c, r, rc, rr, lc, lr)
        pair_case(out, f"reffree_B{B}", "dpo", "sigmoid", {"beta": 0.05, "reference_free": 1}, c, r, rc, rr, lc, lr)
        pair_case(out, f"rdpo_B{B}", "dpo", "sigmoid", {"beta": 0.1, "rdpo_alpha": 0.02}, c, r, rc, rr, lc, lr)
        pair_case(out, f"ipo_beta05_B{B}", "dpo", "ipo", {"beta": 0.5}, c, r, rc, rr, lc, lr)
        pair_case(out, f"hinge_beta1_B{B}", "dpo", "hinge", {"beta": 1.0}, c, r, rc, rr, lc, lr)
        pair_case(out, f"simpo_B{B}", "cpo", "simpo",
                  {"beta": 2.0, "simpo_gamma": 0.5, "label_smoothing": 0.0, "cpo_alpha": 0.0}, c, r, rc, rr, lc, lr)
        pair_case(out, f"cpo_simpo_B{B}", "cpo", "simpo",
                  {"beta": 2.5, "simpo_gamma": 1.2, "label_smoothing": 0.1, "cpo_alpha": 0.05}, c, r, rc, rr, lc, lr)
        pair_case(out, f"cpo_B{B}", "cpo", "cpo", {"beta": 0.1, "label_smoothing": 0.0, "cpo_alpha": 1.0},
                  c, r, rc, rr, lc, lr)
        pair_case(out, f"orpo_B{B}", "orpo", "orpo", {"beta": 0.1}, c, r, rc, rr, lc, lr)
        desirable = torch.rand(B, generator=gen) < 0.6
        x = -randint(B, 1, 60) * rand(B, 0.2, 3.0)
        ref = x + rand(B, -8.0, 8.0)
        for t in ("kto", "apo_zero_unpaired"):
            kto_case(out, f"{t}_B{B}", t, {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.33},
                     x, ref, desirable, 0.7)

    # extreme inputs: log-probs of -1e4 and margins of +-1e4 with beta = 1, lengths 1
    c = torch.tensor([-1e4, -1e-3, -1e4, -5000.0, -1.0, -1e4])
    r = torch.tensor([-1e-3, -1e4, -1e4, -1.0, -5000.0, -2.0])
    rc = torch.tensor([-1e-3, -1e4, -1.0, -1e4, -1e4, -1e-3])
    rr = torch.tensor([-1e4, -1e-3, -1.0, -1e4, -1e-3, -1e4])
    lc = torch.tensor([1.0, 1.0, 3.0, 1.0, 2.0, 1.0])
    lr = torch.tensor([1.0, 1.0, 3.0, 1.0, 2.0, 1.0])
    for t in dpo_types:
        p = {"beta": 1.0}
        p.update(extra_params.get(t, {}))
        pair_case(out, f"{t}_extreme", "dpo", t, p, c, r, rc, rr, lc, lr, stable=(t == "discopop"))
    pair_case(out, "cdpo_extreme", "dpo", "sigmoid", {"beta": 1.0, "label_smoothing": 0.2}, c, r, rc, rr, lc, lr)
    pair_case(out, "simpo_extreme", "cpo", "simpo",
              {"beta": 2.0, "simpo_gamma": 0.5, "label_smoothing": 0.1, "cpo_alpha": 0.5}, c, r, rc, rr, lc, lr)
    pair_case(out, "cpo_extreme", "cpo", "cpo", {"beta": 1.0, "label_smoothing": 0.1, "cpo_alpha": 1.0},
              c, r, rc, rr, lc, lr)
    pair_case(out, "orpo_extreme", "orpo", "orpo", {"beta": 1.0}, c, r, rc, rr, lc, lr)
    desirable = torch.tensor([True, False, True, False, True, False])
    for t in ("kto", "apo_zero_unpaired"):
        kto_case(out, f"{t}_extreme", t, {"beta": 1.0, "desirable_weight": 1.0, "undesirable_weight": 1.0},
                 c, rc, desirable, 0.0)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
