// SPDX-License-Identifier: Apache-2.0
// Tests of llm::gemm: own backend (default and scalar SIMD) against the double-accumulating reference.
#include "helpers.hpp"

#include <llm/gemm/gemm.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/kernel_view.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cmath>

using namespace gemm_test;

namespace {
using own_default = llm::blas::own<>;
using own_scalar = llm::blas::own<llm::simd::scalar>;
#if LLM_HAS_XSIMD && defined(__AVX2__) && defined(__FMA__)
// 8 lanes: the AVX2 micro-tile (blocking_avx2, 6 x 16) runs here too.
using own_avx2 = llm::blas::own<llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>>;
#else
using own_avx2 = own_scalar;
#endif
// The run-time blocking (default but on AVX-512) and the measured constants pinned.
using own_cache = llm::blas::own<llm::simd::default_backend,
                                 llm::blas::cache_blocking<llm::simd::default_backend::width>>;
using own_measured = llm::blas::own<llm::simd::default_backend,
                                    llm::blas::measured_blocking_t<llm::simd::default_backend::width>>;
// Tiny pinned blocks (kc = 8, mc = 2 micro-tiles, nc = 2 panels): every awkward size crosses
// kc, mc and nc block edges, on the scalar and on the default SIMD micro-tile. fp32_tolerance
// still holds: blocks of 8 only regroup the same k-term fp32 sum (error ~ sqrt(k) * 2^-24).
using own_tiny_scalar = llm::blas::own<llm::simd::scalar, llm::blas::fixed_blocking<4, 4, 8, 8, 8>>;
constexpr std::size_t default_nv = llm::blas::measured_blocking_t<llm::simd::default_backend::width>::nr_vectors;
constexpr std::size_t default_mr = llm::blas::measured_blocking_t<llm::simd::default_backend::width>::mr;
using own_tiny_default =
    llm::blas::own<llm::simd::default_backend,
                   llm::blas::fixed_blocking<default_mr, default_nv, 2 * default_mr, 8,
                                             2 * default_nv * llm::simd::default_backend::width>>;

}  // namespace

TEST_CASE_TEMPLATE("gemm own backend matches the reference on awkward sizes and layouts", Backend, own_default, own_scalar,
                   own_avx2, own_cache, own_measured, own_tiny_scalar, own_tiny_default) {
    llm::parallel::thread_pool pool(2);
    llm::parallel::sequential seq;
    for (const auto& s : awkward) {
        check_against_reference<Backend, float>(s.m, s.k, s.n, pool, 1.0f, 0.0f);
        check_against_reference<Backend, float>(s.m, s.k, s.n, seq, -0.5f, 0.75f);
    }
}

TEST_CASE("gemm own backend with bf16 inputs matches the reference on the same bf16 values") {
    llm::parallel::thread_pool pool(2);
    for (const auto& s : awkward) {
        check_against_reference<own_default, llm::bf16>(s.m, s.k, s.n, pool, 1.5f, 0.0f);
    }
}

TEST_CASE("gemm own backend: a block-crossing size with 2 threads and both GEMV orientations") {
    llm::parallel::thread_pool pool(2);
    check_against_reference<own_default, float>(700, 520, 4100, pool, 1.0f, 1.0f, false);
    check_against_reference<own_default, float>(1, 4100, 700, pool, 2.0f, 0.0f, false);
    check_against_reference<own_default, llm::bf16>(1, 1000, 1031, pool, 1.0f, 0.5f);
}

TEST_CASE("gemm own backend: a GEMV gives the same bits on any executor (both B orientations)") {
    // Each output column is one dot product whose order of operations must not depend on
    // where a thread's column range starts or ends (tails of ranges included): the text a
    // seeded generation produces may not depend on the thread count.
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool2(2);
    llm::parallel::thread_pool pool3(3);
    std::mt19937 rng(7);
    for (const std::size_t n : {1u, 5u, 24u, 37u, 130u}) {
        for (const std::size_t k : {16u, 19u, 70u}) {
            for (const layout_kind lb : {layout_kind::row, layout_kind::col}) {
                auto a = make_operand<float>(1, k, layout_kind::row, rng);
                auto b = make_operand<float>(k, n, lb, rng);
                llm::tensor<float, llm::dims<2>> y_seq(1, n), y_two(1, n), y_three(1, n);
                llm::gemm<own_default>(y_seq, a.view, b.view, 1.0f, 0.0f, seq);
                llm::gemm<own_default>(y_two, a.view, b.view, 1.0f, 0.0f, pool2);
                llm::gemm<own_default>(y_three, a.view, b.view, 1.0f, 0.0f, pool3);
                INFO("k=", k, " n=", n, " layout ", int(lb));
                for (std::size_t j = 0; j < n; ++j) {
                    CHECK(y_two(0, j) == y_seq(0, j));
                    CHECK(y_three(0, j) == y_seq(0, j));
                }
            }
        }
    }
}

