// SPDX-License-Identifier: Apache-2.0
// Repacked quantized weights in a model: open_gguf's params with every Q4_0 / Q8_0 / Q4_K / Q6_K matrix passed through
// llm::quant::repack (8-row interleaved groups, as llama.cpp repacks at load) give logits that follow the
// dequantize-to-fp32 path within the bound of the row-major quantized path, and llama.cpp's q8_0 Qwen2
// keeps its first greedy token.
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
#include <list>
#include <string>
#include <vector>

namespace {

using llm::io::ggml_type;

// Logits of every prompt row (step_tokens: the GEMM path) then of 3 decode steps (the GEMV path) on
// fixed tokens: each path's own greedy token would let a near tie of two logits (seen with Q2_K) send
// the paths down different sequences, which compares nothing.
template <class M, class P>
std::vector<float> run_logits(const M& m, const P& p) {
    const std::int32_t prompt[10] = {1, 5, 9, 2, 33, 17, 60, 4, 8, 21};
    const std::int32_t steps[3] = {3, 40, 12};
    auto st = m.make_state(1, 32);
    llm::workspace ws;
    llm::parallel::sequential seq;
    const std::size_t v = m.config().vocab;
    llm::tensor<float, llm::dims<2>> all(10, v), one(1, v);
    m.step_tokens(all.view(), st, 0, llm::model::token_ids(prompt, 10), p, ws, seq);
    std::vector<float> out(all.data(), all.data() + all.size());
    for (const std::int32_t next : steps) {
        m.step(one.view(), st, llm::model::token_ids(&next, 1), p, ws, seq);
        out.insert(out.end(), one.data(), one.data() + one.size());
    }
    return out;
}

// A copy of quantized params with every repackable matrix (the head included) repacked into
// buffers of `store` (a list: its elements never move). Returns the number of repacked matrices.
template <class P>
std::size_t repack_all(P& q, std::list<llm::aligned_buffer<std::byte>>& store) {
    std::size_t n = 0;
    auto one = [&](llm::quant::any_matrix& w) {
        const bool packable = llm::quant::repackable(w.type());
        w = llm::quant::repack(w, store.emplace_back());
        n += packable && w.layout() == llm::quant::weight_layout::interleaved8;
    };
    q.for_each_param([&](std::string_view, auto& t) {
        if constexpr (llm::model::is_any_matrix<decltype(t)>) one(t);
    });
    if (q.head.layout() == llm::quant::weight_layout::row_major) one(q.head);
    return n;
}

}  // namespace

