// SPDX-License-Identifier: Apache-2.0
// The Mamba-2 mixer block: Hugging Face's Mamba2Mixer (tests/golden/ssm/make_mamba2_golden.py) on a tiny random
// configuration, the decode step against the forward at every position, the block contract, and the backward
// against finite differences of the forward with gradients accumulating.
//
// Tolerances: the golden's weights and input are exact float32 values and its output float64; our forward is
// fp32 through two GEMMs (K <= 16), the conv (4 taps), SSD (see ssd.cpp: 3e-5 for sums of up to 128 terms,
// here 4 + 4) and an RMSNorm: relative 2e-5 of the output norm; the issue asks for 1e-4. The step runs the
// recurrence instead of the chunked form: 2e-5.
#include "helpers.hpp"

#include "../support/golden.hpp"

#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/ssm/mamba2.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;
namespace model = llm::model;

static_assert(model::block_like<ssm::mamba2_mixer>);
static_assert(model::steppable_block<ssm::mamba2_mixer>);

const llm_test::golden_file& golden() {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/ssm/mamba2_golden.txt");
    return file;
}

ssm::mamba2_mixer make_mixer() {
    ssm::mamba2_mixer m{.d_model = 8, .heads = 4, .head_dim = 4, .groups = 1, .d_state = 4, .d_conv = 4};
    m.eps = 1e-5f;     // the golden's layer_norm_epsilon (checked in the first test)
    m.dt_min = 1e-3f;  // its time_step_min
    m.chunk = 4;
    return m;
}
const ssm::mamba2_mixer mixer = make_mixer();

ssm::mamba2_mixer::params<float> golden_params() {
    auto p = mixer.make_params<float>();
    p.for_each_param([&](std::string_view name, auto& t) {
        const auto& a = golden().get(std::string(name));
        REQUIRE(a.values.size() == t.size());
        for (std::size_t i = 0; i < t.size(); ++i) {
            t.data()[i] = static_cast<float>(a.values[i]);
        }
    });
    return p;
}

/// Runs the forward on x [tokens, 8] of `batch` sequences; returns y.
tensor<float, 2> run_forward(const ssm::mamba2_mixer::params<float>& p, const tensor<float, 2>& x, std::size_t batch,
                             model::arena& a, ssm::mamba2_mixer::cache& c) {
    const model::batch_shape shape{.batch = batch, .seq = x.extent(0) / batch};
    c = model::make_in_arena(a, [&](model::arena& m) { return mixer.make_cache(m, shape); });
    tensor<float, 2> y(x.extent(0), mixer.d_model);
    poison(y);
    llm::workspace ws;
    mixer.forward(y, c, x, p, ws, llm::parallel::sequential{});
    return y;
}

tensor<float, 2> golden_x() {
    const auto& a = golden().get("x");
    tensor<float, 2> x(a.dims[0] * a.dims[1], a.dims[2]);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x.data()[i] = static_cast<float>(a.values[i]);
    }
    return x;
}

}  // namespace

TEST_CASE("mamba2_mixer: forward matches Hugging Face Mamba2Mixer (torch path, float64) on a tiny random model") {
    const auto p = golden_params();
    const auto x = golden_x();
    model::arena a;
    ssm::mamba2_mixer::cache c;
    CHECK(static_cast<float>(golden().get("eps").values.at(0)) == mixer.eps);
    CHECK(static_cast<float>(golden().get("dt_min").values.at(0)) == mixer.dt_min);
    const auto y = run_forward(p, x, 2, a, c);
    const auto& yg = golden().get("y");
    tensor<double, 2> want(x.extent(0), mixer.d_model);
    for (std::size_t i = 0; i < want.size(); ++i) {
        want.data()[i] = yg.values[i];
    }
    CHECK(rel(y, want) < 2e-5);
}

