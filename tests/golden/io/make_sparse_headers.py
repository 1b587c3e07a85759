#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes the headers of two 10 GB model files for the `inspect` test: sparse_10g.gguf.head (by
# gguf-py's GGUFWriter, header, metadata and tensor infos only) and sparse_10g.safetensors.head
# (the safetensors header of one [50000, 50000] F32 tensor), and sparse_10g.sizes, the size each
# file must be truncated to (header + 10^10 bytes of data) so that the readers accept it. The
# test extends the heads with `truncate -s` (a sparse file: nothing is written) and requires
# inspect to finish at once.
# Usage: /path/to/python-with-gguf make_sparse_headers.py   (writes next to this script)
import json
import os
import struct

import gguf
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rows = cols = 50000
nbytes = rows * cols * 4

path = os.path.join(here, "sparse_10g.gguf.head")
w = gguf.GGUFWriter(path, "llama")
w.add_uint32("llama.context_length", 4096)
w.add_tensor_info("token_embd.weight", (rows, cols), np.dtype(np.float32), nbytes)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_ti_data_to_file()
w.close()
head = os.path.getsize(path)
gguf_size = (head + 31) // 32 * 32 + nbytes

header = json.dumps({"embed.weight": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [0, nbytes]}},
                    separators=(",", ":")).encode()
header += b" " * (-len(header) % 8)
with open(os.path.join(here, "sparse_10g.safetensors.head"), "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header)
st_size = 8 + len(header) + nbytes

with open(os.path.join(here, "sparse_10g.sizes"), "w") as f:
    f.write(f"{gguf_size} {st_size}\n")
