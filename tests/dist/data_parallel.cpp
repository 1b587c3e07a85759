// SPDX-License-Identifier: Apache-2.0
// gradient_buckets and ZeRO-1 (zero1_partition, zero1_step) on one rank: bucket formation, a
// bucket reduced exactly when its last gradient is ready (once per step), packing that maps each
// gradient back to itself, misuse errors, and ZeRO-1's shards and step against a plain update.
#include <llm/dist/data_parallel.hpp>
#include <llm/dist/single_process.hpp>

#include <doctest/doctest.h>

#include <numeric>
#include <span>
#include <vector>

namespace dist = llm::dist;

static_assert(!dist::async_all_reduce<dist::single_process>);  // gradient_buckets reduces in ready() here

namespace user {

// One rank whose all-reduce doubles its input and records each call's size: a gradient packed
// into the wrong place, or reduced twice, shows in the values.
struct doubling_comm : dist::single_process {
    std::vector<std::size_t> calls;
    template <class T>
    void all_reduce(std::span<T> out, std::span<const T> in, dist::reduce_op) {
        calls.push_back(out.size());
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = 2 * in[i];
    }
};

}  // namespace user

TEST_CASE("gradient_buckets: buckets in reverse order, each reduced once, when its last gradient is ready") {
    std::vector<std::vector<float>> g = {std::vector<float>(3), std::vector<float>(5), std::vector<float>(2), std::vector<float>(10),
                                         std::vector<float>(1)};
    std::vector<std::span<float>> spans;
    float v = 1;
    for (auto& x : g) {
        for (float& e : x) e = v++;
        spans.emplace_back(x);
    }
    const std::vector<std::vector<float>> before = g;
    dist::gradient_buckets b(spans, 8 * sizeof(float));
    // Reverse order, at most 8 floats unless one gradient is larger: [4] [3] [2, 1] [0].
    REQUIRE(b.buckets() == 4);
    CHECK(std::vector<std::size_t>(b.bucket(0).begin(), b.bucket(0).end()) == std::vector<std::size_t>{4});
    CHECK(std::vector<std::size_t>(b.bucket(1).begin(), b.bucket(1).end()) == std::vector<std::size_t>{3});
    CHECK(std::vector<std::size_t>(b.bucket(2).begin(), b.bucket(2).end()) == std::vector<std::size_t>{2, 1});
    CHECK(std::vector<std::size_t>(b.bucket(3).begin(), b.bucket(3).end()) == std::vector<std::size_t>{0});

    user::doubling_comm comm;
    b.ready(4, comm);
    CHECK(comm.calls == std::vector<std::size_t>{1});
    b.ready(1, comm);  // bucket [2, 1] not complete yet
    CHECK(comm.calls.size() == 1);
    b.ready(3, comm);
    b.ready(2, comm);
    CHECK(comm.calls == std::vector<std::size_t>{1, 10, 7});
    b.ready(0, comm);
    b.finish(comm);
    CHECK(comm.calls == std::vector<std::size_t>{1, 10, 7, 3});
    CHECK(b.reductions() == 4);
    for (std::size_t k = 0; k < g.size(); ++k)
        for (std::size_t i = 0; i < g[k].size(); ++i) CHECK(g[k][i] == 2 * before[k][i]);  // each gradient back in place, reduced once

    // Second step: the same buckets again.
    for (std::size_t k = 0; k < g.size(); ++k) b.ready(k, comm);
    b.finish(comm);
    CHECK(comm.calls.size() == 8);
    CHECK(g[3][9] == 4 * before[3][9]);
}

TEST_CASE("gradient_buckets: misuse is llm::error naming the call") {
    std::vector<float> a(4), c(4);
    dist::gradient_buckets b({std::span<float>(a), std::span<float>(c)}, 16);
    dist::single_process comm;
    b.ready(0, comm);
    CHECK_THROWS_WITH_AS(b.ready(0, comm), "gradient_buckets::ready: gradient 0 marked twice in one step (call finish() between steps)",
                         llm::error);
    CHECK_THROWS_WITH_AS(b.finish(comm), "gradient_buckets::finish: gradient 1 was never marked ready in this step", llm::error);
    CHECK_THROWS_WITH_AS(b.ready(2, comm), "gradient_buckets::ready: gradient 2 but there are 2", llm::error);
    CHECK_THROWS_AS(dist::gradient_buckets({std::span<float>(a)}, 2), llm::error);
}

TEST_CASE("zero1_partition: shards cover the buffer, padded to a multiple of the ranks") {
    const dist::zero1_partition p(10, 3);
    CHECK(p.shard_size() == 4);
    CHECK(p.padded_size() == 12);
    CHECK(p.shard_begin(2) == 8);
    CHECK(p.shard_elements(0) == 4);
    CHECK(p.shard_elements(1) == 4);
    CHECK(p.shard_elements(2) == 2);
    const dist::zero1_partition q(2, 4);
    CHECK(q.shard_size() == 1);
    CHECK(q.shard_elements(1) == 1);
    CHECK(q.shard_elements(3) == 0);
    CHECK_THROWS_AS(dist::zero1_partition(5, 0), llm::error);
}

TEST_CASE("zero1_step on one rank: the update sees the whole buffer as its shard and equals a plain update") {
    dist::single_process comm;
    const dist::zero1_partition part(7, comm.size());
    std::vector<float> params(part.padded_size()), grads(part.padded_size()), shard(part.shard_size());
    std::iota(params.begin(), params.end(), 1.0f);
    std::iota(grads.begin(), grads.end(), 10.0f);
    std::vector<float> expect = params;
    for (std::size_t i = 0; i < expect.size(); ++i) expect[i] -= 0.5f * grads[i];
    std::size_t seen_offset = 99;
    dist::zero1_step(params, shard, grads, part,
                     [&](std::span<float> p, std::span<const float> g, std::size_t offset) {
                         seen_offset = offset;
                         for (std::size_t i = 0; i < p.size(); ++i) p[i] -= 0.5f * g[i];
                     },
                     comm);
    CHECK(seen_offset == 0);
    CHECK(params == expect);
    std::vector<float> wrong(3);
    CHECK_THROWS_WITH_AS(dist::zero1_step(params, wrong, grads, part, [](std::span<float>, std::span<const float>, std::size_t) {}, comm),
                         "zero1_step: params has 7 and grads 7 values, expected padded_size() = 7; grad_shard has 3, expected shard_size() = 7",
                         llm::error);
}
