// SPDX-License-Identifier: Apache-2.0
// llm::io::dtype: the element types model files store (safetensors' list), their sizes, names
// and the C++ types that read them.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/fp8.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

namespace llm::io {

/// An element type as stored in a model file, little-endian. The enumerators follow the
/// safetensors specification's order (increasing alignment, then the order the spec lists
/// types of one size); the safetensors writer sorts tensors by it, so do not reorder them.
/// The types without a C++ element type here (F4, F6_*, F8_E8M0, the FNUZ variants, C64)
/// can be read and written as raw bytes only.
enum class dtype : std::uint8_t {
    BOOL,         ///< bool, one byte (0 or 1)
    F4,           ///< 4-bit float E2M1 (two per byte)
    F6_E2M3,      ///< 6-bit float E2M3 (packed)
    F6_E3M2,      ///< 6-bit float E3M2 (packed)
    U8,           ///< std::uint8_t
    I8,           ///< std::int8_t
    F8_E5M2,      ///< llm::fp8_e5m2
    F8_E4M3,      ///< llm::fp8_e4m3 (PyTorch float8_e4m3fn)
    F8_E8M0,      ///< 8-bit exponent-only scale (MX formats)
    F8_E4M3FNUZ,  ///< FP8 E4M3, no negative zero, NaN = 0x80
    F8_E5M2FNUZ,  ///< FP8 E5M2, no negative zero, NaN = 0x80
    I16,          ///< std::int16_t
    U16,          ///< std::uint16_t
    F16,          ///< llm::f16
    BF16,         ///< llm::bf16
    I32,          ///< std::int32_t
    U32,          ///< std::uint32_t
    F32,          ///< float
    C64,          ///< complex of two floats
    F64,          ///< double
    I64,          ///< std::int64_t
    U64,          ///< std::uint64_t
};

/// Number of dtype enumerators.
inline constexpr std::size_t dtype_count = 22;

namespace detail {

struct dtype_facts {
    std::string_view name;  // the safetensors spelling
    std::size_t bits;       // bits per element
    std::string_view cpp;   // the C++ type that reads it, or "" when none does
};

inline constexpr std::array<dtype_facts, dtype_count> dtype_table = {{
    {"BOOL", 8, "bool"},
    {"F4", 4, ""},
    {"F6_E2M3", 6, ""},
    {"F6_E3M2", 6, ""},
    {"U8", 8, "std::uint8_t"},
    {"I8", 8, "std::int8_t"},
    {"F8_E5M2", 8, "llm::fp8_e5m2"},
    {"F8_E4M3", 8, "llm::fp8_e4m3"},
    {"F8_E8M0", 8, ""},
    {"F8_E4M3FNUZ", 8, ""},
    {"F8_E5M2FNUZ", 8, ""},
    {"I16", 16, "std::int16_t"},
    {"U16", 16, "std::uint16_t"},
    {"F16", 16, "llm::f16"},
    {"BF16", 16, "llm::bf16"},
    {"I32", 32, "std::int32_t"},
    {"U32", 32, "std::uint32_t"},
    {"F32", 32, "float"},
    {"C64", 64, ""},
    {"F64", 64, "double"},
    {"I64", 64, "std::int64_t"},
    {"U64", 64, "std::uint64_t"},
}};

inline constexpr const dtype_facts& facts(dtype t) noexcept { return dtype_table[static_cast<std::size_t>(t)]; }

template <class T>
struct dtype_of_impl {};
#define LLM_IO_DTYPE_OF(T, D)                      \
    template <>                                    \
    struct dtype_of_impl<T> {                      \
        static constexpr dtype value = dtype::D;   \
    };
LLM_IO_DTYPE_OF(bool, BOOL)
LLM_IO_DTYPE_OF(std::uint8_t, U8)
LLM_IO_DTYPE_OF(std::int8_t, I8)
LLM_IO_DTYPE_OF(llm::fp8_e5m2, F8_E5M2)
LLM_IO_DTYPE_OF(llm::fp8_e4m3, F8_E4M3)
LLM_IO_DTYPE_OF(std::int16_t, I16)
LLM_IO_DTYPE_OF(std::uint16_t, U16)
LLM_IO_DTYPE_OF(llm::f16, F16)
LLM_IO_DTYPE_OF(llm::bf16, BF16)
LLM_IO_DTYPE_OF(std::int32_t, I32)
LLM_IO_DTYPE_OF(std::uint32_t, U32)
LLM_IO_DTYPE_OF(float, F32)
LLM_IO_DTYPE_OF(double, F64)
LLM_IO_DTYPE_OF(std::int64_t, I64)
LLM_IO_DTYPE_OF(std::uint64_t, U64)
#undef LLM_IO_DTYPE_OF

}  // namespace detail

/// The file spelling of a dtype: `dtype_name(dtype::BF16) == "BF16"`.
constexpr std::string_view dtype_name(dtype t) noexcept { return detail::facts(t).name; }

/// Bits per element (4 for F4, 6 for F6_*, otherwise 8 x the byte size).
constexpr std::size_t dtype_bits(dtype t) noexcept { return detail::facts(t).bits; }

/// The C++ type that reads a dtype, as spelled in code (`"llm::bf16"`), or "" for the
/// raw-only types (F4, F6_*, F8_E8M0, FNUZ, C64).
constexpr std::string_view dtype_cpp_name(dtype t) noexcept { return detail::facts(t).cpp; }

/// The dtype spelled `name` in a file ("F32", "BF16", ...; case-sensitive), or nullopt.
/// Example: `auto t = llm::io::parse_dtype("F8_E4M3");  // dtype::F8_E4M3`
constexpr std::optional<dtype> parse_dtype(std::string_view name) noexcept {
    for (std::size_t i = 0; i < dtype_count; ++i)
        if (detail::dtype_table[i].name == name) return static_cast<dtype>(i);
    return std::nullopt;
}

/// The C++ types with a dtype: bool, the fixed-width integers, float, double, llm::f16,
/// llm::bf16, llm::fp8_e4m3, llm::fp8_e5m2 (cv-qualifiers ignored).
template <class T>
concept has_dtype = requires { detail::dtype_of_impl<std::remove_cv_t<T>>::value; };

/// The dtype that stores T: `dtype_of<llm::bf16> == dtype::BF16`.
template <has_dtype T>
inline constexpr dtype dtype_of = detail::dtype_of_impl<std::remove_cv_t<T>>::value;

/// Calls `f(std::type_identity<T>{})` with the C++ type T that reads `t` and returns true, or
/// returns false without calling f for the raw-only types (F4, F6_*, F8_E8M0, FNUZ, C64).
/// Example: `llm::io::visit_dtype(t, [&](auto tag) { using T = typename decltype(tag)::type; ... });`
template <class F>
constexpr bool visit_dtype(dtype t, F&& f) {
    switch (t) {
    case dtype::BOOL: f(std::type_identity<bool>{}); return true;
    case dtype::U8: f(std::type_identity<std::uint8_t>{}); return true;
    case dtype::I8: f(std::type_identity<std::int8_t>{}); return true;
    case dtype::F8_E5M2: f(std::type_identity<fp8_e5m2>{}); return true;
    case dtype::F8_E4M3: f(std::type_identity<fp8_e4m3>{}); return true;
    case dtype::I16: f(std::type_identity<std::int16_t>{}); return true;
    case dtype::U16: f(std::type_identity<std::uint16_t>{}); return true;
    case dtype::F16: f(std::type_identity<f16>{}); return true;
    case dtype::BF16: f(std::type_identity<bf16>{}); return true;
    case dtype::I32: f(std::type_identity<std::int32_t>{}); return true;
    case dtype::U32: f(std::type_identity<std::uint32_t>{}); return true;
    case dtype::F32: f(std::type_identity<float>{}); return true;
    case dtype::F64: f(std::type_identity<double>{}); return true;
    case dtype::I64: f(std::type_identity<std::int64_t>{}); return true;
    case dtype::U64: f(std::type_identity<std::uint64_t>{}); return true;
    default: return false;
    }
}

// The table and the enum agree (the writer's tensor order depends on the enum's order).
static_assert(dtype_name(dtype::BOOL) == "BOOL" && dtype_name(dtype::F8_E4M3) == "F8_E4M3" &&
              dtype_name(dtype::BF16) == "BF16" && dtype_name(dtype::U64) == "U64" &&
              static_cast<std::size_t>(dtype::U64) + 1 == dtype_count);

}  // namespace llm::io