TEST_CASE("mamba2_mixer: the decode step, token by token, equals the forward at every position") {
    const auto p = golden_params();
    const auto x = golden_x();
    model::arena a;
    ssm::mamba2_mixer::cache c;
    const auto y = run_forward(p, x, 2, a, c);
    llm::workspace ws;
    for (std::size_t b = 0; b < 2; ++b) {
        auto st = mixer.make_state();
        for (std::size_t t = 0; t < 6; ++t) {
            tensor<float, 2> xt(1, mixer.d_model), yt(1, mixer.d_model);
            for (std::size_t i = 0; i < mixer.d_model; ++i) {
                xt(0, i) = x(b * 6 + t, i);
            }
            mixer.step(yt, st, xt, p, ws, llm::parallel::sequential{});
            double num = 0, den = 0;
            for (std::size_t i = 0; i < mixer.d_model; ++i) {
                num += std::pow(yt(0, i) - y(b * 6 + t, i), 2.0);
                den += std::pow(y(b * 6 + t, i), 2.0);
            }
            CHECK(std::sqrt(num) <= 2e-5 * std::max(std::sqrt(den), 1e-3));
        }
    }
}

TEST_CASE("mamba2_mixer: backward matches finite differences of the forward; gradients accumulate") {
    // Finite differences of the fp32 forward with a relative step of 1e-2 on sum(y * dy): truncation
    // O(h^2) ~ 1e-4 relative, rounding ~ u / h ~ 1e-5 of the loss' scale: 3e-3 of the largest gradient.
    auto p = golden_params();
    auto x = golden_x();
    const auto dy = randn<float>(5, 0, 1, x.extent(0), mixer.d_model);
    model::arena a;
    ssm::mamba2_mixer::cache c;
    (void)run_forward(p, x, 2, a, c);
    auto g = mixer.make_params<float>();
    tensor<float, 2> dx(x.extent(0), mixer.d_model);
    zero(dx);
    llm::workspace ws;
    mixer.backward(dx, g, dy, c, x, p, ws, llm::parallel::sequential{});
    auto loss = [&] {
        model::arena a2;
        ssm::mamba2_mixer::cache c2;
        const auto y = run_forward(p, x, 2, a2, c2);
        double s = 0;
        for (std::size_t i = 0; i < y.size(); ++i) {
            s += static_cast<double>(y.data()[i]) * dy.data()[i];
        }
        return s;
    };
    auto fd_check = [&](auto& t, const auto& gt, const char* name) {
        CAPTURE(name);
        double worst = 0, scale = 0;
        for (std::size_t i = 0; i < t.size(); i += 1 + t.size() / 12) {  // a dozen entries of each tensor
            const float keep = t.data()[i];
            const float h = 1e-2f * std::max(1.0f, std::fabs(keep));
            t.data()[i] = keep + h;
            const double up = loss();
            t.data()[i] = keep - h;
            const double down = loss();
            t.data()[i] = keep;
            const double fd = (up - down) / (2.0 * static_cast<double>(h));
            worst = std::max(worst, std::fabs(fd - gt.data()[i]));
        }
        for (std::size_t i = 0; i < gt.size(); ++i) {
            scale = std::max(scale, std::fabs(static_cast<double>(gt.data()[i])));
        }
        CHECK(worst <= 3e-3 * std::max(scale, 1.0));
    };
    fd_check(x, dx, "x");
    fd_check(p.in_proj, g.in_proj, "in_proj.weight");
    fd_check(p.conv_w, g.conv_w, "conv1d.weight");
    fd_check(p.conv_b, g.conv_b, "conv1d.bias");
    fd_check(p.dt_bias, g.dt_bias, "dt_bias");
    fd_check(p.A_log, g.A_log, "A_log");
    fd_check(p.D, g.D, "D");
    fd_check(p.norm, g.norm, "norm.weight");
    fd_check(p.out_proj, g.out_proj, "out_proj.weight");

    // A second call on the same gradients adds the same amounts: 2x within float rounding of the sum
    // (the linear layers accumulate through their own GEMM, so not bit for bit): 1e-6 relative.
    const tensor<float, 2> dx1(dx);
    const tensor<float, 2> gin1(g.in_proj);
    mixer.backward(dx, g, dy, c, x, p, ws, llm::parallel::sequential{});
    tensor<float, 2> dx2(dx1), gin2(gin1);
    for (std::size_t i = 0; i < dx2.size(); ++i) {
        dx2.data()[i] *= 2.0f;
    }
    for (std::size_t i = 0; i < gin2.size(); ++i) {
        gin2.data()[i] *= 2.0f;
    }
    CHECK(rel(dx, dx2) < 1e-6);
    CHECK(rel(g.in_proj, gin2) < 1e-6);
}
