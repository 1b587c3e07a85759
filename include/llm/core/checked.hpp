// SPDX-License-Identifier: Apache-2.0
// Overflow-checked size arithmetic and allocation limits for sizes that come from users or files.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>

#include <cstddef>
#include <limits>
#include <new>
#include <utility>
#include <vector>

namespace llm {

/// The largest single allocation the library attempts, in bytes: 2^47 (128 TiB), the user
/// address space of x86-64 and AArch64 with 4-level page tables. A larger request cannot
/// succeed on any machine we run on, so it is refused with llm::error before asking the
/// allocator (which, under overcommit or a sanitizer, might crash instead of failing).
inline constexpr std::size_t max_allocation_bytes = std::size_t{1} << 47;

/// a * b, or llm::error naming `function`, `what` and both operands when it overflows std::size_t.
/// Example: `std::size_t n = llm::checked_mul(rows, cols, "my_fn", "rows * cols");`
inline std::size_t checked_mul(std::size_t a, std::size_t b, const char* function, const char* what) {
    llm::check(b == 0 || a <= std::numeric_limits<std::size_t>::max() / b, function, ": ", what, " = ", a, " * ", b,
               " overflows std::size_t");
    return a * b;
}

/// a + b, or llm::error naming `function`, `what` and both operands when it overflows std::size_t.
/// Example: `std::size_t n = llm::checked_add(len, extra, "my_fn", "len + extra");`
inline std::size_t checked_add(std::size_t a, std::size_t b, const char* function, const char* what) {
    llm::check(a <= std::numeric_limits<std::size_t>::max() - b, function, ": ", what, " = ", a, " + ", b,
               " overflows std::size_t");
    return a + b;
}

/// The bytes of `count` elements of T, or llm::error naming `function` and `what` when that
/// overflows or exceeds llm::max_allocation_bytes. Call it before allocating user-sized memory.
/// Example: `llm::checked_bytes<float>(n, "my_fn", "the scores");`
template <class T>
std::size_t checked_bytes(std::size_t count, const char* function, const char* what) {
    const std::size_t bytes = checked_mul(count, sizeof(T), function, what);
    llm::check(bytes <= max_allocation_bytes, function, ": ", what, " need ", bytes, " bytes (", count, " elements of ",
               sizeof(T), " bytes), more than the allocation limit of ", max_allocation_bytes, " bytes");
    return bytes;
}

/// Runs `allocate()` (which allocates about `bytes` bytes) and turns std::bad_alloc into
/// llm::error naming `function`, `what` and the size. Without exceptions an allocation failure
/// terminates as usual. Example: `llm::allocating(bytes, "my_fn", "the cache", [&] { v.resize(n); });`
template <class F>
decltype(auto) allocating(std::size_t bytes, const char* function, const char* what, F&& allocate) {
#if defined(LLM_NO_EXCEPTIONS)
    (void)bytes, (void)function, (void)what;
    return std::forward<F>(allocate)();
#else
    try {
        return std::forward<F>(allocate)();
    } catch (const std::bad_alloc&) {
        fail(function, ": allocating ", what, " (", bytes, " bytes) failed: out of memory");
    }
#endif
}

/// A std::vector of `count` copies of `value`, its bytes checked (checked_bytes) and a failed
/// allocation reported (allocating), both naming `function` and `what`. For user-sized scratch.
/// Example: `auto sums = llm::checked_vector<double>(n, "my_fn", "the sums");`
template <class T>
std::vector<T> checked_vector(std::size_t count, const char* function, const char* what, const T& value = T{}) {
    return allocating(checked_bytes<T>(count, function, what), function, what,
                      [&] { return std::vector<T>(count, value); });
}

}  // namespace llm
