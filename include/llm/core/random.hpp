// SPDX-License-Identifier: Apache-2.0
// llm::xoshiro256ss: the library's one seeded generator (splitmix64-seeded xoshiro256**), the same bits on every platform.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>

namespace llm {

/// splitmix64 (Steele, Lea, Flood 2014): one step of the seeding generator; `state` advances.
/// Example: `std::uint64_t s = 42; std::uint64_t x = llm::splitmix64(s);`
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// xoshiro256** (Blackman, Vigna 2018), seeded through splitmix64: the library's one seeded
/// generator (training's shuffles and noise, generation's sampling), defined bit for bit here
/// so that a seed, or a saved `state()` given back to `set_state()`, gives the same sequence on
/// any platform (std::mt19937's distributions are implementation-defined).
/// Example: `llm::xoshiro256ss r(1337); float u = r.uniform(); auto s = r.state();`
class xoshiro256ss {
public:
    /// The state: four 64-bit words, not all zero.
    using state_type = std::array<std::uint64_t, 4>;

    /// Seeded from `seed` through splitmix64.
    explicit xoshiro256ss(std::uint64_t seed = 0) noexcept {
        for (auto& w : s_) w = splitmix64(seed);
    }

    /// Stream `stream` of `seed`: independent generators for the requests of one seed (the
    /// splitmix64 state starts at seed ^ (stream * golden ratio + an odd constant)).
    /// Example: `auto g = llm::xoshiro256ss::for_stream(42, request_index);`
    static xoshiro256ss for_stream(std::uint64_t seed, std::uint64_t stream) noexcept {
        return xoshiro256ss(seed ^ (stream * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull));
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
    /// A double uniform in [0, 1): the top 53 bits.
    double uniform_double() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
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

}  // namespace llm
