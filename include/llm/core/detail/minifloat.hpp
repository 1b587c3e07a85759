// SPDX-License-Identifier: Apache-2.0
// The one implementation behind bf16, f16 and fp8: format description, exact rounding, storage class.
#pragma once

#include <llm/config.hpp>
#include <llm/core/detail/bit_cast.hpp>
#include <llm/core/saturate.hpp>

#include <concepts>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <type_traits>

namespace llm::detail {

/// How a format spends its top exponent code.
/// ieee: all-ones exponent means Inf (mantissa 0) or NaN (bf16, f16, fp8_e5m2).
/// nan_only: no Inf; only all-ones exponent and mantissa is NaN, the other all-ones-exponent
/// codes are finite (OCP fp8_e4m3, called "fn" by PyTorch and ml_dtypes).
enum class special_values { ieee, nan_only };

/// A binary floating-point format with a sign bit, ExponentBits exponent bits (IEEE bias
/// 2^(ExponentBits-1) - 1), MantissaBits stored mantissa bits, and subnormals.
template <int ExponentBits, int MantissaBits, special_values Specials>
struct minifloat_format {
    static_assert(ExponentBits >= 2 && ExponentBits <= 8 && MantissaBits >= 1 && MantissaBits <= 10,
                  "minifloat_format: the bit-level algorithms assume a format narrower than float");
    static constexpr int exponent_bits = ExponentBits;
    static constexpr int mantissa_bits = MantissaBits;
    static constexpr int bias = (1 << (ExponentBits - 1)) - 1;
    static constexpr bool has_infinity = Specials == special_values::ieee;
    using storage = std::conditional_t<(1 + ExponentBits + MantissaBits <= 8), std::uint8_t, std::uint16_t>;
    static_assert(sizeof(storage) * 8 == 1 + ExponentBits + MantissaBits,
                  "minifloat_format: no padding bits");

