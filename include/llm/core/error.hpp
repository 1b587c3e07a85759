// SPDX-License-Identifier: Apache-2.0
// llm::error and the checks that raise it: the one way the library reports bad input.
#pragma once

#include <llm/config.hpp>

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace llm {

/// The exception every public entry point throws on bad input (shapes, sizes, values, file
/// contents). The message names the function, the argument and the values seen, e.g.
/// `"flash_forward: q has 8 heads but k has 3; q heads must be a multiple of kv heads"`.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return std::move(out).str();
}

}  // namespace detail

/// Raises llm::error with the concatenation of `parts` (each streamed with operator<<).
/// With LLM_NO_EXCEPTIONS the message is printed to stderr and the program aborts.
/// Example: `llm::fail("rmsnorm: eps = ", eps, " must be > 0");`
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
    std::string message = detail::concat(parts...);
#if defined(LLM_NO_EXCEPTIONS)
    std::fprintf(stderr, "llm::error: %s\n", message.c_str());
    std::abort();
#else
    throw error(std::move(message));
#endif
}

/// Raises llm::error with the message built from `parts` when `condition` is false. The
/// message is only built on failure, so checks are cheap on the good path.
/// Example: `llm::check(x.extent(0) == y.extent(0), "add: x has ", x.extent(0), " rows but y has ", y.extent(0));`
template <class... Parts>
constexpr void check(bool condition, const Parts&... parts) {
    if (!condition) [[unlikely]] {
        fail(parts...);
    }
}

}  // namespace llm
