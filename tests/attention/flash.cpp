// SPDX-License-Identifier: Apache-2.0
// Masks and tile maths, flash_forward / flash_backward against the double reference, finite differences, bad input.
#include "helpers.hpp"

#include <llm/attention/attention.hpp>
#include <llm/attention/reference.hpp>
#include <llm/attention/tile.hpp>
#include <llm/core/workspace.hpp>
#include <llm/nn/rope.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

// A mask written by a user, outside llm::, with nothing but the members mask_policy names
// (structural: the library lists no models). Prefix-LM (T5, UniLM): the first `prefix` keys are
// visible to every row (the bidirectional prompt), the rest causally (bottom-right aligned, as
// llm::attention::causal).
namespace user_masks {

struct prefix_lm {
    std::int64_t prefix = 0;

    constexpr bool allowed(std::int64_t i, std::int64_t j, std::int64_t lq, std::int64_t lk) const noexcept {
        return j < prefix || j <= i + (lk - lq);
    }
    constexpr llm::attention::index_range cols(std::int64_t, std::int64_t i1, std::int64_t lq, std::int64_t lk) const noexcept {
        return {0, std::min(lk, std::max(prefix, i1 + (lk - lq)))};
    }
    constexpr llm::attention::index_range rows(std::int64_t j0, std::int64_t, std::int64_t lq, std::int64_t lk) const noexcept {
        return {j0 < prefix ? 0 : std::max<std::int64_t>(0, j0 - (lk - lq)), lq};
    }
    constexpr bool full(std::int64_t i0, std::int64_t, std::int64_t, std::int64_t j1, std::int64_t lq, std::int64_t lk) const noexcept {
        return j1 <= prefix || j1 - 1 <= i0 + (lk - lq);
    }
};

}  // namespace user_masks

