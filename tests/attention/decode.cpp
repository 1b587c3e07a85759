// SPDX-License-Identifier: Apache-2.0
// KV caches (contiguous, paged: append, read, capacity errors) and decode attention (split-KV, log-sum-exp merge) against the reference.
#include "helpers.hpp"

#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/attention/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace {

namespace at = llm::attention;
using namespace attn_test;
using llm::bf16;
using t3 = llm::tensor<float, llm::dims<3>>;

t3 random3(std::size_t a, std::size_t b, std::size_t c, std::uint64_t seed) {
    t3 t(a, b, c);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = nd(rng);
    }
    return t;
}

// Appends tokens [0, n) of k, v to `seq` in chunks of irregular sizes.
template <class Cache>
void append_in_chunks(Cache& cache, std::size_t seq, const t3& k, const t3& v, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::size_t p = 0;
    while (p < k.extent(0)) {
        const std::size_t n = std::min<std::size_t>(k.extent(0) - p, 1 + rng() % 40);
        cache.append(seq, llm::slice(k, 0, p, p + n), llm::slice(v, 0, p, p + n));
        p += n;
    }
}

TEST_CASE_TEMPLATE("kv cache: append then read gives the tokens back", Cache, at::contiguous_kv_cache<float>,
                   at::paged_kv_cache<float>) {
    const std::size_t Hk = 3, D = 20;
    const std::size_t lens[] = {0, 1, 17, 130};
    auto make = [&] {
        if constexpr (std::is_same_v<Cache, at::contiguous_kv_cache<float>>) {
            return Cache(4, 200, Hk, D);
        } else {
            Cache c(40, 16, Hk, D);
            for (int s = 0; s < 4; ++s) {
                c.add_sequence();
            }
            return c;
        }
    };
    Cache cache = make();
    std::vector<t3> ks, vs;
    for (std::size_t s = 0; s < 4; ++s) {
        ks.push_back(random3(lens[s], Hk, D, 10 + s));
        vs.push_back(random3(lens[s], Hk, D, 20 + s));
    }
    // Interleave the sequences' appends, as a server batching requests does.
    for (std::size_t s = 0; s < 4; ++s) {
        append_in_chunks(cache, s, ks[s], vs[s], s);
    }
    for (std::size_t s = 0; s < 4; ++s) {
        REQUIRE(cache.length(s) == lens[s]);
        t3 k(lens[s], Hk, D), v(lens[s], Hk, D);
        at::read_cache(k, v, cache, s);
        for (std::size_t i = 0; i < k.size(); ++i) {
            REQUIRE(k.data()[i] == ks[s].data()[i]);
            REQUIRE(v.data()[i] == vs[s].data()[i]);
        }
    }
}

TEST_CASE("kv cache: capacity errors are clear and leave the cache unchanged") {
    at::contiguous_kv_cache<float> c(2, 10, 2, 4);
    auto k = random3(8, 2, 4, 1);
    c.append(1, k, k);
    CHECK_THROWS_WITH_AS(c.append(1, k, k),
                         "contiguous_kv_cache::append: sequence 1 holds 8 of 10 tokens; appending 8 would overflow the cache",
                         llm::error);
    CHECK(c.length(1) == 8);
    CHECK_THROWS_WITH_AS(c.append(2, k, k), doctest::Contains("sequence 2 out of range"), llm::error);
    auto bad = random3(8, 3, 4, 2);
    CHECK_THROWS_WITH_AS(c.append(0, bad, bad), doctest::Contains("but the cache holds [tokens, 2, 4]"), llm::error);
    CHECK_THROWS_AS(at::contiguous_kv_cache<float>(0, 10, 2, 4), llm::error);

    at::paged_kv_cache<bf16> p(4, 4, 2, 4);  // 16 tokens in all
    const auto a = p.add_sequence();
    const auto b = p.add_sequence();
    p.append(a, k, k);  // 2 blocks
    auto k5 = random3(5, 2, 4, 3);
    p.append(b, k5, k5);  // 2 blocks: pool exhausted
    CHECK(p.free_blocks() == 0);
    CHECK(p.block_table(a) == std::vector<std::int32_t>{0, 1});
    CHECK(p.block_table(b) == std::vector<std::int32_t>{2, 3});
    CHECK_THROWS_WITH_AS(
        p.append(b, k5, k5),
        "paged_kv_cache::append: sequence 1 (5 tokens) needs 1 more blocks of 4 tokens for 5 new tokens but only 0 of 4 are free",
        llm::error);
    CHECK(p.length(b) == 5);
    p.release(a);
    CHECK(p.free_blocks() == 2);
    p.append(b, k5, k5);  // reuses a's blocks
    CHECK(p.length(b) == 10);
    CHECK(p.block_table(b).size() == 3);
    CHECK_THROWS_AS(p.length(7), llm::error);
}

