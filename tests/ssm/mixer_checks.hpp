// SPDX-License-Identifier: Apache-2.0
// The checks the Mamba-1 and Mamba-2 mixer tests share: parameters and input from a golden file, the forward
// against the golden output, the decode step against the forward at every position, and the backward against
// finite differences of the forward (every parameter tensor and x) with gradients accumulating.
#pragma once

#include "helpers.hpp"

#include "../support/golden.hpp"

#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ssm_test {

/// A mixer with its golden file: the parameters and input x [batch * seq, d_model] it holds, and the forward.
template <class Mixer>
struct mixer_golden {
    const llm_test::golden_file& file;
    const Mixer& mixer;
    std::size_t batch;

    typename Mixer::template params<float> params() const {
        auto p = mixer.template make_params<float>();
        p.for_each_param([&](std::string_view name, auto& t) {
            const auto& a = file.get(std::string(name));
            REQUIRE(a.values.size() == t.size());
            for (std::size_t i = 0; i < t.size(); ++i) {
                t.data()[i] = static_cast<float>(a.values[i]);
            }
        });
        return p;
    }

    tensor<float, 2> x() const {
        const auto& a = file.get("x");
        tensor<float, 2> out(a.dims[0] * a.dims[1], a.dims[2]);
        for (std::size_t i = 0; i < out.size(); ++i) {
            out.data()[i] = static_cast<float>(a.values[i]);
        }
        return out;
    }

    /// Runs the forward on x of `batch` sequences (cache in `a`); returns y.
    tensor<float, 2> forward(const typename Mixer::template params<float>& p, const tensor<float, 2>& x, llm::model::arena& a,
                             typename Mixer::cache& c) const {
        const llm::model::batch_shape shape{.batch = batch, .seq = x.extent(0) / batch};
        c = llm::model::make_in_arena(a, [&](llm::model::arena& m) { return mixer.make_cache(m, shape); });
        tensor<float, 2> y(x.extent(0), mixer.d_model);
        poison(y);
        llm::workspace ws;
        mixer.forward(y, c, x, p, ws, llm::parallel::sequential{});
        return y;
    }
};

/// The forward against the golden's "y" (float64): relative error of the output norm <= tol.
template <class Mixer>
void check_forward_golden(const mixer_golden<Mixer>& g, double tol) {
    const auto p = g.params();
    const auto x = g.x();
    llm::model::arena a;
    typename Mixer::cache c;
    const auto y = g.forward(p, x, a, c);
    const auto& yg = g.file.get("y");
    tensor<double, 2> want(x.extent(0), g.mixer.d_model);
    for (std::size_t i = 0; i < want.size(); ++i) {
        want.data()[i] = yg.values[i];
    }
    CHECK(rel(y, want) < tol);
}

/// The decode step, token by token from a fresh state per sequence, against the forward at every
/// position: per-token norm-wise relative error <= tol.
template <class Mixer>
void check_step_equals_forward(const mixer_golden<Mixer>& g, double tol) {
    const auto p = g.params();
    const auto x = g.x();
    llm::model::arena a;
    typename Mixer::cache c;
    const auto y = g.forward(p, x, a, c);
    const std::size_t seq = x.extent(0) / g.batch, dm = g.mixer.d_model;
    llm::workspace ws;
    for (std::size_t b = 0; b < g.batch; ++b) {
        auto st = g.mixer.make_state();
        for (std::size_t t = 0; t < seq; ++t) {
            tensor<float, 2> xt(1, dm), yt(1, dm);
            for (std::size_t i = 0; i < dm; ++i) {
                xt(0, i) = x(b * seq + t, i);
            }
            g.mixer.step(yt, st, xt, p, ws, llm::parallel::sequential{});
            double num = 0, den = 0;
            for (std::size_t i = 0; i < dm; ++i) {
                num += std::pow(yt(0, i) - y(b * seq + t, i), 2.0);
                den += std::pow(y(b * seq + t, i), 2.0);
            }
            CHECK(std::sqrt(num) <= tol * std::max(std::sqrt(den), 1e-3));
        }
    }
}

/// The backward against central finite differences of the forward's sum(y * dy), on a dozen entries of
/// x and of every parameter tensor, then a second call adding the same amounts (2x).
/// Tolerance: a relative step of 1e-2 gives truncation O(h^2) ~ 1e-4 relative and rounding ~ u / h ~ 1e-5
/// of the loss' scale: 3e-3 of the largest gradient of the tensor. The second call: 2x within float
/// rounding of the sum (the linear layers accumulate through their own GEMM, so not bit for bit): 1e-6.
template <class Mixer>
void check_backward_fd(const mixer_golden<Mixer>& gold) {
    auto p = gold.params();
    auto x = gold.x();
    const auto& mixer = gold.mixer;
    const auto dy = randn<float>(5, 0, 1, x.extent(0), mixer.d_model);
    llm::model::arena a;
    typename Mixer::cache c;
    (void)gold.forward(p, x, a, c);
    auto g = mixer.template make_params<float>();
    tensor<float, 2> dx(x.extent(0), mixer.d_model);
    zero(dx);
    llm::workspace ws;
    mixer.backward(dx, g, dy, c, x, p, ws, llm::parallel::sequential{});
    auto loss = [&] {
        llm::model::arena a2;
        typename Mixer::cache c2;
        const auto y = gold.forward(p, x, a2, c2);
        double s = 0;
        for (std::size_t i = 0; i < y.size(); ++i) {
            s += static_cast<double>(y.data()[i]) * dy.data()[i];
        }
        return s;
    };
    auto fd_check = [&](float* t, const float* gt, std::size_t n, std::string_view name) {
        CAPTURE(name);
        double worst = 0, scale = 0;
        for (std::size_t i = 0; i < n; i += 1 + n / 12) {  // a dozen entries of each tensor
            const float keep = t[i];
            const float h = 1e-2f * std::max(1.0f, std::fabs(keep));
            t[i] = keep + h;
            const double up = loss();
            t[i] = keep - h;
            const double down = loss();
            t[i] = keep;
            const double fd = (up - down) / (2.0 * static_cast<double>(h));
            worst = std::max(worst, std::fabs(fd - gt[i]));
        }
        for (std::size_t i = 0; i < n; ++i) {
            scale = std::max(scale, std::fabs(static_cast<double>(gt[i])));
        }
        CHECK(worst <= 3e-3 * std::max(scale, 1.0));
    };
    fd_check(x.data(), dx.data(), x.size(), "x");
    std::vector<const float*> grads;
    g.for_each_param([&](std::string_view, auto& t) { grads.push_back(t.data()); });
    std::size_t k = 0, checked = 0;
    p.for_each_param([&](std::string_view name, auto& t) {
        fd_check(t.data(), grads.at(k++), t.size(), name);
        ++checked;
    });
    CHECK(checked == grads.size());
    CHECK(checked >= 8);  // every tensor of the mixer, not an empty walk

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

}  // namespace ssm_test
