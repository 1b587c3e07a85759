#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# bench_moe's mul_mat_id benchmarks (benchmarks/moe/mul_mat_id.cpp) against ggml's
# `test-backend-ops perf -o MUL_MAT_ID` on the same shapes (128 experts, 8 used, m 768, k 2048,
# b 0, n 1 and 512; f32, q4_0, q4_K), alternating ours and ggml's for each shape `rounds` times
# in one run, so both see the same load. Prints each shape's medians (GFLOP/s), the ratio, and at
# n = 1 the read bandwidth of the selected experts' weights (rotating experts) as a fraction of
# the read ceiling measured in the same bench_moe run.
# Usage: moe_mul_mat_id.py BENCH_MOE TEST_BACKEND_OPS [rounds] [variants]
# variants: comma-separated bench_moe names (default f32,q4_0,q4_K); `q4_0_packed` / `q8_0_packed`
# (packed experts) are compared with ggml's q4_0 / q8_0.
import json
import re
import statistics
import subprocess
import sys


def ours(bench, name):
    out = subprocess.run([bench, f"--benchmark_filter=^{re.escape(name)}$", "--benchmark_format=json",
                          "--benchmark_min_time=1"], check=True, capture_output=True, text=True).stdout
    b = json.loads(out)["benchmarks"][0]
    return b


def ggml(tbo, typ, n):
    p = f"type_a={typ},type_b=f32,n_mats=128,n_used=8,b=0,m=768,n={n},k=2048"
    out = subprocess.run([tbo, "perf", "-o", "MUL_MAT_ID", "-b", "CPU", "-p", re.escape(p)], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"MUL_MAT_ID\(" + re.escape(p) + r"\).*?([0-9.]+) (G|T|M)FLOPS", out)
    if not m:
        raise RuntimeError("no MUL_MAT_ID line for " + p + " in:\n" + out)
    scale = {"M": 1e-3, "G": 1.0, "T": 1e3}[m.group(2)]
    return float(m.group(1)) * scale


def main():
    bench, tbo = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print("| weights | n | ours GFLOP/s | ggml GFLOP/s | ours / ggml |")
    print("| --- | --- | --- | --- | --- |")
    fractions = []
    variants = sys.argv[4].split(",") if len(sys.argv) > 4 else ["f32", "q4_0", "q4_K"]
    for typ in variants:
        for n in [1, 512]:
            o, g = [], []
            for _ in range(rounds):
                o.append(ours(bench, f"mul_mat_id/{typ}/n:{n}/rotate:0/real_time")["GFLOP/s"])
                g.append(ggml(tbo, typ.removesuffix("_packed"), n))
            mo, mg = statistics.median(o), statistics.median(g)
            print(f"| {typ} | {n} | {mo:.2f} | {mg:.2f} | {mo / mg:.2f}x |", flush=True)
        b = ours(bench, f"mul_mat_id/{typ}/n:1/rotate:1/real_time")
        fractions.append((typ, b["GB/s"], b["read_ceiling_GB/s"]))
    print()
    print("| weights | n = 1, rotating experts: GB/s of weights read | read ceiling, same run | fraction |")
    print("| --- | --- | --- | --- |")
    for typ, gbs, ceil in fractions:
        print(f"| {typ} | {gbs:.2f} | {ceil:.2f} | {100 * gbs / ceil:.0f}% |")


if __name__ == "__main__":
    main()
