#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# ctest: runs the `train` tool from the tiny transformers checkpoints of tests/golden/model/
# with the settings of tests/golden/train_tool/golden.json and compares the logged losses,
# learning rates and gradient norms with PyTorch's AdamW + clip_grad_norm_ run
# (tests/golden/train_tool/make_golden.py). Standard library only.
#
#   check_golden.py TRAIN_EXE SOURCE_DIR WORK_DIR
#
# Tolerance: losses within 2e-5 relative, gradient norms within 1e-4 relative, learning rates
# within 1e-12 relative. Both sides compute in fp32 with different summation orders (our GEMMs
# and reductions vs ATen's), a few ulp (6e-8) per accumulation of 32..64 terms, i.e. ~1e-6 in
# the logits; AdamW's normalised update carries such differences into the weights at most at
# lr x their relative size each step. Measured over 6 steps: 1e-7 .. 1e-6 relative. A wrong
# batch order, schedule step, decay rule or clipping changes the losses by 1e-3 or more.
import json
import math
import os
import subprocess
import sys


def main():
    exe, src, work = sys.argv[1:4]
    golden_dir = os.path.join(src, "tests", "golden", "train_tool")
    with open(os.path.join(golden_dir, "golden.json")) as f:
        golden = json.load(f)
    s = golden["settings"]
    os.makedirs(work, exist_ok=True)
    worst = 0.0
    for name, want in golden["models"].items():
        log = os.path.join(work, name + ".jsonl")
        cmd = [exe, "--init", os.path.join(src, "tests", "golden", "model", name), "--data", os.path.join(golden_dir, "tokens.bin"),
               "--batch", str(s["batch"]), "--seq", str(s["seq"]), "--steps", str(s["steps"]), "--lr", repr(s["lr"]),
               "--schedule", s["schedule"], "--warmup", str(s["warmup"]), "--min-lr", repr(s["min_lr"]), "--beta1", repr(s["beta1"]),
               "--beta2", repr(s["beta2"]), "--eps", repr(s["eps"]), "--weight-decay", repr(s["weight_decay"]), "--clip", repr(s["clip"]),
               "--no-shuffle", "--out", os.path.join(work, name), "--log", log, "--threads", "2"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(log) as f:
            got = [json.loads(line) for line in f if line.strip()]
        if len(got) != s["steps"]:
            sys.exit("%s: %d log lines, expected %d" % (name, len(got), s["steps"]))
        for step, g in enumerate(got):
            checks = [("loss", 2e-5), ("grad_norm", 1e-4), ("lr", 1e-12)]
            for key, tol in checks:
                a, b = g[key], want[key][step]
                rel = abs(a - b) / max(abs(b), 1e-30)
                if key == "loss":
                    worst = max(worst, rel)
                if not (math.isfinite(a) and rel <= tol):
                    sys.exit("%s step %d: %s %r, PyTorch %r (relative %.3g > %.3g)" % (name, step, key, a, b, rel, tol))
            if g["step"] != step:
                sys.exit("%s: log line %d has step %r" % (name, step, g["step"]))
    print("losses follow PyTorch: worst relative difference %.3g" % worst)


if __name__ == "__main__":
    main()