namespace {

namespace at = llm::attention;
using namespace attn_test;
using llm::bf16;

// ---------------------------------------------------------------------------------------
// Masks: cols / rows / full must agree with allowed on every tile of small problems.
// ---------------------------------------------------------------------------------------
template <class M>
void check_mask_consistency(const M& m, std::int64_t lq, std::int64_t lk) {
    for (std::int64_t i0 = 0; i0 < lq; ++i0) {
        for (std::int64_t i1 = i0 + 1; i1 <= lq; i1 += 3) {
            const auto cr = m.cols(i0, i1, lq, lk);
            for (std::int64_t i = i0; i < i1; ++i) {
                for (std::int64_t j = 0; j < lk; ++j) {
                    if (m.allowed(i, j, lq, lk)) {
                        REQUIRE((j >= cr.lo && j < cr.hi));
                    }
                }
            }
        }
    }
    for (std::int64_t j0 = 0; j0 < lk; ++j0) {
        for (std::int64_t j1 = j0 + 1; j1 <= lk; j1 += 3) {
            const auto rr = m.rows(j0, j1, lq, lk);
            for (std::int64_t j = j0; j < j1; ++j) {
                for (std::int64_t i = 0; i < lq; ++i) {
                    if (m.allowed(i, j, lq, lk)) {
                        REQUIRE((i >= rr.lo && i < rr.hi));
                    }
                }
            }
            for (std::int64_t i0 = 0; i0 < lq; i0 += 2) {
                const std::int64_t i1 = std::min(lq, i0 + 3);
                bool all = true;
                for (std::int64_t i = i0; i < i1; ++i) {
                    for (std::int64_t j = j0; j < j1; ++j) {
                        all = all && m.allowed(i, j, lq, lk);
                    }
                }
                REQUIRE(m.full(i0, i1, j0, j1, lq, lk) == all);
            }
        }
    }
}

TEST_CASE("masks: ranges and full-tile tests agree with allowed") {
    for (auto [lq, lk] : {std::pair<std::int64_t, std::int64_t>{7, 7}, {5, 11}, {11, 5}, {1, 9}, {9, 1}}) {
        check_mask_consistency(at::no_mask{}, lq, lk);
        check_mask_consistency(at::causal{}, lq, lk);
        check_mask_consistency(at::sliding_window(2, 0), lq, lk);
        check_mask_consistency(at::sliding_window(1, 3), lq, lk);
        check_mask_consistency(at::sliding_window(0, at::unbounded), lq, lk);
    }
}

// The CPU kernels' mask_row takes two fills for the built-in (band) masks instead of a test per
// entry: it must hide exactly the entries the entry-by-entry rule hides (allowed, and the columns
// past the last key), for random rows, tile offsets, partial tiles and shapes with lq <, =, > lk.
// Exact comparison: both write -inf or leave the score as it was.
template <class M>
void check_mask_row(const M& m, std::mt19937_64& rng) {
    constexpr std::size_t bk = 24;
    std::uniform_int_distribution<std::int64_t> len(1, 90);
    for (int trial = 0; trial < 400; ++trial) {
        const std::int64_t lq = len(rng), lk = len(rng);
        const std::int64_t i = std::uniform_int_distribution<std::int64_t>(0, lq - 1)(rng);
        const std::int64_t j0 = std::uniform_int_distribution<std::int64_t>(0, (lk - 1) / std::int64_t{bk})(rng) * std::int64_t{bk};
        const std::int64_t cols = std::min<std::int64_t>(std::int64_t{bk}, lk - j0);
        std::vector<float> got(bk), want(bk);
        for (std::size_t c = 0; c < bk; ++c) {
            got[c] = want[c] = static_cast<float>(c) + 0.5f;
        }
        at::detail::mask_row(got.data(), bk, i, j0, cols, lq, lk, m);
        for (std::size_t c = 0; c < bk; ++c) {
            const auto j = j0 + static_cast<std::int64_t>(c);
            if (static_cast<std::int64_t>(c) >= cols || !m.allowed(i, j, lq, lk)) {
                want[c] = -std::numeric_limits<float>::infinity();
            }
        }
        INFO("lq = ", lq, ", lk = ", lk, ", i = ", i, ", j0 = ", j0);
        REQUIRE(got == want);
    }
}

TEST_CASE("masks: the kernels' row masking of band masks hides exactly what allowed hides") {
    std::mt19937_64 rng(13);
    check_mask_row(at::no_mask{}, rng);
    check_mask_row(at::causal{}, rng);
    check_mask_row(at::sliding_window(2, 0), rng);
    check_mask_row(at::sliding_window(1, 3), rng);
    check_mask_row(at::sliding_window(0, at::unbounded), rng);
    check_mask_row(at::sliding_window(30, 5), rng);
}

TEST_CASE("masks: causal is bottom-right aligned (FlashAttention >= 2.1)") {
    constexpr at::causal c;
    // lq = 2, lk = 5: row 0 sees keys 0..3, row 1 sees 0..4.
    static_assert(c.allowed(0, 3, 2, 5) && !c.allowed(0, 4, 2, 5) && c.allowed(1, 4, 2, 5));
    // lq = 5, lk = 2: rows 0..2 see nothing, row 3 sees key 0, row 4 keys 0..1.
    static_assert(!c.allowed(2, 0, 5, 2) && c.allowed(3, 0, 5, 2) && !c.allowed(3, 1, 5, 2) && c.allowed(4, 1, 5, 2));
    static_assert(c.cols(0, 3, 5, 2).empty());
    const at::sliding_window w(2, 0);  // Mistral-style: the diagonal and 2 keys before it
    CHECK(w.allowed(4, 2, 6, 6));
    CHECK_FALSE(w.allowed(4, 1, 6, 6));
    CHECK_FALSE(w.allowed(4, 5, 6, 6));
}

TEST_CASE("masks: negative window sizes are rejected") {
    CHECK_THROWS_WITH_AS(at::sliding_window(-1, 0), doctest::Contains("sliding_window: window (left = -1"), llm::error);
    CHECK_THROWS_AS(at::sliding_window(3, -2), llm::error);
}

// ---------------------------------------------------------------------------------------
// Tile maths
// ---------------------------------------------------------------------------------------
TEST_CASE("tile: online rescale over tiles equals the one-pass softmax; merges are exact") {
    std::mt19937_64 rng(7);
    std::normal_distribution<float> nd(0.0f, 5.0f);
    std::vector<float> x(100);
    for (float& v : x) {
        v = nd(rng);
    }
    double m = -1e300, l = 0;
    for (float v : x) {
        m = std::max(m, double(v));
    }
    for (float v : x) {
        l += std::exp(double(v) - m);
    }
    const double lse = m + std::log(l);
    // Online over tiles of 7; the weighted value sum checks alpha too.
    at::softmax_state st;
    double acc = 0;
    for (std::size_t t = 0; t < x.size(); t += 7) {
        float tmax = -std::numeric_limits<float>::infinity();
        for (std::size_t j = t; j < std::min(x.size(), t + 7); ++j) {
            tmax = std::max(tmax, x[j]);
        }
        const float alpha = at::rescale(st, tmax);
        float sum = 0;
        acc *= alpha;
        for (std::size_t j = t; j < std::min(x.size(), t + 7); ++j) {
            const float p = std::exp(x[j] - st.m);
            sum += p;
            acc += p * j;
        }
        st.l = st.l * alpha + sum;
    }
    CHECK(at::row_lse(st) == doctest::Approx(lse).epsilon(1e-6));
    double ref_acc = 0;
    for (std::size_t j = 0; j < x.size(); ++j) {
        ref_acc += std::exp(double(x[j]) - lse) * double(j);
    }
    CHECK(acc * at::output_scale(st) == doctest::Approx(ref_acc).epsilon(1e-5));

    // Lazy rescaling keeps a stale maximum but gives the same log-sum-exp and output.
    at::softmax_state lz;
    double lacc = 0;
    int skipped = 0;
    for (std::size_t t = 0; t < x.size(); t += 7) {
        float tmax = -std::numeric_limits<float>::infinity();
        for (std::size_t j = t; j < std::min(x.size(), t + 7); ++j) {
            tmax = std::max(tmax, x[j]);
        }
        const float alpha = at::lazy_rescale(lz, tmax, 8.0f);
        skipped += alpha == 1.0f && tmax > lz.m;
        float sum = 0;
        lacc *= alpha;
        for (std::size_t j = t; j < std::min(x.size(), t + 7); ++j) {
            const float p = std::exp(x[j] - lz.m);
            sum += p;
            lacc += p * j;
        }
        lz.l = lz.l * alpha + sum;
    }
    CHECK(skipped > 0);  // the stale maximum was really kept at least once
    CHECK(at::row_lse(lz) == doctest::Approx(lse).epsilon(1e-6));
    CHECK(lacc * at::output_scale(lz) == doctest::Approx(ref_acc).epsilon(1e-5));

    // Split in two halves: state merge and log-sum-exp merge give the same statistics.
    at::softmax_state a, b;
    for (std::size_t j = 0; j < x.size(); ++j) {
        at::softmax_state& s = j < 40 ? a : b;
        const float alpha = at::rescale(s, x[j]);
        s.l = s.l * alpha + std::exp(x[j] - s.m);
    }
    const auto mg = at::merge(a, b);
    CHECK(at::row_lse(mg.s) == doctest::Approx(lse).epsilon(1e-6));
    const auto w = at::lse_merge(at::row_lse(a), at::row_lse(b));
    CHECK(w.lse == doctest::Approx(lse).epsilon(1e-6));
    CHECK(w.wa + w.wb == doctest::Approx(1.0).epsilon(1e-6));
    // Empty parts get weight 0 and never NaN.
    const auto e = at::merge(at::softmax_state{}, a);
    CHECK(e.wa == 0.0f);
    CHECK(at::row_lse(e.s) == doctest::Approx(at::row_lse(a)));
    const auto ee = at::lse_merge(-INFINITY, -INFINITY);
    CHECK(ee.wa == 0.0f);
    CHECK(ee.wb == 0.0f);
    at::softmax_state empty;
    CHECK(at::rescale(empty, -INFINITY) == 1.0f);
    CHECK(at::row_is_empty(empty));
    CHECK(at::row_lse(empty) == -INFINITY);
    CHECK(at::output_scale(empty) == 0.0f);
    // Soft-cap and its derivative.
    CHECK(at::softcap(1000.0f, 30.0f) == doctest::Approx(30.0f));
    CHECK(at::softcap(3.0f, 0.0f) == 3.0f);
    const float t = at::softcap(10.0f, 30.0f);
    const double fd = (std::tanh(10.001 / 30.0) - std::tanh(9.999 / 30.0)) * 30.0 / 0.002;
    CHECK(at::softcap_grad(t, 30.0f) == doctest::Approx(fd).epsilon(1e-4));
}

// ---------------------------------------------------------------------------------------
// Forward and backward against the reference
// ---------------------------------------------------------------------------------------
struct sizes {
    std::size_t B, Sq, Sk, H, Hk, D;
};

// Awkward sizes: 1, 7, 63, 65, a length that is not a tile multiple, q shorter and longer than k.
const sizes cases[] = {{1, 1, 1, 1, 1, 64},  {2, 7, 7, 2, 1, 80},   {1, 63, 65, 4, 2, 96}, {1, 65, 63, 2, 2, 128},
                       {1, 100, 37, 3, 1, 7}, {1, 33, 130, 2, 2, 256}, {1, 130, 130, 1, 1, 5}};

// Tolerances, fp32 inputs, as relative norms against double: the kernel rounds products and
// sums in float (relative u = 6e-8 per term, growing to ~250 u = 1.5e-5 over the longest sums of
// these cases in the worst case, far less in norm); its probabilities are fast exponentials:
// the forward's simd::exp2 of scores in log2 units (relative error < 1.6e-7, plus the rounding
// of the folded scale x log2 e, |s| u ln 2 for a score s: < 1e-6 for the |s| < 20 of these
// unit-scale inputs), the backward's exp (1e-7). 2e-5 covers both.
constexpr double fwd_tol = 2e-5;
constexpr double bwd_tol = 1e-4;  // gradients sum products of rounded P and dP over 2 extra matmuls

template <class S, class Mask>
void check_forward(const sizes& z, const Mask& mask, const at::options& opt, std::uint64_t seed) {
    CAPTURE(z.B);
    CAPTURE(z.Sq);
    CAPTURE(z.Sk);
    CAPTURE(z.H);
    CAPTURE(z.Hk);
    CAPTURE(z.D);
    auto q = random4<float>(z.B, z.Sq, z.H, z.D, seed);
    auto k = random4<float>(z.B, z.Sk, z.Hk, z.D, seed + 1);
    auto v = random4<float>(z.B, z.Sk, z.Hk, z.D, seed + 2);
    t4f o(z.B, z.Sq, z.H, z.D);
    t3f lse(z.B, z.H, z.Sq);
    poison(o);
    poison(lse);
    t4d o_ref(z.B, z.Sq, z.H, z.D);
    t3d lse_ref(z.B, z.H, z.Sq);
    at::reference_forward(o_ref, lse_ref, q, k, v, mask, opt);
    llm::parallel::thread_pool pool(2);
    at::flash_forward<at::default_tiles_t<S::width>, Mask, S>(o, lse, q, k, v, mask, opt, pool);
    CHECK(rel_norm(o, o_ref) < fwd_tol);
    CHECK(max_abs_diff(lse, lse_ref) < 1e-4);

    // Backward: dout random, compare with the reference's gradients.
    auto dout = random4<float>(z.B, z.Sq, z.H, z.D, seed + 3);
    t4f dq(z.B, z.Sq, z.H, z.D), dk(z.B, z.Sk, z.Hk, z.D), dv(z.B, z.Sk, z.Hk, z.D);
    llm::zero_grad(dq, dk, dv);  // gradients accumulate
    t4d dq_ref(z.B, z.Sq, z.H, z.D), dk_ref(z.B, z.Sk, z.Hk, z.D), dv_ref(z.B, z.Sk, z.Hk, z.D);
    at::reference_backward(dq_ref, dk_ref, dv_ref, dout, q, k, v, mask, opt);
    at::flash_backward<at::default_tiles_t<S::width>, Mask, S>(dq, dk, dv, o, lse, dout, q, k, v, mask, opt, pool);
    CHECK(rel_norm(dq, dq_ref) < bwd_tol);
    CHECK(rel_norm(dk, dk_ref) < bwd_tol);
    CHECK(rel_norm(dv, dv_ref) < bwd_tol);
}

TEST_CASE_TEMPLATE_DEFINE("flash forward and backward match the reference", S, flash_vs_reference) {
    std::uint64_t seed = 100;
    for (const auto& z : cases) {
        check_forward<S>(z, at::no_mask{}, {}, seed += 10);
        check_forward<S>(z, at::causal{}, {}, seed += 10);
        check_forward<S>(z, at::sliding_window(5, 2), {}, seed += 10);
        check_forward<S>(z, at::causal{}, {.scale = 0.3f, .softcap = 5.0f}, seed += 10);
    }
}
TEST_CASE_TEMPLATE_APPLY(flash_vs_reference, backends);

// The mask is constrained in the template head: a wrong one is not a viable overload (so the
// error names the concept), a user's structural one is.
template <class M>
concept flash_accepts_mask = requires(t4f& o, t3f& lse, const M& m) { at::flash_forward(o, lse, o, o, o, m, at::options{}); };
static_assert(flash_accepts_mask<user_masks::prefix_lm> && flash_accepts_mask<at::varlen<user_masks::prefix_lm>>);
static_assert(!flash_accepts_mask<int> && !flash_accepts_mask<at::options>);
static_assert(at::mask_policy<user_masks::prefix_lm> && at::varlen_mask<at::varlen<user_masks::prefix_lm>>);

TEST_CASE("flash: a user's mask type outside llm:: (prefix-LM) in forward, backward and varlen matches the reference") {
    for (auto [lq, lk] : {std::pair<std::int64_t, std::int64_t>{7, 7}, {5, 11}, {11, 5}, {1, 9}, {9, 1}}) {
        check_mask_consistency(user_masks::prefix_lm{3}, lq, lk);
        check_mask_consistency(user_masks::prefix_lm{0}, lq, lk);
    }
    // Not the same as causal (else the comparison below would prove nothing new).
    CHECK(user_masks::prefix_lm{3}.allowed(0, 2, 7, 7));
    CHECK_FALSE(at::causal{}.allowed(0, 2, 7, 7));
    std::uint64_t seed = 900;
    for (const auto& z : cases) {
        // Prefixes inside the first key tile, across the tile boundary, and longer than seq_k.
        for (std::int64_t prefix : {5, 70, 1000}) {
            check_forward<llm::simd::default_backend>(z, user_masks::prefix_lm{prefix}, {}, seed += 10);
        }
    }
    check_forward<llm::simd::default_backend>(cases[2], user_masks::prefix_lm{9}, {.scale = 0.3f, .softcap = 5.0f}, seed += 10);
    // Packed documents, each with its own 4-token prompt.
    const std::int32_t cu_q[] = {0, 5, 5, 75};
    const std::int32_t cu_k[] = {0, 9, 12, 78};
    check_forward<llm::simd::default_backend>(sizes{1, 75, 78, 4, 2, 64},
                                              at::varlen<user_masks::prefix_lm>{cu_q, cu_k, user_masks::prefix_lm{4}}, {}, 7);
}

// Gradients accumulate (docs/conventions.md): a second call on the same inputs adds the same
// values again. Zeroed gradients after one call hold g; after two, g + g, which is exactly 2g
// in floating point (doubling is exact barring overflow), so the comparison is exact, for the
// fp32 gradients of flash_backward and the double ones of reference_backward. On gradients that
// start at G0, each element becomes the one float addition G0 + g (the kernel adds its final
// per-element value once): exact again.
template <class Mask>
void check_accumulates(const sizes& z, const Mask& mask, auto&& exec) {
    auto q = random4<float>(z.B, z.Sq, z.H, z.D, 71);
    auto k = random4<float>(z.B, z.Sk, z.Hk, z.D, 72);
    auto v = random4<float>(z.B, z.Sk, z.Hk, z.D, 73);
    auto dout = random4<float>(z.B, z.Sq, z.H, z.D, 74);
    t4f o(z.B, z.Sq, z.H, z.D);
    t3f lse(z.B, z.H, z.Sq);
    llm::workspace ws;
    at::flash_forward(o, lse, q, k, v, mask, {}, ws, exec);
    t4f dq1(z.B, z.Sq, z.H, z.D), dk1(z.B, z.Sk, z.Hk, z.D), dv1(z.B, z.Sk, z.Hk, z.D);
    t4f dq2 = dq1, dk2 = dk1, dv2 = dv1;
    poison(dq1), poison(dk1), poison(dv1), poison(dq2), poison(dk2), poison(dv2);
    llm::zero_grad(dq1, dk1, dv1, dq2, dk2, dv2);
    at::flash_backward(dq1, dk1, dv1, o, lse, dout, q, k, v, mask, {}, ws, exec);
    at::flash_backward(dq2, dk2, dv2, o, lse, dout, q, k, v, mask, {}, ws, exec);
    at::flash_backward(dq2, dk2, dv2, o, lse, dout, q, k, v, mask, {}, ws, exec);
    double norm1 = 0;
    for (auto [one, two] : {std::pair<const t4f*, const t4f*>{&dq1, &dq2}, {&dk1, &dk2}, {&dv1, &dv2}}) {
        for (std::size_t i = 0; i < one->size(); ++i) {
            REQUIRE(two->data()[i] == 2.0f * one->data()[i]);
            norm1 += std::abs(one->data()[i]);
        }
    }
    CHECK(norm1 > 1.0);  // the gradients are not all zero (else 2x would prove nothing)
    // On nonzero gradients: G0 + g.
    t4f gq(z.B, z.Sq, z.H, z.D), gk(z.B, z.Sk, z.Hk, z.D), gv(z.B, z.Sk, z.Hk, z.D);
    for (t4f* t : {&gq, &gk, &gv}) {
        for (std::size_t i = 0; i < t->size(); ++i) {
            t->data()[i] = 0.25f * static_cast<float>(i % 13) - 1.0f;
        }
    }
    const t4f gq0 = gq, gk0 = gk, gv0 = gv;
    at::flash_backward(gq, gk, gv, o, lse, dout, q, k, v, mask, {}, ws, exec);
    for (auto [g, g0, one] : {std::tuple<const t4f*, const t4f*, const t4f*>{&gq, &gq0, &dq1}, {&gk, &gk0, &dk1}, {&gv, &gv0, &dv1}}) {
        for (std::size_t i = 0; i < g->size(); ++i) {
            REQUIRE(g->data()[i] == g0->data()[i] + one->data()[i]);
        }
    }
    // The reference accumulates too.
    t4d rq1(z.B, z.Sq, z.H, z.D), rk1(z.B, z.Sk, z.Hk, z.D), rv1(z.B, z.Sk, z.Hk, z.D);
    t4d rq2 = rq1, rk2 = rk1, rv2 = rv1;
    at::reference_backward(rq1, rk1, rv1, dout, q, k, v, mask);
    at::reference_backward(rq2, rk2, rv2, dout, q, k, v, mask);
    at::reference_backward(rq2, rk2, rv2, dout, q, k, v, mask);
    for (auto [one, two] : {std::pair<const t4d*, const t4d*>{&rq1, &rq2}, {&rk1, &rk2}, {&rv1, &rv2}}) {
        for (std::size_t i = 0; i < one->size(); ++i) {
            REQUIRE(two->data()[i] == 2.0 * one->data()[i]);
        }
    }
    CHECK(rel_norm(dq1, rq1) < bwd_tol);  // and both still compute the gradient
    CHECK(rel_norm(dk1, rk1) < bwd_tol);
}

TEST_CASE("flash_backward and reference_backward accumulate: two calls on zeroed gradients give exactly 2x one call") {
    llm::parallel::thread_pool pool(2);
    check_accumulates(sizes{2, 70, 90, 4, 2, 64}, at::causal{}, pool);
    check_accumulates(sizes{1, 130, 130, 2, 1, 40}, at::sliding_window(20, 3), llm::parallel::sequential{});
    const std::int32_t cu_q[] = {0, 5, 5, 75};
    const std::int32_t cu_k[] = {0, 9, 12, 78};
    check_accumulates(sizes{1, 75, 78, 4, 2, 32}, at::varlen<at::causal>{cu_q, cu_k}, pool);
}

TEST_CASE("flash: varlen packed sequences never attend across documents") {
    // Three documents (one empty) of 5, 0 and 70 query tokens against 9, 3 and 66 keys.
    const std::int32_t cu_q[] = {0, 5, 5, 75};
    const std::int32_t cu_k[] = {0, 9, 12, 78};
    const sizes z{1, 75, 78, 4, 2, 64};
    check_forward<llm::simd::default_backend>(z, at::varlen<at::causal>{cu_q, cu_k}, {}, 5);
    check_forward<llm::simd::default_backend>(z, at::varlen<>{cu_q, cu_k}, {}, 6);

    // Each document alone gives the same rows as the packed call.
    auto q = random4<float>(1, 75, 2, 32, 1);
    auto k = random4<float>(1, 78, 2, 32, 2);
    auto v = random4<float>(1, 78, 2, 32, 3);
    t4f o(1, 75, 2, 32);
    t3f lse(1, 2, 75);
    at::flash_forward(o, lse, q, k, v, at::varlen<at::causal>{cu_q, cu_k}, {}, llm::parallel::sequential{});
    auto q2 = llm::slice(q, 1, 5, 75);
    auto k2 = llm::slice(k, 1, 12, 78);
    auto v2 = llm::slice(v, 1, 12, 78);
    t4f o2(1, 70, 2, 32);
    t3f lse2(1, 2, 70);
    at::flash_forward(o2, lse2, q2, k2, v2, at::causal{}, {}, llm::parallel::sequential{});
    for (std::size_t i = 0; i < 70; ++i) {
        for (std::size_t d = 0; d < 32; ++d) {
            REQUIRE(o(0, 5 + i, 1, d) == o2(0, i, 1, d));
        }
    }
}

TEST_CASE("flash: bf16 inputs and output, fp32 accumulation") {
    const sizes z{1, 70, 90, 4, 2, 128};
    auto q = random4<bf16>(z.B, z.Sq, z.H, z.D, 11);
    auto k = random4<bf16>(z.B, z.Sk, z.Hk, z.D, 12);
    auto v = random4<bf16>(z.B, z.Sk, z.Hk, z.D, 13);
    llm::tensor<bf16, llm::dims<4>> o(z.B, z.Sq, z.H, z.D);
    t4f of(z.B, z.Sq, z.H, z.D);
    t3f lse(z.B, z.H, z.Sq);
    poison(o);
    t4d o_ref(z.B, z.Sq, z.H, z.D);
    t3d lse_ref(z.B, z.H, z.Sq);
    at::reference_forward(o_ref, lse_ref, q, k, v, at::causal{});
    at::flash_forward(of, lse, q, k, v, at::causal{});
    CHECK(rel_norm(of, o_ref) < fwd_tol);  // the inputs are exact in fp32: same tolerance as fp32
    at::flash_forward(o, lse, q, k, v, at::causal{});
    CHECK(rel_norm(o, o_ref) < 8e-3);  // one bf16 rounding of the output: 2^-9 relative per element
}

TEST_CASE("flash: threads and the sequential policy give the same forward") {
    auto q = random4<float>(2, 150, 4, 64, 21);
    auto k = random4<float>(2, 150, 2, 64, 22);
    auto v = random4<float>(2, 150, 2, 64, 23);
    t4f o1(2, 150, 4, 64), o2(2, 150, 4, 64);
    t3f l1(2, 4, 150), l2(2, 4, 150);
    llm::parallel::thread_pool pool(2);
    at::flash_forward(o1, l1, q, k, v, at::causal{}, {}, llm::parallel::sequential{});
    at::flash_forward(o2, l2, q, k, v, at::causal{}, {}, pool);
    for (std::size_t i = 0; i < o1.size(); ++i) {
        REQUIRE(o1.data()[i] == o2.data()[i]);  // one task per (head, q tile): no order dependence
    }
}

TEST_CASE("flash: strided inputs (q as a transpose of a (batch, heads, seq, D) tensor)") {
    auto qh = random4<float>(1, 3, 40, 32, 31);  // (batch, heads, seq, D)
    auto k = random4<float>(1, 50, 3, 32, 32);
    auto v = random4<float>(1, 50, 3, 32, 33);
    auto q = llm::transpose(qh, 1, 2);  // (batch, seq, heads, D), strided
    llm::tensor<float, llm::dims<4>> oh(1, 3, 40, 32);
    auto o = llm::transpose(oh, 1, 2);
    t3f lse(1, 3, 40);
    t4d o_ref(1, 40, 3, 32);
    t3d lse_ref(1, 3, 40);
    at::reference_forward(o_ref, lse_ref, q, k, v);
    at::flash_forward(o, lse, q, k, v);
    double worst = 0;
    for (std::size_t i = 0; i < 40; ++i) {
        for (std::size_t h = 0; h < 3; ++h) {
            for (std::size_t d = 0; d < 32; ++d) {
                worst = std::max(worst, std::abs(o(0, i, h, d) - o_ref(0, i, h, d)));
            }
        }
    }
    CHECK(worst < 1e-5);
}

// Central finite differences of L = sum(o * dout) through the double reference forward.
TEST_CASE("flash backward: central finite differences in double") {
    const std::size_t B = 1, Sq = 9, Sk = 13, H = 2, Hk = 1, D = 8;
    const at::options opt{.scale = 0.5f, .softcap = 4.0f};
    const at::sliding_window mask(6, 1);
    auto qf = random4<float>(B, Sq, H, D, 41);
    auto kf = random4<float>(B, Sk, Hk, D, 42);
    auto vf = random4<float>(B, Sk, Hk, D, 43);
    auto gf = random4<float>(B, Sq, H, D, 44);
    t4d q(B, Sq, H, D), k(B, Sk, Hk, D), v(B, Sk, Hk, D);
    llm::convert(qf, q);
    llm::convert(kf, k);
    llm::convert(vf, v);
    auto loss = [&] {
        t4d o(B, Sq, H, D);
        t3d lse(B, H, Sq);
        at::reference_forward(o, lse, q, k, v, mask, opt);
        double s = 0;
        for (std::size_t i = 0; i < o.size(); ++i) {
            s += o.data()[i] * static_cast<double>(gf.data()[i]);
        }
        return s;
    };
    t4f o(B, Sq, H, D), dq(B, Sq, H, D), dk(B, Sk, Hk, D), dv(B, Sk, Hk, D);
    t3f lse(B, H, Sq);
    at::flash_forward(o, lse, qf, kf, vf, mask, opt);
    at::flash_backward(dq, dk, dv, o, lse, gf, qf, kf, vf, mask, opt);
    t4d rq(B, Sq, H, D), rk(B, Sk, Hk, D), rv(B, Sk, Hk, D);
    at::reference_backward(rq, rk, rv, gf, qf, kf, vf, mask, opt);
    const double h = 1e-6;
    auto fd_check = [&](t4d& x, const t4f& g, const t4d& gr) {
        for (std::size_t i = 0; i < x.size(); ++i) {
            const double x0 = x.data()[i];
            x.data()[i] = x0 + h;
            const double lp = loss();
            x.data()[i] = x0 - h;
            const double lm = loss();
            x.data()[i] = x0;
            const double fd = (lp - lm) / (2 * h);
            REQUIRE(gr.data()[i] == doctest::Approx(fd).epsilon(1e-6).scale(1.0));  // reference: exact maths
            REQUIRE(g.data()[i] == doctest::Approx(fd).epsilon(1e-4).scale(1.0));   // kernel: fp32
        }
    };
    fd_check(q, dq, rq);
    fd_check(k, dk, rk);
    fd_check(v, dv, rv);
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------
TEST_CASE("flash: bad input raises llm::error naming the function, argument and values") {
    auto q = random4<float>(1, 8, 8, 16, 1);
    auto k = random4<float>(1, 8, 3, 16, 2);
    auto v = random4<float>(1, 8, 3, 16, 3);
    t4f o(1, 8, 8, 16);
    t3f lse(1, 8, 8);
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k, v),
                         "flash_forward: q has 8 heads but k has 3; q heads must be a multiple of kv heads", llm::error);
    auto k2 = random4<float>(1, 8, 2, 32, 2);
    auto v2 = random4<float>(1, 8, 2, 32, 3);
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k2, v2), "flash_forward: q has head_dim 16 but k has 32", llm::error);
    auto k3 = random4<float>(1, 8, 2, 16, 2);
    auto v3 = random4<float>(1, 9, 2, 16, 3);
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k3, v3), doctest::Contains("must have the same shape"), llm::error);
    auto v4 = random4<float>(1, 8, 2, 16, 3);
    t3f bad_lse(1, 8, 7);
    CHECK_THROWS_WITH_AS(at::flash_forward(o, bad_lse, q, k3, v4), doctest::Contains("flash_forward: lse is [1, 8, 7]"),
                         llm::error);
    t4f bad_o(1, 8, 8, 15);
    CHECK_THROWS_WITH_AS(at::flash_forward(bad_o, lse, q, k3, v4), doctest::Contains("flash_forward: o is [1, 8, 8, 15]"),
                         llm::error);
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k3, v4, at::no_mask{}, {.scale = INFINITY}),
                         doctest::Contains("options.scale = inf"), llm::error);
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k3, v4, at::no_mask{}, {.softcap = -1.0f}),
                         doctest::Contains("options.softcap = -1"), llm::error);
    const std::int32_t not_increasing[] = {0, 5, 3, 8};
    const std::int32_t fine[] = {0, 2, 4, 8};
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k3, v4, at::varlen<>{not_increasing, fine}),
                         "flash_forward: varlen cu_q is not increasing: cu_q[1] = 5 > cu_q[2] = 3", llm::error);
    const std::int32_t short_end[] = {0, 2, 4, 7};
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k3, v4, at::varlen<>{fine, short_end}),
                         "flash_forward: varlen cu_k ends at 7 but the tensors hold 8 tokens", llm::error);
    const std::int32_t fewer[] = {0, 8};
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k3, v4, at::varlen<>{fine, fewer}),
                         doctest::Contains("cu_q has 4 entries but cu_k has 2"), llm::error);
    t4f dq(1, 8, 8, 16), dk(1, 8, 2, 16), dv(1, 8, 2, 17);
    CHECK_THROWS_WITH_AS(at::flash_backward(dq, dk, dv, o, lse, o, q, k3, v4),
                         doctest::Contains("flash_backward: dv is [1, 8, 2, 17] but k is [1, 8, 2, 16]"), llm::error);
}

