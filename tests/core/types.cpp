// SPDX-License-Identifier: Apache-2.0
// Tests of llm::bf16, llm::f16, llm::fp8_e4m3 and llm::fp8_e5m2: every bit pattern, rounding, limits.
#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/fp8.hpp>

#include "minifloat_reference.hpp"

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <type_traits>
#include <vector>

namespace {

using llm_test::mismatches;
using llm_test::reference;
using llm_test::spec_of;

template <class T>
const reference& ref() {
    static const reference r(spec_of<T>);
    return r;
}

template <class T>
constexpr std::uint32_t code_count = 1u << (8 * sizeof(T));

template <class T>
T from_code(std::uint32_t code) {
    return T::from_bits(static_cast<typename T::storage_type>(code));
}

std::uint32_t float_bits(float f) {
    return std::bit_cast<std::uint32_t>(f);
}
std::uint64_t double_bits(double d) {
    return std::bit_cast<std::uint64_t>(d);
}

// Checks T(x) and T(x, saturate) against the reference for a float or double x; NaN results
// must be NaN of the documented sign (their payload is checked separately).
template <class T, class Source>
void check_encode(Source x, mismatches& bad) {
    const reference& r = ref<T>();
    for (const bool saturate : {false, true}) {
        const std::uint32_t want = r.encode(static_cast<double>(x), saturate);
        const T got = saturate ? T(x, llm::saturate) : T(x);
        const bool want_nan = std::isnan(r.decode(want));
        const bool ok = want_nan ? std::isnan(static_cast<float>(got)) &&
                                       ((got.bits() & r.sign_bit()) == (want & r.sign_bit()))
                                 : got.bits() == want;
        if (!ok) {
            bad.add(std::hexfloat, x, (saturate ? " saturated" : ""), " -> 0x", std::hex,
                    unsigned(got.bits()), ", want 0x", want);
        }
    }
}

// Inputs where rounding decisions happen: every representable value, every midpoint between
// neighbours (including the one between max and the overflow value), and the floats just
// beside each, in both signs.
template <class T>
std::vector<float> boundary_floats() {
    const reference& r = ref<T>();
    std::vector<double> points = r.positive_values();
    points.push_back(r.beyond_max());
    std::vector<float> out;
    for (std::size_t i = 0; i < points.size(); ++i) {
        std::vector<double> here;
        if (i + 1 < points.size()) {
            here = {points[i], (points[i] + points[i + 1]) / 2};
        } else if (points[i] < 0x1p128) {
            here = {points[i]};  // the overflow value itself, where it is a float (not for bf16)
        }
        for (const double p : here) {
            const float f = static_cast<float>(p);
            REQUIRE(static_cast<double>(f) == p);  // all of these are floats exactly
            for (const float g : {f, std::nextafter(f, 0.0f), std::nextafter(f, HUGE_VALF)}) {
                out.push_back(g);
                out.push_back(-g);
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE_TEMPLATE("every bit pattern decodes to the value its fields give", T, llm::bf16, llm::f16,
                   llm::fp8_e4m3, llm::fp8_e5m2) {
    const reference& r = ref<T>();
    mismatches bad;
    for (std::uint32_t code = 0; code < code_count<T>; ++code) {
        const double want = r.decode(code);
        const T x = from_code<T>(code);
        const float f = static_cast<float>(x);
        const double d = static_cast<double>(x);
        if (std::isnan(want)) {
            if (!std::isnan(f) || !std::isnan(d) || std::signbit(f) != std::signbit(want) ||
                (float_bits(f) & 0x00400000u) == 0) {
                bad.add("code 0x", std::hex, code, " should decode to a quiet NaN of its sign, got ", f);
            }
        } else if (float_bits(f) != float_bits(static_cast<float>(want)) ||
                   double_bits(d) != double_bits(want)) {
            bad.add("code 0x", std::hex, code, " decodes to ", std::hexfloat, f, ", want ", want);
        }
    }
    CHECK_MESSAGE(bad.count() == 0, bad.text());
}

TEST_CASE_TEMPLATE("every non-NaN pattern round-trips through float and double", T, llm::bf16, llm::f16,
                   llm::fp8_e4m3, llm::fp8_e5m2) {
    const reference& r = ref<T>();
    mismatches bad;
    for (std::uint32_t code = 0; code < code_count<T>; ++code) {
        const T x = from_code<T>(code);
        const T via_float(static_cast<float>(x));
        const T via_double(static_cast<double>(x));
        if (std::isnan(r.decode(code))) {
            // NaN: same sign, payload bits kept, quiet bit set (E4M3 has a single NaN).
            const std::uint32_t quiet = r.has_infinity() ? 1u << (spec_of<T>.mantissa_bits - 1) : 0u;
            if (via_float.bits() != (code | quiet) || via_double.bits() != (code | quiet)) {
                bad.add("NaN 0x", std::hex, code, " -> 0x", unsigned(via_float.bits()), " / 0x",
                        unsigned(via_double.bits()));
            }
        } else if (via_float.bits() != code || via_double.bits() != code) {
            bad.add("0x", std::hex, code, " -> 0x", unsigned(via_float.bits()), " / 0x",
                    unsigned(via_double.bits()));
        }
    }
    CHECK_MESSAGE(bad.count() == 0, bad.text());
}

TEST_CASE_TEMPLATE("float conversion rounds to nearest even at every midpoint and its neighbours", T,
                   llm::bf16, llm::f16, llm::fp8_e4m3, llm::fp8_e5m2) {
    mismatches bad;
    const std::vector<float> inputs = boundary_floats<T>();
    for (const float f : inputs) {
        check_encode<T>(f, bad);
        check_encode<T>(static_cast<double>(f), bad);
    }
    CHECK_MESSAGE(bad.count() == 0, bad.text());
}

TEST_CASE_TEMPLATE("double conversion rounds once, not through float", T, llm::bf16, llm::f16, llm::fp8_e4m3,
                   llm::fp8_e5m2) {
    // One double ulp beside a midpoint: float rounding would land on the midpoint itself and
    // then tie to even, so only a direct rounding gets these right.
    mismatches bad;
    const reference& r = ref<T>();
    std::vector<double> points = r.positive_values();
    points.push_back(r.beyond_max());
    for (std::size_t i = 0; i + 1 < points.size(); ++i) {
        const double mid = (points[i] + points[i + 1]) / 2;
        for (const double d : {std::nextafter(mid, 0.0), std::nextafter(mid, HUGE_VAL)}) {
            check_encode<T>(d, bad);
            check_encode<T>(-d, bad);
        }
    }
    // Doubles beyond float's range and below its subnormals.
    for (const double d : {1e39, 1e300, 1e-46, 1e-300, 4.9e-324, std::numeric_limits<double>::max()}) {
        check_encode<T>(d, bad);
        check_encode<T>(-d, bad);
    }
    CHECK_MESSAGE(bad.count() == 0, bad.text());
}

TEST_CASE_TEMPLATE("special inputs: zeros, infinities, NaNs, float extremes", T, llm::bf16, llm::f16,
                   llm::fp8_e4m3, llm::fp8_e5m2) {
    mismatches bad;
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> specials = {0.0f,
                                         -0.0f,
                                         inf,
                                         -inf,
                                         std::numeric_limits<float>::quiet_NaN(),
                                         -std::numeric_limits<float>::quiet_NaN(),
                                         std::numeric_limits<float>::signaling_NaN(),
                                         std::bit_cast<float>(0x7F800001u),
                                         std::bit_cast<float>(0xFFFFFFFFu),
                                         std::numeric_limits<float>::max(),
                                         -std::numeric_limits<float>::max(),
                                         std::numeric_limits<float>::min(),
                                         std::numeric_limits<float>::denorm_min(),
                                         -std::numeric_limits<float>::denorm_min(),
                                         std::bit_cast<float>(0x007FFFFFu)};
    for (const float f : specials) {
        check_encode<T>(f, bad);
        check_encode<T>(static_cast<double>(f), bad);
    }
    CHECK_MESSAGE(bad.count() == 0, bad.text());

    CHECK(T(0.0f).bits() == 0);
    CHECK(T(-0.0f).bits() == ref<T>().sign_bit());
    CHECK(T{}.bits() == 0);  // value initialisation gives +0
    CHECK(std::isnan(static_cast<float>(T(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(std::isnan(static_cast<float>(T(inf, llm::saturate))) == false);
    CHECK(static_cast<float>(T(inf, llm::saturate)) == static_cast<float>(std::numeric_limits<T>::max()));
    CHECK(static_cast<float>(T(-inf, llm::saturate)) == static_cast<float>(std::numeric_limits<T>::lowest()));
}

TEST_CASE_TEMPLATE("NaN payloads: the top payload bits that fit survive, the result is quiet", T, llm::bf16,
                   llm::f16, llm::fp8_e5m2) {
    constexpr int m = spec_of<T>.mantissa_bits;
    const std::uint32_t quiet = 1u << (m - 1);
    for (const std::uint32_t payload : {1u, 0x155555u, 0x2AAAAAu, 0x3FFFFFu, 0x400001u, 0x7FFFFFu}) {
        for (const std::uint32_t sign : {0u, 0x80000000u}) {
            const float nan = std::bit_cast<float>(sign | 0x7F800000u | payload);
            const T x(nan);
            const std::uint32_t want_magnitude = ref<T>().overflow_code() | quiet | (payload >> (23 - m));
            CAPTURE(payload);
            CHECK(unsigned(x.bits()) == ((sign != 0 ? ref<T>().sign_bit() : 0u) | want_magnitude));
        }
    }
}

TEST_CASE_TEMPLATE("random floats and doubles round like the table search", T, llm::bf16, llm::f16,
                   llm::fp8_e4m3, llm::fp8_e5m2) {
    std::mt19937_64 rng(0x5eed0000u + sizeof(T) + spec_of<T>.mantissa_bits);
    const reference& r = ref<T>();
    const int min_exponent =
        1 - r.bias() - spec_of<T>.mantissa_bits - 2;  // below half the smallest subnormal
    const int max_exponent = int(std::ilogb(r.beyond_max())) + 2;
    std::uniform_int_distribution<int> exponent(min_exponent, max_exponent);
    mismatches bad;
    for (int i = 0; i < 1 << 19; ++i) {
        const std::uint64_t bits = rng();
        // Any float at all (mostly far outside the fp8 ranges) ...
        check_encode<T>(std::bit_cast<float>(std::uint32_t(bits)), bad);
        // ... and floats and doubles spread over the format's own exponent range.
        const float f = std::ldexp(1.0f + float((bits >> 32) & 0x7FFFFF) / 0x1p23f, exponent(rng));
        check_encode<T>((bits >> 63) != 0 ? -f : f, bad);
        const double d = std::ldexp(1.0 + double(bits & 0xFFFFFFFFFFFFFull) / 0x1p52, exponent(rng));
        check_encode<T>((bits >> 62) & 1 ? -d : d, bad);
    }
    CHECK_MESSAGE(bad.count() == 0, bad.text());
}

TEST_CASE_TEMPLATE("integers convert through double", T, llm::bf16, llm::f16, llm::fp8_e4m3, llm::fp8_e5m2) {
    for (const long long i :
         {0LL, 1LL, -1LL, 3LL, 17LL, -100LL, 1000LL, 65519LL, 65520LL, 1LL << 53, (1LL << 53) + 1}) {
        CAPTURE(i);
        CHECK(T(i).bits() == T(static_cast<double>(i)).bits());
    }
    CHECK(T(7u).bits() == T(7.0f).bits());
    CHECK(T(static_cast<signed char>(-3)).bits() == T(-3.0f).bits());
}

TEST_CASE_TEMPLATE("comparisons order values like float; unary minus flips the sign", T, llm::fp8_e4m3,
                   llm::fp8_e5m2) {
    // All pairs of an 8-bit format against the reference values.
    const reference& r = ref<T>();
    mismatches bad;
    for (std::uint32_t i = 0; i < 256; ++i) {
        const double vi = r.decode(i);
        const T a = from_code<T>(i);
        const T neg = -a;
        if (neg.bits() != (i ^ r.sign_bit())) {
            bad.add("-0x", std::hex, i, " = 0x", unsigned(neg.bits()));
        }
        for (std::uint32_t j = 0; j < 256; ++j) {
            const double vj = r.decode(j);
            const T b = from_code<T>(j);
            if ((a == b) != (vi == vj) || (a != b) != (vi != vj) || (a < b) != (vi < vj) ||
                (a <= b) != (vi <= vj) || (a > b) != (vi > vj) || (a >= b) != (vi >= vj)) {
                bad.add("0x", std::hex, i, " vs 0x", j);
            }
        }
    }
    CHECK_MESSAGE(bad.count() == 0, bad.text());
}

TEST_CASE_TEMPLATE("numeric_limits agree with the value table", T, llm::bf16, llm::f16, llm::fp8_e4m3,
                   llm::fp8_e5m2) {
    using lim = std::numeric_limits<T>;
    const reference& r = ref<T>();
    const std::vector<double>& v = r.positive_values();
    const double smallest_normal = std::ldexp(1.0, 1 - r.bias());
    static_assert(lim::is_specialized);
    CHECK(static_cast<double>(lim::max()) == v.back());
    CHECK(static_cast<double>(lim::lowest()) == -v.back());
    CHECK(static_cast<double>(lim::min()) == smallest_normal);
    CHECK(static_cast<double>(lim::denorm_min()) == v[1]);
    CHECK(static_cast<double>(lim::epsilon()) == *std::upper_bound(v.begin(), v.end(), 1.0) - 1.0);
    CHECK(static_cast<double>(lim::round_error()) == 0.5);
    CHECK(lim::digits == spec_of<T>.mantissa_bits + 1);
    CHECK(lim::has_infinity == r.has_infinity());
    CHECK(lim::has_quiet_NaN);
    CHECK(std::isnan(static_cast<float>(lim::quiet_NaN())));
    CHECK(std::isnan(static_cast<float>(lim::signaling_NaN())));
    if (lim::has_infinity) {
        CHECK(std::isinf(static_cast<float>(lim::infinity())));
    }
    CHECK(lim::radix == 2);
    // C's conventions: min() == 2^(min_exponent - 1), max() < 2^max_exponent.
    CHECK(std::ldexp(1.0, lim::min_exponent - 1) == smallest_normal);
    CHECK(v.back() < std::ldexp(1.0, lim::max_exponent));
    CHECK(v.back() >= std::ldexp(1.0, lim::max_exponent - 1));
    CHECK(std::pow(10.0, lim::max_exponent10) <= v.back());
    CHECK(std::pow(10.0, lim::max_exponent10 + 1) > v.back());
    CHECK(std::pow(10.0, lim::min_exponent10) >= smallest_normal);
    CHECK(std::pow(10.0, lim::min_exponent10 - 1) < smallest_normal);
    CHECK(lim::digits10 == int(std::floor((lim::digits - 1) * std::log10(2.0))));
    CHECK(lim::max_digits10 == int(std::ceil(1 + lim::digits * std::log10(2.0))));
}

TEST_CASE("values stated by the specifications") {
    // OCP 8-bit Floating Point Specification (OFP8) rev. 1.0, table 1 and section 5.
    CHECK(static_cast<float>(llm::fp8_e4m3::from_bits(0x7E)) == 448.0f);
    CHECK(static_cast<float>(llm::fp8_e4m3::from_bits(0x08)) == 0x1p-6f);
    CHECK(static_cast<float>(llm::fp8_e4m3::from_bits(0x01)) == 0x1p-9f);
    CHECK(static_cast<float>(llm::fp8_e4m3::from_bits(0x78)) == 256.0f);  // exponent 15 is finite in E4M3
    CHECK(std::isnan(static_cast<float>(llm::fp8_e4m3::from_bits(0x7F))));
    CHECK(std::isnan(static_cast<float>(llm::fp8_e4m3::from_bits(0xFF))));
    CHECK(static_cast<float>(llm::fp8_e5m2::from_bits(0x7B)) == 57344.0f);
    CHECK(static_cast<float>(llm::fp8_e5m2::from_bits(0x04)) == 0x1p-14f);
    CHECK(static_cast<float>(llm::fp8_e5m2::from_bits(0x01)) == 0x1p-16f);
    CHECK(std::isinf(static_cast<float>(llm::fp8_e5m2::from_bits(0x7C))));
    for (const std::uint8_t nan : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF}) {
        CHECK(std::isnan(static_cast<float>(llm::fp8_e5m2::from_bits(nan))));
    }
    // IEEE 754 binary16.
    CHECK(llm::f16(1.0f).bits() == 0x3C00);
    CHECK(llm::f16(65504.0f).bits() == 0x7BFF);
    CHECK(llm::f16(0.1f).bits() == 0x2E66);
    CHECK(llm::f16(0x1p-24f).bits() == 0x0001);
    CHECK(llm::f16(-2.0f).bits() == 0xC000);
    // bfloat16 is float's top half, rounded.
    CHECK(llm::bf16(1.0f).bits() == 0x3F80);
    CHECK(llm::bf16(3.14159265f).bits() == 0x4049);
    CHECK(llm::bf16(std::numeric_limits<float>::max()).bits() == 0x7F80);  // rounds past 0x7F7F: Inf
}

TEST_CASE("overflow and NaN rules agree with ml_dtypes 0.6.0 (PyTorch's float8_e4m3fn rules)") {
    // Generated with: x = np.array([...], np.float32); x.astype(ml_dtypes.float8_e4m3fn) etc.
    // viewed as unsigned integers.
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> x = {448,   449,   463.9f, 464,   464.1f,        479,    480,
                                  1e6f,  inf,   -inf,   nan,   -nan,          57344,  61439,
                                  61440, 65519, 65520,  1e38f, 3.3961775e38f, 3.4e38f};
    const std::vector<unsigned> e4m3 = {0x7e, 0x7e, 0x7e, 0x7e, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xff,
                                        0x7f, 0xff, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f};
    const std::vector<unsigned> e5m2 = {0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x60, 0x7c, 0x7c, 0xfc,
                                        0x7e, 0xfe, 0x7b, 0x7b, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c};
    const std::vector<unsigned> bf16 = {0x43e0, 0x43e0, 0x43e8, 0x43e8, 0x43e8, 0x43f0, 0x43f0,
                                        0x4974, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x4760, 0x4770,
                                        0x4770, 0x4780, 0x4780, 0x7e96, 0x7f80, 0x7f80};
    const std::vector<unsigned> f16 = {0x5f00, 0x5f04, 0x5f40, 0x5f40, 0x5f40, 0x5f7c, 0x5f80,
                                       0x7c00, 0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7b00, 0x7b80,
                                       0x7b80, 0x7bff, 0x7c00, 0x7c00, 0x7c00, 0x7c00};
    for (std::size_t i = 0; i < x.size(); ++i) {
        CAPTURE(x[i]);
        CHECK(unsigned(llm::fp8_e4m3(x[i]).bits()) == e4m3[i]);
        CHECK(unsigned(llm::fp8_e5m2(x[i]).bits()) == e5m2[i]);
        CHECK(unsigned(llm::bf16(x[i]).bits()) == bf16[i]);
        CHECK(unsigned(llm::f16(x[i]).bits()) == f16[i]);
    }
}

TEST_CASE("saturating conversion clamps to the largest finite value, NaN stays NaN") {
    CHECK(llm::fp8_e4m3(1000.0f, llm::saturate).bits() == 0x7E);
    CHECK(llm::fp8_e4m3(-1000.0f, llm::saturate).bits() == 0xFE);
    CHECK(llm::fp8_e4m3(465.0f, llm::saturate).bits() == 0x7E);
    CHECK(llm::fp8_e4m3(465.0f).bits() == 0x7F);
    CHECK(llm::fp8_e5m2(1e9f, llm::saturate).bits() == 0x7B);
    CHECK(llm::f16(1e9, llm::saturate).bits() == 0x7BFF);
    CHECK(llm::bf16(std::numeric_limits<float>::infinity(), llm::saturate).bits() == 0x7F7F);
    CHECK(std::isnan(
        static_cast<float>(llm::fp8_e4m3(std::numeric_limits<float>::quiet_NaN(), llm::saturate))));
    CHECK(std::isnan(static_cast<float>(llm::f16(std::numeric_limits<double>::quiet_NaN(), llm::saturate))));
}

TEST_CASE("the types are plain bits and usable in constant expressions") {
    static_assert(sizeof(llm::bf16) == 2 && sizeof(llm::f16) == 2);
    static_assert(sizeof(llm::fp8_e4m3) == 1 && sizeof(llm::fp8_e5m2) == 1);
    static_assert(std::is_trivially_copyable_v<llm::bf16> && std::is_standard_layout_v<llm::f16>);
    static_assert(std::is_trivially_default_constructible_v<llm::fp8_e4m3>);
    // Explicit only: no implicit float <-> element conversions, no mixed arithmetic.
    static_assert(!std::is_convertible_v<float, llm::bf16> && !std::is_convertible_v<llm::bf16, float>);
    static_assert(std::is_constructible_v<llm::bf16, float> && std::is_constructible_v<float, llm::bf16>);
    static_assert(std::is_constructible_v<double, llm::f16>);
    static_assert(static_cast<float>(llm::bf16(1.5f)) == 1.5f);
    static_assert(llm::f16(65520.0f).bits() == 0x7C00);
    static_assert(llm::fp8_e4m3(0.3f).bits() == 0x2A);  // 0.3125
    static_assert(static_cast<float>(llm::fp8_e5m2::from_bits(0x01)) == 0x1p-16f);
    static_assert(llm::bf16(1.0039062500000002).bits() == 0x3F81);  // double rounded once
    static_assert(-llm::f16(2.0f) == llm::f16(-2.0f));
    static_assert(llm::f16(0.0f) == llm::f16(-0.0f));
    static_assert(llm::f16(std::numeric_limits<float>::quiet_NaN()) !=
                  llm::f16(std::numeric_limits<float>::quiet_NaN()));
    std::ostringstream out;
    out << llm::bf16(2.5f) << ' ' << llm::fp8_e4m3(-0.5f);
    CHECK(out.str() == "2.5 -0.5");
}

TEST_SUITE("slow") {
    // Every float, both signs, through every format, against the table search: the
    // reference index walks along with the float, so this costs O(2^32) conversions.
    TEST_CASE_TEMPLATE("every float rounds correctly", T, llm::bf16, llm::f16, llm::fp8_e4m3, llm::fp8_e5m2) {
        const reference& r = ref<T>();
        std::vector<double> points = r.positive_values();
        points.push_back(r.beyond_max());
        const std::uint32_t sign = r.sign_bit();
        const std::uint32_t overflow = r.overflow_code();
        const std::uint32_t max_code = r.max_code();
        mismatches bad;
        std::size_t i = 0;  // points[i] <= f < points[i + 1]
        for (std::uint32_t u = 0; u <= 0x7F800000u; ++u) {
            const float f = std::bit_cast<float>(u);
            const double a = f;
            while (i + 1 < points.size() && points[i + 1] <= a) {
                ++i;
            }
            std::uint32_t code;
            if (i + 1 == points.size()) {
                code = max_code + 1;  // at or past the overflow value, or Inf
            } else {
                const double twice = 2 * a;
                const double sum = points[i] + points[i + 1];
                code = std::uint32_t(twice < sum || (twice == sum && i % 2 == 0) ? i : i + 1);
            }
            const std::uint32_t plain = code > max_code ? overflow : code;
            const std::uint32_t saturated = code > max_code ? max_code : code;
            if (T(f).bits() != plain || T(-f).bits() != (sign | plain) ||
                T(f, llm::saturate).bits() != saturated ||
                T(-f, llm::saturate).bits() != (sign | saturated)) {
                bad.add(std::hexfloat, f, " -> 0x", std::hex, unsigned(T(f).bits()), ", want 0x", plain);
            }
        }
        for (std::uint32_t u = 0x7F800001u; u != 0x80000000u; ++u) {
            for (const std::uint32_t s : {0u, 0x80000000u}) {
                const T x(std::bit_cast<float>(s | u));
                if (!std::isnan(static_cast<float>(x)) || (x.bits() & sign) != (s != 0 ? sign : 0u)) {
                    bad.add("NaN 0x", std::hex, s | u, " -> 0x", unsigned(x.bits()));
                }
            }
        }
        CHECK_MESSAGE(bad.count() == 0, bad.text());
    }
}
