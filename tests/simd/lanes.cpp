// SPDX-License-Identifier: Apache-2.0
// Tests of the lanes policies: emulated_warp reproduces __shfl_xor_sync's butterfly bit for bit; serial is the identity.
#include <llm/simd/lanes.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

namespace {

using llm::simd::emulated_warp;
using llm::simd::serial;

static_assert(llm::simd::lanes_policy<serial>);
static_assert(llm::simd::lanes_policy<emulated_warp<1>>);
static_assert(llm::simd::lanes_policy<emulated_warp<8>>);
static_assert(llm::simd::lanes_policy<emulated_warp<32>>);
static_assert(!llm::simd::lanes_policy<int>);
// Usable in constant expressions (tile maths is constexpr).
static_assert(emulated_warp<4>::reduce_sum(std::array<int, 4>{1, 2, 3, 4})[3] == 10);
static_assert(emulated_warp<4>::reduce_max(std::array<int, 4>{1, 7, 3, 4})[0] == 7);
static_assert(serial::reduce_sum(5) == 5);

std::uint32_t bits(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}

/// The warp butterfly written out by hand, as a CUDA kernel does it:
///   for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(~0u, v, offset));
/// with every lane reading its partner's value from before the step.
template <class T, std::size_t N, class Op>
std::array<T, N> hand_butterfly(std::array<T, N> v, Op op) {
    for (std::size_t offset = N / 2; offset > 0; offset /= 2) {
        const std::array<T, N> before = v;
        for (std::size_t lane = 0; lane < N; ++lane) {
            v[lane] = op(before[lane], before[lane ^ offset]);
        }
    }
    return v;
}

template <std::size_t N>
std::array<float, N> mixed_magnitudes(unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-20, 20);
    std::array<float, N> v{};
    for (auto& x : v) {
        x = std::ldexp(mantissa(rng), exponent(rng));
    }
    return v;
}

}  // namespace

TEST_CASE("lanes: emulated_warp shfl_xor gives lane i the value of lane i ^ offset") {
    std::array<int, 32> v{};
    for (int i = 0; i < 32; ++i) {
        v[static_cast<std::size_t>(i)] = 100 + i;
    }
    for (std::size_t offset : {1u, 2u, 4u, 8u, 16u, 5u, 31u}) {
        const auto s = emulated_warp<32>::shfl_xor(v, offset);
        for (std::size_t i = 0; i < 32; ++i) {
            CHECK(s[i] == 100 + static_cast<int>(i ^ offset));
        }
    }
}

TEST_CASE("lanes: emulated_warp<32> reduce_sum is the shfl_xor butterfly, bit for bit") {
    using warp = emulated_warp<32>;
    for (unsigned seed = 0; seed < 100; ++seed) {
        CAPTURE(seed);
        const auto v = mixed_magnitudes<32>(seed);
        const auto got = warp::reduce_sum(v);
        const auto want = hand_butterfly(v, [](float a, float b) { return a + b; });
        // The same butterfly through the policy's own shuffle, step by step.
        auto steps = v;
        for (std::size_t offset : {16u, 8u, 4u, 2u, 1u}) {
            const auto other = warp::shfl_xor(steps, offset);
            for (std::size_t i = 0; i < 32; ++i) {
                steps[i] = steps[i] + other[i];
            }
        }
        for (std::size_t lane = 0; lane < 32; ++lane) {
            REQUIRE(bits(got[lane]) == bits(want[lane]));
            REQUIRE(bits(got[lane]) == bits(steps[lane]));
            REQUIRE(bits(got[lane]) == bits(got[0]));  // + is commutative: every lane agrees
        }
    }
}

TEST_CASE("lanes: the reduction order is observable in float sums, and emulated_warp has the warp's") {
    // Exact sum 30. The warp order (offsets 16, 8, 4, 2, 1) first adds lane i to lane i + 16,
    // so 1e8 meets -1e8 and cancels exactly: 30. Offsets 1, 2, 4, 8, 16 add the partial sums
    // 1, 2 and 4 to +-1e8 first, where the ulp is 8: 1 and 2 are lost and 4 is a tie rounded
    // to the even 1e8, leaving 1e8 + 8 - 1e8 + 8 = 16. Left to right, fifteen 1s are lost: 15.
    std::array<float, 32> v{};
    v.fill(1.0f);
    v[0] = 1e8f;
    v[16] = -1e8f;
    const float warp_order = emulated_warp<32>::reduce_sum(v)[0];
    float ascending_offsets = 0.0f;
    {
        auto w = v;
        for (std::size_t offset = 1; offset < 32; offset *= 2) {
            const auto before = w;
            for (std::size_t lane = 0; lane < 32; ++lane) {
                w[lane] = before[lane] + before[lane ^ offset];
            }
        }
        ascending_offsets = w[0];
    }
    float sequential = 0.0f;
    for (float x : v) {
        sequential += x;
    }
    CHECK(warp_order == 30.0f);
    CHECK(ascending_offsets == 16.0f);
    CHECK(sequential == 15.0f);
    CHECK(bits(warp_order) == bits(hand_butterfly(v, [](float a, float b) { return a + b; })[31]));
}

TEST_CASE("lanes: combine_xor applies op(own, partner) in butterfly order, also for non-commutative ops") {
    // op(a, b) = 31 a + b on integers records the whole combination tree: any other pairing,
    // order of steps or operand order gives different numbers.
    auto op = [](std::uint64_t a, std::uint64_t b) { return 31 * a + b; };
    std::array<std::uint64_t, 32> v{};
    for (std::size_t i = 0; i < 32; ++i) {
        v[i] = i * i + 7;
    }
    const auto got = emulated_warp<32>::combine_xor(v, op);
    const auto want = hand_butterfly(v, op);
    for (std::size_t lane = 0; lane < 32; ++lane) {
        CHECK(got[lane] == want[lane]);
    }
    CHECK(got[0] != got[1]);  // non-commutative: lanes differ, as they do on a GPU

    // Sub-warp groups (the width argument of __shfl_xor_sync): offsets N/2 ... 1.
    std::array<std::uint64_t, 8> small{};
    for (std::size_t i = 0; i < 8; ++i) {
        small[i] = 3 * i + 1;
    }
    const auto got8 = emulated_warp<8>::combine_xor(small, op);
    const auto want8 = hand_butterfly(small, op);
    for (std::size_t lane = 0; lane < 8; ++lane) {
        CHECK(got8[lane] == want8[lane]);
    }
    const std::array<std::uint64_t, 1> one{42};
    CHECK(emulated_warp<1>::combine_xor(one, op)[0] == 42);
}

TEST_CASE("lanes: reduce_max over a warp gives the max in every lane") {
    for (unsigned seed = 0; seed < 50; ++seed) {
        auto v = mixed_magnitudes<32>(seed);
        for (auto& x : v) {
            x = -std::fabs(x);  // all negative: a max seeded with 0 would be wrong
        }
        const auto got = emulated_warp<32>::reduce_max(v);
        const float want = *std::max_element(v.begin(), v.end());
        for (std::size_t lane = 0; lane < 32; ++lane) {
            REQUIRE(got[lane] == want);
        }
    }
}

TEST_CASE("lanes: serial is one lane: every step is the identity") {
    CHECK(serial::size == 1);
    CHECK(serial::reduce_sum(2.5f) == 2.5f);
    CHECK(serial::reduce_max(-3.0f) == -3.0f);
    CHECK(serial::shfl_xor(7, 1) == 7);
    CHECK(serial::combine_xor(1.5f, [](float a, float b) { return a * b + 100.0f; }) == 1.5f);
}
