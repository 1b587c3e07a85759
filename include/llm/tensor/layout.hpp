// SPDX-License-Identifier: Apache-2.0
// Layout policies (layout_right, layout_left, layout_strided) mapping a multi-index to an element offset.
#pragma once

#include <llm/config.hpp>
#include <llm/tensor/extents.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm {

/// Row-major (C order): the last index is contiguous. Always unique, exhaustive and contiguous.
/// Example: `llm::layout_right::mapping<llm::extents<3, 4>> m; m(1, 2) == 6`
struct layout_right {
    template <extents_like Extents>
    class mapping;
};

/// Column-major (Fortran order): the first index is contiguous. Always unique and exhaustive;
/// contiguous (in row-major order) only when at most one extent exceeds 1.
/// Example: `llm::layout_left::mapping<llm::extents<3, 4>> m; m(1, 2) == 7`
struct layout_left {
    template <extents_like Extents>
    class mapping;
};

/// Any non-negative stride per dimension, in elements (transposes, slices, broadcasts with
/// stride 0). is_unique(), is_exhaustive() and is_contiguous() are computed from the strides.
/// Example: `llm::layout_strided::mapping<llm::dims<2>> m(llm::dims<2>(3, 4), {1, 3}); m(1, 2) == 7`
struct layout_strided {
    template <extents_like Extents>
    class mapping;
};

namespace detail::tensor_impl {

// Offsets are folded over a compile-time index sequence so that, with static extents, every
// extent is a constant and the whole offset computation is a few multiply-adds.
template <class E, std::size_t... R, class... Is>
LLM_HD constexpr std::size_t offset_right(const E& e, std::index_sequence<R...>, Is... is) noexcept {
    std::size_t off = 0;
    ((off = off * e.extent(R) + static_cast<std::size_t>(is)), ...);
    return off;
}

template <class E, std::size_t... R, class... Is>
LLM_HD constexpr std::size_t offset_left(const E& e, std::index_sequence<R...>, Is... is) noexcept {
    std::size_t off = 0;
    std::size_t stride = 1;
    ((off += static_cast<std::size_t>(is) * stride, stride *= e.extent(R)), ...);
    return off;
}

}  // namespace detail::tensor_impl

/// The layout_right mapping of Extents: offset = ((i0 * e1 + i1) * e2 + i2) ...
/// Empty when Extents is fully static.
/// Template parameters:
///   Extents — an llm::extents.
template <extents_like Extents>
class layout_right::mapping {
public:
    using extents_type = Extents;  ///< The shape policy.
    using layout_type = layout_right;  ///< The layout policy this mapping belongs to.
    using index_type = std::size_t;  ///< Indices and offsets.
    using rank_type = std::size_t;   ///< Dimension numbers.

    /// Default extents (dynamic ones 0).
    LLM_HD constexpr mapping() noexcept = default;
    /// The mapping of `e` (implicit: the extents determine it).
    LLM_HD constexpr mapping(const Extents& e) noexcept : extents_(e) {}

    /// From a mapping of compatible extents (see llm::extents' converting constructor).
    template <class Other>
        requires std::constructible_from<Extents, Other>
    LLM_HD constexpr explicit(!std::convertible_to<Other, Extents>) mapping(const mapping<Other>& m)
        : extents_(m.extents()) {}

    /// The extents.
    LLM_HD constexpr const Extents& extents() const noexcept { return extents_; }
    /// One past the largest offset: size() (0 when empty).
    LLM_HD constexpr std::size_t required_span_size() const noexcept { return extents_.size(); }

    /// The offset of element (is...); each index must be below its extent.
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank())
    LLM_HD constexpr std::size_t operator()(Is... is) const noexcept {
        return detail::tensor_impl::offset_right(extents_, std::make_index_sequence<Extents::rank()>{}, is...);
    }

    /// Elements between consecutive indices of dimension r: the product of the later extents.
    LLM_HD constexpr std::size_t stride(std::size_t r) const noexcept {
        std::size_t s = 1;
        for (std::size_t k = r + 1; k < Extents::rank(); ++k) {
            s *= extents_.extent(k);
        }
        return s;
    }

    LLM_HD static constexpr bool is_always_unique() noexcept { return true; }  ///< Every instance is unique.
    LLM_HD static constexpr bool is_always_exhaustive() noexcept { return true; }  ///< Every instance is exhaustive.
    LLM_HD static constexpr bool is_always_contiguous() noexcept { return true; }  ///< Every instance is contiguous.
    LLM_HD static constexpr bool is_unique() noexcept { return true; }  ///< No two indices share an offset.
    LLM_HD static constexpr bool is_exhaustive() noexcept { return true; }  ///< Offsets are 0 .. size()-1.
    LLM_HD static constexpr bool is_contiguous() noexcept { return true; }  ///< Offsets are row-major.

    /// Equal when the extents (and, for layout_strided, the strides) are equal.
    template <class Other>
    LLM_HD friend constexpr bool operator==(const mapping& a, const mapping<Other>& b) noexcept {
        return a.extents() == b.extents();
    }

