// SPDX-License-Identifier: Apache-2.0
// llm::nn against golden values computed by PyTorch (tests/golden/nn/make_golden.py, float64).
#include "helpers.hpp"

#include "../support/golden.hpp"

#include <llm/nn/nn.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

using namespace nn_test;
namespace nn = llm::nn;

namespace {

using array = llm_test::golden_array;

const array& get(const std::string& name) {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/nn/golden.txt");
    return file.get(name);
}

mat_f as_matrix(const std::string& name) {
    const array& a = get(name);
    REQUIRE(a.dims.size() == 2);
    mat_f t(a.dims[0], a.dims[1]);
    for (std::size_t i = 0; i < a.values.size(); ++i) {
        t(i / a.dims[1], i % a.dims[1]) = static_cast<float>(a.values[i]);
    }
    return t;
}

vec_f as_vec(const std::string& name) {
    const array& a = get(name);
    vec_f t(a.values.size());
    for (std::size_t i = 0; i < a.values.size(); ++i) {
        t(i) = static_cast<float>(a.values[i]);
    }
    return t;
}

llm::tensor<std::int64_t, llm::dims<1>> as_ids(const std::string& name) {
    const array& a = get(name);
    llm::tensor<std::int64_t, llm::dims<1>> t(a.values.size());
    for (std::size_t i = 0; i < a.values.size(); ++i) {
        t(i) = static_cast<std::int64_t>(a.values[i]);
    }
    return t;
}

// Inputs are rounded to fp32 (relative 6e-8) before our fp32 kernels run; 1e-5 covers that
// and the kernels' own error, as in the reference tests.
void check_close(const std::vector<double>& ours, const std::string& name) {
    INFO(name);
    CHECK(rel_error(ours, get(name).values) < tol_f32);
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("softmax and log-softmax match PyTorch", S, golden_softmax) {
    for (std::string op : {"softmax", "log_softmax"}) {
        const auto x = as_matrix(op + ".x"), dy = as_matrix(op + ".dy");
        mat_f y(x.extent(0), x.extent(1)), dx(x.extent(0), x.extent(1));
        llm::zero_grad(dx);
        if (op == "softmax") {
            nn::softmax_forward<S>(y, x);
            nn::softmax_backward<S>(dx, y, dy);
        } else {
            nn::log_softmax_forward<S>(y, x);
            nn::log_softmax_backward<S>(dx, y, dy);
        }
        check_close(to_double(y), op + ".y");
        check_close(to_double(dx), op + ".dx");
    }
}
TEST_CASE_TEMPLATE_APPLY(golden_softmax, backends);

TEST_CASE_TEMPLATE_DEFINE("norms match PyTorch", S, golden_norms) {
    const auto x = as_matrix("rmsnorm.x"), dy = as_matrix("rmsnorm.dy");
    const auto w = as_vec("rmsnorm.weight");
    mat_f y(4, 12), dx(4, 12);
    vec_f rstd(4), dw(12), mean(4);
    llm::zero_grad(dx, dw);
    nn::rmsnorm_forward<S>(y, rstd, x, w, 1e-6f);
    nn::rmsnorm_backward<S>(dx, dw, rstd, dy, x, w);
    check_close(to_double(y), "rmsnorm.y");
    check_close(to_double(dx), "rmsnorm.dx");
    check_close(to_double(dw), "rmsnorm.dweight");

    const auto lx = as_matrix("layernorm.x"), ldy = as_matrix("layernorm.dy");
    const auto lw = as_vec("layernorm.weight"), lb = as_vec("layernorm.bias");
    vec_f ldw(12), ldb(12);
    llm::zero_grad(dx, ldw, ldb);
    nn::layernorm_forward<S>(y, mean, rstd, lx, lw, lb, 1e-5f);
    nn::layernorm_backward<S>(dx, ldw, ldb, mean, rstd, ldy, lx, lw);
    check_close(to_double(y), "layernorm.y");
    check_close(to_double(dx), "layernorm.dx");
    check_close(to_double(ldw), "layernorm.dweight");
    check_close(to_double(ldb), "layernorm.dbias");
}
TEST_CASE_TEMPLATE_APPLY(golden_norms, backends);

TEST_CASE_TEMPLATE_DEFINE("activations match PyTorch", S, golden_activations) {
    const auto x = as_matrix("silu.x");
    mat_f y(1, 37), dx(1, 37);
    llm::zero_grad(dx);
    nn::silu_forward<S>(y, x);
    nn::silu_backward<S>(dx, as_matrix("silu.dy"), x);
    check_close(to_double(y), "silu.y");
    check_close(to_double(dx), "silu.dx");
    llm::zero_grad(dx);
    nn::gelu_forward<nn::gelu_erf, S>(y, x);
    nn::gelu_backward<nn::gelu_erf, S>(dx, as_matrix("gelu_erf.dy"), x);
    check_close(to_double(y), "gelu_erf.y");
    check_close(to_double(dx), "gelu_erf.dx");
    llm::zero_grad(dx);
    nn::gelu_forward<nn::gelu_tanh, S>(y, x);
    nn::gelu_backward<nn::gelu_tanh, S>(dx, as_matrix("gelu_tanh.dy"), x);
    check_close(to_double(y), "gelu_tanh.y");
    check_close(to_double(dx), "gelu_tanh.dx");

    const auto g = as_matrix("swiglu.gate"), u = as_matrix("swiglu.up");
    mat_f s(2, 9), dg(2, 9), du(2, 9);
    llm::zero_grad(dg, du);
    nn::swiglu_forward<S>(s, g, u);
    nn::swiglu_backward<S>(dg, du, as_matrix("swiglu.dy"), g, u);
    check_close(to_double(s), "swiglu.y");
    check_close(to_double(dg), "swiglu.dgate");
    check_close(to_double(du), "swiglu.dup");
}
TEST_CASE_TEMPLATE_APPLY(golden_activations, backends);

TEST_CASE_TEMPLATE_DEFINE("cross-entropy and embedding match PyTorch", S, golden_ce) {
    const nn::cross_entropy_options mean_opts{}, sum_opts{.label_smoothing = 0.1f, .red = nn::reduction::sum};
    for (const auto& [name, o] : {std::pair{std::string("ce_mean"), mean_opts}, std::pair{std::string("ce_sum_smooth"), sum_opts}}) {
        const auto logits = as_matrix(name + ".logits");
        const auto t = as_ids(name + ".targets");
        vec_f lse(6);
        mat_f d(6, 11);
        llm::zero_grad(d);
        const float loss = nn::cross_entropy_forward<S>(lse, logits, t, o);
        nn::cross_entropy_backward<S>(d, lse, 1.0f, logits, t, o);
        check_close({static_cast<double>(loss)}, name + ".loss");
        check_close(to_double(d), name + ".dlogits");
    }
    const auto table = as_matrix("embedding.table");
    const auto ids = as_ids("embedding.ids");
    mat_f out(6, 5), dt(7, 5);
    llm::zero_grad(dt);
    nn::embedding_forward<S>(out, ids, table);
    nn::embedding_backward<S>(dt, as_matrix("embedding.dy"), ids);
    check_close(to_double(dt), "embedding.dtable");
}
TEST_CASE_TEMPLATE_APPLY(golden_ce, backends);

TEST_CASE_TEMPLATE_DEFINE("rope matches Hugging Face / GPT-J formulas from PyTorch", S, golden_rope) {
    const array& xa = get("rope.x");
    llm::tensor<float, llm::dims<3>> x(5, 2, 16), y(5, 2, 16);
    for (std::size_t i = 0; i < xa.values.size(); ++i) {
        x.data()[i] = static_cast<float>(xa.values[i]);
    }
    const auto pos = as_ids("rope.positions");
    nn::rope_forward<nn::rope_rotate_half, S>(y, x, pos);
    check_close(to_double(y), "rope.half");
    nn::rope_forward<nn::rope_interleaved, S>(y, x, pos);
    check_close(to_double(y), "rope.interleaved");
    nn::rope_forward<nn::rope_rotate_half, S>(y, x, pos, nn::rope_params<nn::rope_scaling::linear>{.scaling = {4.0}});
    check_close(to_double(y), "rope.half_linear4");
    nn::rope_forward<nn::rope_rotate_half, S>(y, x, pos, nn::rope_params<nn::rope_scaling::llama3>{.theta = 500000.0});
    check_close(to_double(y), "rope.half_llama3");
    const auto inv = nn::rope_inverse_frequencies("test", 128, nn::rope_params<nn::rope_scaling::llama3>{.theta = 500000.0});
    CHECK(rel_error(inv, get("rope.inv_freq_llama3_128").values) < 1e-14);
}
TEST_CASE_TEMPLATE_APPLY(golden_rope, backends);