    static constexpr unsigned sign_bit = 1u << (ExponentBits + MantissaBits);
    static constexpr unsigned magnitude_mask = sign_bit - 1;
    static constexpr unsigned mantissa_mask = (1u << MantissaBits) - 1;
    /// Magnitude code right after the largest finite one: +Inf (ieee) or NaN (nan_only).
    static constexpr unsigned overflow_code =
        has_infinity ? ((1u << ExponentBits) - 1) << MantissaBits : magnitude_mask;
    static constexpr unsigned max_code = overflow_code - 1;
    /// The NaN produced from a NaN without payload: quiet bit (top mantissa bit) set.
    static constexpr unsigned quiet_nan_code =
        has_infinity ? overflow_code | (1u << (MantissaBits - 1)) : magnitude_mask;
};

/// Bit layout of the source types conversions start from.
template <class Source>
struct source_format;
template <>
struct source_format<float> {
    using bits = std::uint32_t;
    static constexpr int exponent_bits = 8;
    static constexpr int mantissa_bits = 23;
};
template <>
struct source_format<double> {
    using bits = std::uint64_t;
    static constexpr int exponent_bits = 11;
    static constexpr int mantissa_bits = 52;
};

/// v / 2^shift rounded to nearest, ties to even (shift >= 1, no overflow: v < 2^(bits-1)).
template <class U>
LLM_HD constexpr U round_shift(U v, int shift) noexcept {
    return (v + ((U(1) << (shift - 1)) - 1) + ((v >> shift) & 1)) >> shift;
}

/// Encodes x (float or double) in Format, rounding to nearest even once, directly from the
/// source bits (no double rounding through float for double inputs).
/// Overflow (a rounded magnitude past the largest finite one, or +-Inf): +-Inf for ieee
/// formats, NaN for nan_only ones, +-max when `saturate`. NaN: a quiet NaN of the same sign
/// keeping the payload bits that fit.
/// Written as straight-line code with selects (every path computed, every shift in range),
/// so that compilers vectorise loops of conversions.
template <class Format, class Source>
LLM_HD constexpr typename Format::storage encode(Source x, bool saturate) noexcept {
    using U = typename source_format<Source>::bits;
    constexpr int src_mantissa = source_format<Source>::mantissa_bits;
    constexpr int src_exponent = source_format<Source>::exponent_bits;
    constexpr int src_bias = (1 << (src_exponent - 1)) - 1;
    constexpr int drop = src_mantissa - Format::mantissa_bits;  // source mantissa bits rounded away
    constexpr U src_sign = U(1) << (src_exponent + src_mantissa);
    constexpr U src_inf = ((U(1) << src_exponent) - 1) << src_mantissa;
    constexpr U implicit_bit = U(1) << src_mantissa;

    const U u = detail::bit_cast<U>(x);
    const U a = u & (src_sign - 1);
    const unsigned sign = unsigned(u >> (src_exponent + src_mantissa))
                          << (Format::exponent_bits + Format::mantissa_bits);
    const int field = int(a >> src_mantissa);  // biased source exponent, 0 for zero and subnormals
    // The biased exponent the value would have in Format; source subnormals count as exponent
    // 1 (they are scaled by 2^(1 - bias) like the smallest normals).
    const int target_field = (field > 0 ? field : 1) - src_bias + Format::bias;

    // Normal in Format, or overflowing (target_field >= 1): rebias the exponent in place and
    // round the mantissa; a carry out of the mantissa correctly bumps the exponent. When both
    // biases agree (bf16 from float) source subnormals map onto target subnormals here too.
    // For other inputs this wraps around harmlessly (unsigned) and is not selected.
    const U normal = round_shift(U(a - (U(src_bias - Format::bias) << src_mantissa)), drop);
    // Subnormal in Format (target_field < 1): the significand, implicit bit included, in
    // units of Format's smallest subnormal. The shift is clamped to [drop + 1, src_mantissa + 2]:
    // the upper end already rounds every significand (< 2^(src_mantissa + 1)) to 0.
    int shift = drop + 1 - target_field;
    shift = shift < drop + 1 ? drop + 1 : shift > src_mantissa + 2 ? src_mantissa + 2 : shift;
    const U significand = (a & (implicit_bit - 1)) | (field > 0 ? implicit_bit : U(0));
    const U subnormal = round_shift(significand, shift);

    const U rounded = target_field >= 1 ? normal : subnormal;
    const unsigned overflowed = saturate ? Format::max_code : Format::overflow_code;
    const unsigned finite = rounded >= Format::overflow_code ? overflowed : unsigned(rounded);
    const unsigned nan =
        Format::quiet_nan_code | (Format::has_infinity ? unsigned(a >> drop) & Format::mantissa_mask : 0u);
    return static_cast<typename Format::storage>(sign | (a > src_inf ? nan : finite));
}

/// One step of the binary search that shifts a nonzero v < 2^(Mantissa + 1) left until bit
/// Mantissa is set, counting the shift in k.
template <int Step, int Mantissa>
LLM_HD constexpr void normalise_step(std::uint32_t& v, std::uint32_t& k) noexcept {
    if constexpr (Step <= Mantissa) {
        const bool low = v < (1u << (Mantissa + 1 - Step));
        v = low ? v << Step : v;
        k += low ? std::uint32_t(Step) : 0u;
    }
}

/// The exact float value of a Format code. NaN codes give a quiet float NaN of the same sign
/// (payload kept for ieee formats). Straight-line selects, like encode.
template <class Format>
LLM_HD constexpr float decode(typename Format::storage code) noexcept {
    constexpr int widen = 23 - Format::mantissa_bits;
    const std::uint32_t sign = std::uint32_t(code >> (Format::exponent_bits + Format::mantissa_bits)) << 31;
    const std::uint32_t magnitude = code & Format::magnitude_mask;
    // Normal: widen the mantissa and rebias the exponent. With float's own exponent range
    // (bf16) this is right for subnormals and zero too.
    std::uint32_t bits = (magnitude << widen) + (std::uint32_t(127 - Format::bias) << 23);
    if constexpr (Format::bias != 127) {
        // Zero or subnormal: magnitude * 2^(1 - bias - mantissa), a normal float. Shift the
        // magnitude left by k until its top bit sits where the implicit bit goes (a binary
        // search with selects), then encode like a normal with exponent lowered by k. Integer
        // only: GCC will not if-convert an int-to-float conversion or a float multiply
        // (-ftrapping-math), which would keep loops of conversions from vectorising.
        std::uint32_t v = magnitude;
        std::uint32_t k = 0;
        normalise_step<8, Format::mantissa_bits>(v, k);  // written out: GCC vectorises no inner loop
        normalise_step<4, Format::mantissa_bits>(v, k);
        normalise_step<2, Format::mantissa_bits>(v, k);
        normalise_step<1, Format::mantissa_bits>(v, k);
        const std::uint32_t subnormal =
            magnitude == 0 ? 0u : (v << widen) + ((std::uint32_t(127 - Format::bias) - k) << 23);
        bits = magnitude <= Format::mantissa_mask ? subnormal : bits;
    }
    const std::uint32_t special = Format::has_infinity
                                      ? 0x7F800000u | ((magnitude & Format::mantissa_mask) << widen) |
                                            (magnitude != Format::overflow_code ? 0x00400000u : 0u)
                                      : 0x7FC00000u;
    bits = magnitude >= Format::overflow_code ? special : bits;
    return detail::bit_cast<float>(sign | bits);
}

/// The storage and operations shared by the element types; Derived is the public type
/// (bf16, f16, fp8_e4m3, fp8_e5m2), which adds nothing but its name.
///
/// Semantics, the same for every format:
/// - holds only the bits (trivially copyable, standard layout); default construction leaves
///   them uninitialised like a float, value initialisation (`T{}`) gives +0;
/// - conversions from float, double and integers are explicit and round to nearest, ties to
///   even, once (a double is not rounded through float first; an integer is converted to
///   double first, exact up to 2^53);
/// - conversions to float and double are explicit and exact;
/// - no arithmetic operators: convert to float, compute, convert back, so every rounding is
///   visible in the code;
/// - ==, <, <=, >, >= compare numeric values like float does: -0 == +0, NaN compares unequal
///   to everything including itself. Compare `bits()` for bitwise identity;
/// - unary minus flips the sign bit (exact, also for NaN and zero).
template <class Derived, class Format>
class minifloat {
public:
    using format = Format;
    using storage_type = typename Format::storage;

