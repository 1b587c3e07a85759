// SPDX-License-Identifier: Apache-2.0
// llm::tensor: owns its elements in one 64-byte aligned allocation; a value type (copies deep).
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/device.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/layout.hpp>
#include <llm/tensor/storage.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm {

/// An owning tensor: the elements (in an llm::aligned_buffer, 64-byte aligned) plus a layout
/// mapping. Elements are zero-initialised unless constructed with llm::uninitialized.
///
/// Value semantics, like std::vector: copying copies the elements, moving steals them. Deep
/// constness: a const tensor gives const elements. A moved-from tensor holds no elements
/// (data() == nullptr), its dynamic extents are 0; with static extents it may only be
/// assigned to or destroyed.
///
/// Kernels take tensor_view parameters; a tensor converts to tensor_view<T> (when not const)
/// and tensor_view<const T> implicitly, also to views with dynamic extents or layout_strided.
/// Views of a temporary tensor do not compile (.view() and the conversions are deleted for
/// rvalues) because they would dangle.
///
/// Shape contract: any extents (zero-size dimensions allowed: then data() may be null).
/// Template parameters:
///   T       — element type: trivially copyable, not const.
///   Extents — an llm::extents (static and/or dynamic dimensions).
///   Layout  — layout_right (default), layout_left, or layout_strided (row-major strides
///             unless a mapping is given; with gaps, the gaps are allocated too).
///   Device  — llm::cpu. Owning CUDA memory is not provided: wrap cudaMalloc'ed memory in a
///             tensor_view<T, Extents, Layout, llm::cuda>.
/// Example: `llm::tensor<float, llm::extents<llm::dyn, 64>> t(n); t(0, 3) = 1.0f;`
template <tensor_element T, extents_like Extents, layout_policy Layout = layout_right, device_tag Device = cpu>
    requires(!std::is_const_v<T> && host_device_tag<Device>)
class tensor {
public:
    using element_type = T;                                              ///< The element type.
    using value_type = T;                                                ///< The element type.
    using extents_type = Extents;                                        ///< The shape policy.
    using layout_type = Layout;                                          ///< The layout policy.
    using mapping_type = typename Layout::template mapping<Extents>;     ///< Index -> offset.
    using device_type = Device;                                          ///< Where elements live.
    using view_type = tensor_view<T, Extents, Layout, Device>;           ///< What view() gives.
    using const_view_type = tensor_view<const T, Extents, Layout, Device>;  ///< view() when const.
    using index_type = std::size_t;                                      ///< Indices and sizes.

    /// Default extents: dynamic ones 0, so only a fully static tensor holds elements.
    tensor() : tensor(mapping_type(Extents{})) {}

    /// Zero-filled, with rank_dynamic() sizes or all rank() sizes (static ones must match).
    /// Example: `llm::tensor<float, llm::dims<2>> a(rows, cols);`
    template <std::integral... Sizes>
        requires(sizeof...(Sizes) > 0 && std::constructible_from<Extents, Sizes...>)
    explicit tensor(Sizes... sizes) : tensor(mapping_type(Extents(sizes...))) {}

    /// As above, elements left uninitialised: `tensor<float, dims<1>> y(llm::uninitialized, n);`
    template <std::integral... Sizes>
        requires std::constructible_from<Extents, Sizes...>
    tensor(uninitialized_t, Sizes... sizes) : tensor(uninitialized, mapping_type(Extents(sizes...))) {}

    /// Zero-filled, with extents `e`.
    explicit tensor(const Extents& e) : tensor(mapping_type(e)) {}
    /// Uninitialised, with extents `e`.
    tensor(uninitialized_t, const Extents& e) : tensor(uninitialized, mapping_type(e)) {}

    /// With an explicit mapping (e.g. layout_strided with padding): required_span_size()
    /// elements are allocated.
    /// Throws llm::error when the extents' product or the span overflows std::size_t, exceeds
    /// llm::max_allocation_bytes, or the allocation fails.
    explicit tensor(const mapping_type& m) : map_(m), buffer_(checked_span(m)) {}
    /// As above, elements left uninitialised.
    tensor(uninitialized_t, const mapping_type& m) : map_(m), buffer_(uninitialized, checked_span(m)) {}

    /// A copy of the elements of `src` (any layout; extents convertible to Extents, checked
    /// when a dynamic extent lands on a static one). Example: `llm::tensor<float, llm::dims<2>> t(llm::transpose(a, 0, 1));`
    template <tensor_view_like View>
        requires(std::same_as<typename View::value_type, T> && host_device_tag<typename View::device_type> &&
                 std::constructible_from<Extents, typename View::extents_type>)
    explicit tensor(const View& src) : tensor(uninitialized, Extents(src.extents())) {
        llm::copy(src, *this);
    }

