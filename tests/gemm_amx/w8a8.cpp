// SPDX-License-Identifier: Apache-2.0
// W8A8 on the hardware AMX-INT8 tiles (this program exits 77, skipped, without AMX: hardware.cpp): the tile
// path and llm::quant::gemm_w8a8 (which takes it from 16 activation rows) give the row path's bits, since
// both sum the same int8 products exactly in int32.
#include <llm/gemm/amx.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/channel.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <vector>

TEST_CASE("AMX hardware: W8A8 on int8 tiles gives the row path's bits; gemm_w8a8 takes the tiles from 16 rows") {
    namespace q = llm::quant;
    REQUIRE(llm::blas::amx_int8_available());
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    llm::parallel::thread_pool pool(2);
    for (const std::size_t m : {1u, 16u, 33u, 70u}) {
        for (const std::size_t n : {17u, 45u, 97u}) {
            for (const std::size_t k : {1u, 63u, 65u, 1000u}) {
                llm::tensor<float, llm::dims<2>> w(n, k), x(m, k);
                for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = normal(rng);
                for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
                const auto w8 = q::quantize_int8(w);
                std::vector<std::int8_t> qx(m * k);
                std::vector<float> sx(m);
                for (std::size_t i = 0; i < m; ++i) {
                    sx[i] = q::detail::quantize_token_i8(x.data() + i * k, 1, k, qx.data() + i * k);
                }
                std::vector<float> rows(m * n), tiles(m * n);
                q::detail::w8a8_rows(rows.data(), n, 1, qx.data(), sx.data(), m, w8, 0, n);
                llm::workspace ws;
                {
                    const llm::workspace::frame frame(ws);
                    q::detail::w8a8_amx<llm::blas::detail::amx_hardware>(tiles.data(), n, 1, qx.data(), sx.data(), m, w8,
                                                                          ws, pool);
                }
                llm::tensor<float, llm::dims<2>> y(m, n);
                q::gemm_w8a8(y, x, w8, ws, pool);
                INFO("m=", m, " n=", n, " k=", k);
                CHECK(std::memcmp(rows.data(), tiles.data(), m * n * sizeof(float)) == 0);
                CHECK(std::memcmp(rows.data(), y.data(), m * n * sizeof(float)) == 0);
            }
        }
    }
}
