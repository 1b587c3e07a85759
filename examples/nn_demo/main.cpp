// SPDX-License-Identifier: Apache-2.0
// Demo of llm::gemm and llm::nn: GEMM speed against this machine's FMA peak, and a tiny model's forward/backward checked by finite differences.
#include <llm/gemm/gemm.hpp>
#include <llm/nn/nn.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/simd/unroll.hpp>
#include <llm/tensor/tensor.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <vector>

namespace {

using mat = llm::tensor<float, llm::dims<2>>;
using vec = llm::tensor<float, llm::dims<1>>;

/// CPU seconds of every thread of this process.
double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Best wall-clock and best process-CPU time of `reps` calls. On a shared machine wall time
/// includes waiting for a core; CPU time does not, so work per CPU-second shows the
/// kernel's own efficiency.
struct timing {
    double wall = 1e30;
    double cpu = 1e30;
};
template <class F>
timing best_times(int reps, F&& f) {
    timing best;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpu_seconds();
        f();
        best.cpu = std::min(best.cpu, cpu_seconds() - c0);
        best.wall = std::min(best.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

/// fp32 FMA peak of one core through the SIMD facade (12 independent chains).
double fma_peak() {
    using S = llm::simd::default_backend;
    typename S::f32 acc[12];
    for (auto& a : acc) {
        a = S::set1(0.5f);
    }
    const auto m = S::set1(0.999f), c = S::set1(1e-4f);
    constexpr long iters = 10'000'000;
    const double s = best_times(3, [&] {
        for (long i = 0; i < iters; ++i) {
            // Constant indices (as in the GEMM micro-kernel) keep the 12 chains in registers.
            llm::simd::unroll<12>([&](auto k) { acc[k] = S::fma(acc[k], m, c); });
        }
    }).cpu;
    float sink = 0.0f;
    for (auto& a : acc) {
        sink += S::reduce_add(a);
    }
    std::printf("%s", sink == 12345.0f ? " " : "");
    return static_cast<double>(iters) * 12 * S::width * 2.0 / s / 1e9;
}

void fill_random(float* p, std::size_t n, std::mt19937& rng, float scale) {
    std::normal_distribution<float> d(0.0f, scale);
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = d(rng);
    }
}

void gemm_section() {
    const double peak = fma_peak();
    std::printf("== llm::gemm (own backend, SIMD: %zu floats/vector) ==\n", llm::simd::default_backend::width);
    std::printf("measured fp32 FMA peak: %.0f GFLOP per CPU-second (one core)\n", peak);
    std::printf("  (rates per CPU-second do not drop when other jobs share the cores; wall-clock in brackets)\n");
    std::mt19937 rng(1);
    for (std::size_t threads : {1, 2}) {
        llm::parallel::thread_pool pool(threads);
        for (std::size_t n : {512, 1024}) {
            mat a(n, n), b(n, n), c(n, n);
            fill_random(a.data(), a.size(), rng, 1.0f);
            fill_random(b.data(), b.size(), rng, 1.0f);
            const timing t = best_times(5, [&] { llm::gemm(c, a, b, 1.0f, 0.0f, pool); });
            const double flops = 2.0 * static_cast<double>(n * n * n);
            std::printf("  %4zu^3, %zu thread%s: %6.1f GFLOP per CPU-second = %3.0f%% of peak   [%6.1f GFLOP/s wall]\n", n,
                        threads, threads > 1 ? "s" : " ", flops / t.cpu / 1e9, 100.0 * flops / t.cpu / 1e9 / peak,
                        flops / t.wall / 1e9);
        }
        // Decode: y = x W^T with a 4096 x 4096 fp32 weight (64 MiB, streamed from memory).
        mat w(4096, 4096), x(1, 4096), y(1, 4096);
        fill_random(w.data(), w.size(), rng, 0.02f);
        fill_random(x.data(), x.size(), rng, 1.0f);
        const timing t = best_times(5, [&] { llm::gemm(y, x, llm::transpose(w, 0, 1), 1.0f, 0.0f, pool); });
        std::printf("  GEMV 1 x 4096 x 4096, %zu thread%s: weights (64 MiB) read at %4.1f GB/s wall, %4.1f GB per CPU-second\n",
                    threads, threads > 1 ? "s" : " ", 4096.0 * 4096 * 4 / t.wall / 1e9, 4096.0 * 4096 * 4 / t.cpu / 1e9);
    }
}

/// A tiny language-model step: logits = rmsnorm(embedding(ids)) * W^T, cross-entropy loss.
struct tiny_model {
    static constexpr std::size_t vocab = 50, dim = 24, tokens = 6;
    mat table{vocab, dim}, w{vocab, dim};
    vec gain{dim};
    llm::tensor<std::int32_t, llm::dims<1>> ids{tokens};
    llm::tensor<std::int64_t, llm::dims<1>> targets{tokens};

    tiny_model() {
        std::mt19937 rng(2);
        fill_random(table.data(), table.size(), rng, 1.0f);
        fill_random(w.data(), w.size(), rng, 0.3f);
        llm::fill(gain, 1.0f);
        for (std::size_t t = 0; t < tokens; ++t) {
            ids(t) = static_cast<std::int32_t>((7 * t + 3) % vocab);
            targets(t) = t == 2 ? -100 : static_cast<std::int64_t>((11 * t + 1) % vocab);  // one ignored token
        }
    }

    float loss(mat* d_table = nullptr, mat* d_w = nullptr) {
        llm::parallel::sequential seq;
        mat e(tokens, dim), h(tokens, dim), logits(tokens, vocab);
        vec rstd(tokens), lse(tokens);
        llm::nn::embedding_forward(e, ids, table, seq);
        llm::nn::rmsnorm_forward(h, rstd, e, gain, 1e-5f, seq);
        llm::gemm(logits, h, llm::transpose(w, 0, 1), 1.0f, 0.0f, seq);
        const llm::nn::cross_entropy_options opts{.label_smoothing = 0.1f};
        const float l = llm::nn::cross_entropy_forward(lse, logits, targets, opts, seq);
        if (d_table != nullptr) {
            mat d_logits(tokens, vocab), d_h(tokens, dim), d_e(tokens, dim);
            vec d_gain(dim);
            llm::zero_grad(d_logits, d_e, d_gain);  // the nn backwards accumulate
            llm::nn::cross_entropy_backward(d_logits, lse, 1.0f, logits, targets, opts, seq);
            llm::gemm(*d_w, llm::transpose(d_logits, 0, 1), h, 1.0f, 0.0f, seq);  // dW = dlogits^T h
            llm::gemm(d_h, d_logits, w, 1.0f, 0.0f, seq);                          // dh = dlogits W
            llm::nn::rmsnorm_backward(d_e, d_gain, rstd, d_h, e, gain, seq);
            llm::zero_grad(*d_table);
            llm::nn::embedding_backward(*d_table, d_e, ids, seq);
        }
        return l;
    }
};

/// Returns true when the analytic gradients agree with finite differences.
bool gradient_section() {
    std::printf("== tiny model: embedding -> RMSNorm -> linear (llm::gemm) -> cross-entropy ==\n");
    tiny_model m;
    mat d_table(tiny_model::vocab, tiny_model::dim), d_w(tiny_model::vocab, tiny_model::dim);
    const float loss = m.loss(&d_table, &d_w);
    std::printf("  loss (label smoothing 0.1, one ignored token): %.6f   (uniform guess: log 50 = %.6f)\n", loss,
                std::log(50.0));
    // Central differences of the fp32 loss with step h = 1e-2. Bound on |numeric - analytic|:
    // rounding: each loss evaluation is off by up to ~n u |L| (n = 50 terms in the largest sum,
    // the vocabulary's log-sum-exp; u = 2^-24), and the difference quotient divides that by h;
    // truncation: h^2 |f'''| / 6 with |f'''| = O(1) here; plus 1e-3 of the gradient itself.
    const double h = 1e-2;
    const double bound_abs = tiny_model::vocab * 0x1p-24 * std::abs(loss) / h + h * h / 6;
    double worst = 0.0;  // largest |numeric - analytic| / bound
    int checked = 0;
    auto check = [&](float& param, float analytic) {
        const float keep = param;
        param = keep + static_cast<float>(h);
        const double up = m.loss();
        param = keep - static_cast<float>(h);
        const double down = m.loss();
        param = keep;
        const double numeric = (up - down) / (2 * h);
        worst = std::max(worst, std::abs(numeric - analytic) / (bound_abs + 1e-3 * std::abs(analytic)));
        ++checked;
    };
    for (std::size_t j = 0; j < tiny_model::dim; j += 5) {
        check(m.w(static_cast<std::size_t>(m.targets(0)), j), d_w(static_cast<std::size_t>(m.targets(0)), j));
        check(m.table(static_cast<std::size_t>(m.ids(1)), j), d_table(static_cast<std::size_t>(m.ids(1)), j));
    }
    const bool ok = worst < 1.0;  // false for NaN too
    std::printf("  gradient check of %d weights against finite differences: worst difference %.2f of its bound (%.1e + 1e-3 |g|) -> %s\n",
                checked, worst, bound_abs, ok ? "OK" : "MISMATCH");
    return ok;
}

}  // namespace

int main() {
    gemm_section();
    const bool ok = gradient_section();
    std::printf("nn_demo: %s\n", ok ? "all checks passed" : "a check FAILED (MISMATCH above)");
    return ok ? 0 : 1;
}
