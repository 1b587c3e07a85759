#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# ctest: `train --dtype bf16` (bf16 weights in the forward and backward, fp32 activations and
# gradients, AdamW on fp32 master weights). The tiny Llama of tests/golden/model/llama
# pretrains STEPS steps on tests/golden/train_tool/tokens.bin (batch 8 x 8: its 65 tokens are every
# step's batch, so the loss falls; lr 1e-2, clip 1) in
# fp32 and in bf16, and:
# - the bf16 loss falls: the last step's below FALL x the first's;
# - every step's bf16 loss is within TOL relative of the fp32 run's. The weights differ by bf16
#   rounding, relative 2^-9 = 2e-3 at most per weight, and each step's rounding of the updated
#   masters adds as much again; through this 2-layer model's logits that moves the loss by about
#   that much relative per step, so TOL = 2e-2 (10 x 2^-9) covers 8 steps with room (measured:
#   printed, and in docs/train.md). A bf16 run that lost the master weights (updates rounded
#   away), trained different data or no weights would leave the band or not fall;
# - model.safetensors holds BF16 tensors and optimizer.safetensors a fp32 `.master` per weight.
# Standard library only.
#
#   check_bf16.py TRAIN_EXE SOURCE_DIR WORK_DIR
import json
import os
import struct
import subprocess
import sys

STEPS = 8
TOL = 2e-2
FALL = 0.9


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h


def main():
    exe, src, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    losses = {}
    for dt in ("fp32", "bf16"):
        log = os.path.join(work, dt + ".jsonl")
        if os.path.exists(log):
            os.remove(log)
        cmd = [exe, "--init", os.path.join(src, "tests", "golden", "model", "llama"),
               "--data", os.path.join(src, "tests", "golden", "train_tool", "tokens.bin"), "--batch", "8", "--seq", "8",
               "--steps", str(STEPS), "--lr", "1e-2", "--no-shuffle", "--clip", "1", "--threads", "1", "--dtype", dt,
               "--out", os.path.join(work, dt), "--log", log, "--plot", os.path.join(work, dt + ".png")]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(log) as f:
            losses[dt] = [json.loads(line)["loss"] for line in f if line.strip()]
    a, b = losses["fp32"], losses["bf16"]
    print("fp32 losses:", a)
    print("bf16 losses:", b)
    ok = len(a) == STEPS and len(b) == STEPS
    worst = max(abs(x - y) / abs(x) for x, y in zip(a, b)) if ok else float("inf")
    print(f"worst relative difference {worst:.3g} (tolerance {TOL}); bf16 last/first {b[-1] / b[0]:.3f} (need < {FALL})")
    ok = ok and worst <= TOL and b[-1] < FALL * b[0]
    model = header(os.path.join(work, "bf16", "model.safetensors"))
    opt = header(os.path.join(work, "bf16", "optimizer.safetensors"))
    dtypes = {v["dtype"] for v in model.values()}
    masters = [k for k in opt if k.endswith(".master")]
    print("bf16 checkpoint dtypes:", dtypes, "; master tensors:", len(masters), "of", len(model))
    ok = ok and dtypes == {"BF16"} and len(masters) == len(model) and all(opt[k]["dtype"] == "F32" for k in masters)
    fp32_model = header(os.path.join(work, "fp32", "model.safetensors"))
    ok = ok and {v["dtype"] for v in fp32_model.values()} == {"F32"}
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
