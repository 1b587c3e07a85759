// SPDX-License-Identifier: Apache-2.0
// Attention demo: RoPE'd GQA prefill with flash_forward/backward, accuracy vs the reference, then paged-KV-cache decoding.
//
// Usage: attention_demo [--seq-len N]   (default 1024; generated data, no files needed)
// Prints what a user wants to know: error against the double reference, GFLOP/s of the
// tiled forward and backward on 1 and 2 threads next to a materialised (S x S) baseline's
// memory, that RoPE makes scores depend on relative positions only, and decode tokens/s
// from a paged KV cache that agrees with the prefill path. Exit status 1 when a figure is off its
// bound; a bad argument or any error: one line on stderr and exit status 2.
#include "common/args.hpp"

#include <llm/attention/attention.hpp>
#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/attention/reference.hpp>
#include <llm/core/workspace.hpp>
#include <llm/nn/rope.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace at = llm::attention;
using t4 = llm::tensor<float, llm::dims<4>>;
using t3 = llm::tensor<float, llm::dims<3>>;

namespace {

constexpr std::size_t H = 8, Hk = 2, D = 64;  // GQA: 4 query heads per kv head

t4 random4(std::size_t s, std::size_t h, std::uint32_t seed) {
    t4 t(1, s, h, D);
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = nd(rng);
    }
    return t;
}

// RoPE from llm::nn on (1, S, heads, D): rotate the (S, heads, D) view in place.
void rope(t4& x, std::size_t first_position) {
    llm::tensor<std::int64_t, llm::dims<1>> pos(x.extent(1));
    for (std::size_t i = 0; i < pos.size(); ++i) {
        pos(i) = static_cast<std::int64_t>(first_position + i);
    }
    auto v = llm::select(x, 0, 0);
    llm::nn::rope_forward(v, v, pos);
}

