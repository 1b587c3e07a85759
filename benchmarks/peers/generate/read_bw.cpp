// SPDX-License-Identifier: Apache-2.0
// Read bandwidth for the decode ceiling (benchmarks/ceilings.cpp's method, reduced to its read
// kernel): sum a 1 GiB array (well past the last-level cache) with AVX2 loads, 1 and 2 threads,
// best of 5 passes. Prints "read_GBps threads=T X". Built by vs_llamacpp.sh with
// g++ -O3 -march=native -pthread.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main() {
    const std::size_t n = std::size_t{1} << 28;  // floats: 1 GiB
    float* a = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
    for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<float>(i & 255);
    volatile float sink = 0;
    for (unsigned threads : {1u, 2u}) {
        double best = 0;
        for (int rep = 0; rep < 5; ++rep) {
            std::vector<float> part(threads);
            const auto t0 = std::chrono::steady_clock::now();
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < threads; ++t) {
                ts.emplace_back([&, t] {
                    const std::size_t b = n / threads * t, e = n / threads * (t + 1);
                    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
                    for (std::size_t i = b; i < e; i += 32) {
                        s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
                        s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
                        s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
                        s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
                    }
                    float r[8];
                    _mm256_storeu_ps(r, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
                    part[t] = r[0] + r[7];
                });
            }
            for (auto& th : ts) th.join();
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            for (float p : part) sink = sink + p;
            best = std::max(best, static_cast<double>(n * sizeof(float)) / s / 1e9);
        }
        std::printf("read_GBps threads=%u %.2f\n", threads, best);
    }
    std::free(a);
    return 0;
}
