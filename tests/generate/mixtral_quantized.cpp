// SPDX-License-Identifier: Apache-2.0
// Mixtral GGUF files with Q8_0 / Q4_0 experts open with params<llm::model::quantized>: the stacked
// experts stay in their stored type (repacked into 8-row groups by default), their bytes are the
// file's, not fp32's, and greedy decoding follows the fp32-decoded load of the same file.
#include "common.hpp"
#include "quant_model.hpp"

#include <llm/generate/generate.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/any_matrix.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using llm::io::ggml_type;

template <class P>
constexpr bool is_quantized = std::is_same_v<typename std::remove_cvref_t<P>::element_type, llm::model::quantized>;

// Logits of a 7-token prompt (step_tokens) then of n decode steps fed `forced` (or, when empty,
// their own greedy token); the greedy tokens chosen after the prompt and each step.
struct run_result {
    std::vector<float> logits;
    std::vector<std::int32_t> tokens;
};
template <class M, class P>
run_result run(const M& m, const P& p, std::size_t n, const std::vector<std::int32_t>& forced, llm::parallel::policy auto&& exec) {
    const std::int32_t prompt[7] = {1, 5, 9, 2, 33, 17, 60};
    auto st = m.make_state(1, 32);
    llm::workspace ws;
    const std::size_t v = m.config().vocab;
    llm::tensor<float, llm::dims<2>> all(7, v), one(1, v);
    m.step_tokens(all.view(), st, 0, llm::model::token_ids(prompt, 7), p, ws, exec);
    run_result r;
    r.logits.assign(all.data() + 6 * v, all.data() + 7 * v);
    auto argmax = [&](const float* l) { return static_cast<std::int32_t>(std::max_element(l, l + v) - l); };
    r.tokens.push_back(argmax(all.data() + 6 * v));
    for (std::size_t i = 0; i < n; ++i) {
        std::int32_t next = forced.empty() ? r.tokens.back() : forced[i];
        m.step(one.view(), st, llm::model::token_ids(&next, 1), p, ws, exec);
        r.logits.insert(r.logits.end(), one.data(), one.data() + v);
        r.tokens.push_back(argmax(one.data()));
    }
    return r;
}


// One decode step of every token of the vocabulary alone (position 0): the logits of each.
template <class M, class P>
std::vector<std::vector<float>> single_steps(const M& m, const P& p) {
    const std::size_t v = m.config().vocab;
    std::vector<std::vector<float>> out;
    llm::workspace ws;
    llm::tensor<float, llm::dims<2>> one(1, v);
    for (std::int32_t tok = 0; tok < static_cast<std::int32_t>(v); ++tok) {
        auto st = m.make_state(1, 4);
        m.step(one.view(), st, llm::model::token_ids(&tok, 1), p, ws, llm::parallel::sequential{});
        out.emplace_back(one.data(), one.data() + v);
    }
    return out;
}

// max |a - b| / max |b|
double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
    double amax = 0, dmax = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        amax = std::max(amax, std::abs(static_cast<double>(b[i])));
        dmax = std::max(dmax, std::abs(static_cast<double>(a[i]) - b[i]));
    }
    return dmax / amax;
}

}  // namespace

