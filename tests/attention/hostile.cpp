// SPDX-License-Identifier: Apache-2.0
// Hostile input to attention: absurd KV-cache sizes, and NaN / inf in q, k, v of flash_forward, the reference and decode.
#include "helpers.hpp"

#include <llm/attention/attention.hpp>
#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/attention/reference.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

namespace at = llm::attention;
using namespace attn_test;
using llm::bf16;

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

}  // namespace

// ---------------------------------------------------------------------------------------
// KV cache sizes: products are overflow-checked and refused past the allocation limit.
// ---------------------------------------------------------------------------------------
TEST_CASE("kv caches: sizes whose product overflows are llm::error naming the cache, not a 0-byte store") {
    const std::size_t two_62 = std::size_t{1} << 62;
    // 2^62 * 8 * 128 wraps to 0: the old code allocated nothing and append wrote through null.
    CHECK_THROWS_WITH_AS(at::contiguous_kv_cache<float>(1, 1, two_62, 8, 128),
                         doctest::Contains("contiguous_kv_cache: the cache size = 4611686018427387904 * 8 overflows"),
                         llm::error);
    CHECK_THROWS_WITH_AS(at::contiguous_kv_cache<bf16>(1, two_62, 4, 1, 1), doctest::Contains("contiguous_kv_cache: "),
                         llm::error);
    CHECK_THROWS_WITH_AS(at::paged_kv_cache<float>(1, 16, two_62, 8, 128),
                         doctest::Contains("paged_kv_cache: the cache size = 16 * 4611686018427387904 overflows"), llm::error);
    CHECK_THROWS_WITH_AS(at::paged_kv_cache<bf16>(1, 1024, 16, two_62, 1), doctest::Contains("paged_kv_cache: the cache size"),
                         llm::error);
    // The layer count is a factor like the others.
    CHECK_THROWS_WITH_AS(at::contiguous_kv_cache<float>(two_62, 4, 1, 1, 1),
                         doctest::Contains("contiguous_kv_cache: the cache size = 4611686018427387904 * 4 overflows"),
                         llm::error);
    CHECK_THROWS_WITH_AS(at::paged_kv_cache<bf16>(two_62, 16, 1, 1, 1),
                         doctest::Contains("paged_kv_cache: the cache size = 4611686018427387904 * 16 overflows"), llm::error);
}

TEST_CASE("kv caches: a huge representable size is llm::error naming the bytes, not std::bad_alloc") {
    // 2^40 tokens x 8 heads x 128 fp32: 2^50 elements per store, 2^53 bytes for K and V.
    const std::size_t two_40 = std::size_t{1} << 40;
    CHECK_THROWS_WITH_AS(at::contiguous_kv_cache<float>(1, 1, two_40, 8, 128),
                         "contiguous_kv_cache: the K and V stores need 9007199254740992 bytes (2251799813685248 "
                         "elements of 4 bytes), more than the allocation limit of 140737488355328 bytes",
                         llm::error);
    CHECK_THROWS_WITH_AS(at::paged_kv_cache<float>(1, std::size_t{1} << 20, std::size_t{1} << 20, 8, 128),
                         doctest::Contains("paged_kv_cache: the K and V stores need 9007199254740992 bytes"), llm::error);
    // 2^20 layers x 2^20 tokens x 1 x 1024: the same 2^50 elements, reached through the layer count.
    CHECK_THROWS_WITH_AS(at::contiguous_kv_cache<float>(std::size_t{1} << 20, 1, std::size_t{1} << 20, 1, 1024),
                         doctest::Contains("contiguous_kv_cache: the K and V stores need 9007199254740992 bytes"), llm::error);
    // Sizes that fit still work.
    at::contiguous_kv_cache<float> small(3, 2, 8, 2, 4);
    CHECK(small.capacity() == 8);
    at::paged_kv_cache<bf16> paged(3, 4, 16, 2, 4);
    CHECK(paged.free_blocks() == 4);
}

