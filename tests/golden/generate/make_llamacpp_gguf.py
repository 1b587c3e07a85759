# SPDX-License-Identifier: Apache-2.0
# GGUF goldens written by llama.cpp's own convert_hf_to_gguf.py (not by this library) from the tiny
# checkpoints of tests/golden/model/, for tests/generate/gguf.cpp ("llama.cpp's converter"):
#   llamacpp-qwen2-f32.gguf, llamacpp-qwen2-q8_0.gguf   tests/golden/model/qwen2 (arch qwen2)
#   llamacpp-mistral-f32.gguf                          tests/golden/model/mistral (arch llama,
#                                                       Q/K rows permuted by the script)
#   llamacpp-llama-f32.gguf                            tests/golden/model/llama (arch llama, Llama 3
#                                                       rope_scaling as the rope_freqs.weight factors)
#   llamacpp-gpt2-f32.gguf                             tests/golden/model/gpt2 (arch gpt2, Conv1D
#                                                       weights transposed, fused attn_qkv)
#   llamacpp-mixtral-f32.gguf                          tests/golden/moe/mixtral (arch llama with
#                                                       llama.expert_count, stacked ffn_*_exps)
#   llamacpp-mamba-f32.gguf                            tests/golden/ssm/mamba_lm (arch mamba: ssm_a
#                                                       holds A = -exp(A_log), ssm_conv1d squeezed)
# The tiny checkpoints have no tokenizer: this script gives each a copy (in a temporary
# directory) with tests/golden/generate/tiny-tokenizer/ (a 64-token byte-level BPE written by
# write_tokenizer below: <|endoftext|>, newline, space, a-z, '.', ',' and 33 merges). Its
# pre-tokenizer is GPT-2's regex; convert_hf_to_gguf.py recognises pre-tokenizers by hashing the
# tokens of a test string, which a 64-token vocabulary cannot match, so get_vocab_base_pre is
# replaced by one returning "gpt-2" (the same regex). torch 1.13 (Debian's, in /work/venv-tf) lacks
# the float8 / uint16-64 dtypes the script names as dictionary keys: placeholders stand in for
# them (the tiny checkpoints hold none); without the sentencepiece package a stand-in module lets
# the script reach its check for tokenizer.model (absent here) and fall back to tokenizer.json.
# GPT2Model.set_gguf_parameters reads hparams["n_ctx"], which transformers 4.44 no longer writes
# to config.json: the copy of the GPT-2 checkpoint gets "n_ctx" = n_positions (transformers ignores
# it). Nothing else of the script is changed.
#
# llama.cpp runs our own `convert` output of these checkpoints (f32, f16, q8_0; the Llama 3 one in
# f32 and f16, see the script) with the same greedy text as our `generate`, checked by hand on
# 2026-12-05 (llama-simple from llama-cpp-python 0.3.36's llama.cpp, greedy; 28 cases, all equal;
# again at 22:35 UTC with Mamba added: 34 cases, all equal):
#   examples/convert/peers_llamacpp.sh build/bin/convert build/bin/generate /tmp/llama-build/bin
#
# Run (llama.cpp's source as vendored in llama-cpp-python 0.3.36's sdist, unpacked under /tmp):
#   LLAMA_CPP=/tmp/llama-src/llama_cpp_python-0.3.36/vendor/llama.cpp \
#   /work/venv-tf/bin/python tests/golden/generate/make_llamacpp_gguf.py
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "model")
LLAMA_CPP = os.environ.get("LLAMA_CPP", "/tmp/llama-src/llama_cpp_python-0.3.36/vendor/llama.cpp")


