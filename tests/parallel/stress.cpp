// SPDX-License-Identifier: Apache-2.0
// Long randomised stress of the thread pool hand-off (slow suite; the TSan run uses it).
#include <llm/parallel/parallel_for.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <random>
#include <stdexcept>
#include <vector>

namespace par = llm::parallel;

TEST_SUITE("slow") {
    TEST_CASE("thousands of random jobs, some failing, on pools of several sizes") {
        std::mt19937_64 rng(7);
        for (std::size_t threads : {2, 3, 4}) {
            par::thread_pool pool(threads);
            std::size_t wrong = 0;
            for (int job = 0; job < 3000; ++job) {
                const std::size_t n = rng() % 2000;
                const std::size_t grain = 1 + rng() % 97;
                const bool fail = rng() % 10 == 0;
                const std::size_t fail_at = n > 0 ? rng() % n : 0;
                std::vector<int> hits(n, 0);  // plain ints: chunks are disjoint, TSan checks that
                try {
                    par::parallel_for(pool, n, grain, [&](std::size_t b, std::size_t e) {
                        for (std::size_t i = b; i < e; ++i) {
                            ++hits[i];
                            if (fail && i == fail_at) {
                                throw std::runtime_error("planned");
                            }
                        }
                    });
                    for (int h : hits) {
                        wrong += h != 1 ? 1 : 0;
                    }
                } catch (const std::runtime_error&) {
                    wrong += (fail && n > 0) ? 0 : 1;
                    for (int h : hits) {
                        wrong += h > 1 ? 1 : 0;  // skipped chunks are fine, repeated ones are not
                    }
                }
            }
            CHECK(wrong == 0);
        }
    }
}
