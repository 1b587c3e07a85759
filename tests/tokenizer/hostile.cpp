// SPDX-License-Identifier: Apache-2.0
// Hostile vocabulary files: tiny files declaring huge ids, endless devices and huge sparse files
// give llm::error without large allocations.
//
// How allocations are watched: tests/support/counting_new.hpp replaces the global operator new /
// delete for the whole test_tokenizer executable and keeps the largest single request while a
// watch is on. Every table a loader sizes from a file goes through operator new (std::vector,
// std::string), so "largest request < 1 MiB" proves no file-declared size reached an allocation.
#include <doctest/doctest.h>

#include <llm/tokenizer/tokenizer.hpp>

#include "../support/counting_new.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <string_view>
#include <variant>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

/// Runs f, which must throw llm::error whose message contains `expected`, and returns the
/// largest single allocation it requested.
template <class F>
std::size_t largest_request_of_failing(F&& f, const char* expected) {
    std::string what;
    const auto seen = llm_test::heap::watch([&] {
        try {
            f();
        } catch (const llm::error& e) {
            what = e.what();
        }
    });
    INFO("message: ", what);
    CHECK(what.find(expected) != std::string::npos);
    return seen.largest;
}

constexpr std::size_t one_mib = std::size_t{1} << 20;

struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        std::string templ = (std::filesystem::temp_directory_path() / "llm_hostile_test.XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        path = templ;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const char* name) const { return (path / name).string(); }
};

std::string put(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

// A byte-level tokenizer.json whose vocab and added_tokens are the given JSON text.
std::string byte_level_json(const std::string& vocab, const std::string& added = "[]") {
    return R"({"added_tokens":)" + added + R"(,"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":)" + vocab +
           R"(,"merges":[]}})";
}

}  // namespace


using llm::tokenizer::hf_tokenizer_from_json;

TEST_CASE("hostile: the allocation watch sees allocations") {
    std::size_t n = 0;
    const auto seen = llm_test::heap::watch([&] {
        std::string s(3 * one_mib, 'x');
        n = s.size();
    });
    CHECK(n == 3 * one_mib);
    CHECK(seen.largest > 3 * one_mib);
}

TEST_CASE("hostile: tokenizer.json declaring one huge id allocates nothing large") {
    // The issue's 98-byte file: one piece with id 2^27 - 1 (the old limit), which sized 1.5 GB of tables.
    const std::string tiny = byte_level_json(R"({"a":134217727})");
    CHECK(tiny.size() < 128);
    CHECK(largest_request_of_failing([&] { hf_tokenizer_from_json(tiny, "t.json"); }, "not an integer in [0, 16777215]") < one_mib);
    // Inside the documented maximum (2^24 - 1) but far outside what one entry may use.
    CHECK(largest_request_of_failing([&] { hf_tokenizer_from_json(byte_level_json(R"({"a":16777215})"), "t.json"); },
                                     "t.json: largest id 16777215 with only 1 tokens and specials is out of range") < one_mib);
    // The same through added_tokens.
    CHECK(largest_request_of_failing(
              [&] { hf_tokenizer_from_json(byte_level_json(R"({"a":0})", R"([{"id":16777215,"content":"<s>"}])"), "t.json"); },
              "largest id 16777215 with only 2 tokens") < one_mib);
    CHECK(largest_request_of_failing(
              [&] { hf_tokenizer_from_json(byte_level_json(R"({"a":0})", R"([{"id":134217727,"content":"<s>"}])"), "t.json"); },
              "added_tokens id: ") < one_mib);
    // The SentencePiece branch (Metaspace) builds sp_bpe, whose tables cost ~40 bytes an id.
    const std::string sp = R"({"pre_tokenizer":{"type":"Metaspace"},"model":{"type":"BPE","vocab":{"a":0,"b":16777215,"ab":1},)"
                           R"("merges":["a b"]}})";
    CHECK(largest_request_of_failing([&] { hf_tokenizer_from_json(sp, "sp.json"); }, "largest id 16777215 with only 3 tokens") <
          one_mib);
}

