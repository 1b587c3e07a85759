// SPDX-License-Identifier: Apache-2.0
// The decoder's KV state over a paged cache (make_state with a kv_layout: vLLM's blocks) against
// the contiguous cache: the same logits bit for bit through every kind of step (all sequences,
// a subset of them in any order, T tokens of one), for block sizes that split the sequences
// anywhere; blocks taken as sequences grow and returned on reset; bad input is llm::error.
#include <llm/model/model.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace {

constexpr llm::model::dims tiny{.vocab = 37, .d_model = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .d_ff = 24, .max_seq = 32};

// Blocks the sequences of a paged state hold: ceil(length / block_size) each (nothing shared here).
template <class S>
std::size_t blocks_held(const S& st) {
    const auto* pc = st.kv.paged();
    std::size_t n = 0;
    for (std::size_t s = 0; s < pc->sequences(); ++s) n += (pc->length(s) + pc->block_size() - 1) / pc->block_size();
    return n;
}

// One script of steps on a contiguous and a paged state of three sequences: T tokens of one
// sequence (every row's logits), all sequences together, subsets in any order, a reset and the
// sequence growing again. decode_attention gathers keys in chunks across cache runs, so a
// block boundary changes no arithmetic: the logits must be equal bit for bit (memcmp).
template <class M>
void check_paged(M m, std::size_t block_size, llm::parallel::policy auto&& exec) {
    CAPTURE(block_size);
    const auto d = m.config();
    auto p = m.template make_params<float>();
    m.init(p, {.seed = 7, .std = 0.1f});
    llm::workspace ws;
    auto contiguous = m.make_state(3, 24);
    auto paged = m.make_state(3, 24, {.block_size = block_size});
    REQUIRE(contiguous.kv.paged() == nullptr);
    REQUIRE(paged.kv.paged() != nullptr);
    CHECK(paged.kv.paged()->blocks() == 3 * ((24 + block_size - 1) / block_size));  // the default pool: every capacity
    std::int32_t next = 3;
    std::size_t compared = 0;
    auto both = [&](std::size_t rows, auto&& f) {
        llm::tensor<float, llm::dims<2>> a(rows, d.vocab), b(rows, d.vocab);
        f(a.view(), contiguous);
        f(b.view(), paged);
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        for (std::size_t s = 0; s < 3; ++s) CHECK(paged.kv.length(s) == contiguous.kv.length(s));
        CHECK(paged.position == contiguous.position);
        CHECK(paged.kv.paged()->blocks() - paged.kv.paged()->free_blocks() == blocks_held(paged));
        compared += a.size();
    };
    auto tokens = [&](std::size_t seq, std::size_t n) {
        std::vector<std::int32_t> ids(n);
        for (auto& id : ids) id = next++ % static_cast<std::int32_t>(d.vocab);
        both(n, [&](llm::model::activations lg, auto& st) {
            m.step_tokens(lg, st, seq, llm::model::token_ids(ids.data(), n), p, ws, exec);
        });
    };
    auto step = [&](std::vector<std::size_t> seqs) {
        std::vector<std::int32_t> ids(seqs.size());
        for (auto& id : ids) id = next++ % static_cast<std::int32_t>(d.vocab);
        both(seqs.size(), [&](llm::model::activations lg, auto& st) {
            m.step(lg, st, std::span<const std::size_t>(seqs), llm::model::token_ids(ids.data(), ids.size()), p, ws, exec);
        });
    };
    auto step_all = [&] {
        const std::int32_t ids[3] = {next, static_cast<std::int32_t>(next + 1), static_cast<std::int32_t>(next + 2)};
        next += 3;
        both(3, [&](llm::model::activations lg, auto& st) { m.step(lg, st, llm::model::token_ids(ids, 3), p, ws, exec); });
    };
    tokens(1, 5);
    step_all();
    step_all();
    step({2, 0});
    step({2, 0});
    step({1});
    tokens(0, 7);
    step({0, 2, 1});
    contiguous.kv.reset(1);
    paged.kv.reset(1);  // its blocks back to the pool
    CHECK(paged.kv.paged()->blocks() - paged.kv.paged()->free_blocks() == blocks_held(paged));
    step({1, 2});
    tokens(1, 3);
    step_all();
    CHECK(compared > 0);
    for (std::size_t s = 0; s < 3; ++s) paged.kv.reset(s);
    CHECK(paged.kv.paged()->free_blocks() == paged.kv.paged()->blocks());
}

}  // namespace

TEST_CASE("decoder: a paged KV state gives the contiguous state's logits bit for bit (all sequences, subsets, T tokens of one)") {
    llm::parallel::thread_pool pool(2);
    for (const std::size_t bs : {1u, 3u, 8u, 32u}) {
        check_paged(llm::model::llama<>(tiny), bs, llm::parallel::sequential{});
        auto w = tiny;
        w.sliding_window = 3;
        check_paged(llm::model::mistral<>(w), bs, pool);
        auto g = tiny;
        g.n_kv_heads = 0;
        g.tie_embeddings = true;
        check_paged(llm::model::gpt2<>(g), bs, llm::parallel::sequential{});
    }
}

