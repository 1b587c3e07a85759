// SPDX-License-Identifier: Apache-2.0
// Merges-list BPE (the ranker of tokenizer.json, GPT-2 vocab.json + merges.txt and GGUF) and
// SentencePiece BPE against a plain string-level BPE written here, on random pieces.
#include <doctest/doctest.h>

#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/sp_bpe.hpp>
#include <llm/tokenizer/tiktoken.hpp>

#include "corpus.hpp"

#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace {

// (left, right) -> position in the merges list; a repeated pair keeps its first position.
using merge_ranks = std::map<std::pair<std::string, std::string>, std::size_t>;

// Plain BPE on strings: while some adjacent pair is in the merges list, join the one listed
// first, leftmost on ties. Quadratic and allocating, and obviously what the rule says.
std::vector<std::string> plain_bpe(std::vector<std::string> syms, const merge_ranks& ranks) {
    for (;;) {
        std::size_t best = SIZE_MAX, at = 0;
        for (std::size_t k = 0; k + 1 < syms.size(); ++k) {
            const auto it = ranks.find({syms[k], syms[k + 1]});
            if (it != ranks.end() && it->second < best) {
                best = it->second;
                at = k;
            }
        }
        if (best == SIZE_MAX) return syms;
        syms[at] += syms[at + 1];
        syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
}

// Calls f(text, rep) for random texts of n items drawn from each alphabet (an item is a
// character or a byte string), n around the fast path's switch from the array scan to the heap
// (96 symbols) and beyond; `reps` texts per (n, alphabet) up to 97 items, one above.
template <class F>
void for_each_random_text(unsigned seed, const std::vector<std::vector<std::string>>& alphabets, int reps, F&& f) {
    std::mt19937 rng(seed);
    for (const std::size_t n : {1, 2, 3, 7, 63, 95, 96, 97, 250, 1000}) {
        for (const auto& alphabet : alphabets) {
            for (int rep = 0; rep < (n > 97 ? 1 : reps); ++rep) {
                std::string s;
                for (std::size_t k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
                CAPTURE(n);
                f(s, rep);
            }
        }
    }
}

// GPT-2's vocabulary as a merges list, rebuilt from the r50k_base ranks: the merge making
// token t joins the two parts that rank-BPE of t's bytes stops at when only tokens ranked
// below t may form (how tiktoken relates its rank files to GPT-2's merges.txt).
struct gpt2_merges {
    std::vector<std::pair<std::string, std::uint32_t>> tokens;
    std::vector<std::pair<std::string, std::string>> merges;  // in rank order
};

const gpt2_merges& r50k_as_merges() {
    static const gpt2_merges m = [] {
        gpt2_merges g;
        const std::string path = llm_test::tokenizer_data("r50k_base.tiktoken");
        g.tokens = llm::tokenizer::parse_tiktoken(llm::io::read_file(path, llm::io::default_read_limit, "test"), path);
        std::unordered_map<std::string, std::uint32_t> rank;
        for (const auto& [bytes, r] : g.tokens) rank.emplace(bytes, r);
        for (const auto& [bytes, r] : g.tokens) {
            if (bytes.size() < 2) continue;
            std::vector<std::string> parts;
            for (const char c : bytes) parts.emplace_back(1, c);
            for (;;) {
                std::uint32_t best = r;
                std::size_t at = 0;
                for (std::size_t k = 0; k + 1 < parts.size(); ++k) {
                    const auto it = rank.find(parts[k] + parts[k + 1]);
                    if (it != rank.end() && it->second < best) {
                        best = it->second;
                        at = k;
                    }
                }
                if (best == r) break;
                parts[at] += parts[at + 1];
                parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(at) + 1);
            }
            if (parts.size() == 2) g.merges.emplace_back(parts[0], parts[1]);
        }
        return g;
    }();
    return m;
}

}  // namespace