TEST_CASE("flash: a head_dim that is not the unit-stride dimension is refused, naming the call and the tensor") {
    // [1, 8, 16, 8] with its last two dimensions swapped: [1, 8, 8, 16] whose head_dim has stride 8.
    const auto q_heads_last = random4<float>(1, 8, 16, 8, 1);
    const auto q = llm::transpose(q_heads_last.view(), 2, 3);
    const auto qc = random4<float>(1, 8, 8, 16, 1);
    const auto k = random4<float>(1, 8, 2, 16, 2);
    const auto v = random4<float>(1, 8, 2, 16, 3);
    t4f o(1, 8, 8, 16);
    t3f lse(1, 8, 8);
    CHECK_THROWS_WITH_AS(at::flash_forward(o, lse, q, k, v),
                         "flash_forward: q must have stride 1 in dim 3 (its strides are [1024, 128, 1, 8])", llm::error);
    const auto k_heads_last = random4<float>(1, 8, 16, 2, 2);
    CHECK_THROWS_WITH_AS(at::reference_forward(o, lse, qc, llm::transpose(k_heads_last.view(), 2, 3), v),
                         "reference_forward: k must have stride 1 in dim 3 (its strides are [256, 32, 1, 2])", llm::error);
    // The backward needs every tensor's head_dim unit-stride, the gradients included.
    t4f dq_heads_last(1, 8, 16, 8), dk(1, 8, 2, 16), dv(1, 8, 2, 16);
    at::flash_forward(o, lse, qc, k, v);
    CHECK_THROWS_WITH_AS(at::flash_backward(llm::transpose(dq_heads_last.view(), 2, 3), dk, dv, o, lse, o, qc, k, v),
                         "flash_backward: dq must have stride 1 in dim 3 (its strides are [1024, 128, 1, 8])", llm::error);
    // The reference backward reads and writes the gradients at any strides: the same call runs there.
    t4d rq_heads_last(1, 8, 16, 8), rk(1, 8, 2, 16), rv(1, 8, 2, 16);
    CHECK_NOTHROW(at::reference_backward(llm::transpose(rq_heads_last.view(), 2, 3), rk, rv, o, qc, k, v));
}

}  // namespace

