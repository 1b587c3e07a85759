// SPDX-License-Identifier: Apache-2.0
// Tests of llm::parallel::parallel_for under every policy: coverage, chunking, errors, nesting.
#include <llm/parallel/parallel_for.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace par = llm::parallel;

namespace {

// Runs parallel_for(pol, n, grain) and checks the contract: every index covered exactly
// once, one call per chunk, and each chunk exactly [k*grain, min(n, (k+1)*grain)).
template <class Policy>
void check_coverage(Policy& pol, std::size_t n, std::size_t grain) {
    CAPTURE(n);
    CAPTURE(grain);
    const std::size_t n_chunks = (n + grain - 1) / grain;
    std::vector<std::atomic<int>> hits(n);
    std::vector<std::atomic<int>> chunk_calls(n_chunks);
    std::atomic<int> bad_bounds{0};
    par::parallel_for(pol, n, grain, [&](std::size_t begin, std::size_t end) {
        const std::size_t k = begin / grain;
        if (begin % grain != 0 || k >= n_chunks || end != std::min(n, begin + grain)) {
            bad_bounds.fetch_add(1);
            return;
        }
        chunk_calls[k].fetch_add(1);
        for (std::size_t i = begin; i < end; ++i) {
            hits[i].fetch_add(1);
        }
    });
    CHECK(bad_bounds.load() == 0);
    std::size_t wrong_hits = 0;
    for (auto& h : hits) {
        wrong_hits += h.load() != 1 ? 1 : 0;
    }
    CHECK(wrong_hits == 0);
    std::size_t wrong_calls = 0;
    for (auto& c : chunk_calls) {
        wrong_calls += c.load() != 1 ? 1 : 0;
    }
    CHECK(wrong_calls == 0);
}

template <class Policy>
void check_awkward_sizes(Policy& pol) {
    for (std::size_t n : {0, 1, 2, 7, 63, 64, 65, 1000, 4097}) {
        for (std::size_t grain : {1, 2, 3, 7, 64, 1000, 5000}) {
            check_coverage(pol, n, grain);
        }
    }
}

// Makes `threads` different threads enter chunks at the same time: each chunk waits (up to
// a generous timeout, the machine may be loaded) until `threads` distinct threads are in.
// Returns the set of thread ids that ran chunks.
std::set<std::thread::id> rendezvous(par::thread_pool& pool, std::size_t threads) {
    std::mutex mutex;
    std::set<std::thread::id> ids;
    par::parallel_for(pool, threads, 1, [&](std::size_t, std::size_t) {
        {
            std::lock_guard lock(mutex);
            ids.insert(std::this_thread::get_id());
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < deadline) {
            {
                std::lock_guard lock(mutex);
                if (ids.size() >= threads) {
                    return;
                }
            }
            std::this_thread::yield();
        }
    });
    return ids;
}

}  // namespace

TEST_CASE("parallel_for covers every index exactly once in fixed chunks: sequential") {
    par::sequential seq;
    check_awkward_sizes(seq);
}

TEST_CASE("parallel_for covers every index exactly once in fixed chunks: thread_pool") {
    for (std::size_t threads : {1, 2, 3, 8}) {
        CAPTURE(threads);
        par::thread_pool pool(threads);
        check_awkward_sizes(pool);
    }
}

TEST_CASE("parallel_for without a policy uses default_pool") {
    std::vector<std::atomic<int>> hits(1000);
    par::parallel_for(1000, 7, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) {
            hits[i].fetch_add(1);
        }
    });
    std::size_t wrong = 0;
    for (auto& h : hits) {
        wrong += h.load() != 1 ? 1 : 0;
    }
    CHECK(wrong == 0);
    CHECK(&par::default_pool() == &par::default_pool());
    CHECK(par::default_pool().size() >= 1);
}