    minifloat() = default;

    LLM_HD constexpr explicit minifloat(float x) noexcept : bits_(detail::encode<Format>(x, false)) {}
    LLM_HD constexpr explicit minifloat(double x) noexcept : bits_(detail::encode<Format>(x, false)) {}
    template <std::integral I>
    LLM_HD constexpr explicit minifloat(I x) noexcept : minifloat(static_cast<double>(x)) {}
    /// Saturating conversions: see llm::saturate_t.
    LLM_HD constexpr minifloat(float x, saturate_t) noexcept : bits_(detail::encode<Format>(x, true)) {}
    LLM_HD constexpr minifloat(double x, saturate_t) noexcept : bits_(detail::encode<Format>(x, true)) {}

    LLM_HD constexpr explicit operator float() const noexcept { return detail::decode<Format>(bits_); }
    LLM_HD constexpr explicit operator double() const noexcept {
        return static_cast<double>(detail::decode<Format>(bits_));
    }

    /// The value whose encoding is `bits` (every bit pattern is a valid value).
    LLM_HD static constexpr Derived from_bits(storage_type bits) noexcept {
        return detail::bit_cast<Derived>(bits);
    }
    LLM_HD constexpr storage_type bits() const noexcept { return bits_; }

    LLM_HD friend constexpr Derived operator-(Derived x) noexcept {
        return from_bits(static_cast<storage_type>(x.bits_ ^ Format::sign_bit));
    }
    LLM_HD friend constexpr bool operator==(Derived a, Derived b) noexcept {
        return static_cast<float>(a) == static_cast<float>(b);
    }
    LLM_HD friend constexpr bool operator<(Derived a, Derived b) noexcept {
        return static_cast<float>(a) < static_cast<float>(b);
    }
    LLM_HD friend constexpr bool operator<=(Derived a, Derived b) noexcept {
        return static_cast<float>(a) <= static_cast<float>(b);
    }
    LLM_HD friend constexpr bool operator>(Derived a, Derived b) noexcept {
        return static_cast<float>(a) > static_cast<float>(b);
    }
    LLM_HD friend constexpr bool operator>=(Derived a, Derived b) noexcept {
        return static_cast<float>(a) >= static_cast<float>(b);
    }
    /// Prints the float value (the stream's own float formatting applies).
    template <class Char, class Traits>
    friend std::basic_ostream<Char, Traits>& operator<<(std::basic_ostream<Char, Traits>& out, Derived x) {
        return out << static_cast<float>(x);
    }

private:
    storage_type bits_;
};

/// True for the library's minifloat element types (bf16, f16, fp8_e4m3, fp8_e5m2).
template <class T>
concept minifloat_type = std::is_base_of_v<minifloat<T, typename T::format>, T>;  // false without T::format

/// The members of std::numeric_limits<T> for a minifloat type T, derived from its format.
template <class T>
struct minifloat_limits {
private:
    using F = typename T::format;
    // floor(log10(2) * n) for the small n used here (30103 / 100000 ~ log10(2)).
    static constexpr int log10_2_times(int n) { return n * 30103 / 100000; }
    static constexpr double pow2(int e) {
        double x = 1.0;
        for (; e > 0; --e)
            x *= 2.0;
        for (; e < 0; ++e)
            x /= 2.0;
        return x;
    }
    static constexpr int floor_log10(double x) {
        int n = 0;
        for (; x >= 10.0; x /= 10.0)
            ++n;
        for (; x < 1.0; x *= 10.0)
            --n;
        return n;
    }
    static constexpr int max_field =
        F::has_infinity ? (1 << F::exponent_bits) - 2 : (1 << F::exponent_bits) - 1;

public:
    static constexpr bool is_specialized = true;
    static constexpr bool is_signed = true;
    static constexpr bool is_integer = false;
    static constexpr bool is_exact = false;
    static constexpr bool has_infinity = F::has_infinity;
    static constexpr bool has_quiet_NaN = true;
    static constexpr bool has_signaling_NaN = F::has_infinity;
    static constexpr std::float_denorm_style has_denorm = std::denorm_present;
    static constexpr bool has_denorm_loss = false;
    static constexpr std::float_round_style round_style = std::round_to_nearest;
    static constexpr bool is_iec559 = F::has_infinity && F::exponent_bits == 5 && F::mantissa_bits == 10;
    static constexpr bool is_bounded = true;
    static constexpr bool is_modulo = false;
    static constexpr int digits = F::mantissa_bits + 1;
    static constexpr int digits10 = log10_2_times(digits - 1);
    static constexpr int max_digits10 = 2 + log10_2_times(digits);
    static constexpr int radix = 2;
    static constexpr int min_exponent = 2 - F::bias;
    static constexpr int max_exponent = max_field - F::bias + 1;
    // ceil(log10(smallest normal)) and floor(log10(largest finite)), as for float.
    static constexpr int min_exponent10 = floor_log10(pow2(min_exponent - 1)) + 1;
    static constexpr int max_exponent10 =
        floor_log10(pow2(max_exponent - 1) * (2.0 - pow2(-F::mantissa_bits)));
    static constexpr bool traps = false;
    static constexpr bool tinyness_before = false;

