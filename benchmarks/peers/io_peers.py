#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Peers of bench_io: the Python `safetensors` package (its Rust core: safe_open + keys) and
# gguf-py's GGUFReader opening files shaped like the ones bench_io builds (1000 bf16 [64, 32]
# tensors named like a transformer's; a GGUF header with 1000 [16, 8] f32 tensor infos, a
# 150,000-entry vocabulary with scores and token types and 100 scalar keys). Prints the median
# CPU milliseconds per open, to compare with bench_io's CPU times from the same run.
# Usage: /path/to/python-with-safetensors-gguf-torch io_peers.py [repeats]
import os
import statistics
import sys
import tempfile
import time

import gguf
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file


def cpu_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return statistics.median(times)


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    parts = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm"]
    with tempfile.TemporaryDirectory() as d:
        st = os.path.join(d, "bench.safetensors")
        w = torch.ones(64, 32, dtype=torch.bfloat16)
        save_file({f"model.layers.{i // 8}.{parts[i % 8]}.weight": w.clone() for i in range(1000)}, st, {"format": "pt"})

        def open_st():
            with safe_open(st, "pt") as f:
                return len(list(f.keys()))
        print(f"safetensors safe_open+keys, 1000 tensors: {cpu_ms(open_st, repeats):.3f} ms CPU")

        gg = os.path.join(d, "bench.gguf")
        wr = gguf.GGUFWriter(gg, "llama")
        for k in range(100):
            wr.add_uint32(f"llama.key_{k}", k)
        wr.add_tokenizer_model("llama")
        n = 150000
        wr.add_token_list([f"tok{i * 7919 % 1000003}" for i in range(n)])
        wr.add_token_scores([-float(i) for i in range(n)])
        wr.add_token_types([1] * n)
        weights = np.full((8, 16), 0.5, dtype=np.float32)
        for t in range(1000):
            wr.add_tensor(f"blk.{t // 10}.w{t % 10}.weight", weights)
        wr.write_header_to_file()
        wr.write_kv_data_to_file()
        wr.write_tensors_to_file()
        wr.close()
        print(f"gguf-py GGUFReader, 1000 tensors + 150k vocabulary: {cpu_ms(lambda: gguf.GGUFReader(gg), max(3, repeats // 10)):.3f} ms CPU")


if __name__ == "__main__":
    main()