private:
    [[no_unique_address]] Extents extents_{};
};

/// The layout_left mapping of Extents: offset = i0 + e0 * (i1 + e1 * (i2 + ...)).
/// Empty when Extents is fully static.
/// Template parameters:
///   Extents — an llm::extents.
template <extents_like Extents>
class layout_left::mapping {
public:
    using extents_type = Extents;  ///< The shape policy.
    using layout_type = layout_left;  ///< The layout policy this mapping belongs to.
    using index_type = std::size_t;  ///< Indices and offsets.
    using rank_type = std::size_t;   ///< Dimension numbers.

    /// Default extents (dynamic ones 0).
    LLM_HD constexpr mapping() noexcept = default;
    /// The mapping of `e` (implicit: the extents determine it).
    LLM_HD constexpr mapping(const Extents& e) noexcept : extents_(e) {}

    /// From a mapping of compatible extents (see llm::extents' converting constructor).
    template <class Other>
        requires std::constructible_from<Extents, Other>
    LLM_HD constexpr explicit(!std::convertible_to<Other, Extents>) mapping(const mapping<Other>& m)
        : extents_(m.extents()) {}

    /// The extents.
    LLM_HD constexpr const Extents& extents() const noexcept { return extents_; }
    /// One past the largest offset: size() (0 when empty).
    LLM_HD constexpr std::size_t required_span_size() const noexcept { return extents_.size(); }

    /// The offset of element (is...); each index must be below its extent.
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank())
    LLM_HD constexpr std::size_t operator()(Is... is) const noexcept {
        return detail::tensor_impl::offset_left(extents_, std::make_index_sequence<Extents::rank()>{}, is...);
    }

    /// Elements between consecutive indices of dimension r: the product of the earlier extents.
    LLM_HD constexpr std::size_t stride(std::size_t r) const noexcept {
        std::size_t s = 1;
        for (std::size_t k = 0; k < r; ++k) {
            s *= extents_.extent(k);
        }
        return s;
    }

    LLM_HD static constexpr bool is_always_unique() noexcept { return true; }  ///< Every instance is unique.
    LLM_HD static constexpr bool is_always_exhaustive() noexcept { return true; }  ///< Every instance is exhaustive.
    /// Every instance is contiguous: only at rank 0 and 1.
    LLM_HD static constexpr bool is_always_contiguous() noexcept { return Extents::rank() <= 1; }
    LLM_HD static constexpr bool is_unique() noexcept { return true; }  ///< No two indices share an offset.
    LLM_HD static constexpr bool is_exhaustive() noexcept { return true; }  ///< Offsets are 0 .. size()-1.
    /// Column-major order equals row-major order only when at most one extent exceeds 1
    /// (or there are no elements).
    LLM_HD constexpr bool is_contiguous() const noexcept {
        std::size_t longer_than_one = 0;
        for (std::size_t r = 0; r < Extents::rank(); ++r) {
            if (extents_.extent(r) == 0) {
                return true;
            }
            longer_than_one += extents_.extent(r) > 1;
        }
        return longer_than_one <= 1;
    }

    /// Equal when the extents (and, for layout_strided, the strides) are equal.
    template <class Other>
    LLM_HD friend constexpr bool operator==(const mapping& a, const mapping<Other>& b) noexcept {
        return a.extents() == b.extents();
    }

private:
    [[no_unique_address]] Extents extents_{};
};

