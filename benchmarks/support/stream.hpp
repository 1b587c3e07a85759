// SPDX-License-Identifier: Apache-2.0
// STREAM-style memory bandwidth arrays and kernels, shared by bench_ceilings and the benchmarks that report
// a fraction of the read bandwidth measured in their own run (bench_quant's GEMV).
//
// Three float arrays far larger than the last-level cache, bytes counted as STREAM counts them
// (read 3 arrays' worth per pass: it reads all three; copy 2, triad 3; the write-allocate read
// of the destination is not counted). Plain vectorised loops with ordinary stores, which is
// what the library's kernels do. LLM_BENCH_STREAM_MIB=<n> overrides the size of each array (default: the
// last-level cache size, at least 256 MiB, at most 1/8 of physical memory).
#pragma once

#include <llm/config.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>

namespace llm_bench {

namespace par = llm::parallel;

// Pools are made once per thread count and kept: a benchmark function is entered several
// times per run, and worker start-up is not what is being measured.
inline par::thread_pool& pool_of(std::size_t threads) {
    static par::thread_pool one(1);
    static par::thread_pool two(2);
    return threads == 1 ? one : two;
}

inline constexpr std::size_t mib = std::size_t{1} << 20;
inline constexpr std::size_t block = 64;  // floats; arrays and thread halves are multiples of this

inline std::size_t stream_array_bytes() {
    if (const char* text = std::getenv("LLM_BENCH_STREAM_MIB"); text != nullptr && *text != '\0') {
        const long value = std::strtol(text, nullptr, 10);
        return static_cast<std::size_t>(std::max(1L, value)) * mib;
    }
    // Each array at least as large as the last-level cache and at least 256 MiB, so the three
    // are at least three times the cache. STREAM's own rule (four times the cache per array)
    // would take 3 GiB here (L3 = 260 MiB) and risk running a shared machine out of memory
    // when several smoke runs coincide; measured on this machine, 1040 MiB arrays give the
    // same figures as 256 MiB ones within 3% (BENCHMARKS.md). At most 1/8 of memory.
    const long l3 = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    std::size_t bytes = std::max<std::size_t>(256 * mib, l3 > 0 ? static_cast<std::size_t>(l3) : 0);
    if (pages > 0 && page > 0) {
        bytes = std::min(bytes, static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 8);
    }
    return bytes / (block * sizeof(float)) * (block * sizeof(float));
}

struct aligned_free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
};
using buffer = std::unique_ptr<float[], aligned_free>;

inline buffer make_buffer(std::size_t n) {
    return buffer(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t{64})));
}

struct stream_arrays {
    std::size_t n;
    buffer a, b, c;
};

// Allocated on first use (the FMA benchmarks alone need none of it) and first touched by
// both threads, half each, as the 2-thread kernels will use them.
inline stream_arrays& arrays() {
    static stream_arrays s = [] {
        const std::size_t n = stream_array_bytes() / sizeof(float);
        stream_arrays r{n, make_buffer(n), make_buffer(n), make_buffer(n)};
        const std::size_t half = (n / 2 + block - 1) / block * block;
        par::parallel_for(pool_of(2), n, half, [&](std::size_t begin, std::size_t end) {
            std::fill(r.a.get() + begin, r.a.get() + end, 0.0f);
            std::fill(r.b.get() + begin, r.b.get() + end, 1.0f);
            std::fill(r.c.get() + begin, r.c.get() + end, 2.0f);
        });
        return r;
    }();
    return s;
}

inline float read_kernel(const float* LLM_RESTRICT x, std::size_t n) {
    // 64 independent lanes: the compiler keeps them in vector registers as several
    // independent add chains (a single running sum would be latency-bound, not memory-bound).
    float acc[block] = {};
    for (std::size_t i = 0; i < n; i += block) {
        for (std::size_t j = 0; j < block; ++j) {
            acc[j] += x[i + j];
        }
    }
    float sum = 0.0f;
    for (float v : acc) {
        sum += v;
    }
    return sum;
}

inline void copy_kernel(float* LLM_RESTRICT dst, const float* LLM_RESTRICT src, std::size_t n) {
    // "+ 0.0f" is not an identity in IEEE arithmetic (-0 + 0 = +0), so the compiler must
    // keep the loop instead of calling memcpy; the add costs nothing next to the memory.
    for (std::size_t i = 0; i < n; ++i) {
        dst[i] = src[i] + 0.0f;
    }
}

inline void triad_kernel(float* LLM_RESTRICT a, const float* LLM_RESTRICT b, const float* LLM_RESTRICT c, float s,
                         std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        a[i] = b[i] + s * c[i];
    }
}

/// One STREAM read pass with `threads` threads (half of each array each); returns GB/s. It reads
/// all three arrays, a then b then c: at least three times the last-level cache, so a pass
/// finds nothing of its data left in the cache by the pass before. (Reading array a alone, one
/// cache's worth when the L3 is 256 MiB or more, let back-to-back passes hit the L3 and
/// overstated the ceiling 1.6x at 2 threads on a 260 MiB L3.)
inline double stream_read_pass(std::size_t threads) {
    stream_arrays& s = arrays();
    const std::size_t share = (s.n / threads + block - 1) / block * block;
    float sink[2] = {0.0f, 0.0f};
    const auto t0 = std::chrono::steady_clock::now();
    par::parallel_for(pool_of(threads), s.n, share, [&](std::size_t begin, std::size_t end) {
        float sum = 0.0f;
        for (const float* x : {s.a.get(), s.b.get(), s.c.get()}) {
            sum += read_kernel(x + begin, end - begin);
        }
        sink[begin == 0 ? 0 : 1] += sum;
    });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile float keep = sink[0] + sink[1];
    (void)keep;
    return static_cast<double>(3 * s.n * sizeof(float)) * 1e-9 / sec;
}

/// The read-bandwidth ceiling of this run: the best of `passes` STREAM read passes (GB/s).
inline double stream_read_ceiling(std::size_t threads, int passes = 5) {
    double best = 0.0;
    for (int i = 0; i < passes; ++i) {
        best = std::max(best, stream_read_pass(threads));
    }
    return best;
}

}  // namespace llm_bench
