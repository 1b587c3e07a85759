// SPDX-License-Identifier: Apache-2.0
// model_demo: loads a Hugging Face checkpoint directory (config.json + model.safetensors) of a
// supported family, trains it for a few steps on a repeating token pattern (SGD through the
// zipped parameter walk) and decodes greedily through the KV cache.
//
//   model_demo [HF_DIR] [STEPS]     (default: tests/golden/model/llama, 5 steps)
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace {

template <class Model>
int run(const llm::model::hf_config& cfg, const std::string& dir, int steps) {
    Model model(cfg.dims);
    auto params = model.template make_params<float>();
    llm::model::load_safetensors(params, dir + "/model.safetensors");
    std::printf("%s: %zu layers, d_model %zu, %zu parameters, %.3g training FLOPs/token at seq 8\n", cfg.architecture.c_str(),
                cfg.dims.n_layers, cfg.dims.d_model, Model::parameter_count(cfg.dims), Model::training_flops_per_token(cfg.dims, 8));

    const llm::model::batch_shape shape{.batch = 2, .seq = 8};
    std::vector<std::int32_t> ids(shape.tokens()), targets(shape.tokens());
    for (std::size_t t = 0; t < ids.size(); ++t) {
        ids[t] = static_cast<std::int32_t>((t % shape.seq) * 3 % cfg.dims.vocab);  // the same pattern in both rows
    }
    for (std::size_t t = 0; t < ids.size(); ++t) {
        targets[t] = t % shape.seq == shape.seq - 1 ? -100 : ids[t + 1];
    }
    const llm::model::token_ids tokens(ids.data(), ids.size());
    const llm::tensor_view<const std::int32_t, llm::dims<1>> labels(targets.data(), targets.size());

    llm::model::arena arena;
    auto cache = llm::model::make_cache(model, arena, shape);
    llm::workspace ws;
    llm::parallel::thread_pool pool(2);
    auto grads = model.template make_params<float>();
    for (int step = 0; step < steps; ++step) {
        const float loss = model.forward_loss(cache, tokens, labels, params, ws, pool);
        llm::model::zero_grad(grads);
        model.backward_loss(grads, 1.0f, cache, tokens, labels, params, ws, pool);
        llm::model::for_each_tensor(
            [](std::string_view, auto& w, const auto& g) {
                for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] -= 0.05f * g.data()[i];
            },
            params, grads);
        std::printf("step %d loss %.4f\n", step, static_cast<double>(loss));
    }

    auto state = model.make_state(1, 16);
    llm::tensor<float, llm::dims<2>> logits(1, cfg.dims.vocab);
    std::int32_t next = ids[0];
    std::printf("greedy:");
    for (int t = 0; t < 8; ++t) {
        std::printf(" %d", next);
        model.step(logits.view(), state, llm::model::token_ids(&next, 1), params, ws, pool);
        std::size_t best = 0;
        for (std::size_t v = 1; v < cfg.dims.vocab; ++v) {
            best = logits(0, v) > logits(0, best) ? v : best;
        }
        next = static_cast<std::int32_t>(best);
    }
    std::printf("\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string dir = argc > 1 ? argv[1] : "tests/golden/model/llama";
        const int steps = argc > 2 ? std::atoi(argv[2]) : 5;
        const auto cfg = llm::model::from_hf_config(dir + "/config.json");
        if (cfg.family == llm::model::family::gpt2) {
            return run<llm::model::gpt2<>>(cfg, dir, steps);
        }
        return run<llm::model::llama<>>(cfg, dir, steps);  // Llama, Mistral and Qwen2 share the structure
    } catch (const std::exception& e) {
        std::fprintf(stderr, "model_demo: %s\n", e.what());
        return 2;
    }
}