TEST_CASE("hostile: tiktoken ranks and GPT-2 vocab.json declaring huge ids allocate nothing large") {
    using llm::tokenizer::parse_tiktoken;
    CHECK(largest_request_of_failing([] { parse_tiktoken("YQ== 134217727\n", "r.tiktoken"); },
                                     "r.tiktoken:1: rank 134217727 is above the supported maximum 16777215") < one_mib);
    // A rank inside the maximum parses without a rank-indexed table; the encoding then refuses
    // the file (1 rank, not 100256), and a bare byte_bpe refuses the id space.
    CHECK(largest_request_of_failing([] { llm::tokenizer::tiktoken_from_text("YQ== 16777215\nYg== 16777215\n", "cl100k_base", "r"); },
                                     "r:2: rank 16777215 repeats line 1") < one_mib);
    CHECK(largest_request_of_failing([] { llm::tokenizer::tiktoken_from_text("YQ== 16777215\n", "cl100k_base", "r"); },
                                     "has 1 ranks but cl100k_base has 100256") < one_mib);
    CHECK(largest_request_of_failing(
              [] {
                  llm::tokenizer::byte_bpe(llm::tokenizer::byte_bpe_spec{
                      "r", llm::tokenizer::pattern::cl100k, parse_tiktoken("YQ== 16777215\n", "r"), {}, {}, false});
              },
              "r: largest id 16777215 with only 1 tokens and specials is out of range") < one_mib);
    // GPT-2 vocab.json + merges.txt.
    CHECK(largest_request_of_failing(
              [] { llm::tokenizer::gpt2_from_text(R"({"a":16777215})", "#version: 0.2\na a\n", "vocab.json", "merges.txt"); },
              "vocab.json: largest id 16777215 with only 1 tokens") < one_mib);
    CHECK(largest_request_of_failing(
              [] { llm::tokenizer::gpt2_from_text(R"({"a":0,"<|x|>":16777215})", "a a\n", "vocab.json", "merges.txt"); },
              "vocab.json: largest id 16777215 with only 2 tokens") < one_mib);
}

TEST_CASE("hostile: the id space bound is exact and leaves real gaps alone") {
    using llm::tokenizer::byte_bpe;
    using llm::tokenizer::byte_bpe_spec;
    using llm::tokenizer::max_id_space;
    CHECK(max_id_space(1) == 65538);
    CHECK(max_id_space(100261) == 2 * 100261 + 65536);  // cl100k: 100256 ranks + 5 specials, largest id 100276
    CHECK(max_id_space(std::size_t{1} << 30) == llm::tokenizer::max_vocab);
    std::vector<std::pair<std::string, std::uint32_t>> tokens;
    for (unsigned b = 0; b < 256; ++b) tokens.emplace_back(std::string(1, static_cast<char>(b)), b);
    const auto top = static_cast<std::uint32_t>(max_id_space(257) - 1);
    const byte_bpe ok(byte_bpe_spec{"ok", llm::tokenizer::pattern::r50k, tokens, {{"<|end|>", top}}, {}, false});
    CHECK(ok.n_vocab() == std::size_t{top} + 1);
    CHECK(ok.encode("<|end|>", llm::tokenizer::special_policy::all()) == std::vector<std::uint32_t>{top});
    CHECK_THROWS_WITH_AS(byte_bpe(byte_bpe_spec{"bad", llm::tokenizer::pattern::r50k, tokens, {{"<|end|>", top + 1}}, {}, false}),
                         doctest::Contains("bad: largest id 66050 with only 257 tokens and specials is out of range"), llm::error);
    llm::tokenizer::sp_bpe_spec sp;
    sp.name = "sp";
    sp.byte_fallback = false;
    sp.add_dummy_prefix = false;
    sp.pieces = {{"a", 0}, {"b", 1}, {"ab", top}};
    sp.merges = {{0, 1}};
    CHECK_THROWS_WITH_AS(llm::tokenizer::sp_bpe{sp}, doctest::Contains("sp: largest id 66049 with only 3 tokens"), llm::error);
    sp.pieces[2].second = static_cast<std::uint32_t>(max_id_space(3) - 1);
    CHECK(llm::tokenizer::sp_bpe{sp}.encode("ab") == std::vector<std::uint32_t>{sp.pieces[2].second});
}

