// SPDX-License-Identifier: Apache-2.0
// The ssm references and CPU kernels against PyTorch goldens (tests/golden/ssm/make_golden.py): independent
// torch ports of mamba-ssm's selective_scan_ref and ssd_minimal_discrete, gradients by torch.autograd.
//
// Tolerances: the goldens hold 12 significant digits, inputs are exact float32 values, so the double
// references agree to ~1e-11 relative (1e-9 allowed); the fp32 kernels as in scan.cpp / ssd.cpp
// (2e-5 forward, 1e-4 backward).
#include "helpers.hpp"

#include "../support/golden.hpp"

#include <llm/parallel/sequential.hpp>
#include <llm/ssm/reference.hpp>
#include <llm/ssm/ssm.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;

const llm_test::golden_file& golden() {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/ssm/golden.txt");
    return file;
}

template <class T, std::size_t R>
tensor<T, R> load(const std::string& name) {
    const auto& a = golden().get(name);
    REQUIRE(a.dims.size() == R);
    auto t = [&]<std::size_t... I>(std::index_sequence<I...>) { return tensor<T, R>(a.dims[I]...); }(
        std::make_index_sequence<R>{});
    for (std::size_t i = 0; i < a.values.size(); ++i) {
        t.data()[i] = static_cast<T>(a.values[i]);
    }
    return t;
}

}  // namespace

TEST_CASE("ssm golden: selective scan with variable grouped B / C, z, D, delta_bias and softplus (forward and gradients)") {
    const std::string c = "scan_full";
    const auto u = load<float, 3>(c + ".u"), delta = load<float, 3>(c + ".delta"), z = load<float, 3>(c + ".z");
    const auto A = load<float, 2>(c + ".A");
    const auto B = load<float, 4>(c + ".B"), C = load<float, 4>(c + ".C");
    const auto D = load<float, 1>(c + ".D"), bias = load<float, 1>(c + ".delta_bias");
    const auto dout = load<float, 3>(c + ".dout");
    const auto out = load<double, 3>(c + ".out");
    const auto last = load<double, 3>(c + ".last_state");
    const std::size_t b = u.extent(0), d = u.extent(1), L = u.extent(2), N = A.extent(1), G = B.extent(1);
    tensor<double, 3> y_ref(b, d, L), st_ref(b, d, N);
    ssm::selective_scan_ref(y_ref, st_ref, u, delta, B, C, z, A, D, bias, {.delta_softplus = true});
    CHECK(rel(y_ref, out) < 1e-9);
    CHECK(rel(st_ref, last) < 1e-9);
    tensor<float, 3> y(b, d, L), st(b, d, N);
    poison(y), poison(st);
    ssm::selective_scan(y, st, u, delta, B, C, z, A, D, bias, {.delta_softplus = true}, llm::parallel::sequential{});
    CHECK(rel(y, out) < 2e-5);
    CHECK(rel(st, last) < 2e-5);

    tensor<double, 3> du(b, d, L), ddl(b, d, L), dz(b, d, L);
    tensor<double, 2> dA(d, N);
    tensor<double, 4> dB(b, G, N, L), dC(b, G, N, L);
    tensor<double, 1> dD(d), db(d);
    zero(du), zero(ddl), zero(dz), zero(dA), zero(dB), zero(dC), zero(dD), zero(db);
    ssm::selective_scan_backward_ref(du, ddl, dB, dC, dz, dA, dD, db, dout, u, delta, B, C, z, A, D, bias,
                                     {.delta_softplus = true});
    tensor<float, 3> fu(b, d, L), fdl(b, d, L), fz(b, d, L);
    tensor<float, 2> fA(d, N);
    tensor<float, 4> fB(b, G, N, L), fC(b, G, N, L);
    tensor<float, 1> fD(d), fb(d);
    zero(fu), zero(fdl), zero(fz), zero(fA), zero(fB), zero(fC), zero(fD), zero(fb);
    ssm::selective_scan_backward(fu, fdl, fB, fC, fz, fA, fD, fb, dout, u, delta, B, C, z, A, D, bias,
                                 {.delta_softplus = true}, llm::parallel::sequential{});
    auto both = [&](const auto& r, const auto& f, const std::string& n, auto rank) {
        CAPTURE(n);
        const auto g = load<double, decltype(rank)::value>(c + "." + n);
        CHECK(rel(r, g) < 1e-9);
        CHECK(rel(f, g) < 1e-4);
    };
    both(du, fu, "du", std::integral_constant<std::size_t, 3>{});
    both(ddl, fdl, "ddelta", std::integral_constant<std::size_t, 3>{});
    both(dz, fz, "dz", std::integral_constant<std::size_t, 3>{});
    both(dA, fA, "dA", std::integral_constant<std::size_t, 2>{});
    both(dB, fB, "dB", std::integral_constant<std::size_t, 4>{});
    both(dC, fC, "dC", std::integral_constant<std::size_t, 4>{});
    both(dD, fD, "dD", std::integral_constant<std::size_t, 1>{});
    both(db, fb, "ddelta_bias", std::integral_constant<std::size_t, 1>{});
}

