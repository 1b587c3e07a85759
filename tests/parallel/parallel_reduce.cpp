// SPDX-License-Identifier: Apache-2.0
// Tests of llm::parallel::parallel_reduce: chunk-order combination, determinism, errors.
#include <llm/parallel/parallel_reduce.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace par = llm::parallel;

TEST_CASE("parallel_reduce sums integers under every policy") {
    par::thread_pool pool(3);
    for (std::size_t n : {0, 1, 7, 63, 65, 1000}) {
        for (std::size_t grain : {1, 7, 64}) {
            CAPTURE(n);
            CAPTURE(grain);
            auto range_sum = [](std::size_t b, std::size_t e) {
                std::uint64_t s = 0;
                for (std::size_t i = b; i < e; ++i) {
                    s += i;
                }
                return s;
            };
            const std::uint64_t expected = n * (n - (n > 0 ? 1 : 0)) / 2 + 5;
            CHECK(par::parallel_reduce(par::sequential{}, n, grain, std::uint64_t{5}, range_sum,
                                       std::plus<>{}) == expected);
            CHECK(par::parallel_reduce(pool, n, grain, std::uint64_t{5}, range_sum,
                                       std::plus<>{}) == expected);
            CHECK(par::parallel_reduce(n, grain, std::uint64_t{5}, range_sum, std::plus<>{}) ==
                  expected);
        }
    }
}

TEST_CASE("parallel_reduce combines partials in chunk order") {
    // String concatenation is not commutative: any other order would show.
    par::thread_pool pool(4);
    // Built with append, not "[" + std::to_string(...): GCC 12 gives a false -Wrestrict there.
    auto chunk_name = [](std::size_t b, std::size_t e) {
        std::string name(1, '[');
        name.append(std::to_string(b)).append(1, ',').append(std::to_string(e)).append(1, ')');
        return name;
    };
    const std::string got = par::parallel_reduce(pool, 10, 3, std::string("<"), chunk_name,
                                                 std::plus<>{});
    CHECK(got == "<[0,3)[3,6)[6,9)[9,10)");
}

TEST_CASE("a float sum has the same bits with any thread count") {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> x(100003);
    for (float& v : x) {
        v = dist(rng) * 1e3f;
    }
    auto chunk_sum = [&](std::size_t b, std::size_t e) {
        float s = 0.0f;
        for (std::size_t i = b; i < e; ++i) {
            s += x[i];
        }
        return s;
    };
    const float reference = par::parallel_reduce(par::sequential{}, x.size(), 1000, 0.0f,
                                                 chunk_sum, std::plus<>{});
    for (std::size_t threads : {2, 3, 5}) {
        par::thread_pool pool(threads);
        for (int repeat = 0; repeat < 10; ++repeat) {
            const float got = par::parallel_reduce(pool, x.size(), 1000, 0.0f, chunk_sum,
                                                   std::plus<>{});
            CHECK(std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(reference));
        }
    }
}

TEST_CASE("parallel_reduce works for result types without a default constructor, and bool") {
    struct total {
        explicit total(std::size_t v) : value(v) {}
        std::size_t value;
    };
    par::thread_pool pool(2);
    const total t = par::parallel_reduce(
        pool, 100, 9, total(0), [](std::size_t b, std::size_t e) { return total(e - b); },
        [](total a, total b) { return total(a.value + b.value); });
    CHECK(t.value == 100);
    // bool partials must not share storage (std::vector<bool> would race).
    std::vector<int> values(5000, 1);
    values[4321] = -1;
    const bool any_negative = par::parallel_reduce(
        pool, values.size(), 1,  false,
        [&](std::size_t b, std::size_t) { return values[b] < 0; },
        [](bool a, bool b) { return a || b; });
    CHECK(any_negative);
}

TEST_CASE("parallel_reduce validates its arguments and propagates exceptions") {
    auto one = [](std::size_t, std::size_t) { return 1; };
    CHECK_THROWS_WITH_AS(par::parallel_reduce(par::sequential{}, 5, 0, 0, one, std::plus<>{}),
                         "parallel_reduce: grain = 0 must be >= 1 (n = 5)", llm::error);
    par::thread_pool pool(2);
    CHECK_THROWS_AS(par::parallel_reduce(
                        pool, 100, 1, 0,
                        [](std::size_t b, std::size_t) -> int {
                            if (b == 50) {
                                throw std::out_of_range("chunk 50");
                            }
                            return 1;
                        },
                        std::plus<>{}),
                    std::out_of_range);
    CHECK(par::parallel_reduce(pool, 100, 1, 0, one, std::plus<>{}) == 100);
}
