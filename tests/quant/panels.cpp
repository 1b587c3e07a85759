// SPDX-License-Identifier: Apache-2.0
// Weights laid out once in 64-row panels: bf16 in the `vdpbf16ps` GEMM's panels (llm::quant::pack_bf16_panels,
// any_matrix's bf16_panels layout): the few-row product over the panels against the portable kernel
// (bit for bit) and the double reference, the many-row product against the row-major matrix's
// `vdpbf16ps` path (bit for bit), and bad input.
//
// Tolerance (derived): the panel kernels widen W exactly and form two sums per output, the even and
// the odd k, each by fused multiply-adds (one rounding per step), then add them: at most
// ceil(k / 2) + 1 roundings on the path of any term, so |y - ref| <= gamma_N * sum_k |x_k w_k|,
// N = ceil(k / 2) + 1, gamma_N = N u / (1 - N u), u = 2^-24 (Higham, eq. 3.5), checked per element.
#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/any_matrix.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace q = llm::quant;

namespace {

using matrix = llm::tensor<float, llm::dims<2>>;

std::vector<std::uint16_t> bf16_weights(std::size_t n, std::size_t k, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<std::uint16_t> w(n * k);
    for (auto& v : w) v = llm::bf16(u(rng)).bits();
    return w;
}

matrix activations(std::size_t m, std::size_t k, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    matrix x(m, k);
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = u(rng);
    return x;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST_CASE("bf16 panels: pack_bf16_panels lays out the panels, 64-byte aligned; other matrices come back as they are") {
    const std::size_t n = 130, k = 37;
    const auto w = bf16_weights(n, k, 1);
    const q::any_matrix row(llm::io::ggml_type::bf16, std::as_bytes(std::span(w)), n, k);
    llm::aligned_buffer<std::byte> storage;
    const q::any_matrix p = q::pack_bf16_panels(row, storage);
    REQUIRE(p.layout() == q::weight_layout::bf16_panels);
    CHECK(p.type() == llm::io::ggml_type::bf16);
    CHECK(p.extent(0) == n);
    CHECK(p.extent(1) == k);
    CHECK(p.bytes().size() == 4 * 192 * 19);  // 130 rows padded to 3 panels of 64, 19 k-pairs
    CHECK(reinterpret_cast<std::uintptr_t>(p.bytes().data()) % 64 == 0);
    CHECK(p.bytes().data() >= storage.data());
    CHECK(p.bytes().data() + p.bytes().size() <= storage.data() + storage.size());
    const auto panels = p.bf16_panels();
    std::size_t bad = 0;
    for (std::size_t r = 0; r < n; ++r) {
        for (std::size_t t = 0; t < k / 2; ++t) bad += panels.word(r, t) != (w[r * k + 2 * t] | std::uint32_t{w[r * k + 2 * t + 1]} << 16);
        bad += panels.word(r, k / 2) != w[r * k + k - 1];  // odd k: the pad's high half is zero
    }
    CHECK(bad == 0);
    // A packed matrix, another type or a placeholder: returned unchanged, storage untouched.
    llm::aligned_buffer<std::byte> other;
    CHECK(q::pack_bf16_panels(p, other).bytes().data() == p.bytes().data());
    const q::any_matrix f16(llm::io::ggml_type::f16, std::as_bytes(std::span(w)), n, k);
    CHECK(q::pack_bf16_panels(f16, other).layout() == q::weight_layout::row_major);
    CHECK(q::pack_bf16_panels(q::any_matrix(n, k), other).layout() == q::weight_layout::row_major);
    CHECK(other.empty());
}

TEST_CASE("bf16 panels: the few-row product equals the portable kernel bit for bit and the reference within the bound") {
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    for (const std::size_t n : {1u, 63u, 64u, 130u}) {
        for (const std::size_t k : {1u, 2u, 37u, 300u}) {
            const auto w = bf16_weights(n, k, static_cast<unsigned>(n * 7 + k));
            const q::any_matrix row(llm::io::ggml_type::bf16, std::as_bytes(std::span(w)), n, k);
            llm::aligned_buffer<std::byte> storage;
            const q::any_matrix p = q::pack_bf16_panels(row, storage);
            for (const std::size_t m : {1u, 2u, 3u, 8u, 9u}) {
                CAPTURE(n);
                CAPTURE(k);
                CAPTURE(m);
                const matrix x = activations(m, k, static_cast<unsigned>(m + 100));
                matrix y(m, n), y2(m, n), ref(m, n);
                // m = 9 is past the few-row kernel: `widen` keeps it there (the exact products).
                const q::linear_options opt{.bf16 = llm::blas::bf16_path::widen};
                q::linear_forward(y, x, p, opt, ws, seq);
                q::linear_forward(y2, x, p, opt, ws, pool);
                q::detail::bf16_panel_rows_generic(p.bf16_panels(), 0, (n + 63) / 64, x.data(), k, m, ref.data(), n);
                std::size_t bad_generic = 0, bad_threads = 0, bad_bound = 0;
                const double N = static_cast<double>((k + 1) / 2 + 1), u = std::ldexp(1.0, -24), gamma = N * u / (1 - N * u);
                for (std::size_t i = 0; i < m; ++i) {
                    for (std::size_t j = 0; j < n; ++j) {
                        bad_generic += !same_bits(y(i, j), ref(i, j));
                        bad_threads += !same_bits(y(i, j), y2(i, j));
                        double exact = 0.0, mag = 0.0;
                        for (std::size_t t = 0; t < k; ++t) {
                            const double prod = static_cast<double>(x(i, t)) * static_cast<float>(llm::bf16::from_bits(w[j * k + t]));
                            exact += prod;
                            mag += std::fabs(prod);
                        }
                        bad_bound += std::fabs(y(i, j) - exact) > gamma * mag;
                    }
                }
                CHECK(bad_generic == 0);
                CHECK(bad_threads == 0);
                CHECK(bad_bound == 0);
            }
        }
    }
}

TEST_CASE("bf16 panels: more than 8 rows give the row-major matrix's `vdpbf16ps` bits (run_packed), on 1 and 2 threads") {
    if (!llm::blas::own<llm::simd::default_backend>::packed_available()) {
        MESSAGE("skipped: no bf16 dot-product path with 64-column tiles here");
        return;
    }
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    for (const std::size_t n : {2u, 130u, 257u}) {
        for (const std::size_t k : {1u, 37u, 1000u}) {
            const auto w = bf16_weights(n, k, static_cast<unsigned>(n + 3 * k));
            const q::any_matrix row(llm::io::ggml_type::bf16, std::as_bytes(std::span(w)), n, k);
            llm::aligned_buffer<std::byte> storage;
            const q::any_matrix p = q::pack_bf16_panels(row, storage);
            for (const std::size_t m : {9u, 31u, 200u}) {
                CAPTURE(n);
                CAPTURE(k);
                CAPTURE(m);
                const matrix x = activations(m, k, static_cast<unsigned>(m));
                matrix want(m, n), got(m, n), got2(m, n);
                q::linear_forward(want, x, row, {.bf16 = llm::blas::bf16_path::dot_round_fp32}, ws, seq);
                q::linear_forward(got, x, p, ws, seq);
                q::linear_forward(got2, x, p, ws, pool);
                std::size_t bad = 0, bad_threads = 0;
                for (std::size_t i = 0; i < want.size(); ++i) {
                    bad += !same_bits(want.data()[i], got.data()[i]);
                    bad_threads += !same_bits(got.data()[i], got2.data()[i]);
                }
                CHECK(bad == 0);
                CHECK(bad_threads == 0);
            }
        }
    }
}

TEST_CASE("bf16 panels: a bf16_panels any_matrix of another type, size or alignment is llm::error") {
    alignas(64) static std::uint32_t words[64 * 3] = {};
    const auto bytes = std::as_bytes(std::span(words));
    CHECK_NOTHROW(q::any_matrix(llm::io::ggml_type::bf16, bytes, 64, 6, q::weight_layout::bf16_panels));
    CHECK_NOTHROW(q::any_matrix(llm::io::ggml_type::bf16, bytes, 40, 5, q::weight_layout::bf16_panels));
    CHECK_THROWS_AS(q::any_matrix(llm::io::ggml_type::f16, bytes, 64, 6, q::weight_layout::bf16_panels), llm::error);
    CHECK_THROWS_AS(q::any_matrix(llm::io::ggml_type::bf16, bytes, 64, 8, q::weight_layout::bf16_panels), llm::error);
    CHECK_THROWS_AS(q::any_matrix(llm::io::ggml_type::bf16, bytes.first(bytes.size() - 4), 64, 6, q::weight_layout::bf16_panels),
                    llm::error);
    CHECK_THROWS_AS(q::any_matrix(llm::io::ggml_type::bf16, bytes.subspan(4, 4 * 64 * 2), 64, 4, q::weight_layout::bf16_panels),
                    llm::error);
    try {
        (void)q::any_matrix(llm::io::ggml_type::bf16, bytes, 64, 8, q::weight_layout::bf16_panels);
    } catch (const llm::error& e) {
        CHECK(std::string(e.what()).find("768 bytes are not the 1024 of 64 x 8 bf16") != std::string::npos);
    }
}

// f16 panels: one fp32 sum per output by fused multiply-adds in k order: N = k roundings,
// |y - ref| <= gamma_k sum |x_k w_k| (the bound above with N = k).
TEST_CASE("f16 panels: pack_f16_panels lays out the panels; few rows equal the portable kernel and the reference bound; "
          "more rows give the row-major GEMM's bits") {
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    for (const std::size_t n : {1u, 63u, 130u}) {
        for (const std::size_t k : {1u, 37u, 300u}) {
            std::mt19937 rng(static_cast<unsigned>(n * 5 + k));
            std::uniform_real_distribution<float> u(-1.0f, 1.0f);
            std::vector<std::uint16_t> w(n * k);
            for (auto& v : w) v = llm::f16(u(rng)).bits();
            const q::any_matrix row(llm::io::ggml_type::f16, std::as_bytes(std::span(w)), n, k);
            llm::aligned_buffer<std::byte> storage;
            const q::any_matrix p = q::pack_f16_panels(row, storage);
            REQUIRE(p.layout() == q::weight_layout::f16_panels);
            CHECK(p.bytes().size() == 2 * ((n + 63) / 64) * 64 * k);
            CHECK(reinterpret_cast<std::uintptr_t>(p.bytes().data()) % 64 == 0);
            std::size_t bad_layout = 0;
            for (std::size_t r = 0; r < n; ++r) {
                for (std::size_t j = 0; j < k; ++j) bad_layout += p.f16_panels().element(r, j) != w[r * k + j];
            }
            CHECK(bad_layout == 0);
            for (const std::size_t m : {1u, 2u, 3u, 8u, 9u, 40u}) {
                CAPTURE(n);
                CAPTURE(k);
                CAPTURE(m);
                const matrix x = activations(m, k, static_cast<unsigned>(m + 7));
                matrix y(m, n), y2(m, n), ref(m, n), want(m, n);
                q::linear_forward(y, x, p, ws, seq);
                q::linear_forward(y2, x, p, ws, pool);
                std::size_t bad_threads = 0, bad = 0, bad_bound = 0;
                for (std::size_t i = 0; i < y.size(); ++i) bad_threads += !same_bits(y.data()[i], y2.data()[i]);
                CHECK(bad_threads == 0);
                const bool gemm = m > 8 && llm::blas::own<llm::simd::default_backend>::f16_packed_available();
                if (gemm && n > 1) {  // (n = 1: the row-major matrix takes a GEMV, other bits)
                    q::linear_forward(want, x, row, ws, seq);  // the row-major matrix's GEMM
                    for (std::size_t i = 0; i < y.size(); ++i) bad += !same_bits(y.data()[i], want.data()[i]);
                    CHECK(bad == 0);
                    continue;
                }
                q::detail::f16_panel_rows_generic(p.f16_panels(), 0, (n + 63) / 64, x.data(), k, m, ref.data(), n);
                // The GEMM (n = 1 here): k roundings plus 3 per KC block and one (<= 4k + 1 in all,
                // tests/gemm/bf16_dot.cpp's bound); the panel GEMV: k.
                const double N = gemm ? 4.0 * static_cast<double>(k) + 1 : static_cast<double>(k);
                const double uu = std::ldexp(1.0, -24), gamma = N * uu / (1 - N * uu);
                for (std::size_t i = 0; i < m; ++i) {
                    for (std::size_t j = 0; j < n; ++j) {
                        bad += !gemm && !same_bits(y(i, j), ref(i, j));
                        double exact = 0.0, mag = 0.0;
                        for (std::size_t t = 0; t < k; ++t) {
                            const double prod = static_cast<double>(x(i, t)) * static_cast<float>(llm::f16::from_bits(w[j * k + t]));
                            exact += prod;
                            mag += std::fabs(prod);
                        }
                        bad_bound += std::fabs(y(i, j) - exact) > gamma * mag;
                    }
                }
                CHECK(bad == 0);
                CHECK(bad_bound == 0);
            }
        }
    }
    alignas(64) static std::uint16_t halves[64 * 6] = {};
    const auto bytes = std::as_bytes(std::span(halves));
    CHECK_NOTHROW(q::any_matrix(llm::io::ggml_type::f16, bytes, 64, 6, q::weight_layout::f16_panels));
    CHECK_THROWS_AS(q::any_matrix(llm::io::ggml_type::bf16, bytes, 64, 6, q::weight_layout::f16_panels), llm::error);
    CHECK_THROWS_AS(q::any_matrix(llm::io::ggml_type::f16, bytes, 64, 5, q::weight_layout::f16_panels), llm::error);
    CHECK_THROWS_AS(q::any_matrix(llm::io::ggml_type::f16, bytes.subspan(2, 64 * 2 * 5), 64, 5, q::weight_layout::f16_panels),
                    llm::error);
}

// 26 panels of k 200 (grain: ~256 KiB of output, 10 panels) in three chunks on a pool, the last
// panel partial: the bytes the calling thread writes, for both panel layouts.
TEST_CASE("bf16 / f16 panels: packed on a thread pool, the bytes the calling thread writes") {
    llm::parallel::thread_pool pool(2);
    const std::size_t n = 64 * 25 + 13, k = 200;
    const auto bits = bf16_weights(n, k, 91);  // as f16 bits too: any 16-bit patterns pack alike
    for (const auto type : {llm::io::ggml_type::bf16, llm::io::ggml_type::f16}) {
        CAPTURE(llm::io::ggml_type_name(type));
        const q::any_matrix row(type, std::as_bytes(std::span(bits)), n, k);
        llm::aligned_buffer<std::byte> seq, par;
        const bool bf = type == llm::io::ggml_type::bf16;
        const q::any_matrix ps = bf ? q::pack_bf16_panels(row, seq) : q::pack_f16_panels(row, seq);
        const q::any_matrix pp = bf ? q::pack_bf16_panels(row, par, pool) : q::pack_f16_panels(row, par, pool);
        REQUIRE(pp.layout() == (bf ? q::weight_layout::bf16_panels : q::weight_layout::f16_panels));
        REQUIRE(seq.size() == par.size());
        CHECK(std::memcmp(seq.data(), par.data(), seq.size()) == 0);
        CHECK(ps.bytes().size() == pp.bytes().size());
    }
}
