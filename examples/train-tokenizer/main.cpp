// SPDX-License-Identifier: Apache-2.0
// train-tokenizer: train a byte-level BPE on a corpus and write it as a tiktoken rank file and a tokenizer.json.
//
//   train-tokenizer --corpus FILE --out PREFIX [--vocab-size N] [--min-frequency N]
//                   [--pattern r50k|cl100k|o200k] [--special TEXT]...
//
// The corpus is UTF-8 text; documents are separated by a line holding only a form feed
// ("\n\f\n"), as for `tokenize`. Writes PREFIX.tiktoken and PREFIX.tokenizer.json, then prints
// the training time and, on the corpus, bytes per token and fertility (tokens per word).
#include <llm/tokenizer/trainer.hpp>
#include <llm/tokenizer/detail/read_file.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage(const char* msg) {
    std::fprintf(stderr,
                 "train-tokenizer: %s\nusage: train-tokenizer --corpus FILE --out PREFIX [--vocab-size N] [--min-frequency N] "
                 "[--pattern r50k|cl100k|o200k] [--special TEXT]...\n",
                 msg);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string corpus_path, out;
    llm::tokenizer::bpe_trainer_options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (a == "--corpus" && v) corpus_path = argv[++i];
        else if (a == "--out" && v) out = argv[++i];
        else if (a == "--vocab-size" && v) opt.vocab_size = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--min-frequency" && v) opt.min_frequency = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--special" && v) opt.specials.emplace_back(argv[++i]);
        else if (a == "--pattern" && v) {
            const std::string_view p = argv[++i];
            if (p == "r50k") opt.pre = llm::tokenizer::pattern::r50k;
            else if (p == "cl100k") opt.pre = llm::tokenizer::pattern::cl100k;
            else if (p == "o200k") opt.pre = llm::tokenizer::pattern::o200k;
            else return usage("--pattern takes r50k, cl100k or o200k");
        } else {
            return usage(("bad or incomplete argument '" + std::string(a) + "'").c_str());
        }
    }
    if (corpus_path.empty() || out.empty()) return usage("--corpus and --out are required");
    try {
        const std::string corpus = llm::tokenizer::detail::read_file(corpus_path, "train-tokenizer");
        std::vector<std::string_view> docs;
        const std::string_view all = corpus;
        for (std::size_t pos = 0;;) {
            const std::size_t sep = all.find("\n\f\n", pos);
            docs.push_back(all.substr(pos, sep == std::string_view::npos ? std::string_view::npos : sep - pos));
            if (sep == std::string_view::npos) break;
            pos = sep + 3;
        }
        const auto t0 = std::chrono::steady_clock::now();
        const auto vocab = llm::tokenizer::train_bpe(docs, opt);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        llm::tokenizer::write_tiktoken(vocab, out + ".tiktoken");
        llm::tokenizer::write_hf_tokenizer(vocab, out + ".tokenizer.json");
        const auto enc = vocab.tokenizer(out);
        const auto m = llm::tokenizer::measure(enc, docs);
        std::printf("trained on %zu documents (%.2f MB) in %.2f s: %zu ranks (%zu merges) + %zu specials\n", docs.size(),
                    static_cast<double>(corpus.size()) / 1e6, seconds, vocab.tokens.size(), vocab.merges.size(), vocab.specials.size());
        std::printf("wrote %s.tiktoken and %s.tokenizer.json\n", out.c_str(), out.c_str());
        std::printf("on the training corpus: %zu tokens, %.3f bytes/token, fertility %.3f tokens/word\n", m.tokens, m.bytes_per_token(),
                    m.fertility());
        return 0;
    } catch (const llm::error& e) {
        std::fprintf(stderr, "train-tokenizer: %s\n", e.what());
        return 1;
    }
}
