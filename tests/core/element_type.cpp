// SPDX-License-Identifier: Apache-2.0
// Tests of llm::element_type, llm::element_traits, llm::to_float, llm::from_float and llm::element_cast.
#include <llm/core/element_type.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>

static_assert(llm::element_type<float> && llm::element_type<double> && llm::element_type<llm::bf16> &&
              llm::element_type<llm::f16> && llm::element_type<llm::fp8_e4m3> &&
              llm::element_type<llm::fp8_e5m2>);
static_assert(llm::element_type<const llm::bf16> && llm::element_type<const volatile float>);
static_assert(!llm::element_type<int> && !llm::element_type<long double> &&
              !llm::element_type<std::uint16_t> && !llm::element_type<float*>);
static_assert(std::is_same_v<decltype(llm::from_float<const llm::f16>(1.0f)), llm::f16>);
static_assert(std::is_same_v<decltype(llm::element_cast<const double>(llm::bf16{})), double>);
static_assert(llm::to_float(llm::bf16(2.5f)) == 2.5f);
static_assert(llm::from_float<llm::f16>(0.1f).bits() == 0x2E66);

TEST_CASE("element_traits names every element type as C++ spells it") {
    CHECK(llm::element_traits<float>::name == "float");
    CHECK(llm::element_traits<double>::name == "double");
    CHECK(llm::element_traits<llm::bf16>::name == "bf16");
    CHECK(llm::element_traits<llm::f16>::name == "f16");
    CHECK(llm::element_traits<llm::fp8_e4m3>::name == "fp8_e4m3");
    CHECK(llm::element_traits<llm::fp8_e5m2>::name == "fp8_e5m2");
}

TEST_CASE_TEMPLATE("to_float and from_float round-trip every value of a narrow type", T, llm::bf16, llm::f16,
                   llm::fp8_e4m3, llm::fp8_e5m2) {
    std::size_t bad = 0;
    for (std::uint32_t code = 0; code < (1u << (8 * sizeof(T))); ++code) {
        const T x = T::from_bits(static_cast<typename T::storage_type>(code));
        const float f = llm::to_float(x);
        if (std::isnan(f)) {
            continue;
        }
        bad += llm::from_float<T>(f).bits() != code;
        bad += !std::isinf(f) && llm::from_float<T>(f, llm::saturate).bits() != code;  // Inf saturates
        bad += llm::element_cast<T>(llm::element_cast<double>(x)).bits() != code;
    }
    CHECK(bad == 0);
}

TEST_CASE("from_float to float and double is exact") {
    CHECK(llm::from_float<float>(0.1f) == 0.1f);
    CHECK(llm::from_float<double>(0.1f) == static_cast<double>(0.1f));
    CHECK(std::signbit(llm::from_float<double>(-0.0f)));
}

TEST_CASE("element_cast rounds once between any two element types") {
    // A double one ulp above a bf16 midpoint: through float it would tie to even (1.0).
    CHECK(llm::element_cast<llm::bf16>(1.0039062500000002).bits() == 0x3F81);
    CHECK(llm::element_cast<llm::bf16>(static_cast<float>(1.0039062500000002)).bits() == 0x3F80);
    // Narrow to narrow goes through float exactly, so it is the correctly rounded value.
    CHECK(static_cast<float>(llm::element_cast<llm::fp8_e4m3>(llm::bf16(0.3f))) == 0.3125f);
    CHECK(llm::element_cast<llm::f16>(llm::bf16(1e5f)).bits() == 0x7C00);  // overflows f16: Inf
    CHECK(llm::element_cast<double>(llm::f16::from_bits(0x0001)) == 0x1p-24);
    CHECK(llm::element_cast<float>(1e300) == std::numeric_limits<float>::infinity());
}

TEST_CASE("element_cast with saturate clamps overflow, keeps NaN") {
    CHECK(static_cast<float>(llm::element_cast<llm::fp8_e5m2>(llm::f16(65504.0f), llm::saturate)) ==
          57344.0f);
    CHECK(llm::element_cast<llm::fp8_e4m3>(1e300, llm::saturate).bits() == 0x7E);
    CHECK(llm::element_cast<llm::fp8_e4m3>(-std::numeric_limits<double>::infinity(), llm::saturate).bits() ==
          0xFE);
    CHECK(llm::element_cast<float>(1e300, llm::saturate) == std::numeric_limits<float>::max());
    CHECK(llm::element_cast<float>(-1e300, llm::saturate) == -std::numeric_limits<float>::max());
    CHECK(llm::element_cast<float>(3.0e38, llm::saturate) == 3.0e38f);
    CHECK(std::isnan(llm::element_cast<float>(std::numeric_limits<double>::quiet_NaN(), llm::saturate)));
    // Saturation means a finite result for float and double targets too.
    CHECK(llm::element_cast<double>(llm::bf16(std::numeric_limits<float>::infinity()), llm::saturate) ==
          std::numeric_limits<double>::max());
    CHECK(llm::from_float<float>(-std::numeric_limits<float>::infinity(), llm::saturate) ==
          -std::numeric_limits<float>::max());
    CHECK(llm::from_float<float>(2.5f, llm::saturate) == 2.5f);
    CHECK(llm::from_float<llm::f16>(1e6f, llm::saturate).bits() == 0x7BFF);
}
