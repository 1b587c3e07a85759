// SPDX-License-Identifier: Apache-2.0
// llm::detail::bit_cast: std::bit_cast that nvcc also accepts in host+device constexpr code.
#pragma once

#include <llm/config.hpp>

#include <type_traits>

namespace llm::detail {

/// Reinterprets the object representation of `from` as a `To`, like std::bit_cast (C++20).
/// std::bit_cast is a host-only function to nvcc; the builtin it wraps is available to
/// GCC >= 11, Clang >= 9, MSVC >= 19.27 and nvcc's front end in host and device code, and it
/// is usable in constant expressions (a reinterpret_cast or union pun is not).
/// To, From: trivially copyable types of the same size.
/// Example: `std::uint32_t u = llm::detail::bit_cast<std::uint32_t>(1.0f);  // 0x3f800000`
template <class To, class From>
LLM_HD constexpr To bit_cast(const From& from) noexcept {
    static_assert(sizeof(To) == sizeof(From), "bit_cast: To and From must have the same size");
    static_assert(std::is_trivially_copyable_v<To> && std::is_trivially_copyable_v<From>,
                  "bit_cast: To and From must be trivially copyable");
    return __builtin_bit_cast(To, from);
}

}  // namespace llm::detail
