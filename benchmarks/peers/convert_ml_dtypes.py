#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Peer for bench_core: ml_dtypes / numpy astype throughput (pip install ml_dtypes numpy).
import time, numpy as np, ml_dtypes as m
rng = np.random.default_rng(1)
for n in (1 << 16, 1 << 24):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    for name, t in (("bf16", m.bfloat16), ("f16", np.float16), ("fp8_e4m3", m.float8_e4m3fn), ("fp8_e5m2", m.float8_e5m2)):
        y = x.astype(t)
        for what, src, dst in (("encode", x, t), ("decode", y, np.float32)):
            reps = max(3, int(2e7 // n))
            best = []
            for _ in range(5):
                t0 = time.process_time()
                for _ in range(reps):
                    src.astype(dst)
                best.append((time.process_time() - t0) / reps)
            s = sorted(best)[len(best) // 2]
            print(f"{what:6s} {name:9s} n={n:9d} {n / s / 1e9:6.3f} G elements/s (median of 5, CPU time)")
