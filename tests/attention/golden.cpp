// SPDX-License-Identifier: Apache-2.0
// The attention reference and the flash kernels against PyTorch goldens (tests/golden/attention/make_golden.py).
//
// The reference and the kernels share resolve_scale and the mask policies' allowed(), so comparing
// them with each other cannot see a bug in either; these goldens are computed by torch from token
// positions and the textbook formulas, independently of our code.
#include "helpers.hpp"

#include "../support/golden.hpp"

#include <llm/attention/attention.hpp>
#include <llm/attention/reference.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

namespace at = llm::attention;
using namespace attn_test;

const llm_test::golden_file& golden() {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/attention/golden.txt");
    return file;
}

/// The cases of golden.txt (each holds fwd outputs and bwd gradients).
const char* const case_names[] = {"full", "causal", "causal_long_q", "window", "varlen_causal", "varlen_full",
                                  "gqa",  "mqa",    "softcap",       "scale",  "scale_softcap"};

template <class T, std::size_t R>
llm::tensor<T, llm::dims<R>> load(const std::string& name) {
    const auto& a = golden().get(name);
    REQUIRE(a.dims.size() == R);
    llm::tensor<T, llm::dims<R>> t = [&]<std::size_t... I>(std::index_sequence<I...>) {
        return llm::tensor<T, llm::dims<R>>(a.dims[I]...);
    }(std::make_index_sequence<R>{});
    for (std::size_t i = 0; i < a.values.size(); ++i) {
        t.data()[i] = static_cast<T>(a.values[i]);
    }
    return t;
}

/// One golden case: inputs read exactly as float (the generator drew them in float32).
struct golden_case {
    std::string name;
    t4f q, k, v, dout;
    t4d o, dq, dk, dv;
    t3d lse;
    at::options opt;
    std::int64_t left, right;  // -1: unbounded
    std::vector<std::int32_t> cu_q, cu_k;

    explicit golden_case(const std::string& n)
        : name(n), q(load<float, 4>(n + ".q")), k(load<float, 4>(n + ".k")), v(load<float, 4>(n + ".v")),
          dout(load<float, 4>(n + ".dout")), o(load<double, 4>(n + ".o")), dq(load<double, 4>(n + ".dq")),
          dk(load<double, 4>(n + ".dk")), dv(load<double, 4>(n + ".dv")), lse(load<double, 3>(n + ".lse")) {
        const auto& p = golden().get(n + ".params").values;
        REQUIRE(p.size() == 4);
        opt = {.scale = static_cast<float>(p[0]), .softcap = static_cast<float>(p[1])};
        left = static_cast<std::int64_t>(p[2]);
        right = static_cast<std::int64_t>(p[3]);
        if (golden().has(n + ".cu_q")) {
            for (double x : golden().get(n + ".cu_q").values) {
                cu_q.push_back(static_cast<std::int32_t>(x));
            }
            for (double x : golden().get(n + ".cu_k").values) {
                cu_k.push_back(static_cast<std::int32_t>(x));
            }
        }
    }

    /// Calls f with the mask policy the case names: no_mask, causal or sliding_window, wrapped
    /// in varlen when the case packs sequences.
    template <class F>
    void with_mask(F&& f) const {
        auto inner = [&](const auto& m) {
            if (cu_q.empty()) {
                f(m);
            } else {
                f(at::varlen<std::remove_cvref_t<decltype(m)>>{cu_q, cu_k, m});
            }
        };
        if (left < 0 && right < 0) {
            inner(at::no_mask{});
        } else if (left < 0 && right == 0) {
            inner(at::causal{});
        } else {
            inner(at::sliding_window(left < 0 ? at::unbounded : left, right < 0 ? at::unbounded : right));
        }
    }

