// SPDX-License-Identifier: Apache-2.0
// Replaces the global operator new / delete of a test program to watch its heap: allocation
// count, largest single request, and peak bytes held (malloc_usable_size), while a watch is on.
//
// Include in exactly one translation unit per program (it defines the replaced operators). Every
// form is replaced: plain, array, aligned, sized, and the nothrow forms (which forward to the
// throwing ones, so llm::aligned_buffer's nothrow aligned new is counted and freed by the same
// allocator). With no watch on, the replacement costs one relaxed load per allocation.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include <malloc.h>

namespace llm_test::heap {

inline std::atomic<bool> watching{false};
inline std::atomic<std::int64_t> allocations{0};  // operator new calls while watching
inline std::atomic<std::size_t> largest{0};       // largest single request while watching
inline std::atomic<std::int64_t> current{0};      // bytes held, counted from the watch's start
inline std::atomic<std::int64_t> peak{0};         // most bytes held at once since the watch's start

inline void* note(std::size_t n, void* p) {
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    if (watching.load(std::memory_order_relaxed)) {
        allocations.fetch_add(1);
        std::size_t seen = largest.load();
        while (n > seen && !largest.compare_exchange_weak(seen, n)) {
        }
        const auto size = static_cast<std::int64_t>(malloc_usable_size(p));
        const auto now = current.fetch_add(size) + size;
        std::int64_t top = peak.load();
        while (now > top && !peak.compare_exchange_weak(top, now)) {
        }
    }
    return p;
}

// Not inlined: GCC would otherwise see std::free on memory from a new-expression
// (-Wmismatched-new-delete), which is what replacing operator new / delete with malloc / free means.
[[gnu::noinline]] inline void release(void* p) noexcept {
    if (p != nullptr && watching.load(std::memory_order_relaxed)) {
        current.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)));
    }
    std::free(p);
}

inline void* aligned(std::size_t n, std::align_val_t a) {
    const auto al = std::max(static_cast<std::size_t>(a), sizeof(void*));
    return note(n, std::aligned_alloc(al, (std::max<std::size_t>(n, 1) + al - 1) / al * al));
}

/// What a watched call did to the heap.
struct report {
    std::int64_t allocations;  ///< operator new calls (on any thread)
    std::size_t largest;       ///< largest single request, bytes
    std::int64_t peak_bytes;   ///< most extra bytes held at once
};

/// Runs f with the watch on and reports its allocations. Memory allocated before the call and
/// freed inside it can make `current` negative; peak_bytes is then still the extra high-water mark.
template <class F>
report watch(F&& f) {
    allocations = 0;
    largest = 0;
    current = 0;
    peak = 0;
    watching = true;
    try {
        f();
    } catch (...) {
        watching = false;
        throw;
    }
    watching = false;
    return {allocations.load(), largest.load(), peak.load()};
}

}  // namespace llm_test::heap

void* operator new(std::size_t n) { return llm_test::heap::note(n, std::malloc(std::max<std::size_t>(n, 1))); }
void* operator new[](std::size_t n) { return llm_test::heap::note(n, std::malloc(std::max<std::size_t>(n, 1))); }
void* operator new(std::size_t n, std::align_val_t a) { return llm_test::heap::aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return llm_test::heap::aligned(n, a); }
void operator delete(void* p) noexcept { llm_test::heap::release(p); }
void operator delete[](void* p) noexcept { llm_test::heap::release(p); }
void operator delete(void* p, std::size_t) noexcept { llm_test::heap::release(p); }
void operator delete[](void* p, std::size_t) noexcept { llm_test::heap::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { llm_test::heap::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { llm_test::heap::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { llm_test::heap::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { llm_test::heap::release(p); }

#include "nothrow_new.hpp"
