// SPDX-License-Identifier: Apache-2.0
// UTF-8 policies and the streaming decoder, checked against whole-sequence decoding.
#include <doctest/doctest.h>

#include <llm/tokenizer/decode.hpp>

#include "corpus.hpp"

#include <random>
#include <string>

using llm::tokenizer::to_utf8;
using llm::tokenizer::utf8_policy;
using llm::tokenizer::utf8_stream;

TEST_CASE("to_utf8: replaces each maximal ill-formed subpart, or raises") {
    CHECK(to_utf8("abc") == "abc");
    // Truncated 3-byte sequence, lone continuation, overlong, surrogate, above U+10FFFF.
    CHECK(to_utf8("\xe4\xb8" "a") == "\xef\xbf\xbd" "a");
    CHECK(to_utf8("\x80") == "\xef\xbf\xbd");
    CHECK(to_utf8("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(to_utf8("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(to_utf8("\xf4\x90\x80\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(to_utf8("\xf0\x9f\x98") == "\xef\xbf\xbd");
    CHECK_THROWS_WITH_AS(to_utf8("ab\xff", utf8_policy::error), doctest::Contains("byte offset 2"), llm::error);
}

TEST_CASE("utf8_stream: never emits part of a character and matches whole decoding") {
    const auto& enc = llm_test::encoding("cl100k_base");
    const auto docs = llm_test::corpus_documents();
    std::mt19937 rng(11);
    std::size_t checked = 0;
    for (std::size_t d = 0; d < docs.size(); d += 7) {
        const auto ids = enc.encode(docs[d]);
        utf8_stream s;
        std::string streamed;
        for (const auto id : ids) {
            const std::string part = s.push(enc.token_bytes(id));
            CHECK(to_utf8(part, utf8_policy::replace) == part);  // each emitted part is whole characters
            streamed += part;
            CHECK(s.pending() < 4);
        }
        streamed += s.finish();
        CHECK(streamed == docs[d]);
        ++checked;
    }
    CHECK(checked > 50);
    // Random byte soup cut at random points: same result as decoding it at once.
    for (int rep = 0; rep < 200; ++rep) {
        std::string bytes;
        const int n = static_cast<int>(rng() % 40);
        for (int k = 0; k < n; ++k) {
            const char pool[] = {'a', '\x80', '\xbf', '\xc3', '\xa9', '\xe4', '\xb8', '\xad', '\xf0', '\x9f', '\x98', '\x80', '\xff', '\xed', '\xa0'};
            bytes += pool[rng() % sizeof pool];
        }
        utf8_stream s;
        std::string out;
        std::size_t i = 0;
        while (i < bytes.size()) {
            const std::size_t len = std::min<std::size_t>(bytes.size() - i, rng() % 4);
            out += s.push(std::string_view(bytes).substr(i, len));
            i += len;
        }
        out += s.finish();
        CHECK(out == to_utf8(bytes));
    }
}

TEST_CASE("utf8_stream: error policy names the stream offset; truncated end raises in finish") {
    utf8_stream s(utf8_policy::error);
    CHECK(s.push("ab\xe4\xb8") == "ab");
    CHECK(s.pending() == 2);
    CHECK(s.push("\xad") == "\xe4\xb8\xad");
    CHECK_THROWS_WITH_AS(s.push("\xff"), doctest::Contains("offset 5"), llm::error);
    utf8_stream t(utf8_policy::error);
    CHECK(t.push("\xf0\x9f").empty());
    CHECK_THROWS_AS(t.finish(), llm::error);
}
