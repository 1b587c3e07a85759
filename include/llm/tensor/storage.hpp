// SPDX-License-Identifier: Apache-2.0
// llm::aligned_buffer: the owning, 64-byte aligned element storage behind llm::tensor.
#pragma once

#include <llm/config.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>

#include <concepts>
#include <cstddef>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

namespace llm {

/// Alignment in bytes of every owning allocation: one cache line, and one AVX-512 vector, so
/// that kernels may use aligned loads on row 0 and no two tensors share a cache line.
inline constexpr std::size_t tensor_alignment = 64;

/// Tag asking an owning constructor to leave the elements uninitialised (for kernel outputs
/// that are about to be overwritten). Example: `llm::tensor<float, llm::dims<1>> y(llm::uninitialized, n);`
struct uninitialized_t {
    explicit uninitialized_t() = default;
};
inline constexpr uninitialized_t uninitialized{};

/// An element type a tensor can own: trivially copyable (elements are copied as bytes and
/// never destroyed one by one) and not const.
template <class T>
concept tensor_element = std::is_object_v<T> && std::is_trivially_copyable_v<std::remove_const_t<T>>;

/// Owns `size()` elements of T in one allocation aligned to llm::tensor_alignment.
/// Zero-initialised (value-initialised) unless constructed with llm::uninitialized.
/// Copying copies the elements; moving steals them and leaves the source empty.
/// An empty buffer has data() == nullptr.
/// Template parameters:
///   T — the element type (trivially copyable, not const).
/// Example: `llm::aligned_buffer<float> scratch(4096);`
template <tensor_element T>
    requires(!std::is_const_v<T>)
class aligned_buffer {
public:
    using value_type = T;  ///< The element type.

    /// Empty: no allocation, data() == nullptr.
    aligned_buffer() noexcept = default;

    /// `n` value-initialised elements. Throws llm::error when n * sizeof(T) overflows, exceeds
    /// llm::max_allocation_bytes, or the allocation fails.
    explicit aligned_buffer(std::size_t n) : aligned_buffer(uninitialized, n) {
        for (std::size_t i = 0; i < n; ++i) {
            ::new (static_cast<void*>(data_ + i)) T();  // a memset for the element types we have
        }
    }

    /// `n` elements left uninitialised.
    aligned_buffer(uninitialized_t, std::size_t n) : data_(allocate(n)), size_(n) {}

    /// A new allocation holding a copy of the elements.
    aligned_buffer(const aligned_buffer& other) : aligned_buffer(uninitialized, other.size_) {
        if (size_ != 0) {
            std::memcpy(data_, other.data_, size_ * sizeof(T));
        }
    }

    /// Takes the allocation; `other` is left empty.
    aligned_buffer(aligned_buffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

    /// Replaces the elements with a copy of other's (strong exception guarantee).
    aligned_buffer& operator=(const aligned_buffer& other) {
        if (this != &other) {
            aligned_buffer copy(other);
            swap(copy);
        }
        return *this;
    }

    /// Takes other's allocation, frees ours; `other` is left empty.
    aligned_buffer& operator=(aligned_buffer&& other) noexcept {
        aligned_buffer moved(std::move(other));
        swap(moved);
        return *this;
    }

    /// Frees the allocation.
    ~aligned_buffer() { release(); }

    /// The first element (64-byte aligned), or nullptr when empty.
    T* data() noexcept { return data_; }
    /// The first element (64-byte aligned), or nullptr when empty.
    const T* data() const noexcept { return data_; }
    /// Number of elements.
    std::size_t size() const noexcept { return size_; }
    /// Whether it holds no elements.
    bool empty() const noexcept { return size_ == 0; }
    /// The elements as a contiguous range (so a std::span views them: `std::span<const T>(buf)`).
    T* begin() noexcept { return data_; }
    /// One past the last element.
    T* end() noexcept { return data_ + size_; }
    /// The elements as a contiguous range.
    const T* begin() const noexcept { return data_; }
    /// One past the last element.
    const T* end() const noexcept { return data_ + size_; }

    /// Exchanges the allocations.
    void swap(aligned_buffer& other) noexcept {
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
    }

private:
    static T* allocate(std::size_t n) {
        if (n == 0) {
            return nullptr;
        }
        const std::size_t bytes = checked_bytes<T>(n, "aligned_buffer", "the elements");
        static_assert(alignof(T) <= tensor_alignment, "aligned_buffer: alignof(T) exceeds llm::tensor_alignment");
        // nothrow: a failure becomes llm::error naming the size, with or without exceptions.
        void* p = ::operator new(bytes, std::align_val_t{tensor_alignment}, std::nothrow);
        llm::check(p != nullptr, "aligned_buffer: allocating ", n, " elements (", bytes, " bytes) failed: out of memory");
        // Trivially copyable T: starting the objects' lifetime needs no constructor call.
        return static_cast<T*>(p);
    }

    void release() noexcept {
        if (data_ != nullptr) {
            ::operator delete(data_, std::align_val_t{tensor_alignment});
        }
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace llm
