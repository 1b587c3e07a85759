// SPDX-License-Identifier: Apache-2.0
// A small seeded generator whose whole state is four integers (saved in a checkpoint), and the
// seeded permutations the batch loader shuffles with: the same bits on every platform.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

namespace llm::train {

/// splitmix64 (Steele, Lea, Flood 2014): one step of the seeding generator; `state` advances.
/// Example: `std::uint64_t s = 42; std::uint64_t x = llm::train::splitmix64(s);`
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// xoshiro256** (Blackman, Vigna 2018), seeded through splitmix64: the training run's random
/// numbers (dropout masks, sampling), defined bit for bit here so that a saved `state()` and
/// `set_state()` resume the same sequence on any platform (std::mt19937's distributions are
/// implementation-defined).
/// Example: `llm::train::rng r(1337); float u = r.uniform(); auto s = r.state();`
class rng {
public:
    /// The state: four 64-bit words, not all zero.
    using state_type = std::array<std::uint64_t, 4>;

    /// Seeded from `seed` through splitmix64.
    explicit rng(std::uint64_t seed = 0) noexcept {
        for (auto& w : s_) w = splitmix64(seed);
    }

    /// The next 64 random bits.
    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    /// A float uniform in [0, 1): the top 24 bits.
    float uniform() noexcept { return static_cast<float>(next() >> 40) * 0x1p-24f; }
    /// An integer uniform in [0, n) (n > 0), without modulo bias (rejection; Lemire's bound).
    std::uint64_t below(std::uint64_t n) noexcept {
        const std::uint64_t limit = (0 - n) % n;  // 2^64 mod n: values below it are rejected
        for (;;) {
            const std::uint64_t x = next();
            if (x >= limit) return x % n;
        }
    }
    /// A standard normal sample (Box-Muller, one of the pair; double maths).
    double normal() noexcept {
        const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
        const double u2 = static_cast<double>(next() >> 11) * 0x1p-53;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }

    /// The state, to save.
    const state_type& state() const noexcept { return s_; }
    /// Restores a saved state (an all-zero state is refused: the generator would stay at 0).
    bool set_state(const state_type& s) noexcept {
        if ((s[0] | s[1] | s[2] | s[3]) == 0) return false;
        s_ = s;
        return true;
    }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    state_type s_{};
};

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