// Reference: each sequence's new token as a (1, 1, H, D) query against (1, len, Hk, D) keys.
template <class Cache, class Mask>
void check_decode(const Cache& cache, const std::vector<t3>& ks, const std::vector<t3>& vs, const t3& q, const Mask& mask,
                  const at::options& opt, std::size_t splits) {
    const std::size_t n = q.extent(0), H = q.extent(1), D = q.extent(2), Hk = cache.kv_heads();
    t3 out(n, H, D);
    poison(out);
    std::vector<float> lse(n * H);
    llm::parallel::thread_pool pool(2);
    at::options split_opt = opt;
    split_opt.splits = splits;
    at::decode_attention(out, llm::tensor_view<float, llm::dims<2>>(lse.data(), n, H), cache, q, mask, split_opt, pool);
    for (std::size_t s = 0; s < n; ++s) {
        const std::size_t len = ks[s].extent(0);
        llm::tensor_view<const float, llm::dims<4>> q4(q.data() + s * H * D, 1, 1, H, D);
        llm::tensor_view<const float, llm::dims<4>> k4(ks[s].data(), 1, len, Hk, D);
        llm::tensor_view<const float, llm::dims<4>> v4(vs[s].data(), 1, len, Hk, D);
        t4d o_ref(1, 1, H, D);
        t3d l_ref(1, H, 1);
        at::reference_forward(o_ref, l_ref, q4, k4, v4, mask, opt);
        llm::tensor_view<const float, llm::dims<4>> got(out.data() + s * H * D, 1, 1, H, D);
        CAPTURE(s);
        CAPTURE(len);
        CHECK(rel_norm(got, o_ref) < 2e-5);
        for (std::size_t h = 0; h < H; ++h) {
            if (len == 0) {
                CHECK(lse[s * H + h] == -INFINITY);
            } else {
                CHECK(lse[s * H + h] == doctest::Approx(l_ref(0, h, 0)).epsilon(1e-5));
            }
        }
    }
}

TEST_CASE_TEMPLATE("decode attention matches the reference for every split count", Cache, at::contiguous_kv_cache<float>,
                   at::paged_kv_cache<float>) {
    const std::size_t H = 8, Hk = 2, D = 80;
    const std::size_t lens[] = {1, 63, 1000, 0, 2050};
    Cache cache = [&] {
        if constexpr (std::is_same_v<Cache, at::contiguous_kv_cache<float>>) {
            return Cache(5, 2100, Hk, D);
        } else {
            Cache c(300, 16, Hk, D);
            for (int s = 0; s < 5; ++s) {
                c.add_sequence();
            }
            return c;
        }
    }();
    std::vector<t3> ks, vs;
    for (std::size_t s = 0; s < 5; ++s) {
        ks.push_back(random3(lens[s], Hk, D, 30 + s));
        vs.push_back(random3(lens[s], Hk, D, 40 + s));
        append_in_chunks(cache, s, ks[s], vs[s], s);
    }
    const t3 q = random3(5, H, D, 7);
    for (std::size_t splits : {0, 1, 3, 16}) {
        CAPTURE(splits);
        check_decode(cache, ks, vs, q, at::causal{}, {}, splits);
        check_decode(cache, ks, vs, q, at::sliding_window(100, 0), {.softcap = 3.0f}, splits);
    }
}

TEST_CASE("decode attention: bf16 cache, MQA, bad input") {
    const std::size_t H = 4, D = 64, len = 300;
    at::contiguous_kv_cache<bf16> cache(1, 512, 1, D);
    auto k = random3(len, 1, D, 1);
    auto v = random3(len, 1, D, 2);
    cache.append(0, k, v);
    // The reference sees the bf16-rounded cache contents.
    t3 kr(len, 1, D), vr(len, 1, D);
    at::read_cache(kr, vr, cache, 0);
    const t3 q = random3(1, H, D, 3);
    check_decode(cache, {kr}, {vr}, q, at::causal{}, {}, 0);

    t3 out(1, H, D);
    const t3 q2 = random3(2, H, D, 4);
    CHECK_THROWS_WITH_AS(at::decode_attention(out, cache, q2), "decode_attention: q has 2 sequences but the cache has 1",
                         llm::error);
    const t3 q3 = random3(1, 3, 32, 4);
    t3 out3(1, 3, 32);
    CHECK_THROWS_WITH_AS(at::decode_attention(out3, cache, q3), "decode_attention: q has head_dim 32 but the cache has 64",
                         llm::error);
}

}  // namespace
