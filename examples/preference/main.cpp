// SPDX-License-Identifier: Apache-2.0
// Preference-optimisation demo: sequence log-probs from generated logits, every loss with its TRL metrics, GB/s.
//
// Usage: preference [--pairs N] [--tokens S] [--vocab V] [--threads T]
// Defaults (8 pairs, 64 positions, vocab 32000) run in about a second.
// Errors: a one-line message on stderr and exit status 2.
#include "common/args.hpp"

#include <llm/align/cpo.hpp>
#include <llm/align/dpo.hpp>
#include <llm/align/kto.hpp>
#include <llm/align/logprobs.hpp>
#include <llm/align/loss_by_name.hpp>
#include <llm/align/orpo.hpp>
#include <llm/align/simpo.hpp>
#include <llm/core/bf16.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/algorithm.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace al = llm::align;
using llm::dims;

namespace {

struct options {
    std::size_t pairs = 8, tokens = 64, vocab = 32000, threads = 2;
};

constexpr const char* usage =
    "usage: preference [--pairs N] [--tokens S] [--vocab V] [--threads T]\n"
    "  --pairs N    preference pairs, in [1, 16777216] (default 8)\n"
    "  --tokens S   positions per sequence, in [8, 16777216] (default 64)\n"
    "  --vocab V    vocabulary size, in [2, 16777216] (default 32000)\n"
    "  --threads T  threads, in [1, 1024] (default 2)\n"
    "  2 * N * S * V (the logits of one model) must be at most 134217728\n";

// The run holds 2 * pairs * tokens * vocab logits four times over (policy, reference and
// gradient in fp32, the policy in bf16: 14 bytes each); 2^27 of them is about 1.9 GB.
constexpr std::size_t max_logits = std::size_t{1} << 27;

options parse(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    constexpr std::size_t max_dim = std::size_t{1} << 24;  // labels are int32 and every count stays far from overflow
    while (a.next()) {
        if (a.is("--pairs")) o.pairs = a.integer<std::size_t>(1, max_dim);
        else if (a.is("--tokens")) o.tokens = a.integer<std::size_t>(8, max_dim);  // 4 prompt positions + a response
        else if (a.is("--vocab")) o.vocab = a.integer<std::size_t>(2, max_dim);
        else if (a.is("--threads")) o.threads = a.integer<std::size_t>(1, 1024);
        else a.unknown();
    }
    std::size_t logits = 0;
    const bool overflow = __builtin_mul_overflow(2 * o.pairs, o.tokens, &logits) || __builtin_mul_overflow(logits, o.vocab, &logits);
    llm::check(!overflow && logits <= max_logits, "2 * --pairs * --tokens * --vocab = 2 * ", o.pairs, " * ", o.tokens, " * ", o.vocab,
               " logits is more than the limit of ", max_logits, " (14 bytes each)");
    return o;
}

// A batch laid out as TRL does: rows [0, B) chosen, [B, 2B) rejected; positions < 4 are the
// prompt (mask 0), the response has a random length. Logits are cheap LCG noise plus a bump
// at the label: the policy's bump is larger on chosen responses than the reference's, smaller
// on rejected ones, so a good loss sees positive margins.
struct batch {
    std::size_t n, S, V;
    std::vector<float> policy, ref;
    std::vector<std::int32_t> labels;
    std::vector<std::uint8_t> mask;

