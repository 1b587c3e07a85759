// SPDX-License-Identifier: Apache-2.0
// llm::extents: a shape whose dimensions are each fixed at compile time or stored at run time.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

namespace llm {

/// Marks a dimension whose size is only known at run time: `llm::extents<llm::dyn, 64>`.
/// Equal to std::dynamic_extent (the largest std::size_t), spelt out so that this header,
/// included everywhere, need not include <span>.
inline constexpr std::size_t dyn = static_cast<std::size_t>(-1);

// Internals of the tensor module. They live in llm::detail::tensor_impl rather than
// llm::tensor::detail because llm::tensor is the owning tensor class, not a namespace.
namespace detail::tensor_impl {

// Storage for the run-time dimensions only; the specialisation for none is empty so that a
// fully static extents (and every mapping and view built on it) carries no data at all.
template <std::size_t N>
struct dynamic_sizes {
    std::size_t values[N] = {};
};
template <>
struct dynamic_sizes<0> {};

template <class>
inline constexpr std::size_t always_dyn = dyn;

// A size given by the caller must equal the static extent it lands on. On the host this is
// bad input (llm::error); device code cannot throw, so there it traps.
LLM_HD constexpr void require_static_match(std::size_t r, std::size_t want, std::size_t got) {
#if defined(__CUDA_ARCH__)
    if (want != dyn && want != got) {
        __trap();
    }
#else
    llm::check(want == dyn || want == got, "extents: dim ", r, " is static with extent ", want, " but ", got,
          " was given");
#endif
}

}  // namespace detail::tensor_impl

/// The shape of a tensor: one extent per dimension, each either static (a template argument)
/// or `llm::dyn` (stored at run time). Static extents cost nothing: `extents<3, 4>` is empty.
/// Template parameters:
///   Exts... — one per dimension: its size, or llm::dyn when known only at run time.
/// Example: `llm::extents<llm::dyn, 64> e(n);  // e.extent(0) == n, e.extent(1) == 64`
template <std::size_t... Exts>
class extents : private detail::tensor_impl::dynamic_sizes<((Exts == dyn) + ... + std::size_t{0})> {
    static constexpr std::size_t rank_ = sizeof...(Exts);
    static constexpr std::size_t rank_dynamic_ = ((Exts == dyn) + ... + std::size_t{0});

public:
    using index_type = std::size_t;  ///< Extents and indices.
    using size_type = std::size_t;   ///< Element counts.
    using rank_type = std::size_t;   ///< Dimension numbers.

    /// Number of dimensions.
    LLM_HD static constexpr std::size_t rank() noexcept { return rank_; }
    /// Number of dimensions whose extent is llm::dyn (stored at run time).
    LLM_HD static constexpr std::size_t rank_dynamic() noexcept { return rank_dynamic_; }

    /// The compile-time extent of dimension r, or llm::dyn. Requires r < rank().
    LLM_HD static constexpr std::size_t static_extent(std::size_t r) noexcept {
        constexpr std::size_t statics[] = {Exts..., 0};
        return statics[r];
    }

    /// The extent of dimension r. Requires r < rank().
    LLM_HD constexpr std::size_t extent(std::size_t r) const noexcept {
        if constexpr (rank_dynamic_ == 0) {
            constexpr std::size_t statics[] = {Exts..., 0};
            return statics[r];
        } else if constexpr (rank_dynamic_ == rank_) {
            // Every extent dynamic (the common case): no tables to build, which an unoptimised
            // sanitizer build would copy on every call.
            return this->values[r];
        } else {
            constexpr std::size_t statics[] = {Exts..., 0};
            constexpr dynamic_index_table table = make_dynamic_index_table();
            return statics[r] != dyn ? statics[r] : this->values[table.index[r]];
        }
    }

    /// Number of elements: the product of all extents (1 for rank 0).
    LLM_HD constexpr std::size_t size() const noexcept {
        std::size_t n = 1;
        for (std::size_t r = 0; r < rank_; ++r) {
            n *= extent(r);
        }
        return n;
    }

    /// Dynamic extents are zero.
    LLM_HD constexpr extents() noexcept = default;

    /// From the run-time extents only (rank_dynamic() values), or from all rank() values, in
    /// which case those landing on static dimensions must match (llm::error otherwise).
    template <std::integral... Sizes>
        requires(sizeof...(Sizes) == rank_dynamic_ || (sizeof...(Sizes) == rank_ && rank_ != rank_dynamic_))
    LLM_HD constexpr explicit extents(Sizes... sizes) {
        const std::size_t given[] = {static_cast<std::size_t>(sizes)..., 0};
        assign(given, sizeof...(Sizes));
    }