TEST_CASE("byte-level BPE with a merges list (GPT-2's, rebuilt from r50k) equals the plain BPE on random pieces") {
    const auto& g = r50k_as_merges();
    REQUIRE(g.merges.size() == 50000);  // every token but the 256 bytes splits in two: GPT-2's 50000 merges
    std::unordered_map<std::string, std::uint32_t> id_of;
    for (const auto& [bytes, id] : g.tokens) id_of.emplace(bytes, id);
    llm::tokenizer::byte_bpe_spec spec{"r50k merges", llm::tokenizer::pattern::r50k, g.tokens, {}, {}, false};
    merge_ranks ranks;
    for (const auto& [l, r] : g.merges) {
        spec.merges.emplace_back(id_of.at(l), id_of.at(r));
        ranks.emplace(std::pair{l, r}, ranks.size());
    }
    const llm::tokenizer::byte_bpe enc(spec);
    // Letters (long merge chains), repeats (ties), spaces, UTF-8 and raw bytes.
    const std::vector<std::vector<std::string>> alphabets = {
        {"e", "t", "a", "o", "i", "n", "s", "h", "r", "d", "l", "u"}, {"a", "a", "b"}, {" ", "e", "  "},
        {"\xe4\xb8\xad", "\xe6\x96\x87", "\xc3\xa9", "\xf0\x9f\x98\x80"}, {std::string(1, '\0'), "\x80", "\xff", "A", "\n"}};
    llm::tokenizer::encode_context ctx;
    for_each_random_text(21, alphabets, 6, [&](const std::string& piece, int) {
        std::vector<std::string> bytes;
        for (const char c : piece) bytes.emplace_back(1, c);
        std::vector<std::uint32_t> want{7};  // the fast path appends after what is there
        for (const auto& s : plain_bpe(bytes, ranks)) want.push_back(id_of.at(s));
        std::vector<std::uint32_t> got{7};
        enc.encode_piece_uncached(piece, got, ctx);
        CHECK(got == want);
    });
    // GPT-2's merges and tiktoken's r50k ranks are the same tokenizer: whole documents agree.
    const auto& tiktoken = llm_test::encoding("r50k_base");
    const auto docs = llm_test::corpus_documents();
    for (std::size_t d = 0; d < docs.size(); d += 7) {
        CAPTURE(d);
        CHECK(enc.encode(docs[d]) == tiktoken.encode(docs[d]));
    }
}

TEST_CASE("SentencePiece BPE (Llama 2 and Mistral tokenizer.json) equals the plain BPE on random text") {
    const std::string ws = "\xe2\x96\x81";  // U+2581, which stands for a space
    for (const char* file : {"llama2_sp_bpe.tokenizer.json", "mistral_sp_bpe.tokenizer.json"}) {
        CAPTURE(file);
        const std::string path = llm_test::tokenizer_data(file);
        const std::string text = llm::io::read_file(path, llm::io::default_read_limit, "test");
        const auto loaded = llm::tokenizer::hf_tokenizer_from_json(text, path);
        REQUIRE(std::holds_alternative<llm::tokenizer::sp_bpe>(loaded));
        const auto& tok = std::get<llm::tokenizer::sp_bpe>(loaded);
        // The reference's own reading of the file: piece -> id, and "left right" merges.
        const auto doc = llm::io::parse_json(text, path);
        const auto& model = doc.at("model", path);
        std::map<std::string, std::uint32_t> id_of;
        for (const auto& [piece, v] : model.at("vocab", path).as_object(path)) id_of.emplace(piece, static_cast<std::uint32_t>(v.as_int(path, 0, 1 << 30)));
        merge_ranks ranks;
        for (const auto& m : model.at("merges", path).as_array(path)) {
            const std::string s = m.as_string(path);
            const std::size_t space = s.find(' ');
            REQUIRE(space != std::string::npos);
            ranks.emplace(std::pair{s.substr(0, space), s.substr(space + 1)}, ranks.size());
        }
        REQUIRE(ranks.size() > 50000);
        // Characters: common letters and spaces (long chains), repeats, newlines and digits,
        // CJK and Cyrillic (pieces of their own), an emoji and rare characters (byte fallback).
        const std::vector<std::vector<std::string>> alphabets = {
            {"e", "t", "a", "o", "i", "n", "s", "h", "r", " ", " ", "T"}, {"a", "a", "b", " "}, {"1", "0", "\n", " ", "\t"},
            {"\xe4\xb8\xad", "\xe6\x96\x87", "\xd0\xbf", "\xd1\x80", "\xc3\xa9", " "},
            {"\xf0\x9f\x98\x80", "\xea\xb0\x80", "\xe2\x82\xac", "x", "\xe1\x9a\xa0"}};
        llm::tokenizer::encode_context ctx;
        for_each_random_text(22, alphabets, 4, [&](const std::string& input, int rep) {
            const bool prefix = rep % 2 == 0;
            // Normalise (dummy prefix, space -> U+2581), split into characters; a
            // character without a piece becomes its bytes' <0xNN> pieces.
            std::string norm = prefix ? ws : "";
            for (const char c : input) norm += c == ' ' ? ws : std::string(1, c);
            std::vector<std::string> syms;
            for (std::size_t k = 0; k < norm.size();) {
                const auto lead = static_cast<unsigned char>(norm[k]);
                const std::size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
                const std::string c = norm.substr(k, len);
                if (id_of.count(c)) {
                    syms.push_back(c);
                } else {
                    for (const char b : c) {
                        char hex[8];
                        std::snprintf(hex, sizeof hex, "<0x%02X>", static_cast<unsigned char>(b));
                        syms.emplace_back(hex);
                    }
                }
                k += len;
            }
            std::vector<std::uint32_t> want{7};
            for (const auto& s : plain_bpe(syms, ranks)) want.push_back(id_of.at(s));
            std::vector<std::uint32_t> got{7};
            tok.encode_segment(input, got, ctx, prefix);
            CAPTURE(input);
            CHECK(got == want);
        });
    }
}