TEST_CASE("hostile: /dev/zero and a sparse file over the limit give llm::error quickly") {
    using llm::tokenizer::max_vocab_file_bytes;
    const auto t0 = std::chrono::steady_clock::now();
    // /dev/zero is read up to the limit (256 MiB) and no further.
    CHECK_THROWS_WITH_AS(llm::tokenizer::load_tokenizer("/dev/zero"),
                         doctest::Contains("load_tokenizer: '/dev/zero' is longer than the limit of 268435456 bytes"), llm::error);
    const double zero_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("load_tokenizer(\"/dev/zero\") failed after ", zero_s, " s");
    CHECK(zero_s < 30);  // reading 256 MiB takes well under a second; unbounded reading never ends

    // A regular file one byte over the limit (sparse: no disk used) is refused by its size, unread.
    temp_dir d;
    const std::string big = d / "tokenizer.json";
    {
        const int fd = ::open(big.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, static_cast<off_t>(max_vocab_file_bytes + 1)) == 0);
        ::close(fd);
    }
    const std::string small = put(d / "merges.txt", "a a\n");
    const auto t1 = std::chrono::steady_clock::now();
    const char* over = "has 268435457 bytes, more than the limit of 268435456";
    CHECK(largest_request_of_failing([&] { llm::tokenizer::load_tokenizer(big); }, over) < one_mib);
    CHECK(largest_request_of_failing([&] { llm::tokenizer::load_hf_tokenizer(big); }, over) < one_mib);
    CHECK(largest_request_of_failing([&] { llm::tokenizer::load_tiktoken(big, "cl100k_base"); }, over) < one_mib);
    CHECK(largest_request_of_failing([&] { llm::tokenizer::load_gpt2_files(big, small); }, over) < one_mib);
    CHECK(largest_request_of_failing([&] { llm::tokenizer::load_gpt2_files(small, big); }, over) < one_mib);
    const double sparse_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    MESSAGE("five loaders refused the 256 MiB + 1 sparse file in ", sparse_s, " s");
    CHECK(sparse_s < 5);  // nothing is read: five open + fstat calls
    // At the limit exactly the size check passes (the content then fails to parse).
    REQUIRE(::truncate(big.c_str(), static_cast<off_t>(max_vocab_file_bytes)) == 0);
    CHECK(largest_request_of_failing([&] { llm::tokenizer::load_hf_tokenizer(big); }, "expected a value") <= max_vocab_file_bytes + one_mib);
}

// Symbols address their piece with 32-bit offsets: a piece of 4 GiB is refused, never wrapped
// into wrong tokens (the vocabulary maps byte 0, as GPT-2's byte-level alphabet writes it: U+0100). The 4 GiB of text is a read-only anonymous mapping (the kernel's zero page:
// no memory is used); pre-tokenizing scans it once, so this runs only in the slow suite.
TEST_SUITE("slow") {
    TEST_CASE("hostile: a 4 GiB pre-tokenized piece is llm::error, not wrapped offsets") {
        const std::size_t n = (std::size_t{1} << 32) + 16;
        void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        REQUIRE(p != MAP_FAILED);
        const std::string_view text(static_cast<const char*>(p), n);  // 4 GiB + 16 zero bytes: one piece
        const auto tok = llm::tokenizer::hf_tokenizer_from_json(
            R"({"added_tokens":[],"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"\u0100":0},"merges":[]}})",
            "t.json");
        std::visit([&](const auto& t) {
            CHECK_THROWS_WITH_AS((void)t.encode(text), doctest::Contains("pieces are limited to 4294967294 bytes"), llm::error);
        }, tok);
        ::munmap(p, n);
    }
}