// ---------------------------------------------------------------------------------------
// Non-finite inputs to flash_forward and the reference: NaN rows exactly where softmax
// attention puts them, every other row unchanged.
// ---------------------------------------------------------------------------------------
namespace {

enum class where { q, k, v };

// One non-finite element `bad` at sequence position `pos` of q (head 1), k or v (kv head 0);
// heads = 2 share kv head 0 (GQA). Checks the NaN pattern of o and lse for the kernel and the
// reference against the rule, and that every other row equals the clean run bit for bit (the
// kernel) or to fp32 rounding (the reference: ||o - ref|| <= 1e-5 per element; the kernel's
// fp32 error on these O(1) outputs is ~1e-6).
template <class T, class Mask>
void check_non_finite(const Mask& mask, where w, std::size_t pos, float bad) {
    const std::size_t L = 70, H = 2, Hk = 1, D = 40;  // two key tiles of 64; D not a SIMD multiple
    auto q = random4<T>(1, L, H, D, 1);
    auto k = random4<T>(1, L, Hk, D, 2);
    auto v = random4<T>(1, L, Hk, D, 3);
    llm::parallel::thread_pool pool(2);
    t4f clean(1, L, H, D), o(1, L, H, D);
    t3f clean_lse(1, H, L), lse(1, H, L);
    at::flash_forward(clean, clean_lse, q, k, v, mask, {}, pool);
    switch (w) {
        case where::q: q(0, pos, 1, 3) = T(bad); break;
        case where::k: k(0, pos, 0, 5) = T(bad); break;
        case where::v: v(0, pos, 0, 7) = T(bad); break;
    }
    for (std::size_t i = 0; i < o.size(); ++i) {
        o.data()[i] = 12345.0f;  // poison (not NaN: the test looks for NaN)
    }
    at::flash_forward(o, lse, q, k, v, mask, {}, pool);
    t4d ref(1, L, H, D);
    t3d ref_lse(1, H, L);
    at::reference_forward(ref, ref_lse, q, k, v, mask);
    const auto iL = static_cast<std::int64_t>(L);
    for (std::size_t h = 0; h < H; ++h) {
        for (std::size_t i = 0; i < L; ++i) {
            const bool want_nan = w == where::q ? (i == pos && h == 1)
                                                : mask.allowed(static_cast<std::int64_t>(i), static_cast<std::int64_t>(pos), iL, iL);
            CAPTURE(h);
            CAPTURE(i);
            REQUIRE(std::isnan(lse(0, h, i)) == want_nan);
            REQUIRE(std::isnan(ref_lse(0, h, i)) == want_nan);
            for (std::size_t d = 0; d < D; ++d) {
                REQUIRE(std::isnan(o(0, i, h, d)) == want_nan);
                REQUIRE(std::isnan(ref(0, i, h, d)) == want_nan);
                if (!want_nan) {
                    REQUIRE(o(0, i, h, d) == clean(0, i, h, d));
                    REQUIRE(std::abs(static_cast<double>(o(0, i, h, d)) - ref(0, i, h, d)) <= 1e-5);
                }
            }
            if (!want_nan) {
                REQUIRE(lse(0, h, i) == clean_lse(0, h, i));
            }
        }
    }
}

template <class T, class Mask>
void check_all_sources(const Mask& mask) {
    for (const std::size_t pos : {std::size_t{0}, std::size_t{33}, std::size_t{65}}) {
        for (const float bad : {nan_f, inf_f, -inf_f}) {
            CAPTURE(pos);
            CAPTURE(bad);
            for (const where w : {where::q, where::k, where::v}) {
                CAPTURE(static_cast<int>(w));
                check_non_finite<T>(mask, w, pos, bad);
            }
        }
    }
}

}  // namespace

TEST_CASE_TEMPLATE("flash_forward: NaN or inf in q, k or v makes NaN exactly the rows that touch it", T, float, bf16) {
    SUBCASE("causal") { check_all_sources<T>(at::causal{}); }
    SUBCASE("full") { check_all_sources<T>(at::no_mask{}); }
    SUBCASE("sliding window") { check_all_sources<T>(at::sliding_window(8, 0)); }
}