TEST_CASE_TEMPLATE("gemm own backend: a 6-row tile (assembly on AVX2 and AVX-512) gives the bits of a 4-row tile", NV,
                   std::integral_constant<std::size_t, 2>, std::integral_constant<std::size_t, 4>) {
    // Every element of C is the same fp32 FMA chain over k (in blocks of kc) whatever the
    // micro-tile, so a 6-row and a 4-row tile agree bit for bit: this catches a wrong index,
    // step or remainder in the assembly loops (6 x 16 on AVX2: NV 2 on 8 lanes; 6 x 64 on
    // AVX-512: NV 4 on 16 lanes) and in the 6-row AVX-512 packing of A. kc 13, 22: unrolled
    // steps plus 1 or 2 left over; kc 45, 77: the AVX-512 loop's C prefetch 32 steps before
    // the end falls inside the unrolled steps; k crosses kc blocks. alpha 0.5 scales exactly,
    // so the edge tiles' separate multiply-then-add and the full tiles' fused one round alike.
    using S = llm::simd::default_backend;
    constexpr std::size_t nv = NV::value, nr = nv * S::width;
    using six13 = llm::blas::own<S, llm::blas::fixed_blocking<6, nv, 12, 13, 4 * nr>>;
    using four13 = llm::blas::own<S, llm::blas::fixed_blocking<4, nv, 8, 13, 4 * nr>>;
    using six22 = llm::blas::own<S, llm::blas::fixed_blocking<6, nv, 18, 22, 2 * nr>>;
    using four22 = llm::blas::own<S, llm::blas::fixed_blocking<4, nv, 12, 22, 2 * nr>>;
    using six45 = llm::blas::own<S, llm::blas::fixed_blocking<6, nv, 12, 45, 2 * nr>>;
    using four45 = llm::blas::own<S, llm::blas::fixed_blocking<4, nv, 8, 45, 2 * nr>>;
    using six77 = llm::blas::own<S, llm::blas::fixed_blocking<6, nv, 24, 77, nr>>;
    using four77 = llm::blas::own<S, llm::blas::fixed_blocking<4, nv, 16, 77, nr>>;
    llm::parallel::thread_pool pool(2);
    std::mt19937 rng(11);
    const auto same = [&](auto six, auto four, const auto& a, const auto& b, const auto& c0, float beta) {
        using Six = decltype(six);
        using Four = decltype(four);
        llm::tensor<float, llm::dims<2>> c6(c0.view.extent(0), c0.view.extent(1)), c4(c6.extent(0), c6.extent(1));
        llm::copy(c0.view, c6);
        llm::copy(c0.view, c4);
        llm::gemm<Six>(c6, a.view, b.view, 0.5f, beta, pool);
        llm::gemm<Four>(c4, a.view, b.view, 0.5f, beta, pool);
        std::size_t differ = 0;
        for (std::size_t i = 0; i < c6.extent(0); ++i) {
            for (std::size_t j = 0; j < c6.extent(1); ++j) {
                differ += c6(i, j) != c4(i, j) ? 1u : 0u;
            }
        }
        return differ;
    };
    // m 17 and 40: rows 12-15 and 36-39 are a partial tile of the 6-row blocking (micro_rows: only
    // those rows multiplied) and a whole tile of the 4-row one.
    for (const std::size_t m : {6u, 17u, 37u, 40u}) {
        for (const std::size_t k : {4u, 13u, 31u, 70u, 160u}) {
            for (const float beta : {0.0f, 1.0f}) {
                const std::size_t n = nr + 53;
                auto a = make_operand<float>(m, k, layout_kind::row, rng);
                auto b = make_operand<float>(k, n, layout_kind::col, rng);
                auto c0 = make_operand<float>(m, n, layout_kind::row, rng);
                INFO("m=", m, " k=", k, " beta=", beta, " nr=", nr);
                CHECK(same(six13{}, four13{}, a, b, c0, beta) == 0);
                CHECK(same(six22{}, four22{}, a, b, c0, beta) == 0);
                CHECK(same(six45{}, four45{}, a, b, c0, beta) == 0);
                CHECK(same(six77{}, four77{}, a, b, c0, beta) == 0);
            }
        }
    }
}

TEST_CASE("gemm own backend: bf16 inputs and a block-crossing size with a tiny pinned blocking") {
    llm::parallel::thread_pool pool(2);
    for (const auto& s : awkward) {
        check_against_reference<own_tiny_default, llm::bf16>(s.m, s.k, s.n, pool, 1.5f, 0.0f);
    }
    check_against_reference<own_tiny_default, float>(70, 52, 410, pool, 1.0f, 1.0f, false);
}


TEST_CASE("gemm reference is exact on small integers") {
    // 2x3 * 3x2 with integer values: every product and sum is exact in fp32.
    llm::tensor<float, llm::dims<2>> a(2, 3), b(3, 2), c(2, 2);
    const float av[] = {1, 2, 3, 4, 5, 6}, bv[] = {7, 8, 9, 10, 11, 12};
    for (std::size_t i = 0; i < 6; ++i) {
        a(i / 3, i % 3) = av[i];
        b(i / 2, i % 2) = bv[i];
    }
    llm::gemm<llm::blas::reference>(c, a, b);
    CHECK(c(0, 0) == 58);
    CHECK(c(0, 1) == 64);
    CHECK(c(1, 0) == 139);
    CHECK(c(1, 1) == 154);
    llm::gemm(c, a, b, 1.0f, -1.0f);  // own: C = A B - C = 0
    CHECK(c(0, 0) == 0);
    CHECK(c(1, 1) == 0);
}

