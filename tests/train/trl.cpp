// SPDX-License-Identifier: Apache-2.0
// Preference training against TRL (PyPI trl 0.9.6 on transformers 4.44.2 / torch 1.13): the
// trainer and preference_batch, as `train --objective dpo` runs them, follow TRL's DPOTrainer step
// by step on the tiny Llama (tests/golden/train/make_trl_golden.py writes trl_dpo.txt and the
// pairs).
#include <llm/align/loss_by_name.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/train/objectives.hpp>
#include <llm/train/reward.hpp>
#include <llm/train/train.hpp>
#include <llm/train/trainer.hpp>

#include <doctest/doctest.h>

#include "../support/golden.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace {

const std::string golden_dir = LLM_SOURCE_DIR "/tests/golden/train/";
const std::string llama_dir = LLM_SOURCE_DIR "/tests/golden/model/llama/";

}  // namespace

// Tolerance: 1e-5 relative on the loss, the gradient norm and the log-probs, 1e-5 absolute on
// the rewards (beta x log-prob differences of order 1). Both sides compute in fp32 with other
// summation orders (our GEMMs and log-sum-exps vs ATen's; TRL pads each batch to its longest row,
// we to T = 8): a summed log-prob of 2..4 tokens (|logp| ~ 20) carries a few ulp per token,
// ~5e-6 absolute, the DPO logit beta x (four of them) ~2e-6, and the loss (slope <= 1) as much,
// i.e. ~3e-6 relative of ln 2; AdamW turns relative gradient differences of ~1e-6 into parameter
// differences of lr x 1e-6 per step, far below that. Measured: 2.6e-7 relative on the loss (step
// 5), 1.5e-7 on the gradient norm. What a wrong rule changes, measured with the tool: no
// clipping 1.5e-3 relative at step 2, beta 0.11 instead of 0.1 9e-2, AdamW eps 1e-6 instead of
// 1e-8 2e-4 at step 1, beta2 0.99 instead of 0.999 1.8e-4 at step 2; a reference that moved
// with the policy would leave the loss at ln 2. Accuracies (0, 1/2 or 1) are compared exactly:
// at step 0 the rewards are exactly 0 on both sides (policy = reference), which counts as wrong.
TEST_CASE("DPO through the trainer follows TRL's DPOTrainer (sigmoid, beta 0.1, AdamW, clipping) step by step") {
    const llm_test::golden_file g(golden_dir + "trl_dpo.txt");
    const auto& s = g.get("settings").values;  // batch seq steps lr beta beta1 beta2 eps weight_decay clip
    REQUIRE(s.size() == 10);
    const auto B = static_cast<std::size_t>(s[0]), T = static_cast<std::size_t>(s[1]), steps = static_cast<std::size_t>(s[2]);
    const double lr = s[3], beta = s[4];

    const auto cfg = llm::model::from_hf_config(llama_dir + "config.json");
    const llm::model::llama<> model(cfg.dims);
    auto params = model.make_params<float>();
    auto ref = model.make_params<float>();
    llm::model::load_safetensors(params, llama_dir + "model.safetensors");
    llm::model::load_safetensors(ref, llama_dir + "model.safetensors");
    const auto examples = llm::train::read_preference_jsonl(golden_dir + "trl_pairs.jsonl", cfg.dims.vocab);
    REQUIRE(examples.size() == 4);

    llm::parallel::thread_pool pool(2);
    llm::train::preference_batch<llm::model::llama<>> pb(model, B, T);
    const llm::train::preference_loss loss = [beta](const auto& out, const auto& in) {
        return llm::align::pair_loss(out, in, "sigmoid", llm::align::dpo_config{.beta = beta});
    };
    llm::train::adamw_optimizer<> opt({.lr = lr, .beta1 = s[5], .beta2 = s[6], .eps = s[7], .weight_decay = s[8]});
    llm::train::trainer tr(model, params, opt, llm::train::constant_lr{lr}, {.clip = s[9], .grad_accum = 1, .guard = false});

    auto rel = [](double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); };
    double worst_loss = 0;
    for (std::size_t step = 0; step < steps; ++step) {
        llm::align::pair_stats ps{};
        const auto r = tr.step(
            [&](std::size_t, float dloss) {
                pb.fill(examples, step * B);
                ps = pb.forward_backward(tr.grads(), dloss, model, params, &ref, loss, false, pool);
                return static_cast<float>(ps.loss);
            },
            pool);
        INFO("step ", step, ": loss ", r.loss, " (TRL ", g.get("loss").values[step], "), margin ", ps.margin, " (TRL ",
             g.get("rewards_margins").values[step], "), grad norm ", r.grad_norm, " (TRL ", g.get("grad_norm").values[step], ")");
        worst_loss = std::max(worst_loss, rel(r.loss, g.get("loss").values[step]));
        CHECK(rel(r.loss, g.get("loss").values[step]) < 1e-5);
        CHECK(rel(r.grad_norm, g.get("grad_norm").values[step]) < 1e-5);
        CHECK(r.lr == doctest::Approx(g.get("lr").values[step]).epsilon(1e-12));
        CHECK(std::abs(ps.chosen_reward - g.get("rewards_chosen").values[step]) < 1e-5);
        CHECK(std::abs(ps.rejected_reward - g.get("rewards_rejected").values[step]) < 1e-5);
        CHECK(std::abs(ps.margin - g.get("rewards_margins").values[step]) < 1e-5);
        CHECK(ps.accuracy == g.get("rewards_accuracies").values[step]);
        CHECK(rel(ps.chosen_logps, g.get("logps_chosen").values[step]) < 1e-5);
        CHECK(rel(ps.rejected_logps, g.get("logps_rejected").values[step]) < 1e-5);
    }
    MESSAGE("worst relative loss difference from TRL over ", steps, " steps: ", worst_loss);
    // the golden moves: a trainer that did nothing would pass step 0 only
    CHECK(g.get("loss").values[steps - 1] < 0.5 * g.get("loss").values[0]);
}

