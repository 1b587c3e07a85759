// SPDX-License-Identifier: Apache-2.0
// Accessor policies of llm::tensor_view (std::mdspan's AccessorPolicy): how an offset becomes an element.
#pragma once

#include <llm/config.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm {

/// An accessor policy, as std::mdspan's AccessorPolicy requirements (structural: any type with
/// these members works, the library lists none):
/// - `element_type`: the logical element (const when read-only), an object type;
/// - `data_handle_type`: what a view stores and data() returns (a pointer for the default
///   accessor, a pointer to quantization blocks for llm::quant's accessors);
/// - `reference`: what element access returns (`T&`, or a value for decoded elements);
/// - `offset_policy`: the accessor of a view that starts `i` elements later (often the same
///   type), constructible from this one, with the same element_type;
/// - `access(p, i)`: element `i` (the layout mapping's offset) of handle `p`, as a `reference`;
/// - `offset(p, i)`: the handle of element `i`, an `offset_policy::data_handle_type`; slicing
///   and selecting go through it (a policy may refuse offsets it cannot represent).
/// The policy and its handle are copyable and nothrow movable.
/// Example: `static_assert(llm::accessor_policy<llm::default_accessor<const float>>);`
template <class A>
concept accessor_policy =
    std::copyable<A> && std::is_nothrow_move_constructible_v<A> && std::is_nothrow_move_assignable_v<A> &&
    std::is_nothrow_swappable_v<A> && requires {
        typename A::element_type;
        typename A::reference;
        typename A::data_handle_type;
        typename A::offset_policy;
    } && std::is_object_v<typename A::element_type> && !std::is_abstract_v<typename A::element_type> &&
    std::copyable<typename A::data_handle_type> && std::is_nothrow_move_constructible_v<typename A::data_handle_type> &&
    std::is_nothrow_move_assignable_v<typename A::data_handle_type> &&
    std::is_nothrow_swappable_v<typename A::data_handle_type> &&
    std::constructible_from<typename A::offset_policy, const A&> &&
    std::same_as<typename A::offset_policy::element_type, typename A::element_type> &&
    requires(const A& a, const typename A::data_handle_type& p, std::size_t i) {
        { a.access(p, i) } -> std::same_as<typename A::reference>;
        { a.offset(p, i) } -> std::same_as<typename A::offset_policy::data_handle_type>;
    };

/// The accessor of plain memory (std::default_accessor): element i is p[i]. Empty, so a view
/// with it holds nothing beyond its pointer and mapping. A `default_accessor<U>` converts to
/// `default_accessor<T>` when `U*` converts to `T*` by adding const only.
/// Template parameters:
///   T — the element type, possibly const.
/// Example: `llm::default_accessor<const float> a; float x = a.access(p, 3);  // p[3]`
template <class T>
struct default_accessor {
    using offset_policy = default_accessor;  ///< Offsetting keeps the policy.
    using element_type = T;                  ///< The element type, const kept.
    using reference = T&;                    ///< What access returns.
    using data_handle_type = T*;             ///< A plain pointer.

    /// The only state there is: none.
    LLM_HD constexpr default_accessor() noexcept = default;

    /// From the accessor of U where U* -> T* only adds const (float -> const float).
    template <class U>
        requires std::is_convertible_v<U (*)[], T (*)[]>
    LLM_HD constexpr default_accessor(default_accessor<U>) noexcept {}  // NOLINT(google-explicit-constructor)

    /// p[i].
    LLM_HD constexpr reference access(data_handle_type p, std::size_t i) const noexcept { return p[i]; }
    /// p + i.
    LLM_HD constexpr data_handle_type offset(data_handle_type p, std::size_t i) const noexcept { return p + i; }
};

static_assert(accessor_policy<default_accessor<float>> && accessor_policy<default_accessor<const double>>);
static_assert(std::is_empty_v<default_accessor<float>> && std::is_trivially_copyable_v<default_accessor<float>>);

/// A view whose elements are plain memory: a type with no `accessor_type` member (an owning
/// llm::tensor, a user's own view type) or one whose accessor is
/// llm::default_accessor<element_type>. Then data()[offset] is the element, so code that reads
/// or writes data() directly (every dense kernel, fill, copy, memcpy) may take it; a view
/// through another accessor (quantized blocks, a scaled view) is refused.
/// Example: `static_assert(llm::direct_access<llm::tensor_view<float, llm::dims<2>>>);`
template <class V>
concept direct_access =
    !requires { typename std::remove_cvref_t<V>::accessor_type; } ||
    std::same_as<typename std::remove_cvref_t<V>::accessor_type,
                 default_accessor<typename std::remove_cvref_t<V>::element_type>>;

}  // namespace llm
