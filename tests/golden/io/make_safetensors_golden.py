#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the safetensors golden files of tests/io/safetensors.cpp with the Python `safetensors`
package (numpy, torch and raw TensorSpec front ends), plus the fuzz seeds in
tests/fuzz/io_safetensors/. Values follow formulas the C++ test repeats:
  floats   (i - 2) * 0.25   (exact in f16, bf16, f32, f64)
  signed   3 * i - 4
  unsigned 7 * i + 1
  bool     i odd
over the row-major element index i. Run: /work/venv/bin/python tests/golden/io/make_safetensors_golden.py
"""
import ctypes
import json
import os
import shutil

import numpy as np
import safetensors
import torch
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file as torch_save

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "..", "..", "fuzz", "io_safetensors")


def values(dtype, shape):
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.int64)
    if dtype == np.bool_:
        v = i % 2 == 1
    elif np.issubdtype(dtype, np.floating):
        v = (i - 2) * 0.25
    elif np.issubdtype(dtype, np.signedinteger):
        v = 3 * i - 4
    else:
        v = 7 * i + 1
    return v.astype(dtype).reshape(shape)


def numpy_file(path):
    spec = {
        "a": (np.float64, ()),
        "b": (np.float32, (2, 3)),
        "c": (np.int64, (4,)),
        "d": (np.uint64, (2,)),
        "e": (np.int32, (3,)),
        "f": (np.uint32, (1, 1)),
        "g": (np.float16, (5,)),
        "h": (np.int16, (2, 2)),
        "i": (np.uint16, (3,)),
        "j": (np.int8, (7,)),
        "k": (np.uint8, (0,)),
        "l": (np.bool_, (2, 3)),
        "m": (np.float32, (0, 4)),
    }
    np_save({k: values(t, s) for k, (t, s) in spec.items()}, path, metadata={"format": "np"})


def torch_file(path):
    def t(dtype, shape):
        return torch.from_numpy(values(np.float32, shape).copy()).to(dtype)

    torch_save({"x.bf16": t(torch.bfloat16, (2, 2)), "y.f16": t(torch.float16, (3,)), "z": t(torch.float32, ()),
                "alpha": t(torch.bfloat16, (0,))}, path, metadata={"format": "pt"})


def raw_file(path, tensors, metadata=None):
    """tensors: name -> (TensorSpec dtype name, shape, bytes); written by the package's serializer."""
    keep = []
    specs = {}
    for name, (dtype, shape, data) in tensors.items():
        buf = ctypes.create_string_buffer(data, max(len(data), 1))
        keep.append(buf)
        specs[name] = safetensors.TensorSpec(dtype=dtype, shape=list(shape), data_ptr=ctypes.addressof(buf), data_len=len(data))
    safetensors.serialize_file(specs, path, metadata=metadata)


def fp8_file(path):
    raw_file(path, {
        # e4m3 bits of 1, -2, 0.5, 448; e5m2 bits of 1, -2, 0.5, 57344; e8m0 bits of 2^0, 2^1
        "q.e4m3": ("float8_e4m3fn", (2, 2), bytes([0x38, 0xC0, 0x30, 0x7E])),
        "q.e5m2": ("float8_e5m2", (4,), bytes([0x3C, 0xC0, 0x38, 0x7B])),
        "s.e8m0": ("float8_e8m0fnu", (2,), bytes([127, 128])),
        "scale": ("float32", (1,), values(np.float32, (1,)).tobytes()),
    })


def main():
    out = lambda name: os.path.join(HERE, name)
    numpy_file(out("numpy.safetensors"))
    torch_file(out("torch.safetensors"))
    fp8_file(out("fp8.safetensors"))
    np_save({"a\b\f\n\"\\/\u00e9\x01": values(np.uint8, (1,))}, out("escaped.safetensors"),
            metadata={"k\n\"": "v\t\u2028\u00e9"})
    np_save({}, out("empty.safetensors"))
    # Several metadata keys: the package writes them in a random order, so this file is read only.
    np_save({"t": values(np.int32, (2,))}, out("metadata3.safetensors"), metadata={"a": "1", "b": "2", "c": "3"})

    # A sharded checkpoint with its index, as transformers writes it (indent 2, sorted keys).
    shard_dir = out("safetensors_sharded")
    os.makedirs(shard_dir, exist_ok=True)
    shards = {
        "model-00001-of-00002.safetensors": {"embed": (torch.bfloat16, (3, 2)), "layers.0.w": (torch.float32, (2, 2))},
        "model-00002-of-00002.safetensors": {"layers.1.w": (torch.float32, (2, 2)), "norm": (torch.float32, (2,))},
    }
    weight_map, total = {}, 0
    for shard, spec in shards.items():
        tensors = {k: torch.from_numpy(values(np.float32, s).copy()).to(d) for k, (d, s) in spec.items()}
        torch_save(tensors, os.path.join(shard_dir, shard), metadata={"format": "pt"})
        for k, v in tensors.items():
            weight_map[k] = shard
            total += v.numel() * v.element_size()
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True) + "\n")

    os.makedirs(SEEDS, exist_ok=True)
    for name in ["numpy", "torch", "fp8", "escaped", "empty", "metadata3"]:
        shutil.copyfile(out(name + ".safetensors"), os.path.join(SEEDS, name + ".safetensors"))


if __name__ == "__main__":
    main()
