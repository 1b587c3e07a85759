// SPDX-License-Identifier: Apache-2.0
// KV caches (contiguous, paged, with a layer dimension: per-layer append, advance, read, capacity and step errors) and decode attention (split-KV, log-sum-exp merge) against the reference.
#include "helpers.hpp"

#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/attention/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <utility>
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

// A cache of `layers` layers and `seqs` sequences with room for `tokens` tokens each
// (contiguous), or 16-token blocks enough for that (paged, sequences added).
template <class Cache>
Cache make_cache(std::size_t layers, std::size_t seqs, std::size_t tokens, std::size_t Hk, std::size_t D) {
    if constexpr (std::is_same_v<Cache, at::contiguous_kv_cache<typename Cache::element_type>>) {
        return Cache(layers, seqs, tokens, Hk, D);
    } else {
        Cache c(layers, seqs * ((tokens + 15) / 16), 16, Hk, D);
        for (std::size_t s = 0; s < seqs; ++s) {
            c.add_sequence();
        }
        return c;
    }
}

// Appends tokens [0, n) of k[l], v[l] to layer l of `seq` in chunks of irregular sizes, as a
// model's steps do: every layer appends the chunk, then advance commits it.
template <class Cache>
void append_in_chunks(Cache& cache, std::size_t seq, const std::vector<t3>& k, const std::vector<t3>& v,
                      std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::size_t p = 0;
    while (p < k[0].extent(0)) {
        const std::size_t n = std::min<std::size_t>(k[0].extent(0) - p, 1 + rng() % 40);
        for (std::size_t l = 0; l < k.size(); ++l) {
            cache.layer(l).append(seq, llm::slice(k[l], 0, p, p + n), llm::slice(v[l], 0, p, p + n));
        }
        cache.advance(seq, n);
        p += n;
    }
}

TEST_CASE_TEMPLATE("kv cache: every layer of a 3-layer cache reads back its own tokens", Cache,
                   at::contiguous_kv_cache<float>, at::paged_kv_cache<float>) {
    const std::size_t L = 3, Hk = 3, D = 20;
    const std::size_t lens[] = {0, 1, 17, 130};
    Cache cache = make_cache<Cache>(L, 4, 200, Hk, D);
    CHECK(cache.layers() == L);
    std::vector<std::vector<t3>> ks(4), vs(4);  // [sequence][layer]: different data in every layer
    for (std::size_t s = 0; s < 4; ++s) {
        for (std::size_t l = 0; l < L; ++l) {
            ks[s].push_back(random3(lens[s], Hk, D, 100 * l + 10 + s));
            vs[s].push_back(random3(lens[s], Hk, D, 100 * l + 20 + s));
        }
    }
    // Interleave the sequences' appends, as a server batching requests does.
    for (std::size_t s = 0; s < 4; ++s) {
        append_in_chunks(cache, s, ks[s], vs[s], s);
    }
    for (std::size_t s = 0; s < 4; ++s) {
        REQUIRE(cache.length(s) == lens[s]);
        for (std::size_t l = 0; l < L; ++l) {
            CAPTURE(s);
            CAPTURE(l);
            REQUIRE(cache.layer(l).length(s) == lens[s]);
            REQUIRE(cache.pending(l, s) == 0);
            t3 k(lens[s], Hk, D), v(lens[s], Hk, D);
            at::read_cache(k, v, std::as_const(cache).layer(l), s);
            for (std::size_t i = 0; i < k.size(); ++i) {
                REQUIRE(k.data()[i] == ks[s][l].data()[i]);
                REQUIRE(v.data()[i] == vs[s][l].data()[i]);
            }
        }
    }
    // Mid-step: a layer sees its own new rows at once; the sequence's length moves on advance.
    const auto k2 = random3(2, Hk, D, 99);
    cache.layer(0).append(2, k2, k2);
    CHECK(cache.layer(0).length(2) == 19);
    CHECK(cache.layer(1).length(2) == 17);
    CHECK(cache.length(2) == 17);
    t3 k(19, Hk, D), v(19, Hk, D);
    at::read_cache(k, v, cache.layer(0), 2);
    CHECK(k(18, 2, 19) == k2(1, 2, 19));
    CHECK(k(16, 0, 0) == ks[2][0](16, 0, 0));
}

