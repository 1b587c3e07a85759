#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes formats.txt: inputs, expected GGUF block bytes and expected dequantized values for
# tests/quant/formats.cpp, which requires llm::quant to produce the same bytes and floats.
#
# Oracles:
#  - Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: the `gguf` Python package (gguf.quants.quantize / dequantize),
#    bit-exact with ggml's C reference, which this script also runs and checks it against (one
#    known difference, see known_signed_zero_min; the C bytes are written).
#  - Q8_1 and the K formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K): ggml's own C reference
#    (quantize_row_<type>_ref, dequantize_row_<type>), through a small driver program that is
#    not part of this repository. Build it from a ggml checkout (github.com/ggml-org/ggml):
#      gcc -O2 -DNDEBUG -ffp-contract=off -std=gnu11 -I<ggml>/src -I<ggml>/include -I<ggml>/src/ggml-cpu \
#          qdriver.c <ggml>/src/ggml-quants.c -lm -o qdriver
#    where qdriver.c (a few dozen lines) implements:
#      qdriver <type>  : float32 little-endian values on stdin -> quantize_row_<type>_ref bytes on stdout
#      qdriver d<type> : blocks on stdin -> dequantize_row_<type> float32 values on stdout
#    with <type> one of q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 q2_K q3_K q4_K q5_K q6_K q8_K (no dq8_1), and
#    stub definitions of ggml_abort, ggml_row_size, ggml_type_name and ggml_type_size (unused by
#    these functions). -ffp-contract=off matters: it is the ISO C evaluation (every product
#    rounded) that llm::quant implements; an FMA-contracting build can round a search sum
#    differently and pick another scale.
#  Generated with ggml commit d99724f2 and gguf-py from /work/venv.
#
# Rerun: LLM_GGML_QDRIVER=/path/to/qdriver /work/venv/bin/python make_quant_golden.py > formats.txt
#
# File format (parsed by tests/quant/formats.cpp), one record per line, '#' lines are comments:
#   input <case> <hex>             256 float32, little-endian bytes
#   blocks <format> <case> <hex>   the blocks of those 256 values
#   dequant <format> <case> <hex>  the float32 values the expected blocks decode to
#   dequant_fnv <format> <case> <16 hex digits>  FNV-1a 64 of those float32 bytes (smaller)
import os
import subprocess
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

DRIVER = os.environ.get("LLM_GGML_QDRIVER", "/tmp/ggml/qdriver")
N = 256
GGUF_PY = {"q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1, "q8_0": T.Q8_0}
GGUF_PY_DEQUANT = {**GGUF_PY, "q2_K": T.Q2_K, "q3_K": T.Q3_K, "q4_K": T.Q4_K, "q5_K": T.Q5_K, "q6_K": T.Q6_K}
FORMATS = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K"]
FULL_DEQUANT_CASES = {"normal"}


def make_cases():
    rng = np.random.default_rng(20240607)
    f32 = np.float32
    cases = {}
    zeros = np.zeros(N, dtype=f32)
    zeros[1::2] = -0.0  # signed zeros must not count as a maximum
    cases["zeros"] = zeros
    x = rng.standard_normal(N).astype(f32)
    for b in range(N // 32):  # one outlier per 32 values, alternating sign
        x[32 * b + rng.integers(32)] = f32((-1) ** b * rng.uniform(20, 60))
    cases["outlier"] = x
    cases["tiny"] = (rng.standard_normal(N) * 1e-30).astype(f32)
    x = -(np.abs(rng.standard_normal(N)) + 0.25)
    pos = rng.random(N) < 0.125
    x[pos] = rng.uniform(0, 0.1, pos.sum())
    cases["negative"] = x.astype(f32)
    cases["normal"] = rng.standard_normal(N).astype(f32)
    x = rng.standard_normal(N)
    for b in range(N // 32):
        x[32 * b:32 * b + 32] *= 10.0 ** (b - 4)
    x[160:192] = 0.7  # constant blocks: max == min
    x[192:224] = -1.3
    cases["scales"] = x.astype(f32)
    # Exact rounding ties: every 32-block has -127 first (Q8_0: d = 1; Q8_K: iscale = 1), the rest
    # half-integers, where roundf (Q8_0) and nearest-even (K formats) disagree.
    x = rng.integers(-127, 127, N) + 0.5
    x[::32] = -127
    cases["ties"] = x.astype(f32)
    # Beyond the f16 scales' range (d > 65504): ggml stores inf scales and its K-format re-coding
    # feeds NaN to nearest_int (an assert in debug builds of ggml: build the driver with -DNDEBUG).
    cases["huge"] = (rng.standard_normal(N) * 3e7).astype(f32)
    return cases


def driver(arg, data):
    out = subprocess.run([DRIVER, arg], input=data, capture_output=True, check=True)
    return out.stdout


def known_signed_zero_min(fmt, py, c):
    """gguf-py takes numpy's min, which is -0.0 for a block of +-0 where ggml's C loop keeps the
    first zero (+0.0): the one known difference, in m of Q4_1 / Q5_1. The C bytes are the golden."""
    size = {"q4_1": 20, "q5_1": 24}.get(fmt)
    if size is None or len(py) != len(c):
        return False
    diff = [i for i in range(len(c)) if py[i] != c[i]]
    ok = all(i % size == 3 and py[i] == 0x80 and c[i] == 0 for i in diff)
    if ok:
        print(f"note: {fmt}: gguf-py stores m = -0.0 where ggml stores +0.0 ({len(diff)} blocks)", file=sys.stderr)
    return ok


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    cases = make_cases()
    out = ["# generated by make_quant_golden.py; do not edit"]
    for name, x in cases.items():
        out.append(f"input {name} {x.astype('<f4').tobytes().hex()}")
    for fmt in FORMATS:
        for name, x in cases.items():
            raw = x.astype("<f4").tobytes()
            blocks = driver(fmt, raw)
            if fmt in GGUF_PY:
                py = quants.quantize(x.reshape(1, N), GGUF_PY[fmt]).tobytes()
                assert py == blocks or known_signed_zero_min(fmt, py, blocks), \
                    f"{fmt} {name}: gguf-py and ggml's C reference disagree"
            if fmt == "q8_1":  # no dequantize_row_q8_1 in ggml: d * q, as Q8_0
                b = np.frombuffer(blocks, dtype=np.uint8).reshape(-1, 36)
                d = b[:, 0:2].copy().view("<f2").astype(np.float32)
                deq = (b[:, 4:].copy().view(np.int8).astype(np.float32) * d).astype("<f4").tobytes()
            else:
                deq = driver("d" + fmt, blocks)
            if fmt in GGUF_PY_DEQUANT:
                arr = np.frombuffer(blocks, dtype=np.uint8).reshape(1, -1)
                py = quants.dequantize(arr, GGUF_PY_DEQUANT[fmt]).astype("<f4").tobytes()
                assert py == deq, f"{fmt} {name}: gguf-py and ggml's C dequantize disagree"
            out.append(f"blocks {fmt} {name} {blocks.hex()}")
            if name in FULL_DEQUANT_CASES:
                out.append(f"dequant {fmt} {name} {deq.hex()}")
            else:
                out.append(f"dequant_fnv {fmt} {name} {fnv1a64(deq):016x}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