// Bound: tests/generate/quantized.cpp's for the dense tiny llama (the activations quantized to 8
// bits before every block-format product: max |difference| <= 0.06 max |logit|); the MoE FFN's
// products carry the same per-product error (tests/moe/quantized_block.cpp: ~1% rms relative).
// The routing is the fp32 router on activations that differ by that much, so a token whose top-2
// experts are a near-tie in some layer may swap one expert: its output then moves by that
// expert's contribution (0.30-0.36 of max |logit| measured), a different, legitimate result of
// the same weights, which the fp32-decoded load would equally give on a near-tie the other way.
// So: the Q8_0 file, whose tokens hit no such tie, gives the same greedy tokens (free-running
// from a prompt) and every logit within the bound (measured 1.4%); per single-token step over the
// whole vocabulary, at least 60 of 64 tokens within the bound and with the same argmax for both
// files (measured Q8_0 64 / 64 within 1.8%; Q4_0 61 / 64 within 2.8%, 3 routing swaps; the same
// argmax for 62 / 64 with both, the others logit near-ties).
TEST_CASE("mixtral gguf: Q8_0 / Q4_0 experts stay quantized (repacked or row-major), not fp32-sized, and follow the fp32-decoded load") {
    const llm::model::dims d = gen_test::tiny_mixtral_dims();
    const std::size_t E = d.n_experts, ff = d.d_ff, dm = d.d_model;
    for (const ggml_type t : {ggml_type::q8_0, ggml_type::q4_0}) {
        CAPTURE(llm::io::ggml_type_name(t));
        const bool q8 = t == ggml_type::q8_0;
        const std::string file = gen_test::tiny_mixtral_gguf(t);
        const auto f = llm::io::gguf_file::parse(file, "mixtral.gguf");
        const std::size_t n = 8;
        run_result ref;
        std::vector<std::vector<float>> ref_steps;
        llm::generate::open_gguf(f, "mixtral.gguf", {.dequantize = true}, [&](const auto& m, const auto& p, const auto& cfg) {
            CHECK(cfg.family == llm::model::family::mixtral);
            CHECK(std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::moe::mixtral<>>);
            CHECK(!is_quantized<decltype(p)>);
            ref = run(m, p, n, {}, llm::parallel::sequential{});
            ref_steps = single_steps(m, p);
            return 0;
        });
        for (const bool repack : {true, false}) {
            CAPTURE(repack);
            llm::generate::open_gguf(f, "mixtral.gguf", {.repack = repack}, [&](const auto& m, const auto& p, const auto&) {
                constexpr bool moe = std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::moe::mixtral<>>;
                REQUIRE((moe && is_quantized<decltype(p)>));
                if constexpr (moe && is_quantized<decltype(p)>) {
                    const auto block_bytes = static_cast<std::size_t>(llm::io::ggml_traits(t).type_size);  // per 32 values
                    std::size_t expert_bytes = 0;
                    for (std::size_t l = 0; l < d.n_layers; ++l) {
                        const auto& ffn = std::get<0>(p.layers)[l].ffn;
                        for (const auto* w : {&ffn.w1, &ffn.w3, &ffn.w2}) {
                            CHECK(w->type() == t);
                            CHECK(w->layout() == (repack ? llm::quant::weight_layout::interleaved8 : llm::quant::weight_layout::row_major));
                            expert_bytes += w->bytes().size();
                        }
                        CHECK(ffn.w1.extent(0) == E * ff);
                        CHECK(ffn.w2.extent(0) == E * dm);
                    }
                    // the file's bytes (18 or 34 per 32 weights), not fp32's 128
                    const std::size_t weights = d.n_layers * 3 * E * ff * dm;
                    CHECK(expert_bytes == weights / 32 * block_bytes);
                    CHECK(3 * expert_bytes < weights * 4);  // under a third of fp32's bytes
                    if (!repack) {  // row-major experts view the memory map itself
                        CHECK(std::get<0>(p.layers)[0].ffn.w1.bytes().data() == f.tensor_bytes(f.tensor("blk.0.ffn_gate_exps.weight")).data());
                    }
                    // single-token steps over the vocabulary
                    const auto steps = single_steps(m, p);
                    std::size_t within = 0, same = 0;
                    double worst_within = 0;
                    for (std::size_t i = 0; i < steps.size(); ++i) {
                        const double e = max_rel(steps[i], ref_steps[i]);
                        within += e <= 0.06 ? 1 : 0;
                        worst_within = e <= 0.06 ? std::max(worst_within, e) : worst_within;
                        same += std::max_element(steps[i].begin(), steps[i].end()) - steps[i].begin() ==
                                        std::max_element(ref_steps[i].begin(), ref_steps[i].end()) - ref_steps[i].begin()
                                    ? 1
                                    : 0;
                    }
                    MESSAGE(std::string(llm::io::ggml_type_name(t)), std::string(repack ? " repacked" : " row-major"), ": single steps within 0.06: ",
                            within, " / ", steps.size(), " (worst of those ", worst_within, "), same argmax ", same);
                    CHECK(within >= 60);
                    CHECK(same >= 60);
                    CHECK((!q8 || within == steps.size()));
                    // a pool gives the sequential bits
                    const run_result free = run(m, p, n, {}, llm::parallel::sequential{});
                    llm::parallel::thread_pool pool(2);
                    const run_result par = run(m, p, n, {}, pool);
                    CHECK(par.logits == free.logits);
                    if (q8) {
                        // free-running greedy decoding from a prompt: the same tokens, the logits within the bound
                        CHECK(free.tokens == ref.tokens);
                        const double e = max_rel(free.logits, ref.logits);
                        MESSAGE("q8_0 prompt + ", n, " greedy steps: max difference / max |logit| ", e);
                        CHECK(e <= 0.06);
                    }
                }
                return 0;
            });
        }
    }
}

TEST_CASE("mixtral gguf: Q4_K experts are repacked into 8-row groups and run the packed MoE kernels") {
    // d_model and d_ff 256: whole Q4_K super-blocks; one layer keeps the test quick.
    const llm::model::dims d = gen_test::tiny_mixtral_dims(256, 256, 1);
    const std::string file = gen_test::tiny_mixtral_gguf(ggml_type::q4_k, d);  // parse views these bytes
    const auto f = llm::io::gguf_file::parse(file, "mixtral.gguf");
    std::vector<std::vector<float>> ref_steps;
    llm::generate::open_gguf(f, "mixtral.gguf", {.dequantize = true}, [&](const auto& m, const auto& p, const auto&) {
        ref_steps = single_steps(m, p);
        return 0;
    });
    llm::generate::open_gguf(f, "mixtral.gguf", {}, [&](const auto& m, const auto& p, const auto&) {
        constexpr bool moe = std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::moe::mixtral<>>;
        REQUIRE((moe && is_quantized<decltype(p)>));
        if constexpr (moe && is_quantized<decltype(p)>) {
            const auto& ffn = std::get<0>(p.layers)[0].ffn;
            for (const auto* w : {&ffn.w1, &ffn.w3, &ffn.w2}) {
                CHECK(w->type() == ggml_type::q4_k);
                CHECK(w->layout() == llm::quant::weight_layout::interleaved8);
            }
            // Q8_K activations against 4.5-bit weights, as the Q4_0 model above: the same bounds
            // (each step's logits within 0.06 of the largest, the argmax kept, for 60 of 64).
            const auto steps = single_steps(m, p);
            std::size_t within = 0, same = 0;
            for (std::size_t i = 0; i < steps.size(); ++i) {
                within += max_rel(steps[i], ref_steps[i]) <= 0.06 ? 1 : 0;
                same += std::max_element(steps[i].begin(), steps[i].end()) - steps[i].begin() ==
                                std::max_element(ref_steps[i].begin(), ref_steps[i].end()) - ref_steps[i].begin()
                            ? 1
                            : 0;
            }
            MESSAGE("q4_K repacked experts: single steps within 0.06: ", within, " / ", steps.size(), ", same argmax ", same);
            CHECK(within >= 60);
            CHECK(same >= 60);
            // a pool gives the sequential bits
            llm::parallel::thread_pool pool(2);
            CHECK(run(m, p, 4, {}, pool).logits == run(m, p, 4, {}, llm::parallel::sequential{}).logits);
        }
        return 0;
    });
}
