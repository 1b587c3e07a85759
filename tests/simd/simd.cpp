// SPDX-License-Identifier: Apache-2.0
// Tests of the SIMD facade: every operation, run once per compiled backend, against plain C++ and the element types.
#include "backends.hpp"

#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/simd/simd.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using llm_test::bits;
using llm_test::from_bits;
using llm_test::guarded_span;
using llm_test::lanes;

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();

/// The largest relative error of fast_exp on [lo, hi] this test accepts, with and without
/// a fused fma; the doc comment of llm::simd::detail::fast_exp states the same bounds.
/// Measured: see the MESSAGE of the sweep.
template <class S>
constexpr double exp_rel_bound = S::fused_fma ? 1.0e-7 : 1.25e-7;

std::vector<float> random_floats(std::size_t n, float lo, float hi, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        x = dist(rng);
    }
    return v;
}

/// a * b + c rounded twice (the product is forced to memory, so it cannot be contracted).
float mul_then_add(float a, float b, float c) {
    volatile float product = a * b;
    return product + c;
}

}  // namespace

// The concept rejects what is not a backend, with one readable failing requirement.
struct missing_exp : llm::simd::scalar {
    static void exp() = delete;
};
static_assert(!llm::simd::backend<int>);
static_assert(!llm::simd::backend<missing_exp>);

TEST_CASE_TEMPLATE_DEFINE("simd: backend shape", S, simd_shape) {
    static_assert(llm::simd::backend<S>);
    CHECK(S::width >= 1);
    CHECK((S::width & (S::width - 1)) == 0);
    CHECK(!S::name.empty());
    CHECK(lanes<S>(S::zero())[S::width - 1] == 0.0f);
    CHECK(lanes<S>(S::set1(2.5f))[S::width - 1] == 2.5f);
}
TEST_CASE_TEMPLATE_APPLY(simd_shape, llm_test::simd_backends);

TEST_CASE("simd: default_backend is the widest compiled backend, ties to highway") {
    using D = llm::simd::default_backend;
    static_assert(llm::simd::backend<D>);
    CHECK(D::width >= llm::simd::scalar::width);
#if LLM_HAS_XSIMD
    if constexpr (!std::is_void_v<llm::simd::detail::xsimd_widest_arch>) {
        CHECK(D::width >= llm::simd::xsimd_backend::width);
    }
#endif
#if LLM_HAS_HWY && (HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR)
    CHECK(D::width >= llm::simd::highway::width);
#endif
#if LLM_HAS_HWY && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && \
    defined(__AES__) && defined(__PCLMUL__)
    CHECK(std::is_same_v<D, llm::simd::highway>);  // AVX-512 flags: Highway's AVX3 target, a tie with xsimd
#endif
    MESSAGE("default_backend = ", D::name, ", width ", D::width);
}

