// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE: fast merge against the reference, special-token policies, long runs, decode.
#include <doctest/doctest.h>

#include <llm/tokenizer/byte_bpe.hpp>

#include "corpus.hpp"

#include <random>
#include <string>
#include <vector>

using llm::tokenizer::special_policy;

TEST_CASE("bpe: the fast merge equals the reference on random pieces of awkward sizes") {
    const auto& enc = llm_test::encoding("cl100k_base");
    std::mt19937 rng(7);
    // Alphabets that make long merge chains (letters), many ties (repeats) and raw bytes.
    const std::vector<std::string> alphabets = {"abcdefghijklmnopqrstuvwxyz", "aab", "e ", std::string("\xe4\xb8\xad\xe6\x96\x87"),
                                                std::string("\x80\xff\x00\x41", 4)};
    llm::tokenizer::encode_context ctx;
    for (const std::size_t n : {1, 2, 7, 63, 65, 95, 96, 97, 1000}) {
        for (const auto& alphabet : alphabets) {
            for (int rep = 0; rep < 4; ++rep) {
                std::string piece;
                for (std::size_t k = 0; k < n; ++k) piece += alphabet[rng() % alphabet.size()];
                std::vector<std::uint32_t> fast{0xdeadbeef}, ref{0xdeadbeef};  // poisoned: appended after
                enc.encode_piece_uncached(piece, fast, ctx, false);
                enc.encode_piece_uncached(piece, ref, ctx, true);
                CAPTURE(n);
                CHECK(fast == ref);
                CHECK(enc.decode_bytes(std::span(fast).subspan(1)) == piece);
            }
        }
    }
}

namespace {

// tiktoken's rule (the concatenation's rank as a token), counting its calls.
struct counting_ranker {
    const llm::tokenizer::byte_bpe* enc;
    std::size_t* calls;
    llm::tokenizer::bpe_merge rank(std::string_view piece, llm::tokenizer::bpe_symbol a, llm::tokenizer::bpe_symbol b) const {
        ++*calls;
        const auto id = enc->token_id(piece.substr(a.begin, b.end - a.begin));
        return id ? llm::tokenizer::bpe_merge{*id, *id} : llm::tokenizer::bpe_merge{};
    }
};

}  // namespace

TEST_CASE("bpe: a 100,000-character run without spaces is near-linear (counted, not timed)") {
    const auto& enc = llm_test::encoding("o200k_base");
    std::mt19937 rng(3);
    std::string run;
    for (int k = 0; k < 100000; ++k) run += static_cast<char>('a' + rng() % 26);
    const auto ids = enc.encode(run);
    CHECK(enc.decode_bytes(ids) == run);
    CHECK(ids.size() < run.size());  // merges happened
    // The merge loop on the whole run with a ranker that counts: the pairs are ranked once
    // (n - 1 calls) and each merge re-ranks its two new pairs (<= 2 per merge), so <= 3n calls,
    // where recomputing every pair each round (the reference) makes ~n^2 / 2. The run takes
    // the heap path (its linked list covers every symbol), which is O(n log n): no timing
    // needed. The wall-clock figure is benchmarks/tokenizer/encode.cpp's BM_long_run.
    std::vector<llm::tokenizer::bpe_symbol> syms;
    for (std::uint32_t k = 0; k < run.size(); ++k) syms.push_back({k, k + 1, *enc.token_id(run.substr(k, 1))});
    std::size_t calls = 0;
    llm::tokenizer::bpe_workspace ws;
    llm::tokenizer::bpe_merge_fast(run, syms, counting_ranker{&enc, &calls}, ws);
    const std::size_t merges = run.size() - syms.size();
    CHECK(calls <= (run.size() - 1) + 2 * merges);
    CHECK(ws.nodes.size() == run.size());
    std::vector<std::uint32_t> merged;
    for (const auto& s : syms) merged.push_back(s.id);
    CHECK(merged == ids);  // the same rule as the tokenizer's, so the same ids
    // The whole run is one piece: the same ids as the reference merge of it.
    llm::tokenizer::encode_context ctx;
    std::vector<std::uint32_t> ref;
    enc.encode_piece_uncached(run.substr(0, 3000), ref, ctx, true);
    const auto head = enc.encode(run.substr(0, 3000));
    CHECK(head == ref);
}