    /// A deep copy (new allocation).
    tensor(const tensor&) = default;
    /// Replaces shape and elements with a deep copy of the other's.
    tensor& operator=(const tensor&) = default;
    /// Steals the elements; `other` is left without elements (see the class comment).
    tensor(tensor&& other) noexcept
        : map_(std::exchange(other.map_, mapping_type(Extents{}))), buffer_(std::move(other.buffer_)) {}
    /// Steals the elements, frees ours; `other` is left without elements.
    tensor& operator=(tensor&& other) noexcept {
        map_ = std::exchange(other.map_, mapping_type(Extents{}));
        buffer_ = std::move(other.buffer_);
        return *this;
    }
    /// Frees the elements.
    ~tensor() = default;

    /// Number of dimensions.
    static constexpr std::size_t rank() noexcept { return Extents::rank(); }
    /// Number of dimensions whose extent is stored at run time.
    static constexpr std::size_t rank_dynamic() noexcept { return Extents::rank_dynamic(); }
    /// The compile-time extent of dimension r, or llm::dyn.
    static constexpr std::size_t static_extent(std::size_t r) noexcept { return Extents::static_extent(r); }

    /// The elements (64-byte aligned); nullptr when there are none.
    T* data() noexcept { return buffer_.data(); }
    /// The elements (64-byte aligned); nullptr when there are none.
    const T* data() const noexcept { return buffer_.data(); }
    /// The layout mapping (extents and strides).
    const mapping_type& mapping() const noexcept { return map_; }
    /// The extents.
    const Extents& extents() const noexcept { return map_.extents(); }
    /// The extent of dimension r.
    std::size_t extent(std::size_t r) const noexcept { return map_.extents().extent(r); }
    /// Elements between consecutive indices of dimension r.
    std::size_t stride(std::size_t r) const noexcept { return map_.stride(r); }
    /// Number of elements (the product of the extents).
    std::size_t size() const noexcept { return map_.extents().size(); }
    /// True when size() == 0.
    bool empty() const noexcept { return size() == 0; }
    /// Elements allocated: one past the largest offset.
    std::size_t required_span_size() const noexcept { return map_.required_span_size(); }
    /// Row-major dense: data()[k] is the k-th element in row-major order.
    bool is_contiguous() const noexcept { return map_.is_contiguous(); }
    /// Dense in some order: the elements are exactly data()[0 .. size()-1].
    bool is_exhaustive() const noexcept { return map_.is_exhaustive(); }
    /// No two indices share an element.
    bool is_unique() const noexcept { return map_.is_unique(); }

    /// Element at (is...), unchecked (LLM_ASSERT in debug builds).
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank())
    T& operator()(Is... is) noexcept {
        return view()(is...);
    }
    /// Element at (is...), unchecked, read-only.
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank())
    const T& operator()(Is... is) const noexcept {
        return view()(is...);
    }

    /// Element at (is...); throws llm::error naming the bad index.
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank())
    T& at(Is... is) {
        return view().at(is...);
    }
    /// Element at (is...), read-only; throws llm::error naming the bad index.
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank())
    const T& at(Is... is) const {
        return view().at(is...);
    }

    /// A view of the elements.
    view_type view() & noexcept { return view_type(data(), map_); }
    /// A read-only view of the elements.
    const_view_type view() const& noexcept { return const_view_type(data(), map_); }
    void view() && = delete;       // the view would outlive the temporary
    void view() const&& = delete;  // ditto

    /// Implicit conversions to views (explicit where the view conversion is, e.g. onto
    /// static extents); see tensor_view's converting constructor.
    template <tensor_view_like V>
        requires std::constructible_from<V, view_type>
    explicit(!std::convertible_to<view_type, V>) operator V() & {
        return V(view());
    }
    /// As above, for read-only views of a const tensor.
    template <tensor_view_like V>
        requires std::constructible_from<V, const_view_type>
    explicit(!std::convertible_to<const_view_type, V>) operator V() const& {
        return V(view());
    }
    template <tensor_view_like V>
    operator V() && = delete;
    template <tensor_view_like V>
    operator V() const&& = delete;

private:
    // required_span_size() with every product checked: the mapping's own arithmetic wraps
    // (tensor(2^40, 2^40) would allocate 0 elements), and the layout strides are products too.
    static std::size_t checked_span(const mapping_type& m) {
        constexpr const char* fn = "tensor";
        std::size_t n = 1;
        for (std::size_t r = 0; r < rank(); ++r) {
            if (m.extents().extent(r) == 0) {
                return 0;
            }
        }
        for (std::size_t r = 0; r < rank(); ++r) {
            n = checked_mul(n, m.extents().extent(r), fn, "the element count (product of the extents)");
        }
        std::size_t span = 1;
        for (std::size_t r = 0; r < rank(); ++r) {
            span = checked_add(span, checked_mul(m.extents().extent(r) - 1, m.stride(r), fn, "(extent - 1) * stride"), fn,
                               "the span");
        }
        checked_bytes<T>(span, fn, "the elements");
        return span;
    }

    [[no_unique_address]] mapping_type map_;
    aligned_buffer<T> buffer_;
};

}  // namespace llm