TEST_CASE("kv cache: capacity and step errors are clear and leave the cache unchanged") {
    at::contiguous_kv_cache<float> c(2, 2, 10, 2, 4);
    auto k = random3(8, 2, 4, 1);
    c.append(0, 1, k, k);
    c.layer(1).append(1, k, k);
    c.advance(1, 8);
    CHECK_THROWS_WITH_AS(c.layer(1).append(1, k, k),
                         "contiguous_kv_cache::append: layer 1 of sequence 1 holds 8 of 10 tokens; appending 8 would "
                         "overflow the cache",
                         llm::error);
    CHECK(c.length(1) == 8);
    CHECK(c.pending(1, 1) == 0);
    CHECK_THROWS_WITH_AS(c.append(0, 2, k, k), doctest::Contains("sequence 2 out of range"), llm::error);
    CHECK_THROWS_WITH_AS(c.append(2, 0, k, k),
                         "contiguous_kv_cache::append: layer 2 out of range (the cache holds 2 layers)", llm::error);
    CHECK_THROWS_WITH_AS(c.layer(2), "contiguous_kv_cache::layer: layer 2 out of range (the cache holds 2 layers)",
                         llm::error);
    auto bad = random3(8, 3, 4, 2);
    CHECK_THROWS_WITH_AS(c.layer(0).append(0, bad, bad), doctest::Contains("but the cache holds [tokens, 2, 4]"),
                         llm::error);
    CHECK_THROWS_AS(at::contiguous_kv_cache<float>(2, 0, 10, 2, 4), llm::error);
    CHECK_THROWS_WITH_AS(at::contiguous_kv_cache<float>(0, 2, 10, 2, 4), doctest::Contains("layers = 0"), llm::error);

    // A step: layer 0 appended one token, layer 1 none yet: advance refuses and changes nothing.
    const auto k1 = random3(1, 2, 4, 5);
    c.layer(0).append(0, k1, k1);
    CHECK_THROWS_WITH_AS(c.advance(0, 1),
                         "contiguous_kv_cache::advance: sequence 0, layer 1 of 2 holds 0 appended tokens, not 1; every "
                         "layer appends the step's tokens before advance(seq, n)",
                         llm::error);
    CHECK(c.length(0) == 0);
    CHECK(c.pending(0, 0) == 1);
    c.layer(1).append(0, k1, k1);
    CHECK_THROWS_WITH_AS(c.advance(0, 2), doctest::Contains("layer 0 of 2 holds 1 appended tokens, not 2"), llm::error);
    c.advance(0, 1);
    CHECK(c.length(0) == 1);
    CHECK(c.layer(1).length(0) == 1);
    c.reset(1);
    CHECK(c.length(1) == 0);

    at::paged_kv_cache<bf16> p(2, 4, 4, 2, 4);  // 16 tokens per layer in all
    CHECK_THROWS_WITH_AS(at::paged_kv_cache<bf16>(0, 4, 4, 2, 4), doctest::Contains("layers = 0"), llm::error);
    const auto a = p.add_sequence();
    const auto b = p.add_sequence();
    p.layer(0).append(a, k, k);  // 2 blocks, for both layers
    CHECK(p.free_blocks() == 2);
    p.layer(1).append(a, k, k);  // layer 1 uses the same table: no new blocks
    CHECK(p.free_blocks() == 2);
    p.advance(a, 8);
    auto k5 = random3(5, 2, 4, 3);
    p.append(0, b, k5, k5);  // 2 blocks: pool exhausted
    p.append(1, b, k5, k5);
    p.advance(b, 5);
    CHECK(p.free_blocks() == 0);
    CHECK(p.block_table(a) == std::vector<std::int32_t>{0, 1});
    CHECK(p.block_table(b) == std::vector<std::int32_t>{2, 3});
    CHECK_THROWS_WITH_AS(p.layer(1).append(b, k5, k5),
                         "paged_kv_cache::append: layer 1 of sequence 1 (5 tokens) needs 1 more blocks of 4 tokens for 5 "
                         "new tokens but only 0 of 4 are free",
                         llm::error);
    CHECK(p.length(b) == 5);
    CHECK(p.pending(1, b) == 0);
    CHECK_THROWS_WITH_AS(p.advance(b, 1), doctest::Contains("paged_kv_cache::advance: sequence 1, layer 0 of 2 holds 0"),
                         llm::error);
    p.release(a);
    CHECK(p.free_blocks() == 2);
    p.layer(0).append(b, k5, k5);  // reuses a's blocks
    p.layer(1).append(b, k5, k5);
    p.advance(b, 5);
    CHECK(p.length(b) == 10);
    CHECK(p.block_table(b).size() == 3);
    CHECK_THROWS_AS(p.length(7), llm::error);
    CHECK_THROWS_AS(p.layer(2), llm::error);
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
    const std::size_t L = 2;  // each layer against the reference on its own data
    Cache cache = make_cache<Cache>(L, 5, 2100, Hk, D);
    std::vector<std::vector<t3>> ks(L), vs(L);  // [layer][sequence]
    for (std::size_t s = 0; s < 5; ++s) {
        std::vector<t3> k, v;
        for (std::size_t l = 0; l < L; ++l) {
            k.push_back(random3(lens[s], Hk, D, 1000 * l + 30 + s));
            v.push_back(random3(lens[s], Hk, D, 1000 * l + 40 + s));
            ks[l].push_back(k.back());
            vs[l].push_back(v.back());
        }
        append_in_chunks(cache, s, k, v, s);
    }
    const t3 q = random3(5, H, D, 7);
    for (std::size_t l = 0; l < L; ++l) {
        CAPTURE(l);
        for (std::size_t splits : {0, 1, 3, 16}) {
            CAPTURE(splits);
            check_decode(cache.layer(l), ks[l], vs[l], q, at::causal{}, {}, splits);
            check_decode(std::as_const(cache).layer(l), ks[l], vs[l], q, at::sliding_window(100, 0), {.softcap = 3.0f},
                         splits);
        }
    }
}

