// SPDX-License-Identifier: Apache-2.0
// The nothrow forms of the global operator new / delete, forwarding to the throwing forms, for a
// test program that replaces those to count allocations: llm::aligned_buffer allocates through
// nothrow aligned new, whose runtime version would otherwise be freed by the replaced delete (the
// wrong allocator) and escape the count. Include in exactly one translation unit per program,
// after that unit defines the replaced throwing forms.
#pragma once

#include <cstddef>
#include <new>

void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try { return ::operator new(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    try { return ::operator new[](n); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try { return ::operator new(n, a); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try { return ::operator new[](n, a); } catch (...) { return nullptr; }
}
void operator delete(void* p, const std::nothrow_t&) noexcept { ::operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { ::operator delete[](p); }
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept { ::operator delete(p, a); }
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept { ::operator delete[](p, a); }