TEST_CASE("chunk boundaries depend only on n and grain") {
    // The list of chunks each policy produced, sorted by begin, must be the same list.
    auto chunks_of = [](auto& pol, std::size_t n, std::size_t grain) {
        std::mutex mutex;
        std::set<std::pair<std::size_t, std::size_t>> chunks;
        par::parallel_for(pol, n, grain, [&](std::size_t b, std::size_t e) {
            std::lock_guard lock(mutex);
            chunks.emplace(b, e);
        });
        return chunks;
    };
    par::sequential seq;
    par::thread_pool two(2);
    par::thread_pool five(5);
    for (std::size_t n : {1, 65, 1000}) {
        for (std::size_t grain : {1, 3, 64}) {
            const auto expected = chunks_of(seq, n, grain);
            CHECK(expected.size() == (n + grain - 1) / grain);
            CHECK(chunks_of(two, n, grain) == expected);
            CHECK(chunks_of(five, n, grain) == expected);
        }
    }
}

TEST_CASE("parallel_for validates its arguments") {
    par::sequential seq;
    par::thread_pool pool(2);
    int calls = 0;
    auto count = [&](std::size_t, std::size_t) { ++calls; };
    CHECK_THROWS_WITH_AS(par::parallel_for(seq, 10, 0, count),
                         "parallel_for: grain = 0 must be >= 1 (n = 10)", llm::error);
    CHECK_THROWS_WITH_AS(par::parallel_for(pool, 0, 0, count),
                         "parallel_for: grain = 0 must be >= 1 (n = 0)", llm::error);
    par::parallel_for(seq, 0, 4, count);
    par::parallel_for(pool, 0, 1, count);
    CHECK(calls == 0);
}

TEST_CASE("a pool really runs chunks on several threads") {
    par::thread_pool pool(3);
    const auto ids = rendezvous(pool, 3);
    CHECK(ids.size() == 3);
    CHECK(ids.count(std::this_thread::get_id()) == 1);  // the caller works too
}

TEST_CASE("an exception thrown in a chunk reaches the caller") {
    struct chunk_error {
        std::size_t chunk;
    };
    SUBCASE("sequential: the loop stops at the first throw") {
        std::size_t last = 0;
        CHECK_THROWS_AS(par::parallel_for(par::sequential{}, 10, 1,
                                          [&](std::size_t b, std::size_t) {
                                              last = b;
                                              if (b == 3) {
                                                  throw chunk_error{b};
                                              }
                                          }),
                        chunk_error);
        CHECK(last == 3);
    }
    SUBCASE("thread pool: the exception's type and value survive") {
        par::thread_pool pool(2);
        try {
            par::parallel_for(pool, 1000, 1, [&](std::size_t b, std::size_t) {
                if (b == 500) {
                    throw chunk_error{b};
                }
            });
            FAIL("no exception");
        } catch (const chunk_error& e) {
            CHECK(e.chunk == 500);
        }
    }
    SUBCASE("thread pool: thrown on a worker thread") {
        par::thread_pool pool(2);
        const auto caller = std::this_thread::get_id();
        std::atomic<bool> worker_threw{false};
        for (int attempt = 0; attempt < 20 && !worker_threw.load(); ++attempt) {
            std::atomic<int> inside{0};
            try {
                par::parallel_for(pool, 2, 1, [&](std::size_t, std::size_t) {
                    // Both chunks wait for each other so the worker surely gets one.
                    inside.fetch_add(1);
                    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
                    while (inside.load() < 2 && std::chrono::steady_clock::now() < deadline) {
                        std::this_thread::yield();
                    }
                    if (std::this_thread::get_id() != caller) {
                        worker_threw.store(true);
                        throw std::runtime_error("worker failed");
                    }
                });
            } catch (const std::runtime_error& e) {
                CHECK(std::string(e.what()) == "worker failed");
            }
        }
        CHECK(worker_threw.load());
    }
    SUBCASE("thread pool: every chunk throws, exactly one exception arrives") {
        par::thread_pool pool(4);
        std::atomic<int> started{0};
        CHECK_THROWS_AS(par::parallel_for(pool, 10000, 1,
                                          [&](std::size_t, std::size_t) {
                                              started.fetch_add(1);
                                              throw std::logic_error("all fail");
                                          }),
                        std::logic_error);
        // The rest are cancelled: at most one chunk per thread can have started.
        CHECK(started.load() >= 1);
        CHECK(started.load() <= 4);
    }
}

