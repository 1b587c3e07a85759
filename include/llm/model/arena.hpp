// SPDX-License-Identifier: Apache-2.0
// llm::model::arena: one allocation that holds every block's activation cache (llm.c's activations).
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace llm::model {

/// The memory of a model's activation caches: one 64-byte aligned block, handed out in order.
/// A block writes its cache once, as a function of the arena (`make_cache(arena&, shape)`), and
/// the model calls it twice: first on an arena without memory, which only adds up the sizes
/// (take() returns empty views), then, after reserve(), on the real memory
/// (rewind() first). So the layout is written once and a model's caches are one allocation, as
/// llm.c's `ActivationTensors`; the caches are views into it and the arena must outlive them.
/// Example: `llm::model::arena a; auto c = blk.make_cache(a, shape); a.reserve(); a.rewind(); c = blk.make_cache(a, shape);`
class arena {
public:
    /// Alignment in bytes of every region take() hands out.
    static constexpr std::size_t alignment = 64;

    /// A view of `sizes...` elements of type T (row-major, zero-initialised after reserve()),
    /// 64-byte aligned; while the arena has no memory (the counting pass) an empty view (null
    /// data, every extent 0) that only records the size.
    /// Throws llm::error when the arena has memory and the request does not fit it (a block
    /// that asks for different sizes in its two passes) or a size overflows.
    /// Example: `auto rstd = a.take<float>(tokens);  // tensor_view<float, llm::dims<1>>`
    template <class T, std::integral... Sizes>
        requires(sizeof...(Sizes) > 0 && std::is_trivially_copyable_v<T> && !std::is_const_v<T>)
    tensor_view<T, llm::dims<sizeof...(Sizes)>> take(Sizes... sizes) {
        constexpr const char* fn = "arena::take";
        std::size_t n = 1;
        ((n = checked_mul(n, static_cast<std::size_t>(sizes), fn, "the element count")), ...);
        const std::size_t bytes = checked_mul(n, sizeof(T), fn, "the byte count");
        const std::size_t begin = checked_add(offset_, alignment - 1, fn, "the offset") / alignment * alignment;
        const std::size_t end = checked_add(begin, bytes, fn, "the offset");
        using view = tensor_view<T, llm::dims<sizeof...(Sizes)>>;
        if (memory_.size() == 0) {
            offset_ = end;
            return view(nullptr, llm::dims<sizeof...(Sizes)>{});
        }
        llm::check(end <= memory_.size(), fn, ": ", bytes, " bytes at offset ", begin, " do not fit the reserved ",
                   memory_.size(), " bytes (a cache asked for other sizes than in the sizing pass)");
        offset_ = end;
        return view(reinterpret_cast<T*>(memory_.data() + begin), llm::dims<sizeof...(Sizes)>(static_cast<std::size_t>(sizes)...));
    }

    /// Allocates (zero-filled) the bytes taken since the last rewind(), replacing any earlier
    /// memory (views from before are invalidated).
    /// Example: `a.reserve(); a.rewind();`
    void reserve() { memory_ = tensor<std::byte, llm::dims<1>>(offset_); }

    /// Starts handing out from the beginning again (the memory is kept).
    void rewind() noexcept { offset_ = 0; }

    /// Bytes handed out since the last rewind().
    [[nodiscard]] std::size_t used() const noexcept { return offset_; }

    /// Bytes of memory held (0 before reserve()).
    [[nodiscard]] std::size_t capacity() const noexcept { return memory_.size(); }

    /// True once reserve() has given the arena memory.
    [[nodiscard]] bool has_memory() const noexcept { return memory_.size() != 0; }

private:
    tensor<std::byte, llm::dims<1>> memory_;
    std::size_t offset_ = 0;
};

/// Sizes and allocates a cache in one call: runs `make(a)` on the counting arena, reserves,
/// rewinds and runs it again on the memory. `make` must take the same sizes both times.
/// Example: `llm::model::arena a; auto c = llm::model::make_in_arena(a, [&](llm::model::arena& m) { return blk.make_cache(m, shape); });`
template <class Make>
    requires std::invocable<Make&, arena&>
auto make_in_arena(arena& a, Make&& make) {
    a.rewind();
    (void)make(a);
    a.reserve();
    a.rewind();
    return make(a);
}

}  // namespace llm::model