template <class F>
double seconds(F&& f, int reps = 3) {
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

template <class A, class B>
double rel_err(const A& a, const B& b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double d = double(a.data()[i]) - double(b.data()[i]);
        num += d * d;
        den += double(b.data()[i]) * double(b.data()[i]);
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

/// Prints OK or MISMATCH for one accuracy figure against its bound; counts the failures.
int failures = 0;
const char* verdict(double err, double bound) {
    const bool ok = err < bound;  // false for NaN too
    failures += ok ? 0 : 1;
    return ok ? "OK" : "MISMATCH";
}

// fp32 bounds of the unit tests (tests/attention/flash.cpp), as relative norms: the kernels round
// dot products and sums of a few hundred terms in fp32 and use a fast exp (1e-7 relative).
constexpr double fwd_bound = 2e-5;
constexpr double bwd_bound = 1e-4;  // two more matmuls over rounded P and dP

// Sequence length bounds: section 4 decodes 32 single-token steps after a prefill of S - 32
// tokens (so S >= 64 leaves a prefill of 32); the timed sections cost O(S^2), so the upper bound
// takes 256 times as long as the default 1024.
constexpr std::size_t min_seq_len = 64, max_seq_len = 16384;

const char* const usage = R"(usage: attention_demo [--seq-len N]
RoPE'd GQA causal attention on generated data: accuracy against a double reference, forward and
backward GFLOP/s, a relative-position check and paged-KV-cache decoding; exit status 1 when a
figure is off its bound.
  --seq-len N   tokens in the sequence, in [64, 16384] (default 1024)
)";

std::size_t parse_seq_len(int argc, char** argv) {
    std::size_t seq_len = 1024;
    cli::args a(argc, argv, usage);
    while (a.next()) {
        if (a.is("--seq-len")) seq_len = a.integer<std::size_t>(min_seq_len, max_seq_len);
        else a.unknown();
    }
    return seq_len;
}

int run(const std::size_t S) {
    std::printf("attention demo: 1 sequence of %zu tokens, %zu query heads sharing %zu kv heads, head_dim %zu, causal\n", S, H,
                Hk, D);
    t4 q = random4(S, H, 1), k = random4(S, Hk, 2), v = random4(S, Hk, 3), o(1, S, H, D);
    t3 lse(1, H, S);
    rope(q, 0);
    rope(k, 0);
    std::printf("  q and k rotated by llm::nn::rope_forward (theta 10000, rotate-half), positions 0..%zu\n", S - 1);

    // 1. Accuracy against the double reference on the first 256 tokens (the oracle is O(S^2)).
    {
        const std::size_t n = std::min<std::size_t>(S, 256);
        auto qs = llm::slice(q, 1, 0, n);
        auto ks = llm::slice(k, 1, 0, n);
        auto vs = llm::slice(v, 1, 0, n);
        t4 of(1, n, H, D), g = random4(n, H, 4), dq(1, n, H, D), dk(1, n, Hk, D), dv(1, n, Hk, D);
        t3 lf(1, H, n);
        llm::tensor<double, llm::dims<4>> od(1, n, H, D), dqd(1, n, H, D), dkd(1, n, Hk, D), dvd(1, n, Hk, D);
        llm::tensor<double, llm::dims<3>> ld(1, H, n);
        at::flash_forward(of, lf, qs, ks, vs, at::causal{});
        at::reference_forward(od, ld, qs, ks, vs, at::causal{});
        // Backward adds into dq, dk, dv (fresh tensors are zero; llm::zero_grad clears used ones).
        at::flash_backward(dq, dk, dv, of, lf, g, qs, ks, vs, at::causal{});
        at::reference_backward(dqd, dkd, dvd, g, qs, ks, vs, at::causal{});
        const double ef = rel_err(of, od);
        const double eb = std::max({rel_err(dq, dqd), rel_err(dk, dkd), rel_err(dv, dvd)});
        std::printf("1. accuracy vs double reference (%zu tokens): forward rel err %.2e (%s), backward dq %.2e dk %.2e dv %.2e (%s)\n",
                    n, ef, verdict(ef, fwd_bound), rel_err(dq, dqd), rel_err(dk, dkd), rel_err(dv, dvd), verdict(eb, bwd_bound));
    }

    // 2. Speed: causal FLOPs = 2 S^2 D per head forward, 2.5x that backward.
    {
        const double fwd_flops = 2.0 * double(S) * double(S) * D * H;
        t4 g = random4(S, H, 5), dq(1, S, H, D), dk(1, S, Hk, D), dv(1, S, Hk, D);
        std::printf("2. speed (extra memory O(S*D): %.1f MiB of packed K/V; materialising S x S scores would take %.1f MiB per head)\n",
                    2.0 * S * D * 4 / 1048576.0, double(S) * S * 4 / 1048576.0);
        for (std::size_t threads : {1, 2}) {
            llm::parallel::thread_pool pool(threads);
            const double tf = seconds([&] { at::flash_forward(o, lse, q, k, v, at::causal{}, {}, pool); });
            const double tb = seconds([&] { at::flash_backward(dq, dk, dv, o, lse, g, q, k, v, at::causal{}, {}, pool); }, 2);
            std::printf("   %zu thread%s: forward %7.2f ms %6.1f GFLOP/s | backward %7.2f ms %6.1f GFLOP/s\n", threads,
                        threads == 1 ? " " : "s", tf * 1e3, fwd_flops / tf * 1e-9, tb * 1e3, 2.5 * fwd_flops / tb * 1e-9);
        }
    }

    // 3. RoPE: shifting every position by 1000 leaves the attention output unchanged.
    {
        const std::size_t n = std::min<std::size_t>(S, 128);
        t4 q0 = random4(n, H, 6), k0 = random4(n, Hk, 7), vv = random4(n, Hk, 8);
        t4 q1 = q0, k1 = k0, o0(1, n, H, D), o1(1, n, H, D);
        t3 l0(1, H, n), l1(1, H, n);
        rope(q0, 0);
        rope(k0, 0);
        rope(q1, 1000);
        rope(k1, 1000);
        at::flash_forward(o0, l0, q0, k0, vv, at::causal{});
        at::flash_forward(o1, l1, q1, k1, vv, at::causal{});
        // fp32 rotations of q and k at other angles: a few ulps each (the unit test's 1e-5).
        const double e = rel_err(o1, o0);
        std::printf("3. RoPE: positions 0.. vs 1000.. give outputs differing by %.2e (relative, %s): scores depend on distance only\n",
                    e, verdict(e, 1e-5));
    }

    // 4. Decode from a paged KV cache (16-token blocks) of a 2-layer model, one cache object for
    // all layers (one block table per sequence, a K/V pool per layer, as in vLLM): prefill
    // S - 32 tokens, then 32 steps of one token; a step appends the token to each layer and
    // attends through cache.layer(l) (layer l sees its new row at once), then advance(seq, 1)
    // commits it. Both layers hold the same keys here (a demo has one set), so the last step of
    // each must equal the last row of the causal prefill over all S tokens computed above.
    {
        const std::size_t steps = 32, prefill = S - steps;
        const std::size_t layers = 2;
        at::paged_kv_cache<float> cache(layers, (S + 15) / 16 + 4, 16, Hk, D);
        const auto seq = cache.add_sequence();
        auto k3 = llm::select(k, 0, 0);  // (S, Hk, D)
        auto v3 = llm::select(v, 0, 0);
        for (std::size_t l = 0; l < layers; ++l) {
            cache.layer(l).append(seq, llm::slice(k3, 0, 0, prefill), llm::slice(v3, 0, 0, prefill));
        }
        cache.advance(seq, prefill);
        llm::parallel::thread_pool pool(2);
        t3 qt(1, H, D), out(1, H, D), out0(1, H, D);
        llm::workspace ws;  // the loop's scratch: grown by the first step, reused (no allocation) after
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t t = prefill; t < S; ++t) {
            for (std::size_t h = 0; h < H; ++h) {
                for (std::size_t d = 0; d < D; ++d) {
                    qt(0, h, d) = q(0, t, h, d);  // already rotated at position t
                }
            }
            for (std::size_t l = 0; l < layers; ++l) {  // a model would compute layer l's q, k, v here
                cache.layer(l).append(seq, llm::slice(k3, 0, t, t + 1), llm::slice(v3, 0, t, t + 1));
                at::decode_attention(l == 0 ? out0 : out, cache.layer(l), qt, at::causal{}, {}, ws, pool);
            }
            cache.advance(seq, 1);
        }
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double num = 0, den = 0;
        for (std::size_t h = 0; h < H; ++h) {
            for (std::size_t d = 0; d < D; ++d) {
                num += std::pow(out(0, h, d) - o(0, S - 1, h, d), 2) + std::pow(out0(0, h, d) - o(0, S - 1, h, d), 2);
                den += 2 * std::pow(o(0, S - 1, h, d), 2);
            }
        }
        // Both paths are fp32 over the same keys in another order (split-K merge vs tiles).
        const double e = std::sqrt(num / den);
        std::printf("4. decode: %zu steps x %zu layers against a %zu..%zu-token paged cache (%zu blocks in use), 2 threads: "
                    "%.0f tokens/s; last step (both layers) vs prefill row rel err %.2e (%s)\n",
                    steps, layers, prefill + 1, S, cache.block_table(seq).size(), double(steps) / dt, e, verdict(e, fwd_bound));
    }
    std::printf("attention_demo: %s\n", failures == 0 ? "all checks passed" : "a check FAILED (MISMATCH above)");
    return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("attention_demo", [&] { return run(parse_seq_len(argc, argv)); });
}