/// The layout_strided mapping of Extents: offset = sum of i_r * stride(r), strides stored.
/// Template parameters:
///   Extents — an llm::extents.
template <extents_like Extents>
class layout_strided::mapping {
    static constexpr std::size_t rank_ = Extents::rank();

public:
    using extents_type = Extents;  ///< The shape policy.
    using layout_type = layout_strided;  ///< The layout policy this mapping belongs to.
    using index_type = std::size_t;  ///< Indices and offsets.
    using rank_type = std::size_t;   ///< Dimension numbers.
    using strides_type = std::array<std::size_t, rank_>;  ///< One stride per dimension, in elements.

    /// Row-major strides of the default extents.
    LLM_HD constexpr mapping() noexcept : mapping(Extents{}) {}

    /// Row-major strides for `e` (what an owning layout_strided tensor allocates).
    LLM_HD constexpr explicit mapping(const Extents& e) noexcept : extents_(e) {
        std::size_t s = 1;
        for (std::size_t r = rank_; r-- > 0;) {
            strides_[r] = s;
            s *= e.extent(r);
        }
    }

    /// Explicit strides, in elements. Stride 0 (broadcast) and overlapping strides are allowed;
    /// such mappings report is_unique() == false.
    LLM_HD constexpr mapping(const Extents& e, const strides_type& strides) noexcept
        : extents_(e), strides_(strides) {}

    /// From any mapping with compatible extents that reports strides (layout_right,
    /// layout_left, layout_strided): implicit, since a strided mapping can express them all.
    template <class M>
        requires(std::constructible_from<Extents, typename M::extents_type> &&
                 requires(const M& m) {
                     { m.stride(std::size_t{}) } -> std::same_as<std::size_t>;
                 })
    LLM_HD constexpr explicit(!std::convertible_to<typename M::extents_type, Extents>) mapping(const M& m)
        : extents_(m.extents()) {
        for (std::size_t r = 0; r < rank_; ++r) {
            strides_[r] = m.stride(r);
        }
    }

    /// The extents.
    LLM_HD constexpr const Extents& extents() const noexcept { return extents_; }
    /// All strides, in elements.
    LLM_HD constexpr const strides_type& strides() const noexcept { return strides_; }
    /// Elements between consecutive indices of dimension r.
    LLM_HD constexpr std::size_t stride(std::size_t r) const noexcept { return strides_[r]; }

    /// One past the largest offset: 1 + sum((extent(r) - 1) * stride(r)), or 0 when empty.
    LLM_HD constexpr std::size_t required_span_size() const noexcept {
        std::size_t span = 1;
        for (std::size_t r = 0; r < rank_; ++r) {
            if (extents_.extent(r) == 0) {
                return 0;
            }
            span += (extents_.extent(r) - 1) * strides_[r];
        }
        return span;
    }

    /// The offset of element (is...); each index must be below its extent.
    template <std::integral... Is>
        requires(sizeof...(Is) == rank_)
    LLM_HD constexpr std::size_t operator()(Is... is) const noexcept {
        return offset(std::make_index_sequence<rank_>{}, is...);
    }

    /// False: strides may overlap (stride 0 broadcasts); ask is_unique().
    LLM_HD static constexpr bool is_always_unique() noexcept { return false; }
    /// False: strides may leave gaps; ask is_exhaustive().
    LLM_HD static constexpr bool is_always_exhaustive() noexcept { return false; }
    /// False: strides may be in any order; ask is_contiguous().
    LLM_HD static constexpr bool is_always_contiguous() noexcept { return false; }

