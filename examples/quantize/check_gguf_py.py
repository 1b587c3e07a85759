# SPDX-License-Identifier: Apache-2.0
# ctest for the quantize tool through gguf-py: writes a small model with GGUFWriter, runs
# `quantize` to several types and loads each output with GGUFReader. Checks: tensor types (2+-dim
# weights -> TYPE or its fallback, 1-D and non-weight tensors unchanged, --type-of), shapes, metadata
# copied (values and order), general.quantization_version = 2, Q4_0..Q8_0 bytes identical to
# gguf.quants.quantize (numpy, bit-exact with ggml), K types within their error bound after
# gguf.quants.dequantize. Exit 77 (ctest: skipped) when python or the gguf package is missing.
import os
import subprocess
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
except ImportError:
    print("gguf-py not available: skipped")
    sys.exit(77)

tool, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
src = os.path.join(work, "in.gguf")

rng = np.random.default_rng(1)
tensors = {
    "token_embd.weight": rng.standard_normal((32, 512)).astype(np.float16),   # f16 source, 2-D
    "blk.0.attn_q.weight": rng.standard_normal((16, 256)).astype(np.float32),
    "blk.0.attn_norm.weight": rng.standard_normal(256).astype(np.float32),      # 1-D: stays f32
    "blk.0.ffn_down.weight": rng.standard_normal((8, 96)).astype(np.float32),   # row 96: K fallback
    "blk.0.ffn_gate_inp.weight": rng.standard_normal((4, 256)).astype(np.float32),  # MoE router: kept
    "blk.0.attn_q.bias": rng.standard_normal((2, 256)).astype(np.float32),      # not a weight: kept
    "output.weight": rng.standard_normal((8, 256)).astype(np.float32),          # --type-of q8_0
}
w = gguf.GGUFWriter(src, "llama")
w.add_uint32("llama.block_count", 1)
w.add_string("general.name", "tiny")
w.add_array("tokenizer.ggml.tokens", ["a", "b", "<s>"])
w.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
w.add_float32("llama.rope.freq_base", 10000.0)
w.add_bool("test.flag", True)
for name, data in tensors.items():
    w.add_tensor(name, data)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

fallback = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0, T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0}
exact = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
# Largest error of a K type relative to the block's max |x| (normal data): generous bounds, a
# wrong layout gives errors of order 1.
k_bound = {T.Q2_K: 0.5, T.Q3_K: 0.3, T.Q4_K: 0.15, T.Q5_K: 0.08, T.Q6_K: 0.04}

F = gguf.LlamaFileType
file_type = {T.Q4_0: F.MOSTLY_Q4_0, T.Q8_0: F.MOSTLY_Q8_0, T.Q4_K: F.MOSTLY_Q4_K_M, T.Q6_K: F.MOSTLY_Q6_K, T.Q5_1: F.MOSTLY_Q5_1}

failures = []
def check(cond, what):
    if not cond:
        failures.append(what)

for arg, qt in [("q4_0", T.Q4_0), ("Q8_0", T.Q8_0), ("q4_k", T.Q4_K), ("Q6_K", T.Q6_K), ("q5_1", T.Q5_1)]:
    out = os.path.join(work, f"out_{arg}.gguf")
    res = subprocess.run([tool, src, out, arg, "--type-of", "output.weight=q8_0"], capture_output=True, text=True)
    check(res.returncode == 0, f"{arg}: exit {res.returncode}: {res.stderr}")
    if res.returncode != 0:
        continue
    lines = res.stdout.strip().splitlines()
    check(len(lines) == len(tensors) + 1 and lines[-1].startswith("total: 7 tensors"), f"{arg}: progress lines {lines}")
    r = gguf.GGUFReader(out)
    fields = r.fields
    check(int(fields["general.quantization_version"].parts[-1][0]) == 2, f"{arg}: quantization_version")
    # llama-quantize's file type for that name (K names are aliases of the _M variants)
    check(int(fields["general.file_type"].parts[-1][0]) == file_type[qt], f"{arg}: general.file_type")
    check(int(fields["llama.block_count"].parts[-1][0]) == 1, f"{arg}: block_count")
    check(bytes(fields["general.name"].parts[-1]).decode() == "tiny", f"{arg}: general.name")
    toks = [bytes(fields["tokenizer.ggml.tokens"].parts[i]).decode() for i in fields["tokenizer.ggml.tokens"].data]
    check(toks == ["a", "b", "<s>"], f"{arg}: tokens {toks}")
    keys = [k for k in fields if not k.startswith("GGUF.")]
    check(keys[:7] == ["general.architecture", "llama.block_count", "general.name", "tokenizer.ggml.tokens",
                       "tokenizer.ggml.scores", "llama.rope.freq_base", "test.flag"], f"{arg}: key order {keys}")
    got = {t.name: t for t in r.tensors}
    check(list(got) == list(tensors), f"{arg}: tensor order {list(got)}")
    for name, data in tensors.items():
        t = got[name]
        want = qt
        if name == "output.weight":
            want = T.Q8_0
        elif name in ("blk.0.attn_norm.weight", "blk.0.ffn_gate_inp.weight", "blk.0.attn_q.bias"):
            want = T.F32
        elif name == "token_embd.weight" and False:
            pass
        if want not in (T.F32,) and data.shape[-1] % gguf.GGML_QUANT_SIZES[want][0] != 0:
            want = fallback[want]
        check(t.tensor_type == want, f"{arg}: {name} is {t.tensor_type.name}, expected {want.name}")
        check(list(reversed([int(x) for x in t.shape])) == list(data.shape), f"{arg}: {name} shape {t.shape}")
        x = data.astype(np.float32)
        if want == T.F32:
            check(np.array_equal(np.asarray(t.data).reshape(x.shape), x), f"{arg}: {name} copied")
        elif want in exact:
            ref = gguf.quants.quantize(x, want)
            check(np.array_equal(np.asarray(t.data).reshape(-1).view(np.uint8), ref.reshape(-1).view(np.uint8)),
                  f"{arg}: {name} bytes differ from gguf.quants.quantize")
        else:
            back = gguf.quants.dequantize(np.asarray(t.data), want).reshape(x.shape)
            amax = np.abs(x).max()
            err = np.abs(back - x).max() / amax
            check(err <= k_bound[want], f"{arg}: {name} relative error {err}")

# Requantizing is refused; a bad type is a one-line error.
res = subprocess.run([tool, os.path.join(work, "out_q4_0.gguf"), os.path.join(work, "re.gguf"), "q8_0"], capture_output=True, text=True)
check(res.returncode == 2 and "only f32, f16 and bf16 tensors are quantized" in res.stderr, f"requantize: {res.stderr}")
check(not os.path.exists(os.path.join(work, "re.gguf")), "requantize left an output file")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("quantize: gguf-py loads every output; types, shapes, metadata and bytes as expected")
