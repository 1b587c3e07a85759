// SPDX-License-Identifier: Apache-2.0
// The one implementation behind bf16, f16 and the fp8 types: format description, exact rounding, storage class.
#pragma once

#include <llm/config.hpp>
#include <llm/core/detail/bit_cast.hpp>

#include <concepts>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <type_traits>

namespace llm {

/// Tag selecting saturating conversion (OCP FP8 "satfinite", PTX `cvt.satfinite`): a value
/// beyond the largest finite magnitude, and +-Inf, become +-max instead of Inf (or NaN for
/// fp8_e4m3, which has no Inf). NaN stays NaN. Quantisers use it after scaling.
/// Example: `llm::fp8_e4m3 q(1000.0f, llm::saturate);  // 448`
struct saturate_t {
    explicit saturate_t() = default;
};
inline constexpr saturate_t saturate{};

}  // namespace llm

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
    static_assert(sizeof(storage) * 8 == 1 + ExponentBits + MantissaBits, "minifloat_format: no padding bits");

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
template <class Format, class Source>
LLM_HD constexpr typename Format::storage encode(Source x, bool saturate) noexcept {
    using U = typename source_format<Source>::bits;
    constexpr int src_mantissa = source_format<Source>::mantissa_bits;
    constexpr int src_exponent = source_format<Source>::exponent_bits;
    constexpr int src_bias = (1 << (src_exponent - 1)) - 1;
    constexpr int mantissa = Format::mantissa_bits;
    constexpr int drop = src_mantissa - mantissa;  // source mantissa bits rounded away
    constexpr U src_sign = U(1) << (src_exponent + src_mantissa);
    constexpr U src_inf = ((U(1) << src_exponent) - 1) << src_mantissa;

    const U u = detail::bit_cast<U>(x);
    const U a = u & (src_sign - 1);
    const unsigned sign = (u & src_sign) != 0 ? Format::sign_bit : 0u;
    unsigned code;
    if (a > src_inf) {
        code = Format::quiet_nan_code | (Format::has_infinity ? unsigned(a >> drop) & Format::mantissa_mask : 0u);
    } else {
        const int field = int(a >> src_mantissa);  // biased source exponent, 0 for zero and subnormals
        // The biased exponent the value would have in Format; source subnormals count as
        // exponent 1 (they are scaled by 2^(1 - bias) like the smallest normals).
        const int target_field = (field > 0 ? field : 1) - src_bias + Format::bias;
        U rounded;
        if (target_field >= 1) {
            // Normal in Format, or overflowing: rebias the exponent in place and round the
            // mantissa; a carry out of the mantissa correctly bumps the exponent. When both
            // biases agree (bf16 from float) source subnormals map onto target subnormals here.
            rounded = round_shift(U(a - (U(src_bias - Format::bias) << src_mantissa)), drop);
        } else {
            // Subnormal in Format: express the significand (implicit bit included) in units of
            // Format's smallest subnormal. shift > src_mantissa + 1 means below half of it.
            const int shift = drop + 1 - target_field;
            const U significand = (a & ((U(1) << src_mantissa) - 1)) | (field > 0 ? U(1) << src_mantissa : U(0));
            rounded = shift > src_mantissa + 1 ? U(0) : round_shift(significand, shift);
        }
        code = rounded >= Format::overflow_code ? (saturate ? Format::max_code : Format::overflow_code)
                                                : unsigned(rounded);
    }
    return static_cast<typename Format::storage>(sign | code);
}

/// The exact float value of a Format code. NaN codes give a quiet float NaN of the same sign
/// (payload kept for ieee formats).
template <class Format>
LLM_HD constexpr float decode(typename Format::storage code) noexcept {
    constexpr int mantissa = Format::mantissa_bits;
    constexpr int widen = 23 - mantissa;
    const std::uint32_t sign = (code & Format::sign_bit) != 0 ? 0x80000000u : 0u;
    const std::uint32_t magnitude = code & Format::magnitude_mask;
    std::uint32_t bits;
    if (magnitude >= Format::overflow_code) {
        bits = Format::has_infinity ? 0x7F800000u | ((magnitude & Format::mantissa_mask) << widen) |
                                          (magnitude != Format::overflow_code ? 0x00400000u : 0u)
                                    : 0x7FC00000u;
    } else if (magnitude > Format::mantissa_mask || Format::bias == 127) {
        // Normal (or, with float's own exponent range, any finite code): widen the mantissa
        // and rebias the exponent.
        bits = (magnitude << widen) + (std::uint32_t(127 - Format::bias) << 23);
    } else {
        // Zero or subnormal: magnitude * 2^(1 - bias - mantissa), a normal float computed
        // exactly (small integer times a power of two).
        constexpr float unit = detail::bit_cast<float>(std::uint32_t(127 + 1 - Format::bias - mantissa) << 23);
        bits = detail::bit_cast<std::uint32_t>(static_cast<float>(magnitude) * unit);
    }
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
concept minifloat_type =
    requires { typename T::format; } && std::is_base_of_v<minifloat<T, typename T::format>, T>;

/// The members of std::numeric_limits<T> for a minifloat type T, derived from its format.
template <class T>
struct minifloat_limits {
private:
    using F = typename T::format;
    // floor(log10(2) * n) for the small n used here (30103 / 100000 ~ log10(2)).
    static constexpr int log10_2_times(int n) { return n * 30103 / 100000; }
    static constexpr double pow2(int e) {
        double x = 1.0;
        for (; e > 0; --e) x *= 2.0;
        for (; e < 0; ++e) x /= 2.0;
        return x;
    }
    static constexpr int floor_log10(double x) {
        int n = 0;
        for (; x >= 10.0; x /= 10.0) ++n;
        for (; x < 1.0; x *= 10.0) --n;
        return n;
    }
    static constexpr int max_field = F::has_infinity ? (1 << F::exponent_bits) - 2 : (1 << F::exponent_bits) - 1;

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
    static constexpr int max_exponent10 = floor_log10(pow2(max_exponent - 1) * (2.0 - pow2(-F::mantissa_bits)));
    static constexpr bool traps = false;
    static constexpr bool tinyness_before = false;

    LLM_HD static constexpr T min() noexcept { return T::from_bits(1u << F::mantissa_bits); }
    LLM_HD static constexpr T max() noexcept { return T::from_bits(F::max_code); }
    LLM_HD static constexpr T lowest() noexcept { return T::from_bits(F::sign_bit | F::max_code); }
    LLM_HD static constexpr T epsilon() noexcept { return T::from_bits((F::bias - F::mantissa_bits) << F::mantissa_bits); }
    LLM_HD static constexpr T round_error() noexcept { return T::from_bits((F::bias - 1) << F::mantissa_bits); }
    /// +Inf; +0 for a format without Inf (as numeric_limits does for types without one).
    LLM_HD static constexpr T infinity() noexcept { return T::from_bits(F::has_infinity ? F::overflow_code : 0u); }
    LLM_HD static constexpr T quiet_NaN() noexcept { return T::from_bits(F::quiet_nan_code); }
    /// A signalling NaN (quiet bit clear); the quiet NaN for a format without one.
    LLM_HD static constexpr T signaling_NaN() noexcept {
        return T::from_bits(F::has_infinity ? F::overflow_code | 1u : F::quiet_nan_code);
    }
    LLM_HD static constexpr T denorm_min() noexcept { return T::from_bits(1u); }
};

}  // namespace llm::detail