// ---------------------------------------------------------------------------------------
// Non-finite inputs to flash_backward and reference_backward: a row touching one gets NaN dq
// and NaN dk, dv rows for the keys it sees; every other gradient is as without it.
// ---------------------------------------------------------------------------------------
namespace {

enum class grad_source { q, k, v, dout };

// One non-finite element `bad` at position `pos` of q or dout (head 1), k or v (kv head 0);
// heads 0 and 1 share kv head 0. The forward runs on the poisoned inputs too (its NaN o and
// lse rows are what a training step passes on). Checks the NaN pattern of dq, dk, dv for the
// kernel and the reference, and that every other gradient equals the clean run's bit for bit:
// a poisoned row adds exact zeros (P = 0) to the keys it cannot see, in both.
template <class T, class Mask>
void check_backward_non_finite(const Mask& mask, grad_source w, std::size_t pos, float bad) {
    const std::size_t L = 70, H = 2, Hk = 1, D = 40;  // two key tiles of 64; D not a SIMD multiple
    auto q = random4<T>(1, L, H, D, 1);
    auto k = random4<T>(1, L, Hk, D, 2);
    auto v = random4<T>(1, L, Hk, D, 3);
    auto g = random4<T>(1, L, H, D, 4);
    llm::parallel::thread_pool pool(2);
    struct grads {
        t4f dq, dk, dv;
        t4d rq, rk, rv;
    };
    const auto run = [&](grads& r) {
        t4f o(1, L, H, D);
        t3f lse(1, H, L);
        at::flash_forward(o, lse, q, k, v, mask, {}, pool);
        llm::zero_grad(r.dq, r.dk, r.dv, r.rq, r.rk, r.rv);  // gradients accumulate
        at::flash_backward(r.dq, r.dk, r.dv, o, lse, g, q, k, v, mask, {}, pool);
        at::reference_backward(r.rq, r.rk, r.rv, g, q, k, v, mask);
    };
    grads clean{t4f(1, L, H, D), t4f(1, L, Hk, D), t4f(1, L, Hk, D), t4d(1, L, H, D), t4d(1, L, Hk, D), t4d(1, L, Hk, D)};
    grads got{t4f(1, L, H, D), t4f(1, L, Hk, D), t4f(1, L, Hk, D), t4d(1, L, H, D), t4d(1, L, Hk, D), t4d(1, L, Hk, D)};
    run(clean);
    switch (w) {
        case grad_source::q: q(0, pos, 1, 3) = T(bad); break;
        case grad_source::k: k(0, pos, 0, 5) = T(bad); break;
        case grad_source::v: v(0, pos, 0, 7) = T(bad); break;
        case grad_source::dout: g(0, pos, 1, 9) = T(bad); break;
    }
    run(got);
    const auto iL = static_cast<std::int64_t>(L);
    const auto sees = [&](std::size_t i, std::size_t j) {
        return mask.allowed(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j), iL, iL);
    };
    // The poisoned rows: (h, i) = (1, pos) for q and dout; every row that sees key pos for k and v.
    const auto poisoned = [&](std::size_t h, std::size_t i) {
        return w == grad_source::q || w == grad_source::dout ? h == 1 && i == pos : sees(i, pos);
    };
    const auto expect = [](bool want_nan, float kernel, float kernel_clean, double ref, double ref_clean) {
        REQUIRE(std::isnan(kernel) == want_nan);
        REQUIRE(std::isnan(ref) == want_nan);
        if (!want_nan) {
            REQUIRE(kernel == kernel_clean);
            REQUIRE(ref == ref_clean);
        }
    };
    for (std::size_t i = 0; i < L; ++i) {
        CAPTURE(i);
        for (std::size_t h = 0; h < H; ++h) {
            for (std::size_t d = 0; d < D; ++d) {
                expect(poisoned(h, i), got.dq(0, i, h, d), clean.dq(0, i, h, d), got.rq(0, i, h, d), clean.rq(0, i, h, d));
            }
        }
        bool key_nan = false;  // key i is seen by a poisoned row
        for (std::size_t h = 0; h < H; ++h) {
            for (std::size_t r = 0; r < L; ++r) {
                key_nan = key_nan || (poisoned(h, r) && sees(r, i));
            }
        }
        for (std::size_t d = 0; d < D; ++d) {
            expect(key_nan, got.dk(0, i, 0, d), clean.dk(0, i, 0, d), got.rk(0, i, 0, d), clean.rk(0, i, 0, d));
            expect(key_nan, got.dv(0, i, 0, d), clean.dv(0, i, 0, d), got.rv(0, i, 0, d), clean.rv(0, i, 0, d));
        }
    }
}

template <class T, class Mask>
void check_backward_all_sources(const Mask& mask) {
    for (const std::size_t pos : {std::size_t{0}, std::size_t{33}, std::size_t{65}}) {
        for (const float bad : {nan_f, inf_f, -inf_f}) {
            CAPTURE(pos);
            CAPTURE(bad);
            for (const grad_source w : {grad_source::q, grad_source::k, grad_source::v, grad_source::dout}) {
                CAPTURE(static_cast<int>(w));
                check_backward_non_finite<T>(mask, w, pos, bad);
            }
        }
    }
}

}  // namespace

TEST_CASE_TEMPLATE("flash_backward: NaN or inf in q, k, v or dout makes NaN exactly the gradients that depend on it", T,
                   float, bf16) {
    SUBCASE("causal") { check_backward_all_sources<T>(at::causal{}); }
    SUBCASE("full") { check_backward_all_sources<T>(at::no_mask{}); }
    SUBCASE("sliding window") { check_backward_all_sources<T>(at::sliding_window(8, 0)); }
}

