# SPDX-License-Identifier: Apache-2.0
# Greedy generation goldens for llm::generate: transformers' generate(do_sample=False) (fp32,
# eager attention) on the tiny checkpoints of tests/golden/model/<family>/, several prompts each.
# Writes tests/golden/generate/<family>.txt: per case one line "prompt: ids" and one
# line "greedy: ids" (max_new_tokens new tokens, no EOS stop: eos_token_id is unset).
#
#   /work/venv-tf/bin/python tests/golden/generate/make_golden.py
import os

import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "model")
NEW_TOKENS = 16
PROMPTS = [[1], [3, 17, 9, 40], [5, 6, 7, 8, 9, 10, 11, 12, 13, 2, 33]]

for family in ["llama", "mistral", "qwen2", "gpt2"]:
    model = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, family), torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    lines = []
    for prompt in PROMPTS:
        ids = torch.tensor([prompt], dtype=torch.long)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW_TOKENS,
                                 min_new_tokens=NEW_TOKENS, eos_token_id=None, pad_token_id=0)
        new = out[0, len(prompt):].tolist()
        assert len(new) == NEW_TOKENS
        lines.append("prompt: " + " ".join(map(str, prompt)))
        lines.append("greedy: " + " ".join(map(str, new)))
    with open(os.path.join(HERE, family + ".txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(family, lines)
