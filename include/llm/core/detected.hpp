// SPDX-License-Identifier: Apache-2.0
// llm::detected_or_t: a type computed from template arguments where it exists, a default otherwise.
#pragma once

namespace llm {

/// `type` is `Op<Args...>` where that names a type, `Default` otherwise (the library
/// fundamentals TS's detected_or): how a block or policy declares an optional member type
/// (`B::input_type`, `L::config`) without the caller naming it directly, which would drop
/// the caller by substitution failure when it is absent.
/// Example: `template <class L> using config_of = typename L::config; using C = llm::detected_or_t<int, config_of, L>;`
template <class Default, template <class...> class Op, class... Args>
struct detected_or {
    using type = Default;  ///< Op<Args...> is not a type
};

/// The case where `Op<Args...>` names a type.
/// Example: `static_assert(std::same_as<llm::detected_or<int, std::add_pointer_t, char>::type, char*>);`
template <class Default, template <class...> class Op, class... Args>
    requires requires { typename Op<Args...>; }
struct detected_or<Default, Op, Args...> {
    using type = Op<Args...>;  ///< Op<Args...>
};

/// `Op<Args...>` where that names a type, `Default` otherwise (llm::detected_or).
/// Example: `template <class B> using input_of = typename B::input_type; using In = llm::detected_or_t<float, input_of, B>;`
template <class Default, template <class...> class Op, class... Args>
using detected_or_t = typename detected_or<Default, Op, Args...>::type;

}  // namespace llm
