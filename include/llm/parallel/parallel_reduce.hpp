// SPDX-License-Identifier: Apache-2.0
// llm::parallel::parallel_reduce: per-chunk partial results combined in chunk order.
#pragma once

#include <llm/parallel/parallel_for.hpp>

#include <concepts>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::parallel {

/// Computes `map(begin, end)` for every chunk of parallel_for(pol, n, grain, ...) and returns
/// combine(...combine(combine(init, p0), p1)..., p_last), folding the partials p_k in chunk
/// order on the calling thread. The result depends only on n and grain, not on the policy or
/// the thread count: a float sum gives the same bits with 1 thread or 16. n == 0 returns
/// init; grain == 0 throws llm::error; exceptions behave as in parallel_for.
///   Policy:  an llm::parallel::policy.
///   T:       the result type; movable.
///   Map:     callable as map(std::size_t begin, std::size_t end), returning something
///            convertible to T; called concurrently.
///   Combine: callable as combine(T, T) returning something convertible to T.
/// Example: `double s = parallel_reduce(pool, n, 4096, 0.0, [&](auto b, auto e) { return sum(x + b, e - b); }, std::plus<>{});`
template <class Policy, class T, class Map, class Combine>
T parallel_reduce(Policy&& pol, std::size_t n, std::size_t grain, T init, Map&& map,
                  Combine&& combine) {
    static_assert(std::movable<T>, "parallel_reduce: the result type T must be movable");
    static_assert(std::is_convertible_v<std::invoke_result_t<Map&, std::size_t, std::size_t>, T>,
                  "parallel_reduce: map(begin, end) must return something convertible to T");
    static_assert(std::is_convertible_v<std::invoke_result_t<Combine&, T, T>, T>,
                  "parallel_reduce: combine(T, T) must return something convertible to T");
    const std::size_t n_chunks = detail::chunk_count("parallel_reduce", n, grain);
    // optional<T>: T need not be default-constructible, and vector<bool>'s shared bits
    // would be a data race between chunks.
    std::vector<std::optional<T>> partial(n_chunks);
    parallel_for(std::forward<Policy>(pol), n, grain, [&](std::size_t begin, std::size_t end) {
        partial[begin / grain].emplace(map(begin, end));
    });
    T result = std::move(init);
    for (std::optional<T>& p : partial) {
        result = combine(std::move(result), std::move(*p));
    }
    return result;
}

/// parallel_reduce on default_pool().
/// Example: `float m = parallel_reduce(n, 4096, -INFINITY, chunk_max, [](float a, float b) { return std::max(a, b); });`
template <class T, class Map, class Combine>
T parallel_reduce(std::size_t n, std::size_t grain, T init, Map&& map, Combine&& combine) {
    return parallel_reduce(default_pool(), n, grain, std::move(init), std::forward<Map>(map),
                           std::forward<Combine>(combine));
}

}  // namespace llm::parallel