    /// True when no two indices share an offset. Decided by sorting the dimensions of extent
    /// > 1 by stride and asking that each stride reach past everything the smaller ones
    /// address; this is exact for every mapping made by slicing, selecting, transposing or
    /// reshaping a unique one, and conservative (false) for exotic interleavings.
    LLM_HD constexpr bool is_unique() const noexcept {
        std::size_t order[rank_ + 1] = {};
        const std::size_t n = dims_by_stride(order);
        std::size_t reach = 1;  // one past the last offset the dimensions so far address
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t r = order[k];
            if (strides_[r] < reach) {
                return false;
            }
            reach += strides_[r] * (extents_.extent(r) - 1);
        }
        return true;
    }

    /// True when the offsets are exactly 0 .. size()-1 in some order (unique and gap-free;
    /// a transpose of a contiguous mapping is exhaustive but not contiguous).
    LLM_HD constexpr bool is_exhaustive() const noexcept {
        std::size_t order[rank_ + 1] = {};
        const std::size_t n = dims_by_stride(order);
        std::size_t reach = 1;
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t r = order[k];
            if (strides_[r] != reach) {
                return false;
            }
            reach *= extents_.extent(r);
        }
        return true;
    }

    /// True when the strides are the row-major ones (those of dimensions of extent 1 do not
    /// matter), i.e. offset(i...) is the row-major linear index; true when empty.
    LLM_HD constexpr bool is_contiguous() const noexcept {
        if (extents_.size() == 0) {
            return true;
        }
        std::size_t reach = 1;
        for (std::size_t r = rank_; r-- > 0;) {
            if (extents_.extent(r) != 1 && strides_[r] != reach) {
                return false;
            }
            reach *= extents_.extent(r);
        }
        return true;
    }

    /// Equal when the extents (and, for layout_strided, the strides) are equal.
    template <class Other>
    LLM_HD friend constexpr bool operator==(const mapping& a, const mapping<Other>& b) noexcept {
        if (!(a.extents() == b.extents())) {
            return false;
        }
        for (std::size_t r = 0; r < rank_; ++r) {
            if (a.stride(r) != b.stride(r)) {
                return false;
            }
        }
        return true;
    }

private:
    template <std::size_t... R, class... Is>
    LLM_HD constexpr std::size_t offset(std::index_sequence<R...>, Is... is) const noexcept {
        std::size_t off = 0;
        ((off += static_cast<std::size_t>(is) * strides_[R]), ...);
        return off;
    }

    // Writes the dimensions of extent > 1 to `order` in increasing stride order (ties by
    // index) and returns how many there are; 0 when the mapping is empty, since an empty
    // mapping addresses nothing and is trivially unique and contiguous. A selection sort:
    // ranks are small and this runs outside hot loops.
    LLM_HD constexpr std::size_t dims_by_stride(std::size_t* order) const noexcept {
        if (extents_.size() == 0) {
            return 0;
        }
        bool used[rank_ + 1] = {};
        std::size_t n = 0;
        for (;;) {
            std::size_t best = rank_;
            for (std::size_t r = 0; r < rank_; ++r) {
                if (!used[r] && extents_.extent(r) > 1 && (best == rank_ || strides_[r] < strides_[best])) {
                    best = r;
                }
            }
            if (best == rank_) {
                return n;
            }
            used[best] = true;
            order[n++] = best;
        }
    }

    [[no_unique_address]] Extents extents_{};
    strides_type strides_{};
};

/// A layout mapping: maps rank() indices to an offset in [0, required_span_size()), and
/// reports its strides (every llm mapping is strided: offset = sum of index * stride, which
/// the whole-tensor algorithms rely on) and three properties:
///   is_unique()     — no two indices share an offset;
///   is_exhaustive() — the offsets are exactly 0 .. size()-1, in some order;
///   is_contiguous() — offset(i...) is the row-major linear index (numpy's C_CONTIGUOUS,
///                     PyTorch's is_contiguous()): data() is then a plain row-major array.
template <class M>
concept layout_mapping = std::copyable<M> && extents_like<typename M::extents_type> &&
                         requires(const M& m, std::size_t r) {
                             typename M::layout_type;
                             { m.extents() } -> std::same_as<const typename M::extents_type&>;
                             { m.required_span_size() } -> std::same_as<std::size_t>;
                             { m.stride(r) } -> std::same_as<std::size_t>;
                             { m.is_unique() } -> std::same_as<bool>;
                             { m.is_exhaustive() } -> std::same_as<bool>;
                             { m.is_contiguous() } -> std::same_as<bool>;
                         };

/// A layout policy: a type whose nested `mapping<Extents>` is a layout_mapping for every
/// extents (checked at ranks 0, 1 and 3, including the index operator at rank 3).
template <class L>
concept layout_policy = layout_mapping<typename L::template mapping<extents<>>> &&
                        layout_mapping<typename L::template mapping<dims<1>>> &&
                        layout_mapping<typename L::template mapping<extents<2, dyn, 4>>> &&
                        requires(const typename L::template mapping<extents<2, dyn, 4>>& m) {
                            { m(0u, 1u, 2u) } -> std::same_as<std::size_t>;
                        };

static_assert(layout_policy<layout_right>);
static_assert(layout_policy<layout_left>);
static_assert(layout_policy<layout_strided>);

}  // namespace llm
