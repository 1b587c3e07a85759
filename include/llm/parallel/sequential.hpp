// SPDX-License-Identifier: Apache-2.0
// llm::parallel::sequential: the execution policy that runs every chunk inline, in order.
#pragma once

#include <llm/parallel/policy.hpp>

#include <cstddef>

namespace llm::parallel {

/// Runs the chunks of a parallel_for on the calling thread, in chunk order. Always
/// available; the policy to use for debugging, for tiny inputs, and inside code that is
/// already parallel at a coarser level. The first exception stops the loop and propagates.
/// Example: `llm::parallel::parallel_for(llm::parallel::sequential{}, n, 64, body);`
struct sequential {
    /// Number of threads that run chunks: always 1.
    static constexpr std::size_t size() noexcept { return 1; }

    /// Calls task(0), task(1), ..., task(n_chunks - 1) in order.
    static void run(std::size_t n_chunks, chunk_task task) {
        for (std::size_t k = 0; k < n_chunks; ++k) {
            task(k);
        }
    }
};

static_assert(policy<sequential>);
static_assert(policy<const sequential>);

}  // namespace llm::parallel
