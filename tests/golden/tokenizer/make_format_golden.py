#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Small vocabularies in every supported file format, with golden ids from the reference
# implementations, for tests/tokenizer/formats.cpp:
#   tiny_bytelevel.tokenizer.json  Hugging Face `tokenizers` ByteLevel BPE (vocab 700) trained here
#   tiny_gpt2/vocab.json, merges.txt  the same model saved as GPT-2 files
#   tiny_gpt2.gguf                 the same model as GGUF `tokenizer.ggml.*` (model gpt2, pre gpt-2)
#   tiny_bytelevel.ids             `tokenizers` ids (added tokens matched, as HF always does)
#   tiny_spm.gguf                  a SentencePiece BPE model (vocab 1200, byte fallback) as GGUF (model llama, scores)
#   tiny_spm.ids                   `sentencepiece` ids for the same documents
# The documents: every third corpus document shorter than 3000 bytes (documents.txt lists
# their indices). Needs: pip install tokenizers sentencepiece gguf
import io
import json
import os

import gguf
import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "tokenizers", "corpus_public.txt")


def write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ids_text(rows):
    return "".join(" ".join(str(i) for i in r) + "\n" for r in rows).encode()


def main():
    docs = open(CORPUS, "rb").read().decode("utf-8").split("\n\f\n")
    chosen = [i for i, d in enumerate(docs) if i % 3 == 0 and len(d.encode()) < 3000]
    sel = [docs[i] for i in chosen]
    write(os.path.join(HERE, "documents.txt"), ("\n".join(str(i) for i in chosen) + "\n").encode())

    # --- byte-level BPE, Hugging Face ---------------------------------------------------
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    write(os.path.join(HERE, "tiny_bytelevel.tokenizer.json"), tok.to_str().encode())
    os.makedirs(os.path.join(HERE, "tiny_gpt2"), exist_ok=True)
    tok.model.save(os.path.join(HERE, "tiny_gpt2"))
    write(os.path.join(HERE, "tiny_bytelevel.ids"),
          ids_text([tok.encode(d, add_special_tokens=False).ids for d in sel]))

    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    w = gguf.GGUFWriter(os.path.join(HERE, "tiny_gpt2.gguf.tmp"), "gpt2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list([p for p, _ in vocab])
    w.add_token_types([3 if p == "<|endoftext|>" else 1 for p, _ in vocab])
    w.add_token_merges(merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    os.replace(os.path.join(HERE, "tiny_gpt2.gguf.tmp"), os.path.join(HERE, "tiny_gpt2.gguf"))

    # --- SentencePiece BPE --------------------------------------------------------------
    lines = [l for d in docs for l in d.split("\n") if l.strip()]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=1200,
                                   byte_fallback=True, character_coverage=0.98, normalization_rule_name="identity",
                                   add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
                                   allow_whitespace_only_pieces=True, num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    write(os.path.join(HERE, "tiny_spm.ids"), ids_text([sp.encode(d) for d in sel]))
    n = sp.get_piece_size()

    def kind(i):
        if sp.is_unknown(i): return 2
        if sp.is_control(i): return 3
        if sp.is_unused(i): return 5
        if sp.is_byte(i): return 6
        return 1

    w = gguf.GGUFWriter(os.path.join(HERE, "tiny_spm.gguf.tmp"), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([sp.id_to_piece(i) for i in range(n)])
    w.add_token_scores([sp.get_score(i) for i in range(n)])
    w.add_token_types([kind(i) for i in range(n)])
    w.add_unk_token_id(sp.unk_id())
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    os.replace(os.path.join(HERE, "tiny_spm.gguf.tmp"), os.path.join(HERE, "tiny_spm.gguf"))


if __name__ == "__main__":
    main()