// ---------------------------------------------------------------------------------------
// decode_attention: the same rule for one query row per sequence over a KV cache.
// ---------------------------------------------------------------------------------------
namespace {

t3f random3(std::size_t a, std::size_t b, std::size_t c, std::uint64_t seed) {
    const auto t = random4<float>(1, a, b, c, seed);
    return t3f(llm::select(t, 0, 0));
}

// Two sequences of 100 cached tokens, 2 kv heads, 4 q heads. The bad element is in q of
// (sequence 1, head 0), or in k or v of (sequence 0, position 37, kv head 1: q heads 2, 3).
// NaN exactly in those heads' outputs and lse when the mask lets the query see position 37;
// every other output equal to the clean run bit for bit.
template <class Cache, class Mask>
void check_decode_non_finite(const Mask& mask, where w, float bad) {
    const std::size_t S = 2, H = 4, Hk = 2, D = 40, len = 100, pos = 37;
    std::vector<t3f> ks, vs;
    for (std::size_t s = 0; s < S; ++s) {
        ks.push_back(random3(len, Hk, D, 10 + s));
        vs.push_back(random3(len, Hk, D, 20 + s));
    }
    t3f q = random3(S, H, D, 30);
    // q(0, 2, 0) < 0 < q(0, 3, 0): an infinite k element gives one head a -inf score and the
    // other +inf (the -inf one has probability 0 and would otherwise stay finite).
    q(0, 2, 0) = -1.0f;
    q(0, 3, 0) = 1.0f;
    const std::vector<t3f> clean_ks = ks, clean_vs = vs;
    auto run = [&](t3f& out, std::vector<float>& lse) {
        Cache cache(2, S, 128, Hk, D);  // the bad element in layer 1; layer 0 holds the clean data
        for (std::size_t s = 0; s < S; ++s) {
            cache.layer(0).append(s, clean_ks[s], clean_vs[s]);
            cache.layer(1).append(s, ks[s], vs[s]);
            cache.advance(s, len);
        }
        llm::parallel::thread_pool pool(2);
        at::decode_attention(out, llm::tensor_view<float, llm::dims<2>>(lse.data(), S, H), cache.layer(1), q, mask,
                             {.splits = 3}, pool);
    };
    t3f clean(S, H, D), out(S, H, D);
    std::vector<float> clean_lse(S * H), lse(S * H);
    run(clean, clean_lse);
    switch (w) {
        case where::q: q(1, 0, 4) = bad; break;
        case where::k: ks[0](pos, 1, 0) = bad; break;
        case where::v: vs[0](pos, 1, 6) = bad; break;
    }
    run(out, lse);
    const bool visible = mask.allowed(0, static_cast<std::int64_t>(pos), 1, static_cast<std::int64_t>(len));
    for (std::size_t s = 0; s < S; ++s) {
        for (std::size_t h = 0; h < H; ++h) {
            const bool want_nan = w == where::q ? (s == 1 && h == 0) : (visible && s == 0 && h >= 2);
            CAPTURE(s);
            CAPTURE(h);
            REQUIRE(std::isnan(lse[s * H + h]) == want_nan);
            for (std::size_t d = 0; d < D; ++d) {
                REQUIRE(std::isnan(out(s, h, d)) == want_nan);
                if (!want_nan) {
                    REQUIRE(out(s, h, d) == clean(s, h, d));
                }
            }
            if (!want_nan) {
                REQUIRE(lse[s * H + h] == clean_lse[s * H + h]);
            }
        }
    }
}

template <class Cache, class Mask>
void check_decode_all_sources(const Mask& mask) {
    for (const float bad : {nan_f, inf_f, -inf_f}) {
        CAPTURE(bad);
        for (const where w : {where::q, where::k, where::v}) {
            CAPTURE(static_cast<int>(w));
            check_decode_non_finite<Cache>(mask, w, bad);
        }
    }
}

}  // namespace

TEST_CASE_TEMPLATE("decode_attention: NaN or inf in q, k or v makes NaN exactly the heads that see it", Cache,
                   at::contiguous_kv_cache<float>, at::contiguous_kv_cache<bf16>) {
    SUBCASE("causal") { check_decode_all_sources<Cache>(at::causal{}); }
    SUBCASE("window that hides the bad position") { check_decode_all_sources<Cache>(at::sliding_window(20, 0)); }
}
