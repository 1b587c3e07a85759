// SPDX-License-Identifier: Apache-2.0
// Run-time cache blocking: the BLIS analytical model on made-up cache sizes, the fallback when
// the OS reports nothing, and the values derived from this machine's caches.
#include <llm/core/cpu_info.hpp>
#include <llm/gemm/blocking.hpp>
#include <llm/simd/simd.hpp>

#include <doctest/doctest.h>

#include <cstddef>

namespace {

// The model's promises for a micro-tile mr x nr: the kc x nr B micro-panel fits half of L1d,
// the mc x kc A block fits L2, the kc x nc B block fits this core's L3 share, and the blocks
// are multiples of the micro-tile.
void check_sane(const llm::cache_sizes& c, std::size_t mr, std::size_t nr, const llm::blas::block_sizes& s) {
    INFO("l1d=", c.l1d, " l2=", c.l2, " l3=", c.l3, " mr=", mr, " nr=", nr, " -> mc=", s.mc, " kc=", s.kc, " nc=", s.nc);
    CHECK(s.kc >= 16);
    CHECK(s.kc % 8 == 0);
    CHECK(s.kc * nr * sizeof(float) <= c.l1d / 2);
    CHECK(s.kc * mr * sizeof(float) <= c.l1d / 2);
    CHECK(s.mc % mr == 0);
    CHECK(s.mc >= mr);
    CHECK(s.mc * s.kc * sizeof(float) <= c.l2 / 2);
    CHECK(s.nc % nr == 0);
    CHECK(s.nc >= nr);
    CHECK(s.nc <= 4096);
    if (c.l3 != 0) {
        CHECK(s.kc * s.nc * sizeof(float) <= c.l3 / (c.l3_sharing == 0 ? 1 : c.l3_sharing));
    }
}

constexpr llm::blas::block_sizes fallback{120, 256, 4096};

}  // namespace

TEST_CASE("blocking_for: a 32K / 512K / 16M machine (AVX2 6 x 16 tile) gives the textbook blocks") {
    const llm::cache_sizes c{32u << 10, 512u << 10, 16u << 20, 64, 2};
    const auto s = llm::blas::blocking_for(c, 6, 16, fallback);
    check_sane(c, 6, 16, s);
    // kc = 16 KiB / (16 * 4) = 256; mc = 256 KiB / (256 * 4) = 256 -> 252 (multiple of 6);
    // nc = (16 MiB / 2) / 2 / (256 * 4) = 4096.
    CHECK(s.kc == 256);
    CHECK(s.mc == 252);
    CHECK(s.nc == 4096);
    // Eight cores sharing the L3: a quarter of the columns.
    const llm::cache_sizes c8{32u << 10, 512u << 10, 16u << 20, 64, 8};
    const auto s8 = llm::blas::blocking_for(c8, 6, 16, fallback);
    check_sane(c8, 6, 16, s8);
    CHECK(s8.nc == 1024);
}

TEST_CASE("blocking_for: a 48K / 2M / 480M machine (AVX-512 6 x 64 tile) caps mc and nc") {
    const llm::cache_sizes c{48u << 10, 2u << 20, std::size_t{480} << 20, 64, 1};
    const auto s = llm::blas::blocking_for(c, 6, 64, fallback);
    check_sane(c, 6, 64, s);
    // kc = 24 KiB / (64 * 4) = 96; mc = 1 MiB / (96 * 4) = 2730, capped at 1020; a 480 MiB L3
    // would give nc far past 4096, capped.
    CHECK(s.kc == 96);
    CHECK(s.mc == 1020);
    CHECK(s.nc == 4096);
}

TEST_CASE("blocking_for: caches reported as 0 fall back to the measured constants") {
    const auto s = llm::blas::blocking_for(llm::cache_sizes{0, 0, 0, 0, 0}, 6, 16, fallback);
    CHECK(s.mc == fallback.mc);
    CHECK(s.kc == fallback.kc);
    CHECK(s.nc == fallback.nc);
    // L1d and L2 known, L3 not: only nc falls back.
    const llm::cache_sizes no_l3{32u << 10, 512u << 10, 0, 64, 0};
    const auto t = llm::blas::blocking_for(no_l3, 6, 16, fallback);
    CHECK(t.kc == 256);
    CHECK(t.mc == 252);
    CHECK(t.nc == fallback.nc);
}

TEST_CASE("blocking_for: tiny caches still give the minimum kc and mc of one micro-tile") {
    // kc: 512 / 64 = 8 -> 16 (the floor); mc: 128 / (16 * 4) = 2 -> 6 (one micro-tile).
    const llm::cache_sizes c{1u << 10, 256, 0, 64, 0};
    const auto s = llm::blas::blocking_for(c, 6, 16, fallback);
    CHECK(s.kc == 16);
    CHECK(s.mc == 6);
}

TEST_CASE("cache_blocking: this machine's caches give sane blocks, or the measured ones") {
    constexpr std::size_t w = llm::simd::default_backend::width;
    using cb = llm::blas::cache_blocking<w>;
    static_assert(llm::blas::runtime_blocking_policy<cb>);
    static_assert(llm::blas::fixed_blocking_policy<llm::blas::measured_blocking_t<w>>);
    const llm::cache_sizes& c = llm::cpu_cache_sizes();
    const auto s = llm::blas::block_sizes_of<cb>();
    MESSAGE("caches l1d=", c.l1d, " l2=", c.l2, " l3=", c.l3, " (shared by ", c.l3_sharing, "), line=", c.line,
            " -> mc=", s.mc, " kc=", s.kc, " nc=", s.nc);
    if (c.l1d != 0 && c.l2 != 0) {
        check_sane(c, cb::mr, cb::nr_vectors * w, s);
    } else {
        using m = llm::blas::measured_blocking_t<w>;
        CHECK(s.kc == m::kc);
        CHECK(s.mc == m::mc);
    }
    // Computed once: a second call returns the same values.
    const auto again = cb::sizes();
    CHECK(again.kc == s.kc);
    CHECK(again.mc == s.mc);
    CHECK(again.nc == s.nc);
}

TEST_CASE("cache sizes: sysfs size strings and cpu lists parse") {
    CHECK(llm::detail::parse_cache_size("32K") == 32u << 10);
    CHECK(llm::detail::parse_cache_size("16384K") == 16u << 20);
    CHECK(llm::detail::parse_cache_size("2M") == 2u << 20);
    CHECK(llm::detail::parse_cache_size("512") == 512u);
    CHECK(llm::detail::parse_cache_size("") == 0u);
    CHECK(llm::detail::count_cpu_list("0-1") == 2u);
    CHECK(llm::detail::count_cpu_list("0-7,16-23") == 16u);
    CHECK(llm::detail::count_cpu_list("3") == 1u);
    CHECK(llm::detail::count_cpu_list("") == 0u);
}
