#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# ctest: `train --objective dpo` from the tiny Llama follows TRL 0.9.6's DPOTrainer
# (tests/golden/train/trl_dpo.txt, written by tests/golden/train/make_trl_golden.py with the
# settings it records: sigmoid loss, beta 0.1, the initial weights as the frozen reference,
# AdamW, clipping, constant lr, pairs in file order). Standard library only.
#
#   check_trl.py TRAIN_EXE SOURCE_DIR WORK_DIR
#
# Tolerance (derived in tests/train/trl.cpp, which runs the library's trainer on the same golden):
# loss and gradient norm 1e-5 relative, rewards/margins 1e-5 absolute, accuracies exact.
# Measured: 2.6e-7 relative on the loss.
import json
import math
import os
import subprocess
import sys


def read_golden(path):
    arrays, lines = {}, [l for l in open(path).read().splitlines() if l and not l.startswith("#")]
    for head, vals in zip(lines[0::2], lines[1::2]):
        arrays[head.split()[0]] = [float(v) for v in vals.split()]
    return arrays


def main():
    exe, src, work = sys.argv[1:4]
    gdir = os.path.join(src, "tests", "golden", "train")
    g = read_golden(os.path.join(gdir, "trl_dpo.txt"))
    batch, seq, steps, lr, beta, b1, b2, eps, wd, clip = g["settings"]
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "dpo.jsonl")
    if os.path.exists(log):
        os.remove(log)
    cmd = [exe, "--init", os.path.join(src, "tests", "golden", "model", "llama"), "--objective", "dpo", "--pairs",
           os.path.join(gdir, "trl_pairs.jsonl"), "--batch", str(int(batch)), "--seq", str(int(seq)), "--steps", str(int(steps)),
           "--lr", repr(lr), "--beta", repr(beta), "--beta1", repr(b1), "--beta2", repr(b2), "--eps", repr(eps),
           "--weight-decay", repr(wd), "--clip", repr(clip), "--loss-type", "sigmoid", "--no-guard", "--threads", "2",
           "--out", os.path.join(work, "out"), "--log", log, "--plot", os.path.join(work, "loss.png")]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    got = [json.loads(l) for l in open(log) if l.strip()]
    if len(got) != int(steps):
        sys.exit("%d log lines, expected %d" % (len(got), int(steps)))
    worst = 0.0
    for s, row in enumerate(got):
        checks = [("loss", "loss", 1e-5, True), ("grad_norm", "grad_norm", 1e-5, True), ("rewards/margins", "rewards_margins", 1e-5, False),
                  ("rewards/chosen", "rewards_chosen", 1e-5, False), ("rewards/rejected", "rewards_rejected", 1e-5, False),
                  ("rewards/accuracies", "rewards_accuracies", 0.0, False)]
        for key, gkey, tol, relative in checks:
            a, b = row[key], g[gkey][s]
            err = abs(a - b) / max(abs(b), 1e-30) if relative else abs(a - b)
            if key == "loss":
                worst = max(worst, err)
            if not (math.isfinite(a) and err <= tol):
                sys.exit("step %d: %s %r, TRL %r (%s %.3g > %.3g)" % (s, key, a, b, "relative" if relative else "absolute", err, tol))
    print("train --objective dpo follows TRL's DPOTrainer: worst relative loss difference %.3g over %d steps" % (worst, len(got)))


if __name__ == "__main__":
    main()
