// SPDX-License-Identifier: Apache-2.0
// The MoE layer against transformers 4.44.2's MixtralSparseMoeBlock and load_balancing_loss_func (tests/golden/moe/make_golden.py, float64).
//
// Tolerances. The golden inputs are float32 values, so the only differences are the fp32
// arithmetic of the kernel against float64: every output is a chain of dot products of at most
// n = d + ff + k = 22 terms (forward) or T k + d + ff = 40 terms (gradients), each erring by
// n u relative to the sum of |terms| (u = 2^-24: 1.3e-6 and 2.4e-6). The test checks normwise
// max|err| / max|golden| <= 2e-5 for the forward and the loss, 1e-4 for the gradients (the
// SiLU derivative and the softmax backward add cancellation, < 10x). The routing is checked
// exactly (the golden has no near-ties: its top-2 gaps are far above fp32 rounding).
#include "helpers.hpp"

#include "../support/golden.hpp"

#include <llm/moe/moe.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

namespace {

using namespace moe_test;
namespace moe = llm::moe;
using array = llm_test::golden_array;

const array& get(const std::string& name) {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/moe/golden.txt");
    return file.get(name);
}

t2f as2(const std::string& name) {
    const array& a = get(name);
    REQUIRE(a.dims.size() == 2);
    t2f t(a.dims[0], a.dims[1]);
    for (std::size_t i = 0; i < a.values.size(); ++i) {
        t.data()[i] = static_cast<float>(a.values[i]);
    }
    return t;
}

t3f as3(const std::string& name) {
    const array& a = get(name);
    REQUIRE(a.dims.size() == 3);
    t3f t(a.dims[0], a.dims[1], a.dims[2]);
    for (std::size_t i = 0; i < a.values.size(); ++i) {
        t.data()[i] = static_cast<float>(a.values[i]);
    }
    return t;
}

}  // namespace

TEST_CASE("moe golden: MixtralSparseMoeBlock output, router logits, load_balancing_loss_func and all gradients") {
    const t2f x = as2("x"), gate = as2("gate"), dy = as2("dy");
    const t3f w1 = as3("w1"), w3 = as3("w3"), w2 = as3("w2");
    const std::size_t T = x.extent(0), d = x.extent(1), E = gate.extent(0);
    const float coef = static_cast<float>(get("aux_coef").values[0]);
    const auto w = moe::make_moe_weights(gate, w1, w3, w2);
    const moe::softmax_top_k router{.k = 2};  // Mixtral: softmax, top-2, renormalised
    const moe::moe_options opt{.aux_loss_coef = coef};
    t2f y(T, d);
    poison(y.data(), y.size());
    moe::moe_cache cache;
    moe::moe_forward(y, cache, x, w, router, opt, llm::parallel::sequential{});
    CHECK(normwise(y.data(), get("y").values.data(), T * d) <= 2e-5);
    CHECK(normwise(cache.logits.data(), get("router_logits").values.data(), T * E) <= 2e-5);
    CHECK(std::fabs(cache.aux_loss - get("aux_loss").values[0]) <= 2e-5 * std::fabs(get("aux_loss").values[0]));

    grads g{[&] {
        std::mt19937 rng(1);
        return layer(E, d, w1.extent(1), 0, rng);
    }()};
    t2f dx(T, d);
    moe::moe_backward(dx, g.views(), cache, dy, x, w, router, opt, llm::parallel::sequential{});
    CHECK(normwise(dx.data(), get("dx").values.data(), dx.size()) <= 1e-4);
    CHECK(normwise(g.gate.data(), get("dgate").values.data(), g.gate.size()) <= 1e-4);
    CHECK(normwise(g.w1.data(), get("dw1").values.data(), g.w1.size()) <= 1e-4);
    CHECK(normwise(g.w3.data(), get("dw3").values.data(), g.w3.size()) <= 1e-4);
    CHECK(normwise(g.w2.data(), get("dw2").values.data(), g.w2.size()) <= 1e-4);
    // The aux loss's share of dgate is not negligible (else the comparison above could not see it).
    grads g0 = g;
    llm::zero_grad(g0.gate);
    t2f dx0(T, d);
    moe::moe_backward(dx0, g0.views(), cache, dy, x, w, router, {}, llm::parallel::sequential{});
    CHECK(normwise(g0.gate.data(), get("dgate").values.data(), g0.gate.size()) > 1e-3);
}
