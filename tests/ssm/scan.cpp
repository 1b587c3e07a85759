// SPDX-License-Identifier: Apache-2.0
// The Mamba-1 selective scan: the CPU kernel against the double reference (forward, backward, every variant of
// B / C / z / D / delta_bias, awkward sizes, every SIMD backend), the reference backward against finite
// differences, gradients accumulating, the chunked-over-L path, and bad input.
//
// Tolerances. The kernel computes in fp32; the forward's decay is simd::exp2(dt (A log2 e)) (relative
// error < 1.6e-7 on every backend, plus the two roundings of A log2 e and of its product with dt, 2u |x|
// relative for x = dt A: at most 2u / e = 4.4e-8 absolute on a decay a = e^x <= 1), the backward's the
// facade's exp (< 1.25e-7): the decay error is below 2.1e-7 either way. Each state
// h_t is a sum of terms dt B u weighted by products of decays a <= 1; the terms are positive-weighted, so
// the relative error of h_t is at most (rounding per step 2u + decay error) times the number of steps whose
// weight is not negligible (1 / (1 - a), about 1 / (dt |A|) <= 10 for these inputs), about 4e-6; y sums N
// such terms (N u more). The backward runs the same recurrence backwards with a few more roundings per
// step. Norm-wise bounds of 2e-5 (forward) and 1e-4 (backward, whose sums over L of products cancel
// partially) leave a margin of several times what is derived; a wrong index or a missing term gives
// errors of order 1.
#include "helpers.hpp"

#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/ssm/reference.hpp>
#include <llm/ssm/ssm.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;

/// A variant of the scan's arguments, at compile time (each combination is its own instantiation).
template <bool VarB, bool VarC, bool WithZ, bool WithD, bool WithBias, bool Softplus, std::size_t Groups>
struct variant {
    static constexpr bool var_b = VarB, var_c = VarC, with_z = WithZ, with_d = WithD, with_bias = WithBias,
                          softplus = Softplus;
    static constexpr std::size_t groups = Groups;
};

struct inputs {
    tensor<float, 3> u, delta, z;
    tensor<float, 2> A, Bf, Cf;
    tensor<float, 4> Bv, Cv;
    tensor<float, 1> D, bias;
    inputs(std::size_t B, std::size_t Dm, std::size_t L, std::size_t N, std::size_t G, bool softplus, std::uint64_t s)
        : u(randn<float>(s, 0, 1, B, Dm, L)),
          delta(softplus ? randn<float>(s + 1, -1.0f, 0.7f, B, Dm, L) : uniform<float>(s + 1, 0.01f, 0.8f, B, Dm, L)),
          z(randn<float>(s + 2, 0, 1, B, Dm, L)),
          A(uniform<float>(s + 3, -2.0f, -0.1f, Dm, N)),
          Bf(randn<float>(s + 4, 0, 1, Dm, N)),
          Cf(randn<float>(s + 5, 0, 1, Dm, N)),
          Bv(randn<float>(s + 6, 0, 1, B, G, N, L)),
          Cv(randn<float>(s + 7, 0, 1, B, G, N, L)),
          D(randn<float>(s + 8, 0, 1, Dm)),
          bias(randn<float>(s + 9, 0, 0.3f, Dm)) {}
};

/// t when the flag is set, else llm::ssm::none.
template <bool On, class T>
decltype(auto) opt_arg(T& t) {
    if constexpr (On) {
        return (t);
    } else {
        return ssm::none;
    }
}

/// Calls f(B, C, z, D, bias) with the variant's arguments (none where absent).
template <class V, class F>
void with_args(inputs& in, F&& f) {
    auto& Bm = [&]() -> auto& { if constexpr (V::var_b) { return in.Bv; } else { return in.Bf; } }();
    auto& Cm = [&]() -> auto& { if constexpr (V::var_c) { return in.Cv; } else { return in.Cf; } }();
    f(Bm, Cm, opt_arg<V::with_z>(in.z), opt_arg<V::with_d>(in.D), opt_arg<V::with_bias>(in.bias));
}

