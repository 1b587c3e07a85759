#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes the GGUF goldens of tests/io/gguf.cpp with gguf-py's GGUFWriter (the reference writer),
# and the seeds of the io_gguf fuzz harness. tests/io/gguf.cpp builds the same files with
# llm::io::gguf_writer from the same values (keep the two in step) and compares the bytes.
#   /work/venv/bin/python tests/golden/io/make_gguf_golden.py
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, GGUFValueType as T, GGMLQuantizationType as Q

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parent.parent / "fuzz" / "io_gguf"

SCALARS = [  # key, type, value: one of every scalar type
    ("test.u8", T.UINT8, 200), ("test.i8", T.INT8, -100), ("test.u16", T.UINT16, 60000),
    ("test.i16", T.INT16, -30000), ("test.u32", T.UINT32, 4000000000), ("test.i32", T.INT32, -2000000000),
    ("test.f32", T.FLOAT32, 3.25), ("test.bool", T.BOOL, True), ("test.string", T.STRING, "h\u00e9llo \u2713"),
    ("test.u64", T.UINT64, 2**63 + 5), ("test.i64", T.INT64, -2**62), ("test.f64", T.FLOAT64, 0.1),
]
ARRAYS = [  # key, element type, values: an array of every element type
    ("arr.u8", T.UINT8, [0, 1, 255]), ("arr.i8", T.INT8, [-128, 127]), ("arr.u16", T.UINT16, [65535, 7]),
    ("arr.i16", T.INT16, [-32768, 5]), ("arr.u32", T.UINT32, [1, 4294967295]), ("arr.i32", T.INT32, [1, -2, 3]),
    ("arr.f32", T.FLOAT32, [0.5, -1.5, 1e-3]), ("arr.bool", T.BOOL, [True, False, True]),
    ("arr.string", T.STRING, ["a", "", "\u00fcn\u00ef", "x y"]), ("arr.u64", T.UINT64, [2**64 - 1]),
    ("arr.i64", T.INT64, [-(2**63), 2**63 - 1]), ("arr.f64", T.FLOAT64, [1e300, -2.5]),
]


def ramp(n, scale, offset):  # the tensor values: (i - offset) * scale, exact in f16 and bf16
    return (np.arange(n, dtype=np.float32) - offset) * scale


def q8_0_bytes(n_blocks):  # raw Q8_0 blocks: any bytes will do, the reader does not decode them
    return (np.arange(n_blocks * 34, dtype=np.uint32) * 7 + 3).astype(np.uint8) % 251


def write(path, alignment=None):
    w = GGUFWriter(str(path), "llama")  # adds general.architecture = "llama" first
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, vtype, value in SCALARS:
        w.add_key_value(key, value, vtype)
    for key, etype, values in ARRAYS:
        w.add_key_value(key, values, T.ARRAY, sub_type=etype)
    w.add_tensor("f32.matrix", ramp(6, 0.25, 5).reshape(2, 3))               # row-major [2, 3]
    w.add_tensor("f16.cube", ramp(24, 0.5, 3).astype(np.float16).reshape(2, 3, 4))
    w.add_tensor("q8_0.rows", q8_0_bytes(2).reshape(2, 34), raw_dtype=Q.Q8_0)  # 2 rows of 32
    bf16 = (ramp(5, 1.0, 2).view(np.uint32) >> 16).astype(np.uint16)           # exact in bf16
    w.add_tensor("bf16.vector", bf16, raw_dtype=Q.BF16)
    w.add_tensor("f32.4d", ramp(2 * 1 * 3 * 2, 1.0, 0).reshape(2, 1, 3, 2))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_small(path):  # a tokenizer-shaped file without tensors: a fuzz seed
    w = GGUFWriter(str(path), "gpt2")
    w.add_key_value("tokenizer.ggml.model", "gpt2", T.STRING)
    w.add_key_value("tokenizer.ggml.tokens", ["a", "b", "ab"], T.ARRAY, sub_type=T.STRING)
    w.add_key_value("tokenizer.ggml.token_type", [1, 1, 3], T.ARRAY, sub_type=T.INT32)
    w.add_key_value("tokenizer.ggml.scores", [0.0, -1.0, -2.0], T.ARRAY, sub_type=T.FLOAT32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    write(HERE / "all_types.gguf")
    write(HERE / "all_types_align64.gguf", alignment=64)
    SEEDS.mkdir(parents=True, exist_ok=True)
    write(SEEDS / "all_types.gguf")
    write(SEEDS / "align64.gguf", alignment=64)
    write_small(SEEDS / "vocab.gguf")
