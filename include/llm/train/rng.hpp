// SPDX-License-Identifier: Apache-2.0
// A small seeded generator whose whole state is four integers (saved in a checkpoint), and the
// seeded permutations the batch loader shuffles with: the same bits on every platform.
#pragma once

#include <llm/core/random.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

namespace llm::train {

/// The training run's generator: llm::xoshiro256ss (`<llm/core/random.hpp>`), whose `state()`
/// a checkpoint saves. Example: `llm::train::rng r(1337); float u = r.uniform();`
using rng = llm::xoshiro256ss;
using llm::splitmix64;

/// A permutation of [0, n) by Fisher-Yates with rng(seed): the same on every platform.
/// Example: `auto p = llm::train::seeded_permutation(10, 42);`
inline std::vector<std::uint64_t> seeded_permutation(std::uint64_t n, std::uint64_t seed) {
    std::vector<std::uint64_t> p(static_cast<std::size_t>(n));
    for (std::uint64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
    rng r(seed);
    for (std::uint64_t i = n; i > 1; --i) {
        const std::uint64_t j = r.below(i);
        const std::uint64_t a = p[static_cast<std::size_t>(i - 1)];
        p[static_cast<std::size_t>(i - 1)] = p[static_cast<std::size_t>(j)];
        p[static_cast<std::size_t>(j)] = a;
    }
    return p;
}

}  // namespace llm::train
