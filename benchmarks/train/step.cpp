// SPDX-License-Identifier: Apache-2.0
// One whole training step (forward, cross-entropy, backward, clip_grad_norm, AdamW) of a GPT-2
// through llm::train::trainer, the step the `train` tool takes. Counters: tokens/s and the
// training GFLOP/s by llm.c's count (6N + 12 L H Q T per token).
//
// Sizes: a small GPT-2 (4 layers, d_model 256, vocab 4096) at B=4, T=64 by default, so the
// ctest smoke run stays light; LLM_BENCH_TRAIN_FULL=1 adds the GPT-2 124M shape (12 layers,
// d_model 768, 12 heads, vocab 50257, 1024 positions) at B=4, T=64, about 2 GB for parameters,
// gradients and AdamW state: the comparison with llm.c's train_gpt2.c and PyTorch
// (benchmarks/train/torch_step.py).
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/train/optimizer.hpp>
#include <llm/train/schedule.hpp>
#include <llm/train/trainer.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace {

void shapes(benchmark::internal::Benchmark* b) {
    b->Args({0, 2});
    if (const char* full = std::getenv("LLM_BENCH_TRAIN_FULL"); full && *full && *full != '0') b->Args({1, 2});
    b->ArgNames({"gpt2_124m", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

void BM_train_step_gpt2(benchmark::State& state) {
    const bool full = state.range(0) != 0;
    const llm::model::dims d = full ? llm::model::dims{.vocab = 50257, .d_model = 768, .n_layers = 12, .n_heads = 12, .max_seq = 1024, .tie_embeddings = true}
                                    : llm::model::dims{.vocab = 4096, .d_model = 256, .n_layers = 4, .n_heads = 4, .max_seq = 256, .tie_embeddings = true};
    const llm::model::batch_shape shape{.batch = 4, .seq = 64};
    llm::model::gpt2<> model(d);
    auto params = model.make_params<float>();
    model.init(params, {.seed = 1});
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    llm::train::adamw_optimizer<> opt({.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.0});
    llm::train::trainer tr(model, params, opt, llm::train::constant_lr{1e-4}, {.clip = 1.0, .guard = false});
    llm::train::lm_batch<llm::model::gpt2<>> lm(model, shape);
    for (std::size_t i = 0; i < shape.tokens(); ++i) {  // llm.c's random-token batch shape
        lm.ids()[i] = static_cast<std::int32_t>((i * 7919 + 13) % d.vocab);
        lm.targets()[i] = static_cast<std::int32_t>((i * 7919 + 7932) % d.vocab);
    }
    double loss = 0;
    for (auto _ : state) {
        const auto r = tr.step([&](std::size_t, float dl) { return lm.forward_backward(tr.grads(), dl, model, params, pool); }, pool);
        loss = r.loss;
        benchmark::DoNotOptimize(loss);
    }
    const double tokens = static_cast<double>(shape.tokens());
    state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] =
        benchmark::Counter(tokens * static_cast<double>(llm::model::gpt2<>::training_flops_per_token(d, shape.seq)) * 1e-9,
                           benchmark::Counter::kIsIterationInvariantRate);
    state.counters["params_M"] = static_cast<double>(llm::model::gpt2<>::parameter_count(d)) * 1e-6;
}
BENCHMARK(BM_train_step_gpt2)->Apply(shapes);

}  // namespace
