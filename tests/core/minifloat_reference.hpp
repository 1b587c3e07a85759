// SPDX-License-Identifier: Apache-2.0
// Test oracle for the element types: values from the format fields (std::ldexp), rounding by table search.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/fp8.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace llm_test {

// The formats as the specifications state them, written out here rather than read from the
// library, so a wrong format parameter in the library cannot agree with itself.
struct spec {
    int exponent_bits;
    int mantissa_bits;
    bool has_infinity;  // false: OCP E4M3, whose only NaN is S.1111.111 and which has no Inf
};

template <class T>
inline constexpr spec spec_of = {};
template <>
inline constexpr spec spec_of<llm::bf16> = {8, 7, true};
template <>
inline constexpr spec spec_of<llm::f16> = {5, 10, true};
template <>
inline constexpr spec spec_of<llm::fp8_e4m3> = {4, 3, false};
template <>
inline constexpr spec spec_of<llm::fp8_e5m2> = {5, 2, true};

// The reference of one format: value of every code, and correctly rounded encoding of a
// double by searching the sorted table of finite values (an algorithm unrelated to the
// library's bit manipulation).
class reference {
public:
    explicit reference(spec s) : s_(s) {
        bias_ = (1 << (s.exponent_bits - 1)) - 1;
        sign_bit_ = 1u << (s.exponent_bits + s.mantissa_bits);
        for (std::uint32_t code = 0; code < sign_bit_; ++code) {
            const double v = decode(code);
            if (!std::isfinite(v)) {
                break;  // the finite positive codes are exactly 0 .. first non-finite - 1
            }
            values_.push_back(v);
        }
        // The value the next code would have if the exponent pattern continued: rounding
        // towards it means overflow (IEEE 754 rounds to Inf exactly when it would pick it).
        const double top = values_.back();
        beyond_ = top + (top - values_[values_.size() - 2]);
    }

    [[nodiscard]] std::uint32_t sign_bit() const { return sign_bit_; }
    [[nodiscard]] std::uint32_t max_code() const { return std::uint32_t(values_.size() - 1); }
    [[nodiscard]] const std::vector<double>& positive_values() const { return values_; }
    [[nodiscard]] double beyond_max() const { return beyond_; }
    [[nodiscard]] bool has_infinity() const { return s_.has_infinity; }
    [[nodiscard]] int bias() const { return bias_; }
    // Code of +Inf (IEEE-like formats) or of +NaN (E4M3): what non-saturating overflow gives.
    [[nodiscard]] std::uint32_t overflow_code() const {
        return s_.has_infinity ? ((1u << s_.exponent_bits) - 1) << s_.mantissa_bits : sign_bit_ - 1;
    }

    // The value of a code, from its fields: (-1)^s * 2^(e - bias) * 1.m, or 2^(1 - bias) * 0.m.
    [[nodiscard]] double decode(std::uint32_t code) const {
        const int m_bits = s_.mantissa_bits;
        const std::uint32_t e_max = (1u << s_.exponent_bits) - 1;
        const std::uint32_t m_max = (1u << m_bits) - 1;
        const bool negative = (code & sign_bit_) != 0;
        const std::uint32_t e = (code >> m_bits) & e_max;
        const std::uint32_t m = code & m_max;
        double v;
        if (s_.has_infinity && e == e_max) {
            v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
        } else if (!s_.has_infinity && e == e_max && m == m_max) {
            v = std::numeric_limits<double>::quiet_NaN();
        } else if (e == 0) {
            v = std::ldexp(double(m), 1 - bias_ - m_bits);
        } else {
            v = std::ldexp(double(m + (1u << m_bits)), int(e) - bias_ - m_bits);
        }
        return negative ? -v : v;  // also -0 and -NaN
    }

    // The code a correctly rounded (nearest, ties to even) conversion of x must give; for
    // NaN x the NaN code the library documents (sign kept; callers check NaN-ness itself).
    [[nodiscard]] std::uint32_t encode(double x, bool saturate) const {
        const std::uint32_t sign = std::signbit(x) ? sign_bit_ : 0u;
        if (std::isnan(x)) {
            return sign |
                   (s_.has_infinity ? overflow_code() | (1u << (s_.mantissa_bits - 1)) : sign_bit_ - 1);
        }
        const double a = std::fabs(x);
        std::uint32_t code;
        if (std::isinf(a)) {
            code = max_code() + 1;
        } else {
            // values_[i] <= a < next, where next is values_[i + 1] or beyond_.
            const auto i =
                std::size_t(std::upper_bound(values_.begin(), values_.end(), a) - values_.begin()) - 1;
            const double lo = values_[i];
            const double hi = i + 1 < values_.size() ? values_[i + 1] : beyond_;
            // 2a and lo + hi are exact in double (few significant bits, a factor 2 apart).
            const double twice = 2 * a;
            const double sum = lo + hi;
            if (twice < sum || (twice == sum && i % 2 == 0)) {
                code = std::uint32_t(i);
            } else {
                code = std::uint32_t(i + 1);
            }
        }
        if (code > max_code()) {
            code = saturate ? max_code() : overflow_code();
        }
        return sign | code;
    }

private:
    spec s_;
    int bias_ = 0;
    std::uint32_t sign_bit_ = 0;
    std::vector<double> values_;  // positive finite values, ascending, index == code
    double beyond_ = 0;
};

// Counts failures of a check run millions of times and keeps the first few descriptions,
// so a loop costs one doctest assertion and a failure still says which inputs broke.
class mismatches {
public:
    template <class... Parts>
    void add(const Parts&... parts) {
        if (count_++ < 8) {
            std::ostringstream line;
            (line << ... << parts);
            text_ += line.str() + "\n";
        }
    }
    [[nodiscard]] std::size_t count() const { return count_; }
    [[nodiscard]] const std::string& text() const { return text_; }

private:
    std::size_t count_ = 0;
    std::string text_;
};

}  // namespace llm_test