// Tolerance: the repacked products differ from the row-major quantized ones only in fp32
// summation order (the same Q8_0 / Q8_K activations, the same exact int32 block sums), so they meet
// the row-major path's allowance against the dequantized fp32 path: 6% of the largest logit
// (tests/generate/quantized.cpp, "every type's logits ... follow the dequantize-to-fp32 path").
TEST_CASE("repacked gguf: Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K matrices repacked (llm::quant::repack) give logits that follow the dequantize-to-fp32 path") {
    for (const ggml_type t : {ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1, ggml_type::q8_0, ggml_type::q2_k, ggml_type::q3_k,
                              ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k}) {
        for (const bool tied : {false, true}) {
            if (tied && t != ggml_type::q4_0 && t != ggml_type::q8_0 && t != ggml_type::q4_k) continue;  // one tied K type (Q4_K) as tests/generate/quantized.cpp
            CAPTURE(llm::io::ggml_type_name(t));
            CAPTURE(tied);
            const std::string file = gen_test::tiny_quant_gguf(t, tied);
            const auto f = llm::io::gguf_file::parse(file, "tiny.gguf");
            std::vector<float> ref, row, packed;
            llm::generate::open_gguf(f, "tiny.gguf", {.dequantize = true}, [&](const auto& m, const auto& p, const auto&) {
                ref = run_logits(m, p);
                return 0;
            });
            llm::generate::open_gguf(f, "tiny.gguf", {.repack = false}, [&](const auto& m, const auto& p, const auto&) {
                if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(p)>::element_type, llm::model::quantized> &&
                              std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::model::llama<>>) {  // the file is a llama
                    row = run_logits(m, p);
                    auto q = p;
                    std::list<llm::aligned_buffer<std::byte>> store;
                    CHECK(repack_all(q, store) > 0);
                    CHECK(q.head.layout() == llm::quant::weight_layout::interleaved8);
                    CHECK(std::get<0>(q.layers)[1].ffn.down.layout() == llm::quant::weight_layout::interleaved8);
                    packed = run_logits(m, q);
                }
                return 0;
            });
            // The default options repack at load (gguf_options::repack): the same matrices, the same bits.
            llm::generate::open_gguf(f, "tiny.gguf", [&](const auto& m, const auto& p, const auto&) {
                if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(p)>::element_type, llm::model::quantized> &&
                              std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::model::llama<>>) {  // the file is a llama
                    CHECK(std::get<0>(p.layers)[1].ffn.down.layout() == llm::quant::weight_layout::interleaved8);
                    CHECK(run_logits(m, p) == packed);
                }
                return 0;
            });
            // Repacked on a pool's threads (gguf_options::pool): the same bytes, so the same bits.
            llm::parallel::thread_pool pool(2);
            llm::generate::open_gguf(f, "tiny.gguf", {.pool = &pool}, [&](const auto& m, const auto& p, const auto&) {
                if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(p)>::element_type, llm::model::quantized> &&
                              std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::model::llama<>>) {  // the file is a llama
                    CHECK(std::get<0>(p.layers)[1].ffn.down.layout() == llm::quant::weight_layout::interleaved8);
                    CHECK(run_logits(m, p) == packed);
                }
                return 0;
            });
            REQUIRE(ref.size() == packed.size());
            REQUIRE(row.size() == packed.size());
            double amax = 0, dmax = 0, drow = 0;
            for (std::size_t i = 0; i < ref.size(); ++i) {
                amax = std::max(amax, std::abs(static_cast<double>(ref[i])));
                dmax = std::max(dmax, std::abs(static_cast<double>(ref[i]) - packed[i]));
                drow = std::max(drow, std::abs(static_cast<double>(row[i]) - packed[i]));
            }
            const std::string label = std::string(llm::io::ggml_type_name(t)) + (tied ? " tied" : "");
            MESSAGE(label, ": max |logit| ", amax, ", repacked vs fp32 ", dmax, ", repacked vs row-major ", drow);
            CHECK(amax > 0.1);
            CHECK(dmax <= 0.06 * amax);
            CHECK(drow > 0.0);  // other summation order: not the row-major bits (the packed kernels ran)
        }
    }
}

