// SPDX-License-Identifier: Apache-2.0
// The GPT-2 MLP's inference step fuses gelu into c_fc's GEMM store (llm::nn::linear_forward
// with an activation); its output must be the training forward's (c_fc, then gelu_forward,
// then c_proj) bit for bit: the fused epilogue computes the same fp32 pre-activation and the
// same gelu lanes, so no tolerance applies. Any difference is a failure.
#include <llm/model/model.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

template <class Form, class T>
void step_equals_forward(std::size_t tokens, llm::parallel::thread_pool& pool) {
    llm::model::dims d;
    d.d_model = 24;
    d.d_ff = 72;  // 4.5 tiles of 16 columns: an edge tile
    const llm::model::gelu_mlp<Form> blk(d);
    auto p = blk.template make_params<T>();
    std::uint32_t seed = 7;
    p.for_each_param([&](std::string_view, auto& t) {
        using E = std::remove_cvref_t<decltype(*t.data())>;
        for (std::size_t i = 0; i < t.size(); ++i) {
            seed = seed * 1664525u + 1013904223u;
            t.data()[i] = E(static_cast<float>((seed >> 8) % 2001) / 500.0f - 2.0f);
        }
    });
    const llm::model::batch_shape shape{.batch = 1, .seq = tokens};
    llm::model::arena a;
    auto c = llm::model::make_in_arena(a, [&](llm::model::arena& m) { return blk.make_cache(m, shape); });
    llm::tensor<float, llm::dims<2>> x(tokens, d.d_model), y_forward(tokens, d.d_model), y_step(tokens, d.d_model),
        y_step_pool(tokens, d.d_model);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x.data()[i] = 2.0f * std::sin(0.37f * static_cast<float>(i));
    }
    llm::workspace ws;
    blk.forward(y_forward.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    typename llm::model::gelu_mlp<Form>::state st;
    blk.step(y_step.view(), st, x.view(), p, ws, llm::parallel::sequential{});
    blk.step(y_step_pool.view(), st, x.view(), p, ws, pool);
    std::size_t differ = 0, negative_pre = 0;
    for (std::size_t i = 0; i < y_forward.size(); ++i) {
        differ += std::bit_cast<std::uint32_t>(y_forward.data()[i]) != std::bit_cast<std::uint32_t>(y_step.data()[i]);
        differ += std::bit_cast<std::uint32_t>(y_forward.data()[i]) != std::bit_cast<std::uint32_t>(y_step_pool.data()[i]);
    }
    for (std::size_t i = 0; i < c.pre.size(); ++i) {
        negative_pre += c.pre.data()[i] < -0.5f;  // gelu is far from the identity there
    }
    INFO("tokens=", tokens);
    CHECK(negative_pre > 0);
    CHECK(differ == 0);
}

}  // namespace

TEST_CASE("gelu_mlp: the step (gelu fused into c_fc's GEMM store) equals the forward (c_fc, gelu, c_proj) bit for bit") {
    llm::parallel::thread_pool pool(2);
    for (const std::size_t tokens : {1u, 5u, 33u}) {
        step_equals_forward<llm::nn::gelu_tanh, float>(tokens, pool);
        step_equals_forward<llm::nn::gelu_erf, float>(tokens, pool);
        step_equals_forward<llm::nn::gelu_tanh, llm::bf16>(tokens, pool);
    }
}