using variants = std::tuple<variant<false, false, false, false, false, false, 1>,
                            variant<true, true, true, true, true, true, 1>, variant<true, false, true, false, true, true, 1>,
                            variant<false, true, false, true, false, false, 1>,
                            variant<true, true, false, true, true, true, 3>>;

struct sizes {
    std::size_t B, D, L, N;
};
const sizes size_list[] = {{1, 1, 1, 1}, {2, 7, 7, 7}, {1, 63, 65, 16}, {1, 65, 63, 5}, {2, 9, 200, 16}, {1, 3, 129, 17}};

template <class S, class V>
void check_forward(const sizes& sz, bool threads) {
    constexpr V v{};
    const std::size_t G = (sz.D % v.groups == 0) ? v.groups : 1;
    inputs in(sz.B, sz.D, sz.L, sz.N, G, v.softplus, 1000 + sz.D * 7 + sz.L);
    tensor<double, 3> y_ref(sz.B, sz.D, sz.L);
    tensor<double, 3> st_ref(sz.B, sz.D, sz.N);
    tensor<float, 3> y(sz.B, sz.D, sz.L), st(sz.B, sz.D, sz.N);
    poison(y);
    poison(st);
    llm::parallel::thread_pool pool(2);
    with_args<V>(in, [&](auto& Bm, auto& Cm, auto&& zz, auto&& dd, auto&& bb) {
        ssm::selective_scan_ref(y_ref, st_ref, in.u, in.delta, Bm, Cm, zz, in.A, dd, bb, {.delta_softplus = v.softplus});
        if (threads) {
            ssm::selective_scan<S>(y, st, in.u, in.delta, Bm, Cm, zz, in.A, dd, bb, {.delta_softplus = v.softplus}, pool);
        } else {
            ssm::selective_scan<S>(y, st, in.u, in.delta, Bm, Cm, zz, in.A, dd, bb, {.delta_softplus = v.softplus},
                                   llm::parallel::sequential{});
        }
    });
    CHECK(rel(y, y_ref) < 2e-5);
    CHECK(rel(st, st_ref) < 2e-5);
}