    /// From an array of rank_dynamic() or rank() sizes (as above).
    template <std::size_t N>
        requires(N == rank_dynamic_ || (N == rank_ && rank_ != rank_dynamic_))
    LLM_HD constexpr explicit(N != rank_dynamic_) extents(const std::array<std::size_t, N>& sizes) {
        const std::size_t* given = sizes.data();
        assign(given, N);
    }

    /// From another extents of the same rank whose static extents do not contradict ours.
    /// Implicit when it only forgets static information (static -> dynamic); explicit, and
    /// checked, when a run-time extent has to land on a static one.
    template <std::size_t... Other>
        requires(sizeof...(Other) == rank_ && ((Other == dyn || Exts == dyn || Other == Exts) && ...))
    LLM_HD constexpr explicit(((Exts != dyn && Other == dyn) || ...)) extents(const extents<Other...>& other) {
        std::size_t given[rank_ + 1] = {};
        for (std::size_t r = 0; r < rank_; ++r) {
            given[r] = other.extent(r);
        }
        assign(given, rank_);
    }

    /// Equal when the ranks and every extent are equal (static or not).
    template <std::size_t... Other>
    LLM_HD friend constexpr bool operator==(const extents& a, const extents<Other...>& b) noexcept {
        if constexpr (sizeof...(Other) != rank_) {
            return false;
        } else {
            for (std::size_t r = 0; r < rank_; ++r) {
                if (a.extent(r) != b.extent(r)) {
                    return false;
                }
            }
            return true;
        }
    }

private:
    // For each dimension, its position among the dynamic ones (0 for static dimensions, so
    // that every entry is a valid index into the stored values).
    struct dynamic_index_table {
        std::size_t index[rank_ + 1];
    };
    LLM_HD static constexpr dynamic_index_table make_dynamic_index_table() noexcept {
        constexpr std::size_t statics[] = {Exts..., 0};
        dynamic_index_table table{};
        std::size_t k = 0;
        for (std::size_t r = 0; r < rank_; ++r) {
            table.index[r] = statics[r] == dyn ? k++ : 0;
        }
        return table;
    }

    // `given` holds either the rank_dynamic() run-time sizes or all rank() sizes.
    LLM_HD constexpr void assign(const std::size_t* given, std::size_t count) {
        constexpr std::size_t statics[] = {Exts..., 0};
        if constexpr (rank_dynamic_ != 0) {
            constexpr dynamic_index_table table = make_dynamic_index_table();
            for (std::size_t r = 0; r < rank_; ++r) {
                if (statics[r] == dyn) {
                    this->values[table.index[r]] = count == rank_ ? given[r] : given[table.index[r]];
                }
            }
        }
        if (count == rank_) {
            for (std::size_t r = 0; r < rank_; ++r) {
                detail::tensor_impl::require_static_match(r, statics[r], given[r]);
            }
        }
    }
};

// Constrained like the constructor it stands beside: an unconstrained guide loses to the
// implicit guide of that constructor on clang 14, which then deduces extents<>.
template <std::integral... Sizes>
extents(Sizes...) -> extents<detail::tensor_impl::always_dyn<Sizes>...>;

namespace detail::tensor_impl {
template <class>
struct make_dims;
template <std::size_t... R>
struct make_dims<std::index_sequence<R...>> {
    using type = extents<always_dyn<std::integral_constant<std::size_t, R>>...>;
};

template <class>
inline constexpr bool is_extents = false;
template <std::size_t... Exts>
inline constexpr bool is_extents<extents<Exts...>> = true;
}  // namespace detail::tensor_impl

/// All-dynamic extents of rank Rank: `llm::dims<2>` is `llm::extents<llm::dyn, llm::dyn>`.
/// Template parameters:
///   Rank — the number of dimensions.
/// Example: `llm::dims<2> e(rows, cols);`
template <std::size_t Rank>
using dims = typename detail::tensor_impl::make_dims<std::make_index_sequence<Rank>>::type;

/// Satisfied by the specialisations of llm::extents (the shape policy of tensors and views).
template <class E>
concept extents_like = detail::tensor_impl::is_extents<std::remove_cv_t<E>>;

namespace detail::tensor_impl {

/// "[3, 4]": the extents as they appear in error messages and printing.
template <extents_like E>
std::string shape_string(const E& e) {
    std::string s = "[";
    for (std::size_t r = 0; r < E::rank(); ++r) {
        s += r ? ", " : "";
        s += std::to_string(e.extent(r));
    }
    return s + "]";
}

}  // namespace detail::tensor_impl

}  // namespace llm