TEST_CASE("decoder: paged KV state bad input is llm::error (blocks without a block size, a full pool, a wrong subset), the state unchanged") {
    llm::model::llama<> m(tiny);
    auto p = m.make_params<float>();
    m.init(p, {.seed = 1});
    llm::workspace ws;
    llm::parallel::sequential seq;
    CHECK_THROWS_WITH_AS((void)m.make_state(2, 8, {.blocks = 4}), doctest::Contains("kv_layout.blocks = 4 needs a block_size"), llm::error);
    // two sequences, a pool of 2 blocks of 2 tokens: two steps fill it
    auto st = m.make_state(2, 8, {.block_size = 2, .blocks = 2});
    const std::int32_t ids[2] = {1, 2};
    llm::tensor<float, llm::dims<2>> lg(2, tiny.vocab), one(1, tiny.vocab);
    m.step(lg.view(), st, llm::model::token_ids(ids, 2), p, ws, seq);
    m.step(lg.view(), st, llm::model::token_ids(ids, 2), p, ws, seq);
    CHECK(st.kv.paged()->free_blocks() == 0);
    CHECK_THROWS_WITH_AS(m.step(lg.view(), st, llm::model::token_ids(ids, 2), p, ws, seq),
                         doctest::Contains("need 2 more blocks of 2 tokens but only 0 of the paged KV cache's 2 blocks are free"), llm::error);
    CHECK_THROWS_WITH_AS(m.step_tokens(one.view(), st, 0, llm::model::token_ids(ids, 1), p, ws, seq),
                         doctest::Contains("need 1 more blocks of 2 tokens but only 0"), llm::error);
    const std::size_t twice[2] = {1, 1}, outside[1] = {2};
    CHECK_THROWS_WITH_AS(m.step(lg.view(), st, std::span<const std::size_t>(twice), llm::model::token_ids(ids, 2), p, ws, seq),
                         doctest::Contains("sequence 1 in rows 0 and 1"), llm::error);
    CHECK_THROWS_WITH_AS(m.step(one.view(), st, std::span<const std::size_t>(outside), llm::model::token_ids(ids, 1), p, ws, seq),
                         doctest::Contains("sequence 2 (row 0) of a state of 2 sequences"), llm::error);
    CHECK(st.kv.length(0) == 2);
    CHECK(st.kv.length(1) == 2);
    CHECK(st.kv.pending(0, 0) == 0);
    // a sequence reset gives its block back: the other grows into it
    st.kv.reset(0);
    const std::size_t only1[1] = {1};
    m.step(one.view(), st, std::span<const std::size_t>(only1), llm::model::token_ids(ids, 1), p, ws, seq);
    CHECK(st.kv.length(1) == 3);
    CHECK(st.kv.paged()->block_table(1).size() == 2);
    // truncate needs the contiguous cache (a paged block may be shared)
    CHECK_THROWS_WITH_AS(st.kv.truncate(1, 1), doctest::Contains("the cache is paged"), llm::error);
}

TEST_CASE("paged_kv_cache: share_prefix shares full blocks (reference counted), refuses what it cannot share") {
    llm::attention::paged_kv_cache<> c(1, 6, 2, 1, 4);
    const std::size_t a = c.add_sequence(8), b = c.add_sequence(8), e = c.add_sequence();
    llm::tensor<float, llm::dims<3>> k(5, 1, 4), v(5, 1, 4);
    for (std::size_t i = 0; i < k.size(); ++i) {
        k.data()[i] = static_cast<float>(i);
        v.data()[i] = -static_cast<float>(i);
    }
    c.append(0, a, k, v);
    c.advance(a, 5);  // 3 blocks, the last one half full
    CHECK(c.free_blocks() == 3);
    CHECK_THROWS_WITH_AS(c.share_prefix(b, a, 3), doctest::Contains("holds 5 tokens, 2 full blocks of 2, not 3"), llm::error);
    CHECK_THROWS_WITH_AS(c.share_prefix(a, a, 1), doctest::Contains("cannot share with itself"), llm::error);
    c.share_prefix(b, a, 2);
    CHECK(c.length(b) == 4);
    CHECK(c.free_blocks() == 3);  // nothing taken
    CHECK(c.block_table(b) == std::vector<std::int32_t>(c.block_table(a).begin(), c.block_table(a).begin() + 2));
    CHECK(c.references(static_cast<std::size_t>(c.block_table(a)[0])) == 2);
    CHECK_THROWS_WITH_AS(c.share_prefix(b, a, 1), doctest::Contains("is not empty"), llm::error);
    // b's keys are a's first four rows; b grows into a block of its own
    llm::tensor<float, llm::dims<3>> rk(4, 1, 4), rv(4, 1, 4);
    llm::attention::read_cache(rk, rv, c.layer(0), b);
    CHECK(std::memcmp(rk.data(), k.data(), rk.size() * sizeof(float)) == 0);
    c.append(0, b, llm::slice(k, 0, 0, 1), llm::slice(v, 0, 0, 1));
    c.advance(b, 1);
    CHECK(c.free_blocks() == 2);
    // a leaves: only its own block comes back; the shared ones stay with b
    c.release(a);
    CHECK(c.free_blocks() == 3);
    llm::tensor<float, llm::dims<3>> rk5(5, 1, 4), rv5(5, 1, 4);
    llm::attention::read_cache(rk5, rv5, c.layer(0), b);  // still a's first four rows, then its own
    CHECK(std::memcmp(rk5.data(), k.data(), 4 * 4 * sizeof(float)) == 0);
    CHECK(rk5(4, 0, 1) == k(0, 0, 1));
    c.release(b);
    CHECK(c.free_blocks() == 6);
    CHECK(c.length(e) == 0);
}
