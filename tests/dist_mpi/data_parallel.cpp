// SPDX-License-Identifier: Apache-2.0
// gradient_buckets and zero1_step on every rank of the job (2 in ctest), on toy tensors: bucketed
// gradients equal the mean over ranks; three ZeRO-1 steps of a momentum-SGD update (state kept
// for the rank's shard only) give exactly the parameters of all-reducing the gradients and
// updating every value on every rank. Values are small integers and powers of two, so both
// orders of summation are exact and the comparison is bitwise.
#include <llm/dist/data_parallel.hpp>
#include <llm/dist/mpi.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <span>
#include <vector>

namespace dist = llm::dist;

static_assert(dist::async_all_reduce<dist::mpi>);  // so gradient_buckets overlaps: ready() starts, finish() completes

TEST_CASE("mpi data parallel: bucketed gradients are the mean over ranks, every bucket reduced once per step") {
    dist::mpi comm(MPI_COMM_WORLD, {.timeout = std::chrono::seconds(60)});
    const std::size_t p = comm.size(), r = comm.rank();
    std::vector<std::vector<float>> g = {std::vector<float>(30), std::vector<float>(7), std::vector<float>(100), std::vector<float>(1)};
    std::vector<std::span<float>> spans(g.begin(), g.end());
    dist::gradient_buckets buckets(spans, 40 * sizeof(float));
    for (int step = 0; step < 2; ++step) {
        for (std::size_t k = 0; k < g.size(); ++k)
            for (std::size_t i = 0; i < g[k].size(); ++i) g[k][i] = static_cast<float>((r + 1) * (k * 1000 + i));
        for (std::size_t k = g.size(); k-- > 0;) buckets.ready(k, comm);  // backward order
        // Every bucket's reduction is started, none waited for: the gradients still hold this
        // rank's values until finish().
        CHECK(g[2][5] == static_cast<float>((r + 1) * 2005));
        buckets.finish(comm);
        bool ok = true;
        for (std::size_t k = 0; k < g.size(); ++k)
            for (std::size_t i = 0; i < g[k].size(); ++i)
                ok = ok && g[k][i] == static_cast<float>((k * 1000 + i) * (p + 1)) / 2.0f;  // mean of (r + 1) x over ranks
        CHECK(ok);
    }
    CHECK(buckets.reductions() == 2 * buckets.buckets());
}

TEST_CASE("mpi data parallel: zero1_step equals all-reduce + full update, with optimizer state for one shard") {
    dist::mpi comm(MPI_COMM_WORLD, {.timeout = std::chrono::seconds(60)});
    const std::size_t p = comm.size(), r = comm.rank(), n = 11;  // not a multiple of the ranks: padding
    const dist::zero1_partition part(n, p);
    std::vector<float> params(part.padded_size(), 0.0f), ref(n), grads(part.padded_size(), 0.0f), full(n), shard(part.shard_size());
    for (std::size_t i = 0; i < n; ++i) params[i] = ref[i] = static_cast<float>(i);
    std::vector<float> momentum(part.shard_size(), 0.0f), ref_momentum(n, 0.0f);  // ZeRO-1: this rank's shard only
    const float lr = 0.25f, beta = 0.5f;
    for (int step = 1; step <= 3; ++step) {
        for (std::size_t i = 0; i < n; ++i) grads[i] = full[i] = static_cast<float>((r + 1) * (i + static_cast<std::size_t>(step)));
        dist::zero1_step(params, shard, grads, part,
                         [&](std::span<float> w, std::span<const float> g, std::size_t offset) {
                             CHECK(offset == part.shard_begin(r));
                             for (std::size_t i = 0; i < w.size(); ++i) {
                                 momentum[i] = beta * momentum[i] + g[i];
                                 w[i] -= lr * momentum[i];
                             }
                         },
                         comm);
        dist::all_reduce(full, dist::reduce_op::mean, comm);
        for (std::size_t i = 0; i < n; ++i) {
            ref_momentum[i] = beta * ref_momentum[i] + full[i];
            ref[i] -= lr * ref_momentum[i];
        }
        CHECK(std::vector<float>(params.begin(), params.begin() + static_cast<std::ptrdiff_t>(n)) == ref);
    }
}
