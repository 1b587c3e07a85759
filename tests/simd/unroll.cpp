// SPDX-License-Identifier: Apache-2.0
// Tests of llm::simd::unroll: every index once, in order, as a constant expression; N = 0 calls nothing.
#include <llm/simd/unroll.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace {
struct takes_no_index {
    void operator()() const {}
};
}  // namespace

static_assert(llm::simd::unroll_body<decltype([](auto) {}), 4>);
static_assert(!llm::simd::unroll_body<takes_no_index, 1>);
static_assert(!llm::simd::unroll_body<int, 2>);

TEST_CASE("simd unroll: calls f(integral_constant<I>) for I = 0 .. N-1 in order, I usable as a constant") {
    std::vector<std::size_t> seen;
    std::array<int, 6> sizes{};
    llm::simd::unroll<6>([&](auto i) {
        static_assert(std::is_same_v<decltype(i), std::integral_constant<std::size_t, decltype(i)::value>>);
        std::array<char, i + 1> a{};  // i is a constant expression
        sizes[i] = static_cast<int>(a.size());
        seen.push_back(i);
    });
    CHECK(seen == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
    CHECK(sizes == std::array<int, 6>{1, 2, 3, 4, 5, 6});

    int calls = 0;
    llm::simd::unroll<0>([&](auto) { ++calls; });
    CHECK(calls == 0);
    llm::simd::unroll<1>([&](auto i) { calls += static_cast<int>(i) + 1; });
    CHECK(calls == 1);
}
