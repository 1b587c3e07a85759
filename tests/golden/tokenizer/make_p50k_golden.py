#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Golden ids for a p50k_base-shaped vocabulary: r50k_base's ranks plus 24 tokens for runs of
# 2..25 spaces at ranks 50257..50280, leaving rank 50256 to <|endoftext|> (a gap in the rank
# file, as in OpenAI's p50k_base). The real p50k_base file is not in ../shared/data, so this
# checks what differs for p50k in our code: gaps in ranks, the 50280-rank count and the
# specials, against tiktoken on the same synthetic file. tests/tokenizer/formats.cpp builds
# the same file at run time.
# usage: pip install tiktoken && python3 tests/golden/tokenizer/make_p50k_golden.py
import json
import os

import tiktoken
from tiktoken.load import load_tiktoken_bpe

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "tokenizers"))


def main():
    ranks = load_tiktoken_bpe(os.path.join(DATA, "r50k_base.tiktoken"))
    for n in range(2, 26):
        ranks[b" " * n] = 50257 + n - 2
    pat = json.load(open(os.path.join(DATA, "r50k_base.json")))["pat_str"]
    enc = tiktoken.Encoding("p50k_synthetic", pat_str=pat, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256},
                            explicit_n_vocab=50281)
    docs = open(os.path.join(DATA, "corpus_public.txt"), "rb").read().decode("utf-8").split("\n\f\n")
    chosen = [int(l) for l in open(os.path.join(HERE, "documents.txt"))]
    out = "".join(" ".join(map(str, enc.encode(docs[i], allowed_special="all"))) + "\n" for i in chosen)
    with open(os.path.join(HERE, "p50k_synthetic.ids.tmp"), "w") as f:
        f.write(out)
    os.replace(os.path.join(HERE, "p50k_synthetic.ids.tmp"), os.path.join(HERE, "p50k_synthetic.ids"))


if __name__ == "__main__":
    main()