    LLM_HD static constexpr T min() noexcept { return T::from_bits(1u << F::mantissa_bits); }
    LLM_HD static constexpr T max() noexcept { return T::from_bits(F::max_code); }
    LLM_HD static constexpr T lowest() noexcept { return T::from_bits(F::sign_bit | F::max_code); }
    LLM_HD static constexpr T epsilon() noexcept {
        return T::from_bits((F::bias - F::mantissa_bits) << F::mantissa_bits);
    }
    LLM_HD static constexpr T round_error() noexcept {
        return T::from_bits((F::bias - 1) << F::mantissa_bits);
    }
    /// +Inf; +0 for a format without Inf (as numeric_limits does for types without one).
    LLM_HD static constexpr T infinity() noexcept {
        return T::from_bits(F::has_infinity ? F::overflow_code : 0u);
    }
    LLM_HD static constexpr T quiet_NaN() noexcept { return T::from_bits(F::quiet_nan_code); }
    /// A signalling NaN (quiet bit clear); the quiet NaN for a format without one.
    LLM_HD static constexpr T signaling_NaN() noexcept {
        return T::from_bits(F::has_infinity ? F::overflow_code | 1u : F::quiet_nan_code);
    }
    LLM_HD static constexpr T denorm_min() noexcept { return T::from_bits(1u); }
};

}  // namespace llm::detail