// bf16 / f16 matrices laid out at load in 64-row panels (where llm::quant::bf16_panels_pay /
// f16_panels_pay): the prompt's logits (more than 8 rows: the GEMM) are the row-major file's bit for
// bit, the decode steps' (the panel GEMV, exact widening in another order) within 1e-5 of the largest
// logit (each product within gamma_k of the exact sum on both paths; the logits' own size ~2.5).
TEST_CASE("repacked gguf: bf16 / f16 matrices laid out in panels at load keep the prompt's bits and the decode steps' logits") {
  for (const ggml_type type : {ggml_type::bf16, ggml_type::f16}) {
    CAPTURE(llm::io::ggml_type_name(type));
    const std::string file = gen_test::tiny_quant_gguf(type, false);
    const auto f = llm::io::gguf_file::parse(file, "tiny.gguf");
    std::vector<float> row, packed;
    bool packs = false;
    llm::generate::open_gguf(f, "tiny.gguf", {.repack = false}, [&](const auto& m, const auto& p, const auto&) {
        if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(p)>::element_type, llm::model::quantized> &&
                      std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::model::llama<>>) {  // the file is a llama
            CHECK(std::get<0>(p.layers)[1].ffn.down.layout() == llm::quant::weight_layout::row_major);
            row = run_logits(m, p);
        }
        return 0;
    });
    llm::generate::open_gguf(f, "tiny.gguf", [&](const auto& m, const auto& p, const auto&) {
        if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(p)>::element_type, llm::model::quantized> &&
                      std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::model::llama<>>) {  // the file is a llama
            const auto want = type == ggml_type::bf16 ? llm::quant::weight_layout::bf16_panels : llm::quant::weight_layout::f16_panels;
            packs = std::get<0>(p.layers)[1].ffn.down.layout() == want;
            CHECK(packs == (type == ggml_type::bf16 ? llm::quant::bf16_panels_pay() : llm::quant::f16_panels_pay()));
            CHECK(std::get<0>(p.layers)[0].mixer.w_q.layout() == std::get<0>(p.layers)[1].ffn.down.layout());
            CHECK(p.head.layout() == std::get<0>(p.layers)[1].ffn.down.layout());
            packed = run_logits(m, p);
        }
        return 0;
    });
    // Laid out on a pool's threads (gguf_options::pool): the same bytes, so the same bits.
    llm::parallel::thread_pool pool(2);
    llm::generate::open_gguf(f, "tiny.gguf", {.pool = &pool}, [&](const auto& m, const auto& p, const auto&) {
        if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(p)>::element_type, llm::model::quantized> &&
                      std::is_same_v<std::remove_cvref_t<decltype(m)>, llm::model::llama<>>) {  // the file is a llama
            CHECK(p.head.layout() == std::get<0>(p.layers)[1].ffn.down.layout());
            CHECK(run_logits(m, p) == packed);
        }
        return 0;
    });
    REQUIRE(row.size() == packed.size());
    REQUIRE(row.size() % 13 == 0);
    const std::size_t prompt = row.size() / 13 * 10;  // 10 prompt rows, then 3 decode steps
    double amax = 0, dprompt = 0, dstep = 0;
    for (std::size_t i = 0; i < row.size(); ++i) {
        amax = std::max(amax, std::abs(static_cast<double>(row[i])));
        (i < prompt ? dprompt : dstep) = std::max(i < prompt ? dprompt : dstep, std::abs(static_cast<double>(row[i]) - packed[i]));
    }
    MESSAGE((std::string(llm::io::ggml_type_name(type)) + (packs ? " packed" : " not packed (its *_panels_pay() is false here)")), ": max |logit| ", amax,
            ", prompt rows differ by ", dprompt, ", decode steps by ", dstep);
    CHECK(amax > 0.1);
    CHECK(dprompt == 0.0);
    CHECK(dstep <= 1e-5 * amax);
  }
}

TEST_CASE("repacked gguf: llama.cpp's q8_0 Qwen2 repacked gives transformers' first greedy token") {
    llm::parallel::thread_pool pool(2);
    const auto f = llm::io::gguf_file::open("tests/golden/generate/llamacpp-qwen2-q8_0.gguf");
    for (const auto& c : gen_test::goldens("qwen2")) {
        std::vector<std::int32_t> got;
        llm::generate::open_gguf(f, "llamacpp-qwen2-q8_0", {.repack = false}, [&](const auto& m, const auto& p, const auto&) {
            using M = std::remove_cvref_t<decltype(m)>;
            using T = typename std::remove_cvref_t<decltype(p)>::element_type;
            if constexpr (std::is_same_v<T, llm::model::quantized>) {
                auto q = p;
                std::list<llm::aligned_buffer<std::byte>> store;
                CHECK(repack_all(q, store) > 0);
                llm::generate::engine<M, T> eng(m, q, {.slots = 1, .context = 32});
                eng.add(c.prompt, {.max_tokens = 4}, llm::generate::make_sampler({}));
                while (!eng.idle()) for (const auto& e : eng.step(pool)) got.push_back(e.token);
            }
            return 0;
        });
        REQUIRE(!got.empty());
        CHECK(got[0] == c.greedy[0]);
    }
}