    batch(std::size_t pairs, std::size_t s, std::size_t v)
        : n(2 * pairs), S(s), V(v), policy(n * s * v), ref(n * s * v), labels(n * s), mask(n * s, 0) {
        std::uint32_t state = 2024;
        const auto uniform = [&] {
            state = state * 1664525u + 1013904223u;
            return static_cast<float>(state >> 8) * (1.0f / 16777216.0f);
        };
        for (std::size_t i = 0; i < policy.size(); ++i) {
            policy[i] = ref[i] = 6.0f * uniform() - 3.0f;
        }
        for (std::size_t b = 0; b < n; ++b) {
            const bool chosen = b < pairs;
            const std::size_t len = 4 + static_cast<std::size_t>(uniform() * static_cast<float>(s - 4));
            for (std::size_t t = 0; t < s; ++t) {
                const std::size_t row = b * s + t;
                labels[row] = static_cast<std::int32_t>(uniform() * static_cast<float>(v - 1));
                mask[row] = t >= 4 && t < 4 + len;
                const float bump = 4.0f + 2.0f * uniform();
                ref[row * v + static_cast<std::size_t>(labels[row])] += bump;
                policy[row * v + static_cast<std::size_t>(labels[row])] += bump + (chosen ? 0.08f : -0.05f) * uniform();
            }
        }
    }
    template <class E>
    llm::tensor_view<const E, dims<3>> view(const std::vector<E>& x) const {
        return {x.data(), n, S, V};
    }
    llm::tensor_view<const std::int32_t, dims<2>> y() const { return {labels.data(), n, S}; }
    llm::tensor_view<const std::uint8_t, dims<2>> m() const { return {mask.data(), n, S}; }
};

template <class F>
double seconds(F&& f, int reps) {
    f();  // warm up (page faults, pool start)
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) {
        f();
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

void print_row(const char* name, const al::pair_stats& s, const std::vector<double>& dc, const std::vector<double>& dr) {
    double g = 0;
    for (std::size_t i = 0; i < dc.size(); ++i) {
        g += dc[i] * dc[i] + dr[i] * dr[i];
    }
    std::printf("  %-14s %10.5f %10.4f %10.4f %10.4f %8.3f %12.3e\n", name, s.loss, s.chosen_reward, s.rejected_reward,
                s.margin, s.accuracy, std::sqrt(g));
}

int run(const options& o) {
    llm::parallel::thread_pool pool(o.threads);
    const batch d(o.pairs, o.tokens, o.vocab);
    const std::size_t B = o.pairs, n = d.n;
    std::printf("preference demo: %zu pairs, %zu positions, vocab %zu, %zu threads\n", B, o.tokens, o.vocab, o.threads);

    // sequence log-probs of policy and reference (one fused pass over each (2B, S, V) logits)
    std::vector<double> pol_sum(n), ref_sum(n);
    std::vector<std::size_t> tokens(n);
    std::vector<float> lse_data(n * o.tokens);
    const llm::tensor_view<float, dims<2>> lse(lse_data.data(), n, o.tokens);  // saved for the backward
    al::sequence_logprobs(al::logprob_outputs<double>{{pol_sum.data(), n}, {}, {tokens.data(), n}}, lse, d.view(d.policy),
                          d.y(), d.m(), pool);
    al::sequence_logprobs(al::logprob_outputs<double>{{ref_sum.data(), n}, {}, {}}, {}, d.view(d.ref), d.y(), d.m(), pool);

    const auto first = [&](const std::vector<double>& v) { return llm::tensor_view<const double, dims<1>>(v.data(), B); };
    const auto second = [&](const std::vector<double>& v) { return llm::tensor_view<const double, dims<1>>(v.data() + B, B); };
    const llm::tensor_view<const std::size_t, dims<1>> lc(tokens.data(), B), lr(tokens.data() + B, B);
    const al::pair_inputs<double> in{first(pol_sum), second(pol_sum), first(ref_sum), second(ref_sum), lc, lr};
    std::vector<double> losses(B), cr(B), rr(B), dc(B), dr(B);
    const al::pair_outputs<double> out{{losses.data(), B}, {cr.data(), B}, {rr.data(), B}, {dc.data(), B}, {dr.data(), B}};

    std::printf("\nper-pair log-probs (summed over the response): chosen %.2f vs ref %.2f, rejected %.2f vs ref %.2f\n",
                pol_sum[0], ref_sum[0], pol_sum[B], ref_sum[B]);
    std::printf("\n  %-14s %10s %10s %10s %10s %8s %12s\n", "loss", "loss", "rw/chosen", "rw/rejected", "rw/margin",
                "rw/acc", "|grad|");
    for (std::string_view name : al::dpo_loss_names) {
        al::dpo_config cfg{.beta = 0.1};
        if (name == "exo_pair") {
            cfg.label_smoothing = 1e-3;
        } else if (name == "robust" || name == "aot" || name == "aot_unpaired") {
            cfg.label_smoothing = 0.1;
        }
        print_row(std::string(name).c_str(), al::pair_loss(out, in, name, cfg), dc, dr);
    }
    print_row("cdpo(eps=.1)", al::pair_loss<al::dpo_sigmoid>(out, in, {.beta = 0.1, .label_smoothing = 0.1}), dc, dr);
    print_row("r-dpo(a=.01)", al::pair_loss<al::dpo_sigmoid>(out, in, {.beta = 0.1, .rdpo_alpha = 0.01}), dc, dr);
    print_row("ref-free dpo", al::pair_loss<al::dpo_sigmoid>(out, in, {.beta = 0.1, .reference_free = true}), dc, dr);
    print_row("simpo", al::pair_loss<al::simpo>(out, in, {.beta = 2.0, .gamma = 0.5}), dc, dr);
    print_row("cpo", al::pair_loss<al::cpo>(out, in, {.beta = 0.1, .cpo_alpha = 1.0}), dc, dr);
    const al::pair_stats orpo = al::pair_loss<al::orpo>(out, in, {.beta = 0.1});
    print_row("orpo", orpo, dc, dr);
    std::printf("  (orpo: nll %.4f, log_odds_ratio %.4f, log_odds_chosen %.4f)\n", orpo.nll, orpo.log_odds_ratio,
                orpo.log_odds_chosen);

    // KTO on the same sequences seen as unpaired: chosen desirable, rejected undesirable
    std::vector<std::uint8_t> desirable(n, 0);
    std::fill(desirable.begin(), desirable.begin() + static_cast<std::ptrdiff_t>(B), 1);
    std::vector<double> kl_l(n), kl_r(n), kl_d(n);
    const llm::tensor_view<const double, dims<1>> pol_all(pol_sum.data(), n), ref_all(ref_sum.data(), n);
    const double kl = al::kto_kl_estimate(pol_all, ref_all);
    const al::unpaired_stats k = al::unpaired_loss<al::kto>(
        al::unpaired_outputs<double>{{kl_l.data(), n}, {kl_r.data(), n}, {kl_d.data(), n}},
        al::unpaired_inputs<double>{pol_all, ref_all, {desirable.data(), n}}, {.beta = 0.1, .kl = kl});
    std::printf("  %-14s %10.5f %10.4f %10.4f %10.4f %8s   (kl %.4f)\n", "kto", k.loss, k.chosen_reward,
                k.rejected_reward, k.margin, "-", k.kl);

    // DPO (sigmoid) gradient back to the policy logits, and the throughput of both passes
    al::pair_loss<al::dpo_sigmoid>(out, in, {.beta = 0.1});
    std::vector<double> d_sum(n);
    std::copy(dc.begin(), dc.end(), d_sum.begin());
    std::copy(dr.begin(), dr.end(), d_sum.begin() + static_cast<std::ptrdiff_t>(B));
    std::vector<float> dlogits_data(d.policy.size());
    const llm::tensor_view<float, dims<3>> dlogits(dlogits_data.data(), n, o.tokens, o.vocab);
    llm::zero_grad(dlogits);  // backward passes add into their gradients
    const auto backward = [&] {
        al::sequence_logprobs_backward(dlogits, lse, llm::tensor_view<const double, dims<1>>(d_sum.data(), n), {},
                                       d.view(d.policy), d.y(), d.m(), pool);
    };
    const auto forward = [&] {
        al::sequence_logprobs(al::logprob_outputs<double>{{pol_sum.data(), n}, {}, {}}, lse, d.view(d.policy), d.y(),
                              d.m(), pool);
    };
    std::vector<llm::bf16> policy_bf16(d.policy.size());
    for (std::size_t i = 0; i < policy_bf16.size(); ++i) {
        policy_bf16[i] = llm::bf16(d.policy[i]);
    }
    const auto forward_bf16 = [&] {
        al::sequence_logprobs(al::logprob_outputs<double>{{pol_sum.data(), n}, {}, {}}, {}, d.view(policy_bf16), d.y(),
                              d.m(), pool);
    };
    // rows outside the loss mask are skipped by the forward: count only the logits it reads
    std::size_t read_rows = 0;
    for (std::uint8_t v : d.mask) {
        read_rows += v;
    }
    const double fwd_bytes = static_cast<double>(read_rows * o.vocab * sizeof(float));
    const double t_f = seconds(forward, 3), t_fb = seconds(forward_bf16, 3), t_b = seconds(backward, 3);
    std::printf("\nlog-prob throughput (%zu threads; logits rows in the loss mask: %zu of %zu):\n", o.threads, read_rows, n * o.tokens);
    std::printf("  forward  fp32 : %7.2f GB/s of logits read (%.2f ms)\n", fwd_bytes / t_f / 1e9, t_f * 1e3);
    std::printf("  forward  bf16 : %7.2f GB/s of logits read (%.2f ms)\n", fwd_bytes / 2 / t_fb / 1e9, t_fb * 1e3);
    std::printf("  backward fp32 : %7.2f GB/s of logits read + dlogits read and written (%.2f ms)\n",
                3.0 * static_cast<double>(d.policy.size() * sizeof(float)) / t_b / 1e9, t_b * 1e3);
    std::printf("  (compare: ~20 GB/s one thread, ~35 GB/s two threads on the reference machine; bench_align measures the ceiling)\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("preference", [&] { return run(parse(argc, argv)); });
}
