// SPDX-License-Identifier: Apache-2.0
// The decoder's backward hook: once per block, in reverse walk order (untied head, final norm,
// layers n-1 .. 0, embedding), the reported tensors' gradients already final when reported
// (snapshot at the call == gradient after backward returns, bit for bit), for every family
// (Llama untied, GPT-2 tied, Mixtral, Mamba); the hooked backward gives the unhooked bits.
#include <llm/model/mamba_family.hpp>
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct event {
    llm::model::grads_ready r;
    std::vector<std::vector<float>> snapshot;  // the reported tensors' gradients at the call
};

template <class G>
std::vector<std::vector<float>> tensors_of(const G& g) {
    std::vector<std::vector<float>> out;
    g.for_each_param([&](std::string_view, const auto& t) { out.emplace_back(t.data(), t.data() + t.size()); });
    return out;
}

template <class G>
std::vector<std::string> names_of(const G& g) {
    std::vector<std::string> out;
    g.for_each_param([&](std::string_view name, const auto&) { out.emplace_back(name); });
    return out;
}

template <class M>
void check_hook(const M& m, std::string_view layer_prefix) {
    const llm::model::dims d = m.config();
    auto p = m.template make_params<float>();
    m.init(p, {.seed = 5});
    llm::model::arena a;
    auto c = llm::model::make_cache(m, a, {.batch = 2, .seq = 6});
    llm::workspace ws;
    std::vector<std::int32_t> ids(12), y(12);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        ids[i] = static_cast<std::int32_t>((i * 5 + 1) % d.vocab);
        y[i] = static_cast<std::int32_t>((i * 3 + 2) % d.vocab);
    }
    const llm::model::token_ids tid(ids.data(), ids.size());
    const llm::tensor_view<const std::int32_t, llm::dims<1>> targets(y.data(), y.size());
    const llm::parallel::sequential seq{};
    (void)m.forward_loss(c, tid, targets, p, ws, seq);

    auto plain = m.template make_params<float>();
    m.backward_loss(plain, 1.0f, c, tid, targets, p, ws, seq);

    auto g = m.template make_params<float>();
    std::vector<event> events;
    m.backward_loss(g, 1.0f, c, tid, targets, p,
                    [&](const llm::model::grads_ready& r) {
                        event e{r, {}};
                        std::size_t k = 0;
                        g.for_each_param([&](std::string_view, const auto& t) {
                            if (k >= r.first && k < r.first + r.count) e.snapshot.emplace_back(t.data(), t.data() + t.size());
                            ++k;
                        });
                        events.push_back(std::move(e));
                    },
                    ws, seq);

    const auto names = names_of(g);
    const auto final_grads = tensors_of(g);
    CHECK(final_grads == tensors_of(plain));  // the hook changes nothing

    // The expected sequence: head (untied only), final norm, layers n-1 .. 0, embedding.
    const bool untied = !d.tie_embeddings;
    REQUIRE(events.size() == (untied ? 1u : 0u) + 1 + d.n_layers + 1);
    std::size_t e = 0;
    if (untied) {
        CHECK(events[e].r.part == llm::model::grads_part::head);
        ++e;
    }
    CHECK(events[e++].r.part == llm::model::grads_part::final_norm);
    for (std::size_t i = d.n_layers; i-- > 0; ++e) {
        CHECK(events[e].r.part == llm::model::grads_part::layer);
        CHECK(events[e].r.layer == i);
        // every reported tensor is layer i's (by its Hugging Face name)
        const std::string prefix = std::string(layer_prefix) + std::to_string(i) + ".";
        for (std::size_t k = events[e].r.first; k < events[e].r.first + events[e].r.count; ++k) CHECK_MESSAGE(names[k].starts_with(prefix), names[k]);
    }
    CHECK(events[e].r.part == llm::model::grads_part::embedding);

    // Contiguous ranges covering the walk exactly once, walking back from its end; each
    // snapshot equals the final gradient (nothing was added after the report), and is not all
    // zero (the block's backward had run: a hook called before it would see zeros).
    std::size_t end = names.size();
    for (const auto& ev : events) {
        CAPTURE(static_cast<int>(ev.r.part));
        CAPTURE(ev.r.layer);
        CHECK(ev.r.count > 0);
        CHECK(ev.r.first + ev.r.count == end);
        end = ev.r.first;
        REQUIRE(ev.snapshot.size() == ev.r.count);
        for (std::size_t k = 0; k < ev.r.count; ++k) {
            CAPTURE(names[ev.r.first + k]);
            CHECK(ev.snapshot[k] == final_grads[ev.r.first + k]);
        }
        bool any = false;
        for (const auto& t : ev.snapshot)
            for (const float v : t) any = any || v != 0.0f;
        CHECK(any);
    }
    CHECK(end == 0);
}

}  // namespace

static_assert(llm::model::backward_hook<llm::model::no_hook>);

TEST_CASE("decoder backward hook: once per block in reverse order, each block's gradients final when reported (every family)") {
    const llm::model::dims base{.vocab = 19, .d_model = 16, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2, .d_ff = 24, .max_seq = 16};
    SUBCASE("Llama, untied head") {
        auto d = base;
        d.tie_embeddings = false;
        check_hook(llm::model::llama<>(d), "model.layers.");
    }
    SUBCASE("GPT-2, tied head (reported with the embedding, last)") {
        auto d = base;
        d.tie_embeddings = true;
        d.n_kv_heads = 4;
        check_hook(llm::model::gpt2<>(d), "transformer.h.");
    }
    SUBCASE("Mixtral (MoE FFN)") {
        auto d = base;
        d.tie_embeddings = false;
        d.n_experts = 4;
        d.experts_per_token = 2;
        check_hook(llm::moe::mixtral<>(d), "model.layers.");
    }
    SUBCASE("Mamba") {
        llm::model::dims d{.vocab = 19, .d_model = 16, .n_layers = 2, .n_heads = 1, .d_ff = 32, .max_seq = 16};
        d.tie_embeddings = true;
        check_hook(llm::model::mamba<>(d), "backbone.layers.");
    }
}
