# SPDX-License-Identifier: Apache-2.0
# Greedy generation goldens for llm::generate on the Mixtral and Mamba families: the tiny
# checkpoints transformers 4.44.2 saved for the moe and ssm tests (tests/golden/moe/mixtral,
# tests/golden/ssm/mamba_lm), the prompts of make_golden.py, fp32.
# Mixtral: generate(do_sample=False) (eager attention). Mamba: transformers' MambaForCausalLM
# generate needs torch 2 (its cache), so its greedy tokens come from a loop of plain forward
# calls over the whole sequence (use_cache=False), argmax of the last position: the same tokens
# generate(do_sample=False) picks. Each case also checks that the float64 model picks the same
# tokens and prints the smallest top-1 / top-2 logit gap, so a near-tie would show here.
# Writes tests/golden/generate/{mixtral,mamba}.txt in make_golden.py's format.
#
#   /work/venv-tf/bin/python tests/golden/generate/make_golden_mixtral_mamba.py
import copy
import os

import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..")
NEW_TOKENS = 16
PROMPTS = [[1], [3, 17, 9, 40], [5, 6, 7, 8, 9, 10, 11, 12, 13, 2, 33]]


def greedy_loop(model, prompt):
    ids = torch.tensor([prompt], dtype=torch.long)
    gap = float("inf")
    for _ in range(NEW_TOKENS):
        with torch.no_grad():
            last = model(input_ids=ids, use_cache=False).logits[0, -1]
        top = torch.topk(last, 2).values
        gap = min(gap, float(top[0] - top[1]))
        ids = torch.cat([ids, last.argmax().view(1, 1)], dim=1)
    return ids[0, len(prompt):].tolist(), gap


for family, path in [("mixtral", "moe/mixtral"), ("mamba", "ssm/mamba_lm")]:
    kw = {"attn_implementation": "eager"} if family == "mixtral" else {}
    model = AutoModelForCausalLM.from_pretrained(os.path.join(GOLDEN, path), torch_dtype=torch.float32, **kw).eval()
    model64 = copy.deepcopy(model).double()
    lines = []
    for prompt in PROMPTS:
        if family == "mixtral":
            ids = torch.tensor([prompt], dtype=torch.long)
            with torch.no_grad():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW_TOKENS,
                                     min_new_tokens=NEW_TOKENS, eos_token_id=None, pad_token_id=0)
            new = out[0, len(prompt):].tolist()
            loop, gap = greedy_loop(model, prompt)
            assert loop == new, (loop, new)
        else:
            new, gap = greedy_loop(model, prompt)
        new64, _ = greedy_loop(model64, prompt)
        assert new64 == new, (family, prompt, new, new64)
        assert len(new) == NEW_TOKENS
        print(family, prompt, "smallest top-1 / top-2 gap", gap)
        lines.append("prompt: " + " ".join(map(str, prompt)))
        lines.append("greedy: " + " ".join(map(str, new)))
    with open(os.path.join(HERE, family + ".txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(family, lines)