    /// The largest |score| before the soft-cap could be, scale * max_{i,j,h} sum_d |q_d k_d|:
    /// the magnitude that fp32 rounding of a score is relative to.
    double score_bound() const {
        const std::size_t Sq = q.extent(1), Sk = k.extent(1), H = q.extent(2), Hk = k.extent(2), D = q.extent(3);
        const double scale = opt.scale != 0.0f ? opt.scale : 1.0 / std::sqrt(static_cast<double>(D));
        double worst = 0;
        for (std::size_t b = 0; b < q.extent(0); ++b) {
            for (std::size_t h = 0; h < H; ++h) {
                for (std::size_t i = 0; i < Sq; ++i) {
                    for (std::size_t j = 0; j < Sk; ++j) {
                        double s = 0;
                        for (std::size_t d = 0; d < D; ++d) {
                            s += std::abs(double(q(b, i, h, d)) * double(k(b, j, h / (H / Hk), d)));
                        }
                        worst = std::max(worst, scale * s);
                    }
                }
            }
        }
        return worst;
    }
};

double max_abs(const t4f& t) {
    double m = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        m = std::max(m, std::abs(double(t.data()[i])));
    }
    return m;
}

// The reference computes in double from the same (exact) inputs as torch's float64; only the
// order of operations differs, so results agree to a few units of 2^-53 times the number of
// terms (< 100 here) times the condition of the sums: 1e-12 keeps three orders of margin and
// still fails on any fp32 rounding (6e-8), a wrong scale, a shifted mask or a wrong cap.
constexpr double ref_tol = 1e-12;

TEST_CASE("attention reference matches PyTorch goldens (forward, lse, backward)") {
    for (const char* name : case_names) {
        CAPTURE(std::string(name));
        const golden_case g(name);
        g.with_mask([&](const auto& mask) {
            t4d o(g.o.extent(0), g.o.extent(1), g.o.extent(2), g.o.extent(3));
            t3d lse(g.lse.extent(0), g.lse.extent(1), g.lse.extent(2));
            poison(o);
            poison(lse);
            at::reference_forward(o, lse, g.q, g.k, g.v, mask, g.opt);
            CHECK(rel_norm(o, g.o) < ref_tol);
            CHECK(max_abs_diff(lse, g.lse) < ref_tol);
            t4d dq(g.dq.extent(0), g.dq.extent(1), g.dq.extent(2), g.dq.extent(3));
            t4d dk(g.dk.extent(0), g.dk.extent(1), g.dk.extent(2), g.dk.extent(3)), dv = dk;
            llm::zero_grad(dq, dk, dv);  // gradients accumulate
            at::reference_backward(dq, dk, dv, g.dout, g.q, g.k, g.v, mask, g.opt);
            CHECK(rel_norm(dq, g.dq) < ref_tol);
            CHECK(rel_norm(dk, g.dk) < ref_tol);
            CHECK(rel_norm(dv, g.dv) < ref_tol);
        });
    }
}

// Tolerances of the fp32 kernels, derived per case from fp32 rounding (u = 2^-24) to first order:
// - a score is a D-term fp32 dot times the scale, then capped (|cap'| <= 1, tanh and the products
//   add a few roundings): |dt| <= (D + 4) u T, T = scale * max sum_d |q_d k_d| (score_bound);
// - softmax: p_j = exp(t_j - m) / l with the fast exp (2u) and an Sk-term sum l, so each p_j has
//   relative error <= e_p = 2 |dt| + (Sk + 4) u;
// - o = sum_j p_j v_j adds Sk roundings: |do| <= (e_p + Sk u) max|v| per element;
// - lse = m + log l: |dlse| <= |dt| + (Sk + 4) u (1 + |lse|).
// Backward (relative norm): P is recomputed from the kernel's own lse (e_p + |dlse|), dP and
// rowsum(dout * o) are D-term dots, dS = P (dP - D) then one more sum over Sk (dq) or Sq (dk, dv)
// rows: e_b = e_p + |dlse| + (2 D + Sk + Sq + 8) u per link; 4 e_b allows the four chained links.
// Cancellation in dP - D is outside this first-order budget; with gradient norms of order 1 here
// (rel_norm's floor) the measured errors (1e-7 to 5e-7) sit 100x inside the bounds (3e-5 to 1e-4).
struct fp32_bounds {
    double o_abs, lse_abs, grad_rel;
};