TEST_CASE_TEMPLATE_DEFINE("simd: aligned and unaligned loads and stores copy bits", S, simd_load_store) {
    constexpr std::size_t w = S::width;
    // Bit patterns that arithmetic would disturb: NaN payloads, -0, subnormals, infinities.
    alignas(64) float src[4 * w];
    for (std::size_t i = 0; i < 4 * w; ++i) {
        const std::uint32_t pattern[] = {0x7fc01234u, 0xff800001u, 0x80000000u, 0x00000001u,
                                         0x7f800000u, 0x3f800000u + static_cast<std::uint32_t>(i)};
        src[i] = from_bits(pattern[i % 6] ^ static_cast<std::uint32_t>(i << 8));
    }
    alignas(64) float dst[4 * w];
    std::fill(dst, dst + 4 * w, 0.0f);
    S::store(dst, S::load(src));
    S::store(dst + w, S::load(src + w));
    for (std::size_t i = 0; i < 2 * w; ++i) {
        REQUIRE(bits(dst[i]) == bits(src[i]));
    }
    for (std::size_t offset = 0; offset < w; ++offset) {
        std::fill(dst, dst + 4 * w, 0.0f);
        S::storeu(dst + offset + 1, S::loadu(src + offset));
        CHECK(bits(dst[offset]) == 0u);
        for (std::size_t i = 0; i < w; ++i) {
            REQUIRE(bits(dst[offset + 1 + i]) == bits(src[offset + i]));
        }
        CHECK(bits(dst[offset + 1 + w]) == 0u);
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_load_store, llm_test::simd_backends);

TEST_CASE_TEMPLATE_DEFINE("simd: partial loads and stores touch exactly n elements", S, simd_partial) {
    constexpr std::size_t w = S::width;
    // Each buffer holds exactly n elements and ends at an inaccessible page: reading or
    // writing p[n] faults (and ASan reports any instrumented access past the end).
    for (std::size_t n = 0; n <= w; ++n) {
        CAPTURE(n);
        guarded_span<float> in(n);
        for (std::size_t i = 0; i < n; ++i) {
            in[i] = 1.0f + static_cast<float>(i);
        }
        const lanes<S> got(S::load_partial(in.data(), n));
        for (std::size_t i = 0; i < w; ++i) {
            CHECK(got[i] == (i < n ? 1.0f + static_cast<float>(i) : 0.0f));
        }

        guarded_span<float> out(n);
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = -1.0f;
        }
        S::store_partial(out.data(), S::set1(7.0f), n);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(out[i] == 7.0f);
        }

        guarded_span<llm::bf16> in_bf16(n);
        guarded_span<llm::f16> in_f16(n);
        for (std::size_t i = 0; i < n; ++i) {
            in_bf16[i] = llm::bf16(2.0f + static_cast<float>(i));
            in_f16[i] = llm::f16(-3.0f - static_cast<float>(i));
        }
        const lanes<S> got_bf16(S::load_bf16_partial(in_bf16.data(), n));
        const lanes<S> got_f16(S::load_f16_partial(in_f16.data(), n));
        for (std::size_t i = 0; i < w; ++i) {
            CHECK(got_bf16[i] == (i < n ? 2.0f + static_cast<float>(i) : 0.0f));
            CHECK(got_f16[i] == (i < n ? -3.0f - static_cast<float>(i) : 0.0f));
        }

        guarded_span<llm::bf16> out_bf16(n);
        for (std::size_t i = 0; i < n; ++i) {
            out_bf16[i] = llm::bf16(-1.0f);
        }
        S::store_bf16_partial(out_bf16.data(), S::set1(0.5f), n);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(out_bf16[i].bits() == llm::bf16(0.5f).bits());
        }
    }

    // Stores leave the elements after p + n alone (checked with sentinels in a larger buffer).
    for (std::size_t n = 0; n <= w; ++n) {
        CAPTURE(n);
        std::vector<float> out(2 * w, -1.0f);
        S::store_partial(out.data(), S::set1(3.0f), n);
        std::vector<llm::bf16> out_bf16(2 * w, llm::bf16(-1.0f));
        S::store_bf16_partial(out_bf16.data(), S::set1(3.0f), n);
        for (std::size_t i = 0; i < 2 * w; ++i) {
            CHECK(out[i] == (i < n ? 3.0f : -1.0f));
            CHECK(static_cast<float>(out_bf16[i]) == (i < n ? 3.0f : -1.0f));
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_partial, llm_test::simd_backends);

TEST_CASE_TEMPLATE_DEFINE("simd: arithmetic is IEEE float lane by lane", S, simd_arith) {
    constexpr std::size_t w = S::width;
    constexpr std::size_t n = 64 * w;
    const auto a = random_floats(n, -100.0f, 100.0f, 1);
    const auto b = random_floats(n, -100.0f, 100.0f, 2);
    auto c = random_floats(n, -100.0f, 100.0f, 3);
    for (std::size_t i = 0; i < n; i += 3) {
        c[i] = -a[i] * b[i];  // a * b + c cancels: fused gives the product's rounding error, unfused 0
    }
    for (std::size_t i = 0; i < n; i += w) {
        const auto va = S::loadu(&a[i]);
        const auto vb = S::loadu(&b[i]);
        const auto vc = S::loadu(&c[i]);
        const lanes<S> add(S::add(va, vb)), sub(S::sub(va, vb)), mul(S::mul(va, vb)), div(S::div(va, vb));
        const lanes<S> fma(S::fma(va, vb, vc)), mn(S::min(va, vb)), mx(S::max(va, vb));
        const lanes<S> ab(S::abs(va)), ng(S::neg(va));
        for (std::size_t j = 0; j < w; ++j) {
            const float x = a[i + j], y = b[i + j], z = c[i + j];
            REQUIRE(bits(add[j]) == bits(x + y));
            REQUIRE(bits(sub[j]) == bits(x - y));
            REQUIRE(bits(mul[j]) == bits(x * y));
            REQUIRE(bits(div[j]) == bits(x / y));
            // Unfused backends may still be contracted into an fma by the compiler.
            REQUIRE((bits(fma[j]) == bits(std::fma(x, y, z)) ||
                     (!S::fused_fma && bits(fma[j]) == bits(mul_then_add(x, y, z)))));
            REQUIRE(mn[j] == std::min(x, y));
            REQUIRE(mx[j] == std::max(x, y));
            REQUIRE(bits(ab[j]) == bits(std::fabs(x)));
            REQUIRE(bits(ng[j]) == bits(-x));
        }
    }
    // abs and neg are sign-bit operations: exact on -0, infinities and NaN.
    CHECK(bits(lanes<S>(S::abs(S::set1(-0.0f)))[0]) == 0u);
    CHECK(bits(lanes<S>(S::neg(S::set1(0.0f)))[0]) == 0x80000000u);
    CHECK(lanes<S>(S::abs(S::set1(-inf)))[0] == inf);
    CHECK(std::isnan(lanes<S>(S::neg(S::set1(qnan)))[0]));
}
TEST_CASE_TEMPLATE_APPLY(simd_arith, llm_test::simd_backends);

TEST_CASE_TEMPLATE_DEFINE("simd: reductions match a double sum and the true max", S, simd_reduce) {
    constexpr std::size_t w = S::width;
    // Tolerance: any summation order of w floats errs by at most (w - 1) u sum|x_i| with
    // u = 2^-24 (Higham, Accuracy and Stability, 4.2); the double sum is exact enough.
    constexpr double u = 0x1p-24;
    for (unsigned seed = 0; seed < 200; ++seed) {
        CAPTURE(seed);
        // Mixed magnitudes and signs so that cancellation happens.
        auto v = random_floats(w, -1.0f, 1.0f, seed);
        for (std::size_t i = 0; i < w; ++i) {
            v[i] = std::ldexp(v[i], static_cast<int>((seed * 7 + i * 13) % 40) - 20);
        }
        double exact = 0.0, magnitude = 0.0;
        for (float x : v) {
            exact += x;
            magnitude += std::fabs(x);
        }
        const float sum = S::reduce_add(S::loadu(v.data()));
        CHECK(std::fabs(static_cast<double>(sum) - exact) <= static_cast<double>(w - 1) * u * magnitude);
        CHECK(S::reduce_max(S::loadu(v.data())) == *std::max_element(v.begin(), v.end()));
    }
    // All lanes negative: the max is not 0 (a reduction seeded with 0 would fail).
    std::vector<float> neg(w);
    for (std::size_t i = 0; i < w; ++i) {
        neg[i] = -100.0f + static_cast<float>((i * 5) % w);
    }
    CHECK(S::reduce_max(S::loadu(neg.data())) == *std::max_element(neg.begin(), neg.end()));
    CHECK(S::reduce_max(S::set1(-inf)) == -inf);
}
TEST_CASE_TEMPLATE_APPLY(simd_reduce, llm_test::simd_backends);

TEST_CASE_TEMPLATE_DEFINE("simd: bf16 and f16 loads convert every bit pattern exactly", S, simd_half_load) {
    constexpr std::size_t w = S::width;
    std::vector<llm::bf16> bf(65536);
    std::vector<llm::f16> hf(65536);
    for (std::uint32_t i = 0; i < 65536; ++i) {
        bf[i] = llm::bf16::from_bits(static_cast<std::uint16_t>(i));
        hf[i] = llm::f16::from_bits(static_cast<std::uint16_t>(i));
    }
    for (std::size_t i = 0; i < 65536; i += w) {
        const lanes<S> b(S::load_bf16(&bf[i]));
        const lanes<S> h(S::load_f16(&hf[i]));
        for (std::size_t j = 0; j < w; ++j) {
            const float ref_b = static_cast<float>(bf[i + j]);
            const float ref_h = static_cast<float>(hf[i + j]);
            CAPTURE(i + j);
            // bf16: the code shifted up; equal to the element type's decode except that
            // a signalling NaN is not quietened.
            REQUIRE(bits(b[j]) == (static_cast<std::uint32_t>(i + j) << 16));
            if (std::isnan(ref_b)) {
                REQUIRE(std::isnan(b[j]));
            } else {
                REQUIRE(bits(b[j]) == bits(ref_b));
            }
            REQUIRE(bits(h[j]) == bits(ref_h));  // F16C also quietens NaN, keeping the payload
        }
    }
    // Partial forms, at an unaligned offset and every n.
    for (std::size_t n = 0; n <= w; ++n) {
        const lanes<S> b(S::load_bf16_partial(&bf[0x3f80 + 1], n));
        const lanes<S> h(S::load_f16_partial(&hf[0x3c00 + 1], n));
        for (std::size_t j = 0; j < w; ++j) {
            CHECK(bits(b[j]) == (j < n ? bits(static_cast<float>(bf[0x3f81 + j])) : 0u));
            CHECK(bits(h[j]) == (j < n ? bits(static_cast<float>(hf[0x3c01 + j])) : 0u));
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_half_load, llm_test::simd_backends);

namespace {

/// Checks store_bf16 of `values` against llm::bf16(float), lane by lane.
template <class S>
void check_store_bf16(const std::vector<float>& values) {
    constexpr std::size_t w = S::width;
    std::vector<float> padded = values;
    padded.resize((values.size() + w - 1) / w * w, 0.0f);
    std::vector<llm::bf16> out(padded.size());
    for (std::size_t i = 0; i < padded.size(); i += w) {
        S::store_bf16(&out[i], S::loadu(&padded[i]));
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
        CAPTURE(i);
        CAPTURE(bits(values[i]));
        REQUIRE(out[i].bits() == llm::bf16(values[i]).bits());
    }
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("simd: store_bf16 rounds to nearest even", S, simd_store_bf16) {
    // Exact ties (low half 0x8000) go to the even code, both directions, both signs; one
    // below a tie truncates, one above rounds up. The expected codes are written out here
    // independently of llm::bf16.
    std::vector<float> ties;
    std::vector<std::uint16_t> expected;
    for (std::uint32_t code : {0x3f80u, 0x3f81u, 0x4049u, 0x404au, 0x0001u, 0x0002u, 0x7f7eu, 0xbf80u, 0xbf81u}) {
        const std::uint32_t even_up = (code & 1u) != 0 ? code + 1 : code;
        ties.push_back(from_bits(code << 16 | 0x8000u));
        expected.push_back(static_cast<std::uint16_t>(even_up));
        ties.push_back(from_bits(code << 16 | 0x7fffu));
        expected.push_back(static_cast<std::uint16_t>(code));
        ties.push_back(from_bits(code << 16 | 0x8001u));
        expected.push_back(static_cast<std::uint16_t>(code + 1));
    }
    // The largest finite bf16 plus a half step rounds to +inf (0x7f7f is odd).
    ties.push_back(from_bits(0x7f7f8000u));
    expected.push_back(0x7f80u);
    constexpr std::size_t w = S::width;
    ties.resize((ties.size() + w - 1) / w * w, 0.0f);
    expected.resize(ties.size(), 0);
    std::vector<llm::bf16> out(ties.size());
    for (std::size_t i = 0; i < ties.size(); i += w) {
        S::store_bf16(&out[i], S::loadu(&ties[i]));
    }
    for (std::size_t i = 0; i < ties.size(); ++i) {
        CAPTURE(bits(ties[i]));
        CHECK(out[i].bits() == expected[i]);
    }

    // Specials: zeros, infinities, FLT_MAX (rounds to inf), subnormals, NaNs of both signs
    // with payloads (quiet and signalling: they stay NaN, quietened, payload top bits kept).
    std::vector<float> specials = {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::max(),
                                   -std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                                   from_bits(0x00018000u), from_bits(0x807fffffu), qnan, -qnan,
                                   from_bits(0x7f800001u), from_bits(0xff800001u), from_bits(0x7fbfffffu),
                                   from_bits(0x7fc12345u)};
    check_store_bf16<S>(specials);
    std::vector<llm::bf16> nan_out(w);
    S::store_bf16(nan_out.data(), S::set1(from_bits(0x7f800001u)));  // signalling, payload in the low bits only
    CHECK(std::isnan(static_cast<float>(nan_out[0])));

    // Random floats over the whole bit range.
    std::mt19937 rng(42);
    std::vector<float> random(1 << 16);
    for (auto& x : random) {
        x = from_bits(static_cast<std::uint32_t>(rng()));
    }
    check_store_bf16<S>(random);
}
TEST_CASE_TEMPLATE_APPLY(simd_store_bf16, llm_test::simd_backends);

namespace {

struct exp_error {
    double max_rel = 0.0;
    float worst_x = 0.0f;
};

/// Relative error of S::exp against double-precision exp over `xs` (all in [lo, hi]).
template <class S>
exp_error exp_error_over(const std::vector<float>& xs) {
    constexpr std::size_t w = S::width;
    exp_error e;
    alignas(64) float in[w], out[w];
    for (std::size_t i = 0; i < xs.size(); i += w) {
        const std::size_t n = std::min(w, xs.size() - i);
        std::fill(in, in + w, 0.0f);
        std::copy(xs.begin() + static_cast<std::ptrdiff_t>(i), xs.begin() + static_cast<std::ptrdiff_t>(i + n), in);
        S::store(out, S::exp(S::load(in)));
        for (std::size_t j = 0; j < n; ++j) {
            const double ref = std::exp(static_cast<double>(in[j]));
            const double rel = std::fabs(static_cast<double>(out[j]) - ref) / ref;
            if (!(rel <= e.max_rel)) {  // also catches NaN
                e.max_rel = std::isnan(rel) ? inf : rel;
                e.worst_x = in[j];
            }
        }
    }
    return e;
}

using exp_c = llm::simd::detail::exp_constants;

/// A dense sweep of [lo, hi]: 2^22 evenly spaced points, every float in windows around
/// the ends, around 0 and around the reduction's breakpoints k ln 2 (where n changes).
std::vector<float> exp_sweep() {
    std::vector<float> xs;
    constexpr int steps = 1 << 22;
    const double span = static_cast<double>(exp_c::hi) - static_cast<double>(exp_c::lo);
    for (int i = 0; i <= steps; ++i) {
        xs.push_back(static_cast<float>(static_cast<double>(exp_c::lo) + span * i / steps));
    }
    auto window = [&xs](float centre, int count) {
        float x = centre;
        for (int i = 0; i < count; ++i) {
            x = std::nextafter(x, -inf);
        }
        for (int i = 0; i < 2 * count; ++i) {
            if (x >= exp_c::lo && x <= exp_c::hi) {
                xs.push_back(x);
            }
            x = std::nextafter(x, inf);
        }
    };
    window(exp_c::lo, 20000);
    window(exp_c::hi, 20000);
    window(0.0f, 20000);
    for (int k = -126; k <= 128; ++k) {
        window(static_cast<float>(k * 0.69314718055994530942), 200);
    }
    return xs;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("simd: exp is within its stated relative error on [lo, hi]", S, simd_exp) {
    static const std::vector<float> xs = exp_sweep();
    const exp_error e = exp_error_over<S>(xs);
    MESSAGE(S::name, ": exp max relative error ", e.max_rel, " at x = ", e.worst_x, " over ", xs.size(), " points");
    CHECK(e.max_rel <= exp_rel_bound<S>);
    // Every backend runs the same operations; where fma is fused they agree to the bit.
    if constexpr (S::fused_fma) {
        constexpr std::size_t w = S::width;
        alignas(64) float out[w];
        for (std::size_t i = 0; i + w <= xs.size(); i += 97 * w) {
            S::store(out, S::exp(S::loadu(&xs[i])));
            for (std::size_t j = 0; j < w; ++j) {
                REQUIRE(bits(out[j]) == bits(llm::simd::scalar::exp(xs[i + j])));
            }
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_exp, llm_test::simd_backends);

TEST_CASE_TEMPLATE_DEFINE("simd: exp beyond the range: 0 below, +inf above, NaN stays NaN", S, simd_exp_edges) {
    auto exp1 = [](float x) { return lanes<S>(S::exp(S::set1(x)))[S::width - 1]; };
    CHECK(exp1(0.0f) == 1.0f);
    CHECK(exp1(-0.0f) == 1.0f);
    CHECK(exp1(exp_c::lo) >= std::numeric_limits<float>::min());  // still normal at lo
    CHECK(exp1(std::nextafter(exp_c::lo, -inf)) == 0.0f);
    CHECK(exp1(-88.0f) == 0.0f);
    CHECK(exp1(-1000.0f) == 0.0f);
    CHECK(exp1(-inf) == 0.0f);
    CHECK(exp1(std::numeric_limits<float>::lowest()) == 0.0f);
    CHECK(std::isfinite(exp1(exp_c::hi)));
    CHECK(exp1(std::nextafter(exp_c::hi, inf)) == inf);
    CHECK(exp1(100.0f) == inf);
    CHECK(exp1(inf) == inf);
    CHECK(exp1(std::numeric_limits<float>::max()) == inf);
    CHECK(std::isnan(exp1(qnan)));
    CHECK(std::isnan(exp1(-qnan)));
    CHECK(std::isnan(exp1(from_bits(0x7f800001u))));
    // The float just past each end is where std::exp itself leaves the normal range.
    CHECK(std::exp(static_cast<double>(std::nextafter(exp_c::hi, inf))) > std::numeric_limits<float>::max());
    CHECK(std::exp(static_cast<double>(std::nextafter(exp_c::lo, -inf))) < std::numeric_limits<float>::min());
    // NaN in one lane does not leak into the others.
    if constexpr (S::width > 1) {
        std::vector<float> v(S::width, 1.0f);
        v[1] = qnan;
        const lanes<S> y(S::exp(S::loadu(v.data())));
        CHECK(std::isnan(y[1]));
        CHECK(y[0] == lanes<S>(S::exp(S::set1(1.0f)))[0]);
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_exp_edges, llm_test::simd_backends);

TEST_SUITE("slow") {
    TEST_CASE("simd: exp over every float in [lo, hi], default backend") {
        using S = llm::simd::default_backend;
        constexpr std::size_t w = S::width;
        alignas(64) float in[w], out[w];
        double max_rel = 0.0;
        float worst = 0.0f;
        std::size_t k = 0;
        // Walk the float line in bit order: negative floats from -0 down to lo, positive up to hi.
        auto flush = [&](std::size_t count) {
            S::store(out, S::exp(S::load(in)));
            for (std::size_t j = 0; j < count; ++j) {
                const double ref = std::exp(static_cast<double>(in[j]));
                const double rel = std::fabs(static_cast<double>(out[j]) - ref) / ref;
                if (!(rel <= max_rel)) {
                    max_rel = std::isnan(rel) ? inf : rel;
                    worst = in[j];
                }
            }
        };
        for (std::uint32_t sign : {0x00000000u, 0x80000000u}) {
            const float end = sign != 0 ? exp_c::lo : exp_c::hi;
            for (std::uint32_t m = 0; m <= (bits(end) & 0x7fffffffu); ++m) {
                in[k++] = from_bits(sign | m);
                if (k == w) {
                    flush(w);
                    k = 0;
                }
            }
        }
        std::fill(in + k, in + w, 0.0f);
        flush(k);
        MESSAGE("exp over every float: max relative error ", max_rel, " at x = ", worst);
        CHECK(max_rel <= exp_rel_bound<S>);
    }

    TEST_CASE("simd: store_bf16 equals llm::bf16(float) for every float, default backend") {
        using S = llm::simd::default_backend;
        constexpr std::size_t w = S::width;
        alignas(64) float in[w];
        llm::bf16 out[w];
        std::uint64_t mismatches = 0;
        for (std::uint64_t u = 0; u < (std::uint64_t{1} << 32); u += w) {
            for (std::size_t j = 0; j < w; ++j) {
                in[j] = from_bits(static_cast<std::uint32_t>(u + j));
            }
            S::store_bf16(out, S::load(in));
            for (std::size_t j = 0; j < w; ++j) {
                mismatches += out[j].bits() != llm::bf16(in[j]).bits() ? 1 : 0;
            }
        }
        CHECK(mismatches == 0);
    }
}