TEST_CASE("ssm golden: selective scan with fixed (D, N) B and C and a D skip") {
    const std::string c = "scan_fixed";
    const auto u = load<float, 3>(c + ".u"), delta = load<float, 3>(c + ".delta");
    const auto A = load<float, 2>(c + ".A"), B = load<float, 2>(c + ".B"), C = load<float, 2>(c + ".C");
    const auto D = load<float, 1>(c + ".D");
    const auto dout = load<float, 3>(c + ".dout");
    const auto out = load<double, 3>(c + ".out");
    const std::size_t b = u.extent(0), d = u.extent(1), L = u.extent(2), N = A.extent(1);
    tensor<float, 3> y(b, d, L);
    poison(y);
    ssm::selective_scan(y, ssm::none, u, delta, B, C, ssm::none, A, D, ssm::none, {}, llm::parallel::sequential{});
    CHECK(rel(y, out) < 2e-5);
    // The overload without an executor runs on default_pool(): the same values.
    tensor<float, 3> y_pool(b, d, L);
    poison(y_pool);
    ssm::selective_scan(y_pool, ssm::none, u, delta, B, C, ssm::none, A, D, ssm::none);
    CHECK(rel(y_pool, y) == 0.0);
    tensor<float, 3> du(b, d, L), ddl(b, d, L);
    tensor<float, 2> dA(d, N), dB(d, N), dC(d, N);
    tensor<float, 1> dD(d);
    zero(du), zero(ddl), zero(dA), zero(dB), zero(dC), zero(dD);
    ssm::selective_scan_backward(du, ddl, dB, dC, ssm::none, dA, dD, ssm::none, dout, u, delta, B, C, ssm::none, A, D,
                                 ssm::none, {}, llm::parallel::sequential{});
    CHECK(rel(du, load<double, 3>(c + ".du")) < 1e-4);
    CHECK(rel(ddl, load<double, 3>(c + ".ddelta")) < 1e-4);
    CHECK(rel(dA, load<double, 2>(c + ".dA")) < 1e-4);
    CHECK(rel(dB, load<double, 2>(c + ".dB")) < 1e-4);
    CHECK(rel(dC, load<double, 2>(c + ".dC")) < 1e-4);
    CHECK(rel(dD, load<double, 1>(c + ".dD")) < 1e-4);
}

TEST_CASE("ssm golden: Mamba-2 SSD (ssd_minimal_discrete) forward, final state and gradients") {
    const std::string c = "ssd";
    const auto x = load<float, 4>(c + ".x"), B = load<float, 4>(c + ".B"), C = load<float, 4>(c + ".C");
    const auto dt = load<float, 3>(c + ".dt");
    const auto A = load<float, 1>(c + ".A");
    const auto dy = load<float, 4>(c + ".dy");
    const auto yg = load<double, 4>(c + ".y");
    const auto fg = load<double, 4>(c + ".final_state");
    const auto block = static_cast<std::size_t>(golden().get(c + ".block_len").values.at(0));
    const std::size_t b = x.extent(0), L = x.extent(1), H = x.extent(2), P = x.extent(3), G = B.extent(2),
                      N = B.extent(3);
    tensor<double, 4> y_ref(b, L, H, P), st_ref(b, H, P, N);
    ssm::ssd_ref(y_ref, st_ref, x, dt, B, C, A);
    CHECK(rel(y_ref, yg) < 1e-9);
    CHECK(rel(st_ref, fg) < 1e-9);
    for (std::size_t chunk : {block, std::size_t{64}}) {
        CAPTURE(chunk);
        tensor<float, 4> y(b, L, H, P), st(b, H, P, N);
        poison(y), poison(st);
        ssm::ssd_forward(y, st, x, dt, B, C, A, {.chunk = chunk}, llm::parallel::sequential{});
        CHECK(rel(y, yg) < 3e-5);
        CHECK(rel(st, fg) < 3e-5);
    }
    tensor<float, 4> dx(b, L, H, P), dB(b, L, G, N), dC(b, L, G, N);
    tensor<float, 3> ddt(b, L, H);
    tensor<float, 1> dA(H);
    zero(dx), zero(dB), zero(dC), zero(ddt), zero(dA);
    ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A, llm::parallel::sequential{});
    CHECK(rel(dx, load<double, 4>(c + ".dx")) < 1e-4);
    CHECK(rel(ddt, load<double, 3>(c + ".ddt")) < 1e-4);
    CHECK(rel(dB, load<double, 4>(c + ".dB")) < 1e-4);
    CHECK(rel(dC, load<double, 4>(c + ".dC")) < 1e-4);
    CHECK(rel(dA, load<double, 1>(c + ".dA")) < 1e-4);
    tensor<double, 4> rx(b, L, H, P);
    tensor<double, 1> rA(H);
    zero(rx), zero(rA);
    ssm::ssd_backward_ref(rx, ssm::none, ssm::none, ssm::none, rA, dy, x, dt, B, C, A);
    CHECK(rel(rx, load<double, 4>(c + ".dx")) < 1e-9);
    CHECK(rel(rA, load<double, 1>(c + ".dA")) < 1e-9);
}