fp32_bounds bounds(const golden_case& g) {
    const double u = 0x1p-24;
    const double D = double(g.q.extent(3)), Sq = double(g.q.extent(1)), Sk = double(g.k.extent(1));
    const double dt = (D + 4) * u * g.score_bound();
    const double e_p = 2 * dt + (Sk + 4) * u;
    double lse_max = 0;
    for (std::size_t i = 0; i < g.lse.size(); ++i) {
        lse_max = std::isfinite(g.lse.data()[i]) ? std::max(lse_max, std::abs(g.lse.data()[i])) : lse_max;
    }
    const double dlse = dt + (Sk + 4) * u * (1 + lse_max);
    return {(e_p + Sk * u) * max_abs(g.v), dlse, 4 * (e_p + dlse + (2 * D + Sk + Sq + 8) * u)};
}

TEST_CASE_TEMPLATE_DEFINE("flash kernels match PyTorch goldens", S, flash_golden) {
    llm::parallel::thread_pool pool(2);
    for (const char* name : case_names) {
        CAPTURE(std::string(name));
        const golden_case g(name);
        const auto tol = bounds(g);
        CAPTURE(tol.o_abs);
        CAPTURE(tol.lse_abs);
        CAPTURE(tol.grad_rel);
        g.with_mask([&](const auto& mask) {
            using M = std::remove_cvref_t<decltype(mask)>;
            using T = at::default_tiles_t<S::width>;
            t4f o(g.o.extent(0), g.o.extent(1), g.o.extent(2), g.o.extent(3));
            t3f lse(g.lse.extent(0), g.lse.extent(1), g.lse.extent(2));
            poison(o);
            poison(lse);
            at::flash_forward<T, M, S>(o, lse, g.q, g.k, g.v, mask, g.opt, pool);
            CHECK(max_abs_diff(o, g.o) < tol.o_abs);
            CHECK(max_abs_diff(lse, g.lse) < tol.lse_abs);
            t4f dq(g.dq.extent(0), g.dq.extent(1), g.dq.extent(2), g.dq.extent(3));
            t4f dk(g.dk.extent(0), g.dk.extent(1), g.dk.extent(2), g.dk.extent(3)), dv = dk;
            llm::zero_grad(dq, dk, dv);  // gradients accumulate
            at::flash_backward<T, M, S>(dq, dk, dv, o, lse, g.dout, g.q, g.k, g.v, mask, g.opt, pool);
            CHECK(rel_norm(dq, g.dq) < tol.grad_rel);
            CHECK(rel_norm(dk, g.dk) < tol.grad_rel);
            CHECK(rel_norm(dv, g.dv) < tol.grad_rel);
        });
    }
}
TEST_CASE_TEMPLATE_APPLY(flash_golden, backends);

// The goldens are not vacuous: the default scale, the mask alignment and the cap each change
// the result by far more than the tolerances above.
TEST_CASE("attention goldens detect a wrong scale, mask or soft-cap") {
    const golden_case g("causal");
    t4d o(g.o.extent(0), g.o.extent(1), g.o.extent(2), g.o.extent(3));
    t3d lse(g.lse.extent(0), g.lse.extent(1), g.lse.extent(2));
    at::reference_forward(o, lse, g.q, g.k, g.v, at::causal{}, {.scale = 0.25f});  // 1/D, not 1/sqrt(D)
    CHECK(rel_norm(o, g.o) > 1e-2);
    at::reference_forward(o, lse, g.q, g.k, g.v, at::sliding_window(at::unbounded, 1));  // diagonal shifted by one
    CHECK(rel_norm(o, g.o) > 1e-2);
    const golden_case c("softcap");
    t4d oc(c.o.extent(0), c.o.extent(1), c.o.extent(2), c.o.extent(3));
    t3d lc(c.lse.extent(0), c.lse.extent(1), c.lse.extent(2));
    at::reference_forward(oc, lc, c.q, c.k, c.v, at::causal{});  // cap off
    CHECK(rel_norm(oc, c.o) > 1e-2);
}

}  // namespace