TEST_CASE("special tokens: none, all, listed and tiktoken's disallowed-special error") {
    const auto& enc = llm_test::encoding("cl100k_base");
    const std::string text = "a<|endoftext|>b<|fim_prefix|>";
    const auto plain = enc.encode(text, special_policy::none());
    CHECK(plain.size() > 4);
    CHECK(std::find(plain.begin(), plain.end(), 100257u) == plain.end());
    const auto all = enc.encode(text, special_policy::all());
    CHECK(all == std::vector<std::uint32_t>{*enc.token_id("a"), 100257, *enc.token_id("b"), 100258});
    const auto listed = enc.encode(text, special_policy::only({"<|fim_prefix|>"}));
    CHECK(listed.back() == 100258u);
    CHECK(std::find(listed.begin(), listed.end(), 100257u) == listed.end());
    CHECK_THROWS_WITH_AS(enc.encode(text, special_policy::raise()),
                         doctest::Contains("special token '<|endoftext|>' at byte offset 1"), llm::error);
    CHECK_THROWS_WITH_AS(enc.encode(text, special_policy::only({"<|fim_prefix|>"}, true)),
                         doctest::Contains("'<|endoftext|>'"), llm::error);
    CHECK_NOTHROW(enc.encode("no specials here", special_policy::raise()));
    CHECK_THROWS_WITH_AS(enc.encode(text, special_policy::only({"<|nope|>"})), doctest::Contains("'<|nope|>'"), llm::error);
    // Decoding a special gives its text.
    CHECK(enc.decode(all) == text);
    CHECK_THROWS_AS((void)enc.token_bytes(100256), llm::error);  // an unused id
    CHECK_THROWS_AS((void)enc.token_bytes(5000000), llm::error);
}

TEST_CASE("byte_bpe: ill-formed UTF-8 input is encoded byte-level and round-trips") {
    const auto& enc = llm_test::encoding("o200k_base");
    const std::string text = "ok \xff\xfe\xe4\xb8 caf\xc3\xa9\x80 \xf0\x9f\x98";
    const auto ids = enc.encode(text);
    CHECK(enc.decode_bytes(ids) == text);
    CHECK(enc.decode(ids) == "ok \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9\xef\xbf\xbd \xef\xbf\xbd");
    CHECK_THROWS_WITH_AS((void)enc.decode(ids, llm::tokenizer::utf8_policy::error), doctest::Contains("byte offset 3"), llm::error);
}

TEST_CASE("byte_bpe: construction rejects bad vocabularies") {
    using llm::tokenizer::byte_bpe;
    using llm::tokenizer::byte_bpe_spec;
    byte_bpe_spec dup_id{"t", llm::tokenizer::pattern::r50k, {{"a", 0}, {"b", 0}}, {}, {}, false};
    CHECK_THROWS_WITH_AS(byte_bpe{dup_id}, doctest::Contains("token id 0 is given twice"), llm::error);
    byte_bpe_spec dup_bytes{"t", llm::tokenizer::pattern::r50k, {{"a", 0}, {"a", 1}}, {}, {}, false};
    CHECK_THROWS_WITH_AS(byte_bpe{dup_bytes}, doctest::Contains("repeats the bytes"), llm::error);
    byte_bpe_spec clash{"t", llm::tokenizer::pattern::r50k, {{"a", 0}}, {{"<s>", 0}}, {}, false};
    CHECK_THROWS_WITH_AS(byte_bpe{clash}, doctest::Contains("already used"), llm::error);
    byte_bpe_spec huge{"t", llm::tokenizer::pattern::r50k, {{"a", 4000000000u}}, {}, {}, false};
    CHECK_THROWS_WITH_AS(byte_bpe{huge}, doctest::Contains("above the supported maximum"), llm::error);
    // A vocabulary without every byte can still encode what it covers, and names the byte it cannot.
    const byte_bpe small(byte_bpe_spec{"small", llm::tokenizer::pattern::r50k, {{"a", 0}, {"b", 1}, {"ab", 2}}, {}, {}, false});
    CHECK(small.encode("abab") == std::vector<std::uint32_t>{2, 2});
    CHECK_THROWS_WITH_AS(small.encode("abc"), doctest::Contains("byte 0x63 has no token"), llm::error);
}

TEST_CASE("encode_context: one context passed to different tokenizers never mixes their caches") {
    const auto& a = llm_test::encoding("cl100k_base");
    const auto& b = llm_test::encoding("o200k_base");
    const auto docs = llm_test::corpus_documents();
    llm::tokenizer::encode_context shared;
    for (std::size_t d = 0; d < 60; ++d) {
        for (const auto* enc : {&a, &b}) {
            std::vector<std::uint32_t> ids;
            enc->encode(docs[d], ids, {}, shared);
            CHECK(ids == enc->encode(docs[d]));
        }
    }
}