// A model's decode step: every layer appends the new token and attends at once (before advance).
// Each layer of a 3-layer cache, contiguous or paged, must give bit for bit what a 1-layer
// contiguous cache holding only that layer's data gives: decode gathers row pointers, so the
// arithmetic is the same whatever the layout, and a layer reading another layer's rows (or
// stale rows) would change the result.
TEST_CASE("decode attention: each layer of a 3-layer cache equals a 1-layer cache of its data; paged equals contiguous") {
    const std::size_t L = 3, H = 4, Hk = 2, D = 48, S = 3;
    const std::size_t lens[] = {40, 1, 300};  // before the step
    auto multi = make_cache<at::contiguous_kv_cache<bf16>>(L, S, 320, Hk, D);
    auto paged = make_cache<at::paged_kv_cache<bf16>>(L, S, 320, Hk, D);
    std::vector<at::contiguous_kv_cache<bf16>> single;
    std::vector<std::vector<t3>> ks(L), vs(L), kn(L), vn(L);  // [layer][sequence]; kn, vn: the step's token
    for (std::size_t l = 0; l < L; ++l) {
        single.emplace_back(1, S, 320, Hk, D);
        for (std::size_t s = 0; s < S; ++s) {
            ks[l].push_back(random3(lens[s], Hk, D, 500 + 10 * l + s));
            vs[l].push_back(random3(lens[s], Hk, D, 600 + 10 * l + s));
            kn[l].push_back(random3(1, Hk, D, 700 + 10 * l + s));
            vn[l].push_back(random3(1, Hk, D, 800 + 10 * l + s));
            single[l].layer(0).append(s, ks[l][s], vs[l][s]);
            single[l].layer(0).append(s, kn[l][s], vn[l][s]);
            single[l].advance(s, lens[s] + 1);
        }
    }
    for (std::size_t s = 0; s < S; ++s) {  // prefill: all layers, then advance
        for (std::size_t l = 0; l < L; ++l) {
            multi.append(l, s, ks[l][s], vs[l][s]);
            paged.append(l, s, ks[l][s], vs[l][s]);
        }
        multi.advance(s, lens[s]);
        paged.advance(s, lens[s]);
    }
    const t3 q = random3(S, H, D, 9);
    llm::parallel::thread_pool pool(2);
    for (std::size_t l = 0; l < L; ++l) {  // the step, layer by layer
        CAPTURE(l);
        for (std::size_t s = 0; s < S; ++s) {
            multi.layer(l).append(s, kn[l][s], vn[l][s]);
            paged.layer(l).append(s, kn[l][s], vn[l][s]);
        }
        t3 want(S, H, D), got(S, H, D), got_paged(S, H, D);
        at::decode_attention(want, single[l].layer(0), q, at::causal{}, {.splits = 3}, pool);
        at::decode_attention(got, multi.layer(l), q, at::causal{}, {.splits = 3}, pool);
        at::decode_attention(got_paged, paged.layer(l), q, at::causal{}, {.splits = 3}, pool);
        for (std::size_t i = 0; i < want.size(); ++i) {
            REQUIRE(got.data()[i] == want.data()[i]);
            REQUIRE(got_paged.data()[i] == want.data()[i]);
        }
    }
    for (std::size_t s = 0; s < S; ++s) {
        multi.advance(s, 1);
        paged.advance(s, 1);
        CHECK(multi.length(s) == lens[s] + 1);
        CHECK(paged.length(s) == lens[s] + 1);
    }
}

TEST_CASE("decode attention: bf16 cache, MQA, bad input") {
    const std::size_t H = 4, D = 64, len = 300;
    at::contiguous_kv_cache<bf16> model(1, 1, 512, 1, D);
    auto k = random3(len, 1, D, 1);
    auto v = random3(len, 1, D, 2);
    model.layer(0).append(0, k, v);
    model.advance(0, len);
    const auto cache = model.layer(0);
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
    // head_dim must be the unit-stride dimension of q and out: [1, D, H] transposed is [1, H, D] with strides [256, 1, 4].
    t3 out_t(1, D, H);
    CHECK_THROWS_WITH_AS(at::decode_attention(llm::transpose(out_t.view(), 1, 2), cache, q),
                         "decode_attention: out must have stride 1 in dim 2 (its strides are [256, 1, 4])", llm::error);
}

}  // namespace