TEST_CASE("the pool is usable after an exception") {
    par::thread_pool pool(3);
    for (int round = 0; round < 50; ++round) {
        CHECK_THROWS_AS(par::parallel_for(pool, 64, 1,
                                          [&](std::size_t b, std::size_t) {
                                              if (b % 7 == static_cast<std::size_t>(round % 7)) {
                                                  throw std::runtime_error("x");
                                              }
                                          }),
                        std::runtime_error);
        check_coverage(pool, 1000, 3);
    }
}

TEST_CASE("nested parallel_for runs inline and does not deadlock") {
    par::thread_pool pool(2);
    par::thread_pool other(2);
    constexpr std::size_t outer = 16;
    constexpr std::size_t inner = 100;
    std::vector<std::atomic<int>> hits(outer * inner);
    std::atomic<int> inner_on_other_thread{0};
    par::parallel_for(pool, outer, 1, [&](std::size_t o0, std::size_t o1) {
        for (std::size_t o = o0; o < o1; ++o) {
            const auto outer_thread = std::this_thread::get_id();
            auto body = [&](std::size_t i0, std::size_t i1) {
                if (std::this_thread::get_id() != outer_thread) {
                    inner_on_other_thread.fetch_add(1);
                }
                for (std::size_t i = i0; i < i1; ++i) {
                    hits[o * inner + i].fetch_add(1);
                }
            };
            // Same pool, another pool and the default pool: all inline.
            if (o % 3 == 0) {
                par::parallel_for(pool, inner, 7, body);
            } else if (o % 3 == 1) {
                par::parallel_for(other, inner, 7, body);
            } else {
                par::parallel_for(inner, 7, body);
            }
        }
    });
    std::size_t wrong = 0;
    for (auto& h : hits) {
        wrong += h.load() != 1 ? 1 : 0;
    }
    CHECK(wrong == 0);
    CHECK(inner_on_other_thread.load() == 0);
    // After the nested use the pool still distributes work.
    CHECK(rendezvous(pool, 2).size() == 2);
}

TEST_CASE("a single-chunk call may itself use the pool") {
    // With one chunk nothing is handed off, so the body is not 'inside' the pool and a
    // parallel_for issued from it is distributed normally.
    par::thread_pool pool(2);
    std::size_t threads_seen = 0;
    par::parallel_for(pool, 1, 1, [&](std::size_t, std::size_t) {
        threads_seen = rendezvous(pool, 2).size();
    });
    CHECK(threads_seen == 2);
}

TEST_CASE("concurrent callers on one pool all complete") {
    par::thread_pool pool(3);
    std::atomic<int> failures{0};
    auto caller = [&] {
        for (int round = 0; round < 200; ++round) {
            std::vector<std::atomic<int>> hits(257);
            par::parallel_for(pool, hits.size(), 5, [&](std::size_t b, std::size_t e) {
                for (std::size_t i = b; i < e; ++i) {
                    hits[i].fetch_add(1);
                }
            });
            for (auto& h : hits) {
                failures.fetch_add(h.load() != 1 ? 1 : 0);
            }
        }
    };
    {
        std::jthread a(caller);
        std::jthread b(caller);
        caller();
    }
    CHECK(failures.load() == 0);
}

namespace {

// A user-defined policy: runs chunks in reverse order. Shows the concept is the whole
// interface, and that results combined per chunk do not depend on execution order.
struct reverse_order {
    std::size_t size() const { return 1; }
    void run(std::size_t n_chunks, par::chunk_task task) const {
        for (std::size_t k = n_chunks; k-- > 0;) {
            task(k);
        }
    }
};

}  // namespace

TEST_CASE("the policy concept accepts user policies and rejects others") {
    static_assert(par::policy<par::sequential>);
    static_assert(par::policy<par::thread_pool>);
    static_assert(par::policy<reverse_order>);
    static_assert(!par::policy<int>);
    static_assert(!par::policy<const par::thread_pool>);  // run mutates the pool
    reverse_order rev;
    check_coverage(rev, 1000, 7);
    std::vector<std::size_t> order;
    par::parallel_for(rev, 10, 4, [&](std::size_t b, std::size_t) { order.push_back(b); });
    CHECK(order == std::vector<std::size_t>{8, 4, 0});
}
