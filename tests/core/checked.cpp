// SPDX-License-Identifier: Apache-2.0
// llm::checked_mul / checked_add / checked_bytes / allocating: overflow and allocation failures become llm::error.
#include <llm/core/checked.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <limits>
#include <new>
#include <vector>

namespace {
constexpr std::size_t max_size = std::numeric_limits<std::size_t>::max();
}

TEST_CASE("checked_mul and checked_add return the exact result or name the operands") {
    CHECK(llm::checked_mul(3, 5, "f", "x") == 15);
    CHECK(llm::checked_mul(0, max_size, "f", "x") == 0);
    CHECK(llm::checked_mul(max_size, 1, "f", "x") == max_size);
    CHECK(llm::checked_add(max_size - 1, 1, "f", "x") == max_size);
    const std::size_t big = std::size_t{1} << 62;
    CHECK_THROWS_WITH_AS(llm::checked_mul(big, 4, "my_fn", "rows * cols"),
                         "my_fn: rows * cols = 4611686018427387904 * 4 overflows std::size_t", llm::error);
    CHECK_THROWS_WITH_AS(llm::checked_add(max_size, 1, "my_fn", "n + 1"),
                         doctest::Contains("my_fn: n + 1 = 18446744073709551615 + 1 overflows"), llm::error);
}

TEST_CASE("checked_bytes refuses overflowing and over-limit sizes with the byte count") {
    CHECK(llm::checked_bytes<float>(1000, "f", "x") == 4000);
    CHECK(llm::checked_bytes<float>(llm::max_allocation_bytes / 4, "f", "x") == llm::max_allocation_bytes);
    CHECK_THROWS_WITH_AS(llm::checked_bytes<float>(max_size / 2, "my_fn", "the table"),
                         doctest::Contains("my_fn: the table = "), llm::error);
    // 2^50 floats: no overflow, but 2^52 bytes is past the limit (and past any machine).
    CHECK_THROWS_WITH_AS(llm::checked_bytes<float>(std::size_t{1} << 50, "my_fn", "the table"),
                         doctest::Contains("my_fn: the table need 4503599627370496 bytes"), llm::error);
}

TEST_CASE("allocating turns std::bad_alloc into llm::error naming the size, and passes results through") {
    CHECK(llm::allocating(4, "f", "x", [] { return 7; }) == 7);
    CHECK_THROWS_WITH_AS(llm::allocating(123456, "my_fn", "the cache", []() -> int { throw std::bad_alloc(); }),
                         "my_fn: allocating the cache (123456 bytes) failed: out of memory", llm::error);
    std::vector<int> v;
    llm::allocating(40, "f", "v", [&] { v.resize(10); });
    CHECK(v.size() == 10);
}