// The Bradley-Terry reward model against TRL's RewardTrainer on LlamaForSequenceClassification
// (the decoder's weights of the tiny Llama, score.weight as transformers drew it, written to the
// golden as score_init), through llm::train::reward_model / reward_params in the trainer, as
// `train --objective reward` runs it. Tolerance as for DPO: 1e-5 relative on the loss and the
// gradient norm, 1e-5 absolute on the rewards (r = score . h of order 0.1 .. 1, h the final
// norm's output at the last real token, a dot product of 32 fp32 terms, ~1e-7 of its terms'
// magnitude; TRL pads each batch to its longest row, we to T = 8). The accuracy is compared
// exactly: the smallest per-pair margin of the golden (step 0, mean margin -6.8e-4 over two
// pairs, one of each sign) is far above that error. Measured: 9.0e-7 relative on the loss.
TEST_CASE("reward model through the trainer follows TRL's RewardTrainer (Bradley-Terry, AdamW, clipping) step by step") {
    const llm_test::golden_file dpo(golden_dir + "trl_dpo.txt");
    const llm_test::golden_file g(golden_dir + "trl_reward.txt");
    const auto& s = dpo.get("settings").values;  // the same settings: batch seq steps lr beta beta1 beta2 eps weight_decay clip
    const auto B = static_cast<std::size_t>(s[0]), T = static_cast<std::size_t>(s[1]), steps = static_cast<std::size_t>(s[2]);
    const double lr = s[3];

    const auto cfg = llm::model::from_hf_config(llama_dir + "config.json");
    const llm::model::llama<> model(cfg.dims);
    const llm::train::reward_model<llm::model::llama<>> rmodel(model);
    auto params = rmodel.make_params<float>();
    llm::model::load_safetensors(params.model, llama_dir + "model.safetensors");
    const auto& init = g.get("score_init").values;
    REQUIRE(init.size() == cfg.dims.d_model);
    REQUIRE(params.score.size() == cfg.dims.d_model);
    for (std::size_t j = 0; j < init.size(); ++j) params.score.data()[j] = static_cast<float>(init[j]);
    std::vector<std::string> names;
    params.for_each_param([&](std::string_view name, const auto&) { names.emplace_back(name); });
    CHECK(names.back() == "score.weight");
    const auto examples = llm::train::read_preference_jsonl(golden_dir + "trl_pairs.jsonl", cfg.dims.vocab);

    llm::parallel::thread_pool pool(2);
    llm::train::reward_batch<llm::model::llama<>> rb(model, B, T);
    llm::train::adamw_optimizer<> opt({.lr = lr, .beta1 = s[5], .beta2 = s[6], .eps = s[7], .weight_decay = s[8]});
    llm::train::trainer tr(rmodel, params, opt, llm::train::constant_lr{lr}, {.clip = s[9], .grad_accum = 1, .guard = false});
    const std::size_t d = cfg.dims.d_model;

    auto rel = [](double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); };
    double worst_loss = 0;
    for (std::size_t step = 0; step < steps; ++step) {
        llm::train::reward_stats rs{};
        const auto r = tr.step(
            [&](std::size_t, float dloss) {
                rb.fill(examples, step * B);
                rs = rb.forward_backward(tr.grads().model, llm::tensor_view<float, llm::dims<1>>(tr.grads().score.data(), d), dloss, model,
                                         params.model, llm::tensor_view<const float, llm::dims<1>>(params.score.data(), d), pool);
                return static_cast<float>(rs.loss);
            },
            pool);
        INFO("step ", step, ": loss ", r.loss, " (TRL ", g.get("loss").values[step], "), margin ", rs.margin, " (TRL ",
             g.get("rewards_margins").values[step], "), grad norm ", r.grad_norm, " (TRL ", g.get("grad_norm").values[step], ")");
        worst_loss = std::max(worst_loss, rel(r.loss, g.get("loss").values[step]));
        CHECK(rel(r.loss, g.get("loss").values[step]) < 1e-5);
        CHECK(rel(r.grad_norm, g.get("grad_norm").values[step]) < 1e-5);
        CHECK(std::abs(rs.chosen_reward - g.get("rewards_chosen").values[step]) < 1e-5);
        CHECK(std::abs(rs.rejected_reward - g.get("rewards_rejected").values[step]) < 1e-5);
        CHECK(std::abs(rs.margin - g.get("rewards_margins").values[step]) < 1e-5);
        CHECK(rs.accuracy == g.get("rewards_accuracies").values[step]);
    }
    MESSAGE("worst relative loss difference from TRL's RewardTrainer over ", steps, " steps: ", worst_loss);
    CHECK(g.get("loss").values[steps - 1] < 0.5 * g.get("loss").values[0]);  // the golden moves
}
