#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes splits.jsonl: how the Python `regex` module (the engine tiktoken's Python reference
# patterns are written for) splits tricky strings with the r50k, cl100k and o200k patterns.
# tests/tokenizer/pretokenize.cpp checks our hand-written scanners against it.
#
# usage: pip install regex && python3 tests/golden/tokenizer/make_split_golden.py
import json
import os
import random

import regex

PATTERNS = {
    "r50k": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "cl100k": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "o200k": "|".join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]),
}

# Characters whose classes matter, all with the same properties in Unicode 15 and later:
# letters of each case class (Lt 'ǅ', Lm 'ʰ', Lo '中'), marks, digits of other scripts, every
# kind of white space (NEL, NBSP, U+2028, U+3000), apostrophes, long s, '/', CR and LF.
POOL = list("aZqS't sdmTLlVvEeRrD") + ["'", "'", " ", " ", " ", "\n", "\r", "\t", "/", "!", ".", "-", "_", "1", "2", "9"] + [
    "\u017f", "\u01c5", "\u02b0", "\u4e2d", "\u0301", "\u0308", "\u0663", "\u2167", "\u00bd", "\u0085", "\u00a0", "\u2028",
    "\u3000", "\u2019", "\u00e9", "\u00c9", "\u0416", "\u0436", "\U0001F600", "\u200d", "\u00ad", "\u05d0", "\u0e01", "\u0e31",
    "\ufffd", "\u000b", "\u000c", "\u001f", "\u0000", "\U0010ffff", "\ue000",
]

FIXED = [
    "", " ", "  ", "a", "'s", "'S", "'ſ", "'Ll", "'lL", "'re'VE'm'd", "don't DON'T Don'T", "he's\u017f 'x",
    "hello   world", "a  \n\n  b", "x\r\n\r\ny", "   ", "\n", " \n ", "tab\t\tx", "\u00a0\u00a0a", "\u0085NEL'tis",
    "12345678", " 123", "abc123def", "ABCdef GHI jKL", "\u01c5x \u02b0A \u4e2dA ", "A\u0301b", "\u0301\u0301",
    "!\u0301a", "a//b//\n", "foo!!\n\n", " !?", "\u3000\u3000x", "x \u2028 y", "\U0001F600\u200d\U0001F600",
    "CamelCaseWORDSAndMore", "i'M'S", "HTTPServer'S", "\u2167\u2167\u2167\u2167",
]


def main():
    rng = random.Random(5)
    cases = list(FIXED)
    for _ in range(250):
        n = rng.randint(1, 24)
        cases.append("".join(rng.choice(POOL) for _ in range(n)))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splits.jsonl")
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        for name, pat in PATTERNS.items():
            r = regex.compile(pat)
            for text in cases:
                pieces = r.findall(text)
                assert "".join(pieces) == text
                f.write(json.dumps({"pattern": name, "text": text, "pieces": pieces}, ensure_ascii=False) + "\n")
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
