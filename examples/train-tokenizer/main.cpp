// SPDX-License-Identifier: Apache-2.0
// train-tokenizer: train a byte-level BPE on a corpus and write it as a tiktoken rank file and a tokenizer.json.
//
//   train-tokenizer --corpus FILE --out PREFIX [--vocab-size N] [--min-frequency N]
//                   [--pattern r50k|cl100k|o200k] [--special TEXT]...
//
// The corpus is UTF-8 text of at most 1 GiB; documents are separated by a line holding only a
// form feed ("\n\f\n"), as for `tokenize`. Writes PREFIX.tiktoken and PREFIX.tokenizer.json,
// then prints the training time and, on the corpus, bytes per token and fertility (tokens per
// word). Both files are checked by loading them back from memory before either is written, and
// are committed together (llm::io::commit_together): a failed run replaces neither.
// Errors: a one-line message on stderr and exit status 2.
#include "common/args.hpp"

#include <llm/io/atomic_file.hpp>
#include <llm/io/file.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/tiktoken.hpp>
#include <llm/tokenizer/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: train-tokenizer --corpus FILE --out PREFIX [--vocab-size N] [--min-frequency N] "
    "[--pattern r50k|cl100k|o200k] [--special TEXT]...\n"
    "  --corpus FILE       UTF-8 training text (at most 1 GiB), documents separated by \"\\n\\f\\n\"\n"
    "  --out PREFIX        writes PREFIX.tiktoken and PREFIX.tokenizer.json\n"
    "  --vocab-size N      ranks + specials, in [256, 16777216] (default 32000)\n"
    "  --min-frequency N   a pair seen fewer times is never merged, >= 1 (default 2)\n"
    "  --pattern NAME      pre-tokenizer: r50k, cl100k or o200k (default cl100k)\n"
    "  --special TEXT      a special token (repeatable; each text once)\n";

// Training holds the corpus and its pieces in memory; a larger file is refused before reading.
constexpr std::size_t corpus_limit = std::size_t{1} << 30;

struct options {
    std::string corpus, out;
    llm::tokenizer::bpe_trainer_options trainer;
};

options parse(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    while (a.next()) {
        if (a.is("--corpus")) o.corpus = a.value();
        else if (a.is("--out")) o.out = a.value();
        else if (a.is("--vocab-size")) o.trainer.vocab_size = a.integer<std::size_t>(256, std::size_t{1} << 24);
        else if (a.is("--min-frequency")) o.trainer.min_frequency = a.integer<std::uint64_t>(1, std::numeric_limits<std::uint64_t>::max());
        else if (a.is("--special")) o.trainer.specials.push_back(a.value());
        else if (a.is("--pattern")) {
            const std::string p = a.choice({"r50k", "cl100k", "o200k"});
            o.trainer.pre = p == "r50k" ? llm::tokenizer::pattern::r50k : p == "cl100k" ? llm::tokenizer::pattern::cl100k : llm::tokenizer::pattern::o200k;
        } else a.unknown();
    }
    llm::check(!o.corpus.empty() && !o.out.empty(), "--corpus and --out are required (see --help)");
    const auto& specials = o.trainer.specials;
    for (std::size_t k = 0; k < specials.size(); ++k) {
        llm::check(!specials[k].empty(), "--special: a special token's text must not be empty");
        llm::check(std::find(specials.begin(), specials.begin() + static_cast<std::ptrdiff_t>(k), specials[k]) ==
                       specials.begin() + static_cast<std::ptrdiff_t>(k),
                   "--special '", specials[k], "' is given twice");
    }
    llm::check(o.trainer.vocab_size >= 256 + specials.size(), "--vocab-size ", o.trainer.vocab_size, " leaves fewer than 256 ranks after ",
               specials.size(), " specials");
    return o;
}

std::vector<std::string_view> split_documents(std::string_view all) {
    std::vector<std::string_view> docs;
    for (std::size_t pos = 0;;) {
        const std::size_t sep = all.find("\n\f\n", pos);
        docs.push_back(all.substr(pos, sep == std::string_view::npos ? std::string_view::npos : sep - pos));
        if (sep == std::string_view::npos) return docs;
        pos = sep + 3;
    }
}

int run(const options& o) {
    const std::string tiktoken_path = o.out + ".tiktoken", json_path = o.out + ".tokenizer.json";
    llm::io::check_distinct_paths("train-tokenizer", {tiktoken_path, json_path}, {o.corpus});
    // The temporaries are created first, so a target that cannot be written (a directory, a
    // symlink, a FIFO, a missing directory) is refused before training; the targets are only
    // replaced by commit_together below.
    llm::io::atomic_file tiktoken_file(tiktoken_path, "train-tokenizer"), json_file(json_path, "train-tokenizer");

    const std::string corpus = llm::io::read_file(o.corpus, corpus_limit, "train-tokenizer");
    const std::vector<std::string_view> docs = split_documents(corpus);
    const auto t0 = std::chrono::steady_clock::now();
    const auto vocab = llm::tokenizer::train_bpe(docs, o.trainer);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    // Validate everything before writing: the tokenizer builds, and both texts load back the way
    // `tokenize` will load them.
    const auto enc = vocab.tokenizer(o.out);
    const std::string tiktoken_text = llm::tokenizer::format_tiktoken(vocab);
    const std::string json_text = llm::tokenizer::format_hf_tokenizer(vocab);
    const auto ranks = llm::tokenizer::parse_tiktoken(tiktoken_text, tiktoken_path);
    llm::check(ranks.size() == vocab.tokens.size(), "train-tokenizer: ", tiktoken_path, " would hold ", ranks.size(), " ranks, not ",
               vocab.tokens.size());
    (void)llm::tokenizer::hf_tokenizer_from_json(json_text, json_path);

    tiktoken_file.write(tiktoken_text);
    json_file.write(json_text);
    llm::io::commit_together({&tiktoken_file, &json_file});

    const auto m = llm::tokenizer::measure(enc, docs);
    std::printf("trained on %zu documents (%.2f MB) in %.2f s: %zu ranks (%zu merges) + %zu specials\n", docs.size(),
                static_cast<double>(corpus.size()) / 1e6, seconds, vocab.tokens.size(), vocab.merges.size(), vocab.specials.size());
    std::printf("wrote %s and %s\n", tiktoken_path.c_str(), json_path.c_str());
    std::printf("on the training corpus: %zu tokens, %.3f bytes/token, fertility %.3f tokens/word\n", m.tokens, m.bytes_per_token(),
                m.fertility());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("train-tokenizer", [&] { return run(parse(argc, argv)); });
}
