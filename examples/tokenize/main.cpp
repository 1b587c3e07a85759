// SPDX-License-Identifier: Apache-2.0
// tokenize: encode (or decode) documents from stdin with any supported vocabulary file.
//
//   tokenize --vocab FILE [--encoding NAME] [--special none|all] [--decode] [--threads N] [--stats]
//
// Encode: stdin is UTF-8 text whose documents are separated by a line holding only a form feed
// (the three bytes "\n\f\n"); stdout gets one line per document, the ids separated by single
// spaces (an empty document gives an empty line). The output can be compared with the golden
// files of ../shared/data/tokenizers/golden with `cmp`.
// Decode: stdin is that id format; stdout gets the documents' bytes joined by "\n\f\n".
// --encoding names the built-in pattern and specials of a tiktoken rank file (r50k_base,
// p50k_base, p50k_edit, cl100k_base, o200k_base, llama3); other formats are detected from the
// file. --special none (default) encodes special-token text as plain text; all maps it to ids.
// --stats prints to stderr what a user wants to know: documents, bytes, tokens, bytes per
// token, load time, encode throughput, and whether decoding gives the input back.
#include <llm/parallel/thread_pool.hpp>
#include <llm/tokenizer/batch.hpp>
#include <llm/tokenizer/tokenizer.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage(const char* msg) {
    std::fprintf(stderr,
                 "tokenize: %s\nusage: tokenize --vocab FILE [--encoding NAME] [--special none|all] [--decode] [--threads N] [--stats]\n",
                 msg);
    return 2;
}

std::vector<std::string_view> split_documents(std::string_view all) {
    std::vector<std::string_view> docs;
    std::size_t pos = 0;
    for (;;) {
        const std::size_t sep = all.find("\n\f\n", pos);
        if (sep == std::string_view::npos) {
            docs.push_back(all.substr(pos));
            return docs;
        }
        docs.push_back(all.substr(pos, sep - pos));
        pos = sep + 3;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string vocab, encoding, special = "none";
    bool decode = false, stats = false;
    std::size_t threads = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (a == "--vocab") {
            const char* v = value();
            if (!v) return usage("--vocab needs a file");
            vocab = v;
        } else if (a == "--encoding") {
            const char* v = value();
            if (!v) return usage("--encoding needs a name");
            encoding = v;
        } else if (a == "--special") {
            const char* v = value();
            if (!v || (std::strcmp(v, "none") != 0 && std::strcmp(v, "all") != 0)) return usage("--special takes none or all");
            special = v;
        } else if (a == "--decode") {
            decode = true;
        } else if (a == "--stats") {
            stats = true;
        } else if (a == "--threads") {
            const char* v = value();
            if (!v || std::atoi(v) < 1) return usage("--threads needs a positive number");
            threads = static_cast<std::size_t>(std::atoi(v));
        } else {
            return usage(("unknown argument '" + std::string(a) + "'").c_str());
        }
    }
    if (vocab.empty()) return usage("--vocab is required");
    try {
        using clock = std::chrono::steady_clock;
        const auto t_load = clock::now();
        const llm::tokenizer::tokenizer tok = llm::tokenizer::load_tokenizer(vocab, encoding);
        const double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t_load).count();
        const std::string input(std::istreambuf_iterator<char>(std::cin), {});
        std::string out;
        if (decode) {
            std::size_t pos = 0, line = 0;
            std::vector<std::uint32_t> ids;
            while (pos < input.size()) {
                ++line;
                std::size_t eol = input.find('\n', pos);
                if (eol == std::string::npos) eol = input.size();
                ids.clear();
                const char* p = input.data() + pos;
                const char* e = input.data() + eol;
                while (p < e) {
                    if (*p == ' ') {
                        ++p;
                        continue;
                    }
                    std::uint64_t v = 0;
                    const char* start = p;
                    while (p < e && *p >= '0' && *p <= '9' && v <= 0xffffffffu) v = v * 10 + static_cast<unsigned>(*p++ - '0');
                    llm::check(p > start && (p == e || *p == ' ') && v <= 0xffffffffu, "tokenize --decode: stdin line ", line,
                               ": expected ids separated by single spaces");
                    ids.push_back(static_cast<std::uint32_t>(v));
                }
                if (line > 1) out += "\n\f\n";
                out += tok.decode_bytes(ids);
                pos = eol + 1;
            }
        } else {
            const auto docs = split_documents(input);
            const auto policy = special == "all" ? llm::tokenizer::special_policy::all() : llm::tokenizer::special_policy::none();
            llm::parallel::thread_pool pool(threads ? threads : 1);
            const auto t_encode = clock::now();
            const auto ids = llm::tokenizer::encode_batch(tok, docs, policy, pool);
            const double encode_s = std::chrono::duration<double>(clock::now() - t_encode).count();
            if (stats) {
                std::size_t tokens = 0, round_trip = 0;
                for (std::size_t d = 0; d < docs.size(); ++d) {
                    tokens += ids[d].size();
                    round_trip += tok.decode_bytes(ids[d]) == docs[d];
                }
                std::fprintf(stderr,
                             "%s: %zu documents, %zu bytes -> %zu tokens (%.3f bytes/token); load %.1f ms; "
                             "encode %.1f MB/s on %zu thread(s); round trip %s (%zu/%zu documents)\n",
                             tok.name().c_str(), docs.size(), input.size(), tokens,
                             tokens ? static_cast<double>(input.size()) / static_cast<double>(tokens) : 0.0, load_ms,
                             static_cast<double>(input.size()) / 1e6 / encode_s, pool.size(),
                             round_trip == docs.size() ? "ok" : "FAILED", round_trip, docs.size());
            }
            out.reserve(input.size() * 2);
            char buf[16];
            for (const auto& doc : ids) {
                for (std::size_t k = 0; k < doc.size(); ++k) {
                    if (k) out += ' ';
                    const int n = std::snprintf(buf, sizeof buf, "%u", doc[k]);
                    out.append(buf, static_cast<std::size_t>(n));
                }
                out += '\n';
            }
        }
        std::fwrite(out.data(), 1, out.size(), stdout);
        return std::fflush(stdout) == 0 ? 0 : 1;
    } catch (const llm::error& e) {
        std::fprintf(stderr, "tokenize: %s\n", e.what());
        return 1;
    }
}
