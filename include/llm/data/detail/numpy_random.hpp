// SPDX-License-Identifier: Apache-2.0
// numpy's legacy RandomState(seed).randint for unsigned dtypes, bit for bit, on std::mt19937.
#pragma once

#include <cstdint>
#include <random>

namespace llm::data::detail {

/// The integer draws of `numpy.random.RandomState(seed)`. RandomState seeds MT19937 with
/// init_genrand(seed), exactly as std::mt19937(seed) does, and its randint for unsigned
/// dtypes uses masked rejection sampling (numpy's `use_masked=True` legacy path): ranges
/// that fit 32 bits draw one 32-bit output per try, wider ranges one 64-bit output made of
/// two 32-bit outputs, high word first. datasketch draws its MinHash permutations this way,
/// so matching it draw for draw gives the same permutations for the same seed.
class legacy_random_state {
public:
    explicit legacy_random_state(std::uint32_t seed) : mt_(seed) {}

    /// `randint(low, high, dtype=np.uint64)` for one value: uniform in [low, high), high > low.
    std::uint64_t randint_u64(std::uint64_t low, std::uint64_t high) {
        const std::uint64_t range = high - low - 1;  // numpy works with the closed range
        if (range == 0) return low;
        if (range <= 0xFFFFFFFFull) return low + bounded32(static_cast<std::uint32_t>(range));
        if (range == ~std::uint64_t{0}) return low + next64();
        const std::uint64_t mask = mask_for(range);
        std::uint64_t v;
        do {
            v = next64() & mask;
        } while (v > range);
        return low + v;
    }

    /// `randint(low, high, dtype=np.uint32)` for one value (numpy fills arrays one value at a
    /// time in order, so a loop of these equals an array draw), 0 <= low < high <= 2^32.
    std::uint32_t randint_u32(std::uint64_t low, std::uint64_t high) {
        const auto range = static_cast<std::uint32_t>(high - low - 1);
        if (range == 0) return static_cast<std::uint32_t>(low);
        return static_cast<std::uint32_t>(low) + bounded32(range);
    }

private:
    static constexpr std::uint64_t mask_for(std::uint64_t v) {
        v |= v >> 1;
        v |= v >> 2;
        v |= v >> 4;
        v |= v >> 8;
        v |= v >> 16;
        v |= v >> 32;
        return v;
    }
    std::uint32_t next32() { return static_cast<std::uint32_t>(mt_()); }
    std::uint64_t next64() {
        const std::uint64_t hi = next32();
        return hi << 32 | next32();
    }
    std::uint32_t bounded32(std::uint32_t range) {
        if (range == 0xFFFFFFFFu) return next32();
        const auto mask = static_cast<std::uint32_t>(mask_for(range));
        std::uint32_t v;
        do {
            v = next32() & mask;
        } while (v > range);
        return v;
    }

    std::mt19937 mt_;
};

}  // namespace llm::data::detail