namespace {

// RoPE comes from llm::nn: attention over rotated q and k depends on relative positions only.
void rotate(t4f& x, std::int64_t first) {
    llm::tensor<std::int64_t, llm::dims<1>> pos(x.extent(1));
    for (std::size_t i = 0; i < pos.size(); ++i) {
        pos(i) = first + static_cast<std::int64_t>(i);
    }
    auto v = llm::select(x, 0, 0);
    llm::nn::rope_forward(v, v, pos);
}

TEST_CASE("flash after llm::nn RoPE: shifting every position leaves the output unchanged") {
    auto q0 = random4<float>(1, 70, 4, 64, 61);
    auto k0 = random4<float>(1, 70, 2, 64, 62);
    auto v = random4<float>(1, 70, 2, 64, 63);
    t4f q1 = q0, k1 = k0, o0(1, 70, 4, 64), o1(1, 70, 4, 64), oq(1, 70, 4, 64);
    t3f l0(1, 4, 70), l1(1, 4, 70), lq(1, 4, 70);
    rotate(q0, 0);
    rotate(k0, 0);
    rotate(q1, 5000);
    rotate(k1, 5000);
    at::flash_forward(o0, l0, q0, k0, v, at::causal{});
    at::flash_forward(o1, l1, q1, k1, v, at::causal{});
    CHECK(rel_norm(o1, o0) < 1e-5);  // fp32 rotations of both: a few ulps of the angles
    // Rotating q only (k at other positions) does change it: the check above can fail.
    t4f q2 = random4<float>(1, 70, 4, 64, 61);
    rotate(q2, 5000);
    at::flash_forward(oq, lq, q2, k0, v, at::causal{});
    CHECK(rel_norm(oq, o0) > 1e-2);
}

}  // namespace