template <class S, class V>
void check_backward(const sizes& sz) {
    constexpr V v{};
    const std::size_t G = (sz.D % v.groups == 0) ? v.groups : 1;
    inputs in(sz.B, sz.D, sz.L, sz.N, G, v.softplus, 2000 + sz.D * 5 + sz.L);
    const auto dout = randn<float>(77, 0, 1, sz.B, sz.D, sz.L);
    tensor<double, 3> du_r(sz.B, sz.D, sz.L), ddl_r(sz.B, sz.D, sz.L), dz_r(sz.B, sz.D, sz.L);
    tensor<double, 2> dA_r(sz.D, sz.N), dBf_r(sz.D, sz.N), dCf_r(sz.D, sz.N);
    tensor<double, 4> dBv_r(sz.B, G, sz.N, sz.L), dCv_r(sz.B, G, sz.N, sz.L);
    tensor<double, 1> dD_r(sz.D), dbias_r(sz.D);
    tensor<float, 3> du(sz.B, sz.D, sz.L), ddl(sz.B, sz.D, sz.L), dz(sz.B, sz.D, sz.L);
    tensor<float, 2> dA(sz.D, sz.N), dBf(sz.D, sz.N), dCf(sz.D, sz.N);
    tensor<float, 4> dBv(sz.B, G, sz.N, sz.L), dCv(sz.B, G, sz.N, sz.L);
    tensor<float, 1> dD(sz.D), dbias(sz.D);
    llm::parallel::thread_pool pool(2);
    with_args<V>(in, [&](auto& Bm, auto& Cm, auto&& zz, auto&& dd, auto&& bb) {
        constexpr bool vb = std::remove_cvref_t<decltype(Bm)>::rank() == 4;
        constexpr bool vc = std::remove_cvref_t<decltype(Cm)>::rank() == 4;
        constexpr bool hz = !ssm::is_none<decltype(zz)>;
        constexpr bool hd = !ssm::is_none<decltype(dd)>;
        constexpr bool hb = !ssm::is_none<decltype(bb)>;
        auto& dB_r = [&]() -> auto& { if constexpr (vb) { return dBv_r; } else { return dBf_r; } }();
        auto& dC_r = [&]() -> auto& { if constexpr (vc) { return dCv_r; } else { return dCf_r; } }();
        auto& dB = [&]() -> auto& { if constexpr (vb) { return dBv; } else { return dBf; } }();
        auto& dC = [&]() -> auto& { if constexpr (vc) { return dCv; } else { return dCf; } }();
        auto opt_g = [](auto& g, auto cond) -> decltype(auto) {
            if constexpr (decltype(cond)::value) {
                return (g);
            } else {
                return ssm::none;
            }
        };
        zero(du_r), zero(ddl_r), zero(dz_r), zero(dA_r), zero(dB_r), zero(dC_r), zero(dD_r), zero(dbias_r);
        zero(du), zero(ddl), zero(dz), zero(dA), zero(dB), zero(dC), zero(dD), zero(dbias);
        using bz = std::bool_constant<hz>;
        using bd = std::bool_constant<hd>;
        using bbias = std::bool_constant<hb>;
        ssm::selective_scan_backward_ref(du_r, ddl_r, dB_r, dC_r, opt_g(dz_r, bz{}), dA_r, opt_g(dD_r, bd{}),
                                         opt_g(dbias_r, bbias{}), dout, in.u, in.delta, Bm, Cm, zz, in.A, dd, bb,
                                         {.delta_softplus = v.softplus});
        ssm::selective_scan_backward<S>(du, ddl, dB, dC, opt_g(dz, bz{}), dA, opt_g(dD, bd{}), opt_g(dbias, bbias{}),
                                        dout, in.u, in.delta, Bm, Cm, zz, in.A, dd, bb, {.delta_softplus = v.softplus},
                                        pool);
        CHECK(rel(du, du_r) < 1e-4);
        CHECK(rel(ddl, ddl_r) < 1e-4);
        CHECK(rel(dA, dA_r) < 1e-4);
        CHECK(rel(dB, dB_r) < 1e-4);
        CHECK(rel(dC, dC_r) < 1e-4);
        if constexpr (hz) {
            CHECK(rel(dz, dz_r) < 1e-4);
        }
        if constexpr (hd) {
            CHECK(rel(dD, dD_r) < 1e-4);
        }
        if constexpr (hb) {
            CHECK(rel(dbias, dbias_r) < 1e-4);
        }
    });
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("selective_scan matches the reference on awkward sizes and every variant", S, scan_fwd) {
    for (const auto& sz : size_list) {
        CAPTURE(sz.B);
        CAPTURE(sz.D);
        CAPTURE(sz.L);
        CAPTURE(sz.N);
        [&]<class... V>(std::tuple<V...>*) {
            std::size_t vi = 0;
            (
                [&] {
                    CAPTURE(vi);
                    check_forward<S, V>(sz, false);
                    check_forward<S, V>(sz, true);
                    ++vi;
                }(),
                ...);
        }(static_cast<variants*>(nullptr));
    }
}
TEST_CASE_TEMPLATE_APPLY(scan_fwd, backends);

TEST_CASE_TEMPLATE_DEFINE("selective_scan_backward matches the reference backward on awkward sizes and every variant", S,
                          scan_bwd) {
    for (const auto& sz : size_list) {
        CAPTURE(sz.B);
        CAPTURE(sz.D);
        CAPTURE(sz.L);
        CAPTURE(sz.N);
        [&]<class... V>(std::tuple<V...>*) { (check_backward<S, V>(sz), ...); }(static_cast<variants*>(nullptr));
    }
}
TEST_CASE_TEMPLATE_APPLY(scan_bwd, backends);

/// The kinds of A rows the arithmetic-A (product chain) path is tested on.
enum class a_kind { s4d, s4d_exp_log, random_step, one_lane_off };

tensor<float, 2> make_a(a_kind kind, std::size_t D, std::size_t N, std::uint64_t seed) {
    tensor<float, 2> A(D, N);
    // multiples of 1/64, so every A = a0 + n step is exact in fp32 (the near-arithmetic case is s4d_exp_log)
    auto a0 = uniform<float>(seed, -1.0f, -0.1f, D);
    auto step = uniform<float>(seed + 1, -0.3f, -0.02f, D);
    for (std::size_t d = 0; d < D; ++d) {
        a0(d) = std::round(a0(d) * 64.0f) / 64.0f;
        step(d) = std::round(step(d) * 64.0f) / 64.0f;
    }
    for (std::size_t d = 0; d < D; ++d) {
        for (std::size_t n = 0; n < N; ++n) {
            switch (kind) {
                case a_kind::s4d: A(d, n) = -float(n + 1); break;
                // Mamba's A = -exp(A_log) with A_log = log(1 .. N) in fp32: off by an ulp here and there
                case a_kind::s4d_exp_log: A(d, n) = -std::exp(std::log(float(n + 1))); break;
                case a_kind::random_step:
                case a_kind::one_lane_off: A(d, n) = a0(d) + float(n) * step(d); break;
            }
        }
    }
    if (kind == a_kind::one_lane_off && D > 3 && N > 5) {
        A(3, 5) += 0.05f;  // not arithmetic: that channel's block takes one exp2 per state
    }
    return A;
}

/// The parts of a scan problem stage_params reads (A and fixed B / C), to see its decision.
struct params_only {
    struct {
        std::size_t n;
    } sh;
    tensor<float, 2> a, b, c;
};

TEST_CASE_TEMPLATE_DEFINE("selective_scan: arithmetic A rows (S4D-real and others) take the product chain and match "
                          "the reference", S, scan_chain) {
    // Tolerance: each decay of a chained group of 8 states is exp2 at the group's first state
    // times up to 7 factors r = exp2(dt step log2 e), so its relative error is at most exp2's
    // (1.6e-7, with the roundings of its argument) plus 7 (1.6e-7 + u) plus the arithmetic test's
    // 2^-22 |dt A| (< 2u / e absolute on a decay <= 1): about 1.7e-6. Through the ~10 steps of
    // non-negligible weight (see the file comment) h_t is within 10 (2u + 1.7e-6) = 1.9e-5 at
    // worst (aligned errors of maximal size; typical errors are a few u); the same 2e-5 bound as
    // the general path, which an index error or a wrong power of r exceeds by orders.
    for (const std::size_t N : {8, 12, 16, 17}) {
        for (const a_kind kind : {a_kind::s4d, a_kind::s4d_exp_log, a_kind::random_step, a_kind::one_lane_off}) {
            for (const bool sp : {true, false}) {
                CAPTURE(N);
                CAPTURE(int(kind));
                CAPTURE(sp);
                const std::size_t D = 13, L = 300;
                inputs in(1, D, L, N, 1, sp, 500 + N);
                if (!sp) {  // some delta < 0 (no bias): r > 1 on those staged positions, which take the exp2 path;
                            // a mean delta of 0.27 keeps the states bounded
                    in.delta = uniform<float>(91, -0.05f, 0.6f, 1, D, L);
                    zero(in.bias);
                }
                in.A = make_a(kind, D, N, 7 + N);
                tensor<double, 3> y_ref(1, D, L), st_ref(1, D, N);
                tensor<float, 3> y(1, D, L), st(1, D, N);
                poison(y), poison(st);
                ssm::selective_scan_ref(y_ref, st_ref, in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias,
                                        {.delta_softplus = sp});
                ssm::selective_scan<S>(y, st, in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias,
                                       {.delta_softplus = sp}, llm::parallel::sequential{});
                CHECK(rel(y, y_ref) < 2e-5);
                CHECK(rel(st, st_ref) < 2e-5);
                // fixed B and C (stage_params' other reads) through the same path
                ssm::selective_scan_ref(y_ref, st_ref, in.u, in.delta, in.Bf, in.Cf, in.z, in.A, in.D, in.bias,
                                        {.delta_softplus = sp});
                ssm::selective_scan<S>(y, st, in.u, in.delta, in.Bf, in.Cf, in.z, in.A, in.D, in.bias,
                                       {.delta_softplus = sp}, llm::parallel::sequential{});
                CHECK(rel(y, y_ref) < 2e-5);
                // The decision itself, for the block holding channel 3 (channels 0 .. width - 1 when S::width > 3).
                params_only pr{{N}, in.A, in.Bf, in.Cf};
                llm::ssm::detail::scan_stage<S> stage(N, 64);
                const std::size_t w = std::min<std::size_t>(S::width, D);
                const std::size_t d0 = 3 / S::width * S::width;
                llm::ssm::detail::stage_params(stage, pr, d0, std::min(w, D - d0));
                CHECK(stage.chain == (kind != a_kind::one_lane_off));
            }
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(scan_chain, backends);

TEST_CASE("selective_scan: a long sequence of few channels (chunked over L on 2 threads) matches one thread") {
    // Two channel blocks at most and 2 threads: L = 1000 is split into chunks combined by the
    // chunk-state pass. Against the reference (tolerance as above) and against the sequential
    // policy: a different rounding order, so not bit for bit, within the same bound.
    for (std::size_t D : {1, 5, 16}) {
        CAPTURE(D);
        inputs in(1, D, 1000, 16, 1, true, 31 + D);
        tensor<double, 3> y_ref(1, D, 1000), st_ref(1, D, 16);
        tensor<float, 3> y1(1, D, 1000), y2(1, D, 1000), st1(1, D, 16), st2(1, D, 16);
        poison(y1), poison(y2), poison(st2);
        ssm::selective_scan_ref(y_ref, st_ref, in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias,
                                {.delta_softplus = true});
        ssm::selective_scan(y1, st1, in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias, {.delta_softplus = true},
                            llm::parallel::sequential{});
        llm::parallel::thread_pool pool(2);
        ssm::selective_scan(y2, st2, in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias, {.delta_softplus = true},
                            pool);
        CHECK(rel(y1, y_ref) < 2e-5);
        CHECK(rel(y2, y_ref) < 2e-5);
        CHECK(rel(st2, st_ref) < 2e-5);
    }
}

TEST_CASE("selective_scan: chunked over L, the later chunks' start-state corrections (cut short or whole)") {
    // L = 4000 on 2 threads: chunk 1 starts at 2048 and adds its true starting state's decaying
    // contribution. With softplus and A <= 0 the correction stops once the state is below 2^-24
    // of its start (A in [-2, -0.1] with these deltas: after a few hundred positions), leaving
    // < 2^-24 max|h0| sum|C| per output, far below the 2e-5 bound; without softplus (and with an
    // A > 0 lane) it runs the whole chunk. Both against the double reference, tolerance as above.
    for (const bool sp : {true, false}) {
        CAPTURE(sp);
        inputs in(1, 3, 4000, 16, 1, sp, 71);
        if (!sp) {
            in.A(1, 2) = 0.002f;  // a slowly growing state (x 25 over L): no cut-off allowed
        }
        tensor<double, 3> y_ref(1, 3, 4000), st_ref(1, 3, 16);
        tensor<float, 3> y2(1, 3, 4000), st2(1, 3, 16);
        poison(y2), poison(st2);
        llm::parallel::thread_pool pool(2);
        if (sp) {
            ssm::selective_scan_ref(y_ref, st_ref, in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias,
                                    {.delta_softplus = true});
            ssm::selective_scan(y2, st2, in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias,
                                {.delta_softplus = true}, pool);
        } else {
            ssm::selective_scan_ref(y_ref, st_ref, in.u, in.delta, in.Bv, in.Cv, ssm::none, in.A, in.D, ssm::none);
            ssm::selective_scan(y2, st2, in.u, in.delta, in.Bv, in.Cv, ssm::none, in.A, in.D, ssm::none, {}, pool);
        }
        CHECK(rel(y2, y_ref) < 2e-5);
        CHECK(rel(st2, st_ref) < 2e-5);
        // the second chunk alone (where the corrections land), so an error there is not hidden by the first
        double num = 0, den = 0;
        for (std::size_t d = 0; d < 3; ++d) {
            for (std::size_t t = 2048; t < 4000; ++t) {
                num += std::pow(double(y2(0, d, t)) - y_ref(0, d, t), 2.0);
                den += std::pow(y_ref(0, d, t), 2.0);
            }
        }
        CHECK(std::sqrt(num / den) < 2e-5);
    }
}

TEST_CASE("selective_scan_backward_ref matches finite differences of selective_scan_ref (double)") {
    // Central differences with h = 1e-6 on a double loss sum(y * dout): truncation O(h^2) ~ 1e-12, rounding
    // ~ 1e-16 / h = 1e-10 relative; 1e-6 bounds both with room. Every input and parameter is checked.
    const std::size_t B = 1, Dm = 3, L = 6, N = 2, G = 1;
    for (int vi : {1, 3}) {
        CAPTURE(vi);
        const bool sp = vi == 1;
        auto u = convert<double>(randn<float>(1, 0, 1, B, Dm, L));
        auto delta = convert<double>(sp ? randn<float>(2, -0.5f, 0.7f, B, Dm, L) : uniform<float>(2, 0.1f, 0.9f, B, Dm, L));
        auto z = convert<double>(randn<float>(3, 0, 1, B, Dm, L));
        auto A = convert<double>(uniform<float>(4, -1.5f, -0.2f, Dm, N));
        auto Bv = convert<double>(randn<float>(5, 0, 1, B, G, N, L));
        auto Cv = convert<double>(randn<float>(6, 0, 1, B, G, N, L));
        auto Bf = convert<double>(randn<float>(5, 0, 1, Dm, N));
        auto D = convert<double>(randn<float>(7, 0, 1, Dm));
        auto bias = convert<double>(randn<float>(8, 0, 0.3f, Dm));
        const auto dout = convert<double>(randn<float>(9, 0, 1, B, Dm, L));
        auto loss = [&] {
            tensor<double, 3> y(B, Dm, L);
            if (sp) {
                ssm::selective_scan_ref(y, ssm::none, u, delta, Bv, Cv, z, A, D, bias, {.delta_softplus = true});
            } else {
                ssm::selective_scan_ref(y, ssm::none, u, delta, Bf, Cv, ssm::none, A, D, ssm::none);
            }
            double s = 0;
            for (std::size_t i = 0; i < y.size(); ++i) {
                s += y.data()[i] * dout.data()[i];
            }
            return s;
        };
        tensor<double, 3> du(B, Dm, L), ddl(B, Dm, L), dz(B, Dm, L);
        tensor<double, 2> dA(Dm, N), dBf(Dm, N);
        tensor<double, 4> dBv(B, G, N, L), dCv(B, G, N, L);
        tensor<double, 1> dD(Dm), dbias(Dm);
        zero(du), zero(ddl), zero(dz), zero(dA), zero(dBf), zero(dBv), zero(dCv), zero(dD), zero(dbias);
        if (sp) {
            ssm::selective_scan_backward_ref(du, ddl, dBv, dCv, dz, dA, dD, dbias, dout, u, delta, Bv, Cv, z, A, D, bias,
                                             {.delta_softplus = true});
        } else {
            ssm::selective_scan_backward_ref(du, ddl, dBf, dCv, ssm::none, dA, dD, ssm::none, dout, u, delta, Bf, Cv,
                                             ssm::none, A, D, ssm::none);
        }
        auto fd_check = [&](auto& x, auto& g, const char* name) {
            CAPTURE(name);
            double worst = 0, scale = 0;
            for (std::size_t i = 0; i < x.size(); ++i) {
                const double keep = x.data()[i];
                const double h = 1e-6;
                x.data()[i] = keep + h;
                const double up = loss();
                x.data()[i] = keep - h;
                const double down = loss();
                x.data()[i] = keep;
                worst = std::max(worst, std::fabs((up - down) / (2 * h) - g.data()[i]));
                scale = std::max(scale, std::fabs(g.data()[i]));
            }
            CHECK(worst <= 1e-6 * std::max(scale, 1.0));
        };
        fd_check(u, du, "u");
        fd_check(delta, ddl, "delta");
        fd_check(A, dA, "A");
        fd_check(Cv, dCv, "C");
        fd_check(D, dD, "D");
        if (sp) {
            fd_check(Bv, dBv, "B");
            fd_check(z, dz, "z");
            fd_check(bias, dbias, "delta_bias");
        } else {
            fd_check(Bf, dBf, "B (D, N)");
        }
    }
}

TEST_CASE("selective_scan_backward and the reference accumulate: two calls on zeroed gradients give 2x one call") {
    inputs in(2, 9, 70, 5, 3, true, 5);
    const auto dout = randn<float>(6, 0, 1, 2, 9, 70);
    tensor<float, 3> du(2, 9, 70), ddl(2, 9, 70), dz(2, 9, 70);
    tensor<float, 2> dA(9, 5);
    tensor<float, 4> dB(2, 3, 5, 70), dC(2, 3, 5, 70);
    tensor<float, 1> dD(9), dbias(9);
    llm::zero_grad(du, ddl, dz, dA, dB, dC, dD, dbias);
    auto call = [&] {
        ssm::selective_scan_backward(du, ddl, dB, dC, dz, dA, dD, dbias, dout, in.u, in.delta, in.Bv, in.Cv, in.z, in.A,
                                     in.D, in.bias, {.delta_softplus = true}, llm::parallel::sequential{});
    };
    call();
    const auto du1 = tensor<float, 3>(du), ddl1 = tensor<float, 3>(ddl), dz1 = tensor<float, 3>(dz);
    const auto dA1 = tensor<float, 2>(dA);
    const auto dB1 = tensor<float, 4>(dB), dC1 = tensor<float, 4>(dC);
    const auto dD1 = tensor<float, 1>(dD), dbias1 = tensor<float, 1>(dbias);
    call();
    auto twice = [](const auto& g, const auto& g1) {
        for (std::size_t i = 0; i < g.size(); ++i) {
            if (g.data()[i] != 2.0f * g1.data()[i]) {
                return false;
            }
        }
        return true;
    };
    // The second call adds the same values to each element: x + x = 2x exactly in float.
    CHECK(twice(du, du1));
    CHECK(twice(ddl, ddl1));
    CHECK(twice(dz, dz1));
    CHECK(twice(dA, dA1));
    CHECK(twice(dB, dB1));
    CHECK(twice(dC, dC1));
    CHECK(twice(dD, dD1));
    CHECK(twice(dbias, dbias1));

    tensor<double, 3> rdu(2, 9, 70);
    tensor<double, 2> rdA(9, 5);
    zero(rdu), zero(rdA);
    auto ref = [&] {
        ssm::selective_scan_backward_ref(rdu, ssm::none, ssm::none, ssm::none, ssm::none, rdA, ssm::none, ssm::none, dout,
                                         in.u, in.delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias, {.delta_softplus = true});
    };
    ref();
    const auto rdu1 = tensor<double, 3>(rdu);
    const auto rdA1 = tensor<double, 2>(rdA);
    ref();
    CHECK(twice(rdu, rdu1));
    CHECK(twice(rdA, rdA1));
}

TEST_CASE("selective_scan: bf16 inputs and output match the reference on the same rounded inputs") {
    // bf16 inputs are read exactly; the output is rounded to bf16 (relative 2^-9 = 2e-3 per element).
    inputs in(1, 17, 40, 16, 1, true, 11);
    const auto u = convert<llm::bf16>(in.u);
    const auto delta = convert<llm::bf16>(in.delta);
    tensor<double, 3> y_ref(1, 17, 40);
    tensor<llm::bf16, 3> y(1, 17, 40);
    ssm::selective_scan_ref(y_ref, ssm::none, u, delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias, {.delta_softplus = true});
    ssm::selective_scan(y, ssm::none, u, delta, in.Bv, in.Cv, in.z, in.A, in.D, in.bias, {.delta_softplus = true},
                        llm::parallel::sequential{});
    CHECK(rel(y, y_ref) < 4e-3);
}

TEST_CASE("selective_scan: bad input is a clear llm::error") {
    inputs in(1, 6, 10, 4, 2, true, 3);
    tensor<float, 3> y(1, 6, 10), st(1, 6, 4);
    llm::parallel::sequential seq;
    auto run = [&](auto&& u, auto&& delta, auto&& Bm, auto&& Cm, auto&& A, auto&& yy, auto&& ss) {
        ssm::selective_scan(yy, ss, u, delta, Bm, Cm, ssm::none, A, ssm::none, ssm::none, {.delta_softplus = true}, seq);
    };
    const auto short_delta = randn<float>(1, 0, 1, 1, 6, 9);
    CHECK_THROWS_WITH_AS(run(in.u, short_delta, in.Bv, in.Cv, in.A, y, st),
                         doctest::Contains("selective_scan: delta has shape [1, 6, 9] but must be [1, 6, 10]"), llm::error);
    const auto A5 = uniform<float>(1, -1, -0.1f, 5, 4);
    CHECK_THROWS_WITH_AS(run(in.u, in.delta, in.Bv, in.Cv, A5, y, st),
                         doctest::Contains("selective_scan: A has 5 rows but u has D = 6 channels"), llm::error);
    const auto B_n3 = randn<float>(1, 0, 1, 1, 2, 3, 10);
    CHECK_THROWS_WITH_AS(run(in.u, in.delta, B_n3, in.Cv, in.A, y, st),
                         doctest::Contains("selective_scan: B has shape [1, 2, 3, 10] but must be [1, 2, 4, 10]"),
                         llm::error);
    const auto B_g4 = randn<float>(1, 0, 1, 1, 4, 4, 10);
    CHECK_THROWS_WITH_AS(run(in.u, in.delta, B_g4, in.Cv, in.A, y, st),
                         doctest::Contains("selective_scan: B has 4 groups, which must divide D = 6"), llm::error);
    const auto C_l9 = randn<float>(1, 0, 1, 1, 2, 4, 9);
    CHECK_THROWS_WITH_AS(run(in.u, in.delta, in.Bv, C_l9, in.A, y, st),
                         doctest::Contains("selective_scan: C has shape [1, 2, 4, 9] but must be [1, 2, 4, 10]"),
                         llm::error);
    const auto Cf_bad = randn<float>(1, 0, 1, 6, 5);
    CHECK_THROWS_WITH_AS(run(in.u, in.delta, in.Bv, Cf_bad, in.A, y, st),
                         doctest::Contains("selective_scan: C has shape [6, 5] but must be [6, 4]"), llm::error);
    tensor<float, 3> st_bad(1, 6, 5);
    CHECK_THROWS_WITH_AS(run(in.u, in.delta, in.Bv, in.Cv, in.A, y, st_bad),
                         doctest::Contains("selective_scan: last_state has shape [1, 6, 5] but must be [1, 6, 4]"),
                         llm::error);
    auto bad_delta = tensor<float, 3>(in.delta);
    bad_delta(0, 2, 7) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(run(in.u, bad_delta, in.Bv, in.Cv, in.A, y, st),
                         doctest::Contains("selective_scan: delta after bias and softplus is not finite at (batch 0, d 2, t 7)"),
                         llm::error);
    bad_delta(0, 2, 7) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(run(in.u, bad_delta, in.Bv, in.Cv, in.A, y, st),
                         doctest::Contains("is not finite at (batch 0, d 2, t 7): inf"), llm::error);
    tensor<float, 3> du(1, 6, 10);
    tensor<float, 4> dB_bad(1, 2, 4, 9);
    const auto dout = randn<float>(2, 0, 1, 1, 6, 10);
    CHECK_THROWS_WITH_AS(ssm::selective_scan_backward(du, ssm::none, dB_bad, ssm::none, ssm::none, ssm::none, ssm::none,
                                                      ssm::none, dout, in.u, in.delta, in.Bv, in.Cv, ssm::none, in.A,
                                                      ssm::none, ssm::none, {}, seq),
                         doctest::Contains("selective_scan_backward: dB must have the shape of B"), llm::error);
}
