// SPDX-License-Identifier: Apache-2.0
// Data structures sized by their caller: absurd sizes are llm::error naming the function and the size,
// never a wrapped size, std::length_error or std::bad_alloc.
#include <llm/data/lsh.hpp>
#include <llm/data/synthetic.hpp>
#include <llm/data/union_find.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {
constexpr std::size_t two_62 = std::size_t{1} << 62;
}  // namespace

TEST_CASE("union_find: more elements than 32-bit ids allow is llm::error before reserving") {
    CHECK_THROWS_WITH_AS((llm::data::union_find(two_62)),
                         "union_find: n = 4611686018427387904 elements, more than the 2^32 - 1 that 32-bit ids allow",
                         llm::error);
    CHECK_THROWS_WITH_AS((llm::data::union_find(std::size_t{0xFFFFFFFFu} + 1)), doctest::Contains("union_find: n = 4294967296"),
                         llm::error);
    llm::data::union_find small(3);
    CHECK(small.size() == 3);
    const std::uint32_t root = small.unite(0, 2);
    CHECK(small.find(2) == root);
    CHECK(small.find(1) == 1);
}

TEST_CASE("make_synthetic_corpus: a corpus beyond memory is llm::error before generating") {
    // 2^62 documents of 330 words: the byte count overflows std::size_t.
    CHECK_THROWS_WITH_AS(llm::data::make_synthetic_corpus({.documents = two_62}),
                         doctest::Contains("make_synthetic_corpus: documents * bytes per document = 4611686018427387904 * "),
                         llm::error);
    // 2^42 documents of one word (~2^49 bytes): representable, beyond the allocation limit.
    CHECK_THROWS_WITH_AS(llm::data::make_synthetic_corpus({.documents = std::size_t{1} << 42, .words_per_document = 1}),
                         doctest::Contains("more than the allocation limit"), llm::error);
    // A vocabulary of 2^62 words overflows too.
    CHECK_THROWS_WITH_AS(llm::data::make_synthetic_corpus({.documents = 1, .vocabulary = two_62}),
                         doctest::Contains("make_synthetic_corpus: vocabulary * bytes per word = 4611686018427387904 * "),
                         llm::error);
    // Ordinary sizes still work and are deterministic.
    const auto a = llm::data::make_synthetic_corpus({.documents = 5, .words_per_document = 7, .vocabulary = 50});
    const auto b = llm::data::make_synthetic_corpus({.documents = 5, .words_per_document = 7, .vocabulary = 50});
    REQUIRE(a.size() == 5);
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].text == b[i].text);
    }
}

TEST_CASE("lsh_index: bands * rows that wraps is refused, not accepted as <= num_perm") {
    // 2^63 * 2 wraps to 0 <= 128: the plain product would accept it, then size 2^63 tables.
    CHECK_THROWS_WITH_AS((llm::data::lsh_index(128, {.bands = std::size_t{1} << 63, .rows = 2})),
                         "lsh_index: bands = 9223372036854775808, rows = 2 need bands, rows >= 1 and bands * rows <= "
                         "num_perm = 128",
                         llm::error);
    // bands within num_perm but more tables than memory holds: refused by size.
    CHECK_THROWS_WITH_AS((llm::data::lsh_index(two_62, {.bands = two_62, .rows = 1})),
                         doctest::Contains("lsh_index: the band tables"), llm::error);
    llm::data::lsh_index idx(4, {.bands = 2, .rows = 2});
    const std::vector<std::uint32_t> sig{1, 2, 3, 4};
    std::vector<std::uint32_t> out;
    idx.insert(sig);
    idx.query(sig, out);
    CHECK(out == std::vector<std::uint32_t>{0});
}
