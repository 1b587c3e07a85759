// SPDX-License-Identifier: Apache-2.0
// Peak heap use of flash_forward / flash_backward at S = 16384 is O(S * D), never O(S^2): counted by replacing operator new.
//
// How the count works: this file replaces the global operator new / delete (every form:
// plain, array, aligned, sized) for the whole test_attention executable. Each allocation
// goes to malloc / aligned_alloc, and while `counting` is on, its usable size
// (malloc_usable_size) is added to `current` and `peak` is raised; each free subtracts.
// The inputs are allocated before counting starts, so `peak` is exactly the extra memory the
// kernel allocates (std::vector, llm::tensor and every container go through operator new).
// Off (the rest of the executable) the replacement costs one relaxed load per allocation.
#include "helpers.hpp"

#include <llm/attention/attention.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

std::atomic<bool> counting{false};
std::atomic<std::int64_t> current{0};
std::atomic<std::int64_t> peak{0};

void* note_alloc(void* p) {
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    if (counting.load(std::memory_order_relaxed)) {
        const auto now = current.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p))) +
                         static_cast<std::int64_t>(malloc_usable_size(p));
        std::int64_t seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
    }
    return p;
}

void note_free(void* p) {
    if (p != nullptr && counting.load(std::memory_order_relaxed)) {
        current.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)));
    }
    std::free(p);
}

void* aligned(std::size_t n, std::align_val_t a) {
    const auto al = std::max(static_cast<std::size_t>(a), sizeof(void*));
    return note_alloc(std::aligned_alloc(al, (std::max<std::size_t>(n, 1) + al - 1) / al * al));
}

/// Runs f with counting on and returns the peak extra bytes it held at once.
template <class F>
std::int64_t peak_bytes(F&& f) {
    current = 0;
    peak = 0;
    counting = true;
    f();
    counting = false;
    return peak.load();
}

}  // namespace

void* operator new(std::size_t n) { return note_alloc(std::malloc(std::max<std::size_t>(n, 1))); }
void* operator new[](std::size_t n) { return note_alloc(std::malloc(std::max<std::size_t>(n, 1))); }
void* operator new(std::size_t n, std::align_val_t a) { return aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return aligned(n, a); }
void operator delete(void* p) noexcept { note_free(p); }
void operator delete[](void* p) noexcept { note_free(p); }
void operator delete(void* p, std::size_t) noexcept { note_free(p); }
void operator delete[](void* p, std::size_t) noexcept { note_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { note_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { note_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { note_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { note_free(p); }
#include "../support/nothrow_new.hpp"

namespace {

namespace at = llm::attention;
using namespace attn_test;

TEST_CASE("memory: the counting hook sees allocations") {
    const auto bytes = peak_bytes([] {
        std::vector<float> v(1000);
        v[7] = 1.0f;
    });
    CHECK(bytes >= 4000);
}

TEST_CASE("memory: flash_forward and flash_backward at S = 16384 use O(S * D) extra memory") {
    const std::size_t S = 16384, D = 64;
    const auto sd_bytes = static_cast<std::int64_t>(S * D * sizeof(float));  // one S x D fp32 matrix: 4 MiB
    const auto s2_bytes = static_cast<std::int64_t>(S * S * sizeof(float));  // the scores: 1 GiB
    auto q = random4<float>(1, S, 1, D, 1);
    auto k = random4<float>(1, S, 1, D, 2);
    auto v = random4<float>(1, S, 1, D, 3);
    t4f o(1, S, 1, D), dq(1, S, 1, D), dk(1, S, 1, D), dv(1, S, 1, D);
    t3f lse(1, 1, S);
    llm::parallel::sequential seq;
    // Causal halves the work of the default run; the buffers do not depend on the mask.
    const auto fwd = peak_bytes([&] { at::flash_forward(q, k, v, o, lse, at::causal{}, {}, seq); });
    MESSAGE("flash_forward S=16384 D=64: peak extra ", fwd, " bytes = ", double(fwd) / sd_bytes, " x S*D*4; S^2 scores would be ",
            s2_bytes);
    CHECK(fwd <= 3 * sd_bytes);  // packed K^T and V (2 S*D) plus per-task tiles
    CHECK(std::isfinite(o(0, S - 1, 0, D - 1)));
    // The backward's buffers do not depend on the mask either: a window keeps this test fast.
    const at::sliding_window win(512, 0);
    at::flash_forward(q, k, v, o, lse, win, {}, seq);
    const auto bwd = peak_bytes([&] { at::flash_backward(q, k, v, o, lse, o, dq, dk, dv, win, {}, seq); });
    MESSAGE("flash_backward S=16384 D=64: peak extra ", bwd, " bytes = ", double(bwd) / sd_bytes, " x S*D*4");
    // K, K^T, V^T, scaled Q, dO and one dQ partial per chunk (6 S*D) plus L, D rows and tiles.
    CHECK(bwd <= 8 * sd_bytes);
    CHECK(std::isfinite(dq(0, S - 1, 0, 0)));
}

}  // namespace