TEST_CASE("gemm zero-size dimensions have defined results") {
    llm::tensor<float, llm::dims<2>> a(3, 0), b(0, 4), c(3, 4);
    llm::fill(c, 2.0f);
    llm::gemm(c, a, b, 1.0f, 0.5f);  // k = 0: C = beta * C
    CHECK(c(2, 3) == 1.0f);
    llm::fill(c, NAN);
    llm::gemm(c, a, b, 1.0f, 0.0f);  // beta = 0 overwrites even NaN
    CHECK(c(0, 0) == 0.0f);
    llm::tensor<float, llm::dims<2>> e(0, 5), f(5, 4), g(0, 4);
    llm::gemm(g, e, f);  // m = 0: nothing to do, no throw
}

namespace user_backend {

/// A GEMM backend written outside llm::, against the documented contract only: operands as
/// llm::strided_view (the one kernel_view), shapes already checked. It records what it saw.
struct recording {
    static inline std::size_t calls = 0;
    static inline const void* b_data = nullptr;
    static inline std::size_t b_strides[2] = {};

    template <class TA, class TB, class Exec>
    static void run(llm::strided_view<float, 2> c, llm::strided_view<TA, 2> a, llm::strided_view<TB, 2> b, float alpha,
                    float beta, llm::workspace& /*ws*/, Exec& /*exec*/) {
        ++calls;
        b_data = b.data();
        b_strides[0] = b.stride(0);
        b_strides[1] = b.stride(1);
        for (std::size_t i = 0; i < c.extent(0); ++i) {
            for (std::size_t j = 0; j < c.extent(1); ++j) {
                float sum = 0.0f;
                for (std::size_t p = 0; p < a.extent(1); ++p) {
                    sum += static_cast<float>(a(i, p)) * static_cast<float>(b(p, j));
                }
                c(i, j) = alpha * sum + (beta == 0.0f ? 0.0f : beta * c(i, j));
            }
        }
    }
};

}  // namespace user_backend

static_assert(llm::blas::backend<user_backend::recording>);
static_assert(!llm::blas::backend<int>);

TEST_CASE("gemm: a backend outside llm:: gets llm::strided_view operands, a transpose as strides (no copy)") {
    // Small integers: every product and sum is exact, so the user's loop must equal the reference.
    llm::tensor<float, llm::dims<2>> a(3, 4), w(5, 4), c(3, 5), expected(3, 5);
    for (std::size_t i = 0; i < 20; ++i) {
        if (i < 12) {
            a(i / 4, i % 4) = static_cast<float>(i % 5);
        }
        w(i / 4, i % 4) = static_cast<float>(i % 3) - 1.0f;
    }
    const auto wt = llm::transpose(w, 0, 1);  // [4, 5] with strides [1, 4]
    user_backend::recording::calls = 0;
    llm::gemm<user_backend::recording>(c, a, wt, 1.0f, 0.0f, llm::parallel::sequential{});
    llm::gemm<llm::blas::reference>(expected, a, wt, 1.0f, 0.0f, llm::parallel::sequential{});
    CHECK(user_backend::recording::calls == 1);
    CHECK(user_backend::recording::b_data == static_cast<const void*>(w.data()));
    CHECK(user_backend::recording::b_strides[0] == 1);
    CHECK(user_backend::recording::b_strides[1] == 4);
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 5; ++j) {
            CHECK(c(i, j) == expected(i, j));
        }
    }
    // A kernel_view passes back into llm::gemm like any view: C = A W^T + C doubles C.
    const llm::strided_view<const float, 2> wk = llm::to_kernel_view<2>(w);
    llm::gemm(llm::to_kernel_view<2>(c), llm::to_kernel_view<2>(a), wk.transposed<0, 1>(), 1.0f, 1.0f,
              llm::parallel::sequential{});
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 5; ++j) {
            CHECK(c(i, j) == 2.0f * expected(i, j));
        }
    }
}

TEST_CASE("gemm rejects mismatched shapes naming them") {
    llm::tensor<float, llm::dims<2>> a(3, 4), b(5, 6), c(3, 6), d(2, 6), bk(4, 6);
    CHECK_THROWS_WITH_AS(llm::gemm(c, a, b), "gemm: A is 3 x 4 but B is 5 x 6; A columns must equal B rows", llm::error);
    CHECK_THROWS_WITH_AS(llm::gemm(d, a, bk), "gemm: C is 2 x 6 but A * B is 3 x 6", llm::error);
    CHECK_THROWS_AS(llm::gemm<llm::blas::reference>(c, a, b), llm::error);
}