def write_tokenizer(d):
    chars = ["Ċ", "Ġ"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [".", ","]
    merges = [("Ġ", "t"), ("h", "e"), ("Ġ", "a"), ("i", "n"), ("e", "r"), ("o", "n"), ("Ġt", "he"), ("a", "n"), ("r", "e"),
              ("a", "t"), ("e", "n"), ("o", "r"), ("Ġ", "s"), ("Ġ", "w"), ("Ġ", "o"), ("e", "s"), ("i", "s"), ("i", "t"), ("e", "d"),
              ("in", "g"), ("Ġ", "c"), ("Ġ", "b"), ("o", "u"), ("a", "l"), ("a", "r"), ("Ġ", "f"), ("Ġ", "p"), ("Ġ", "m"),
              ("l", "e"), ("Ġ", "d"), ("Ġ", "h"), ("Ġ", "i"), ("s", "t")]
    vocab = {"<|endoftext|>": 0}
    for c in chars:
        vocab[c] = len(vocab)
    for a, b in merges:
        assert a in vocab and b in vocab
        vocab[a + b] = len(vocab)
    assert len(vocab) == 64, len(vocab)
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False, "bos_token": "<|endoftext|>",
                   "eos_token": "<|endoftext|>", "model_max_length": 64}, f, indent=1)


def convert(family, outtype, out_name, tmp, src=None):
    d = os.path.join(tmp, family)
    if not os.path.exists(d):
        shutil.copytree(src or os.path.join(MODELS, family), d)
        for extra in ["golden.safetensors"]:
            os.remove(os.path.join(d, extra))
        for f in os.listdir(os.path.join(HERE, "tiny-tokenizer")):
            shutil.copy(os.path.join(HERE, "tiny-tokenizer", f), d)
        cfg_path = os.path.join(d, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        if cfg.get("model_type") == "gpt2" and "n_ctx" not in cfg:
            cfg["n_ctx"] = cfg["n_positions"]
            with open(cfg_path, "w") as f:
                json.dump(cfg, f, indent=2)
    runner = os.path.join(tmp, "run_convert.py")
    with open(runner, "w") as f:
        f.write("import sys, runpy\n"
                "sys.path.insert(0, %r)\n"
                "sys.path.insert(1, %r)\n"
                "import torch\n"
                "for n in ['float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz', 'float8_e5m2fnuz', 'uint16', 'uint32', 'uint64']:\n"
                "    if not hasattr(torch, n): setattr(torch, n, type(n, (), {})())\n"
                "import types, transformers\n"
                "if 'sentencepiece' not in sys.modules:\n"
                "    try:\n"
                "        import sentencepiece\n"
                "    except ImportError:\n"
                "        sys.modules['sentencepiece'] = types.SimpleNamespace(SentencePieceProcessor=None)\n"
                "import conversion.base as base\n"
                "base.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'gpt-2'\n"
                "sys.argv = ['convert_hf_to_gguf.py'] + sys.argv[1:]\n"
                "runpy.run_path(%r, run_name='__main__')\n"
                % (LLAMA_CPP, os.path.join(LLAMA_CPP, "gguf-py"), os.path.join(LLAMA_CPP, "convert_hf_to_gguf.py")))
    out = os.path.join(HERE, out_name)
    subprocess.run([sys.executable, runner, d, "--outfile", out, "--outtype", outtype], check=True)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    write_tokenizer(os.path.join(HERE, "tiny-tokenizer"))
    with tempfile.TemporaryDirectory() as tmp:
        convert("qwen2", "f32", "llamacpp-qwen2-f32.gguf", tmp)
        convert("qwen2", "q8_0", "llamacpp-qwen2-q8_0.gguf", tmp)
        convert("mistral", "f32", "llamacpp-mistral-f32.gguf", tmp)
        convert("llama", "f32", "llamacpp-llama-f32.gguf", tmp)
        convert("gpt2", "f32", "llamacpp-gpt2-f32.gguf", tmp)
        convert("mixtral", "f32", "llamacpp-mixtral-f32.gguf", tmp, os.path.join(HERE, "..", "moe", "mixtral"))
        convert("mamba", "f32", "llamacpp-mamba-f32.gguf", tmp, os.path.join(HERE, "..", "ssm", "mamba_lm"))
