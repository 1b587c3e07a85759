// SPDX-License-Identifier: Apache-2.0
// The whole-model training step (trainer), token-file batches, evaluation, and the fine-tuning
// objectives (SFT masking, preference optimisation through the model) on a tiny Llama.
#include <llm/align/kto.hpp>
#include <llm/align/loss_by_name.hpp>
#include <llm/align/simpo.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/train/objectives.hpp>
#include <llm/train/train.hpp>
#include <llm/train/trainer.hpp>

#include <doctest/doctest.h>

#include "../support/temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace {

using tiny = llm::model::llama<>;
const llm::model::dims tiny_dims{.vocab = 16, .d_model = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .d_ff = 24, .max_seq = 64};

bool same_bits(const tiny::params<float>& a, const tiny::params<float>& b) {
    bool same = true;
    llm::model::for_each_tensor(
        [&](std::string_view, const auto& x, const auto& y) {
            same = same && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
        },
        a, b);
    return same;
}

tiny::params<float> copy_of(const tiny& m, const tiny::params<float>& p) {
    auto q = m.make_params<float>();
    llm::model::for_each_tensor([](std::string_view, auto& dst, const auto& src) { std::memcpy(dst.data(), src.data(), src.size() * sizeof(float)); },
                                q, p);
    return q;
}

std::string write_tokens(const llm_test::temp_dir& dir, const std::string& name, std::size_t n, std::uint32_t seed) {
    std::vector<std::uint16_t> t(n);
    for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<std::uint16_t>((i * 7 + seed * (i / 13)) % 16);  // a learnable pattern
    const std::string path = dir / name;
    llm::train::write_token_file(path, std::span<const std::uint16_t>(t));
    return path;
}

}  // namespace

TEST_CASE("trainer: one update equals forward_loss, backward_loss, clip_grad_norm and AdamW written out") {
    llm_test::temp_dir dir;
    const llm::train::token_file file(write_tokens(dir, "t.bin", 400, 3));
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 5});
    auto q = copy_of(model, p);
    llm::parallel::thread_pool pool(2);
    const llm::model::batch_shape shape{.batch = 2, .seq = 8};
    const llm::train::adamw_options ao{.lr = 0, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    const llm::train::cosine_lr sched{.max_lr = 1e-2, .warmup = 1, .total = 4, .min_lr = 1e-3};

    // by the trainer
    llm::train::adamw_optimizer<> opt(ao);
    llm::train::trainer tr(model, p, opt, sched, {.clip = 0.5});
    llm::train::batch_loader la(file, 2, 8);
    llm::train::lm_batch<tiny> lm(model, shape);
    std::vector<llm::train::step_report> reports;
    for (int s = 0; s < 3; ++s)
        reports.push_back(tr.step([&](std::size_t, float d) { lm.fill(la); return lm.forward_backward(tr.grads(), d, model, p, pool); }, pool));

    // by hand
    llm::train::adamw_optimizer<> opt2(ao);
    llm::train::batch_loader lb(file, 2, 8);
    llm::train::lm_batch<tiny> lm2(model, shape);
    auto g = model.make_params<float>();
    for (int s = 0; s < 3; ++s) {
        llm::model::zero_grad(g);
        lm2.fill(lb);
        const float loss = lm2.forward_backward(g, 1.0f, model, q, pool);
        auto walk = [&](auto&& f) { llm::model::for_each_tensor(f, q, g); };
        const double norm = llm::train::clip_grad_norm(walk, 0.5, pool);
        opt2.options().lr = sched(opt2.steps());
        opt2.step(walk, pool);
        CHECK(reports[static_cast<std::size_t>(s)].loss == static_cast<double>(loss));
        CHECK(reports[static_cast<std::size_t>(s)].grad_norm == norm);
        CHECK(reports[static_cast<std::size_t>(s)].lr == sched(s));
        CHECK_FALSE(reports[static_cast<std::size_t>(s)].skipped);
    }
    CHECK(same_bits(p, q));
    CHECK(reports[2].loss < reports[0].loss + 1.0);  // sanity: finite, moving
}

TEST_CASE("trainer: gradient accumulation of K copies of a micro-batch equals one update on it") {
    // dloss = 1/2 scales every gradient term by an exact power of two, so each half is exact; the
    // second pass adds into nonzero gradients, and a GEMM that starts from C sums in another order
    // than from 0: the mean gradient agrees within fp32 rounding (~1e-7 relative), and AdamW's
    // normalised update (lr 1e-2, 2 steps) moves each weight by at most 2e-2, so 1e-6 absolute
    // allows a relative error of 5e-5 in the updates; a wrong scale (sum instead of mean) would
    // change the gradient norm by 2x.
    llm_test::temp_dir dir;
    const llm::train::token_file file(write_tokens(dir, "t.bin", 200, 1));
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 9});
    auto q = copy_of(model, p);
    llm::parallel::thread_pool pool(2);
    llm::train::adamw_optimizer<> o1({.lr = 1e-2}), o2({.lr = 1e-2});
    llm::train::trainer t1(model, p, o1, llm::train::constant_lr{1e-2}, {.clip = 1.0, .grad_accum = 1});
    llm::train::trainer t2(model, q, o2, llm::train::constant_lr{1e-2}, {.clip = 1.0, .grad_accum = 2});
    llm::train::lm_batch<tiny> lm(model, {.batch = 2, .seq = 8});
    for (int s = 0; s < 2; ++s) {
        llm::train::batch_loader l(file, 2, 8);
        lm.fill(l);
        const auto r1 = t1.step([&](std::size_t, float d) { return lm.forward_backward(t1.grads(), d, model, p, pool); }, pool);
        const auto r2 = t2.step([&](std::size_t, float d) { return lm.forward_backward(t2.grads(), d, model, q, pool); }, pool);
        CHECK(r1.loss == r2.loss);
        CHECK(r2.grad_norm == doctest::Approx(r1.grad_norm).epsilon(1e-6));
    }
    float worst = 0;
    llm::model::for_each_tensor(
        [&](std::string_view, const auto& x, const auto& y) {
            for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x.data()[i] - y.data()[i]));
        },
        p, q);
    CHECK(worst < 1e-6f);
}

TEST_CASE("trainer: a NaN loss is skipped (no update, reason given); bad options are llm::error") {
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 2});
    auto q = copy_of(model, p);
    llm::train::adamw_optimizer<> opt({.lr = 1e-2});
    llm::train::trainer tr(model, p, opt, llm::train::constant_lr{1e-2});
    const auto r = tr.step([](std::size_t, float) { return std::nanf(""); }, llm::parallel::sequential{});
    CHECK(r.skipped);
    CHECK(r.reason.find("NaN") != std::string::npos);
    CHECK(opt.steps() == 0);
    CHECK(same_bits(p, q));
    CHECK(tr.guard().skipped() == 1);
    CHECK_THROWS_AS(llm::train::trainer(model, p, opt, llm::train::constant_lr{1e-2}, {.grad_accum = 0}), llm::error);
    CHECK_THROWS_AS(llm::train::trainer(model, p, opt, llm::train::constant_lr{1e-2}, {.clip = -1}), llm::error);
}

TEST_CASE("evaluate: the mean of the file's batch losses and exp of it; pretraining lowers the held-out loss") {
    llm_test::temp_dir dir;
    const llm::train::token_file train(write_tokens(dir, "train.bin", 2000, 0));
    const llm::train::token_file val(write_tokens(dir, "val.bin", 300, 0));
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 1});
    llm::parallel::thread_pool pool(2);
    const llm::model::batch_shape shape{.batch = 2, .seq = 16};
    const auto before = llm::train::evaluate(model, p, val, shape, 0, pool);
    // by hand: (300 - 1) / 32 = 9 batches
    CHECK(before.batches == 9);
    CHECK(before.tokens == 9 * 32);
    llm::train::batch_loader l(val, 2, 16);
    llm::train::lm_batch<tiny> lm(model, shape);
    double sum = 0;
    for (int b = 0; b < 9; ++b) {
        lm.fill(l);
        sum += static_cast<double>(lm.loss(model, p, pool));
    }
    CHECK(before.loss == doctest::Approx(sum / 9).epsilon(1e-15));
    CHECK(before.perplexity == doctest::Approx(std::exp(before.loss)).epsilon(1e-15));
    CHECK(llm::train::evaluate(model, p, val, shape, 3, pool).batches == 3);

    llm::train::adamw_optimizer<> opt({.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.0});
    llm::train::trainer tr(model, p, opt, llm::train::cosine_lr{.max_lr = 1e-2, .warmup = 5, .total = 60, .min_lr = 1e-3});
    llm::train::batch_loader loader(train, 2, 16, {.shuffle = true, .seed = 3});
    llm::train::lm_batch<tiny> batch(model, shape);
    for (int s = 0; s < 60; ++s)
        tr.step([&](std::size_t, float d) { batch.fill(loader); return batch.forward_backward(tr.grads(), d, model, p, pool); }, pool);
    const auto after = llm::train::evaluate(model, p, val, shape, 0, pool);
    CHECK(after.loss < 0.6 * before.loss);  // log(16) = 2.77 at the start; the pattern is learnable
}

TEST_CASE("sft_batch: the loss is taken on response tokens only (targets -100 on the prompt and padding)") {
    llm_test::temp_dir dir;
    const std::string path = dir / "sft.jsonl";
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        std::fputs("{\"prompt\": [1, 2, 3], \"response\": [4, 5]}\n\n{\"prompt\": [7], \"response\": [8, 9, 10, 11, 12, 13, 14, 15, 1]}\n", f);
        std::fclose(f);
    }
    const auto ex = llm::train::read_sft_jsonl(path, 16);
    REQUIRE(ex.size() == 2);
    tiny model(tiny_dims);
    llm::train::sft_batch<tiny> b(model, {.batch = 2, .seq = 6});
    b.fill(ex, 0);
    // row 0: 1 2 3 4 5 pad: targets -100 -100 4 5 -100 -100
    const std::vector<std::int32_t> t0(b.targets().begin(), b.targets().begin() + 6);
    CHECK(t0 == std::vector<std::int32_t>{-100, -100, 4, 5, -100, -100});
    // row 1: 7 8 9 10 11 12 (truncated to T + 1 = 7 tokens): targets 8 .. 13
    const std::vector<std::int32_t> t1(b.targets().begin() + 6, b.targets().end());
    CHECK(t1 == std::vector<std::int32_t>{8, 9, 10, 11, 12, 13});
    const std::vector<std::int32_t> i0(b.ids().begin(), b.ids().begin() + 6);
    CHECK(i0 == std::vector<std::int32_t>{1, 2, 3, 4, 5, 0});

    // errors name the file and line
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        std::fputs("{\"prompt\": [1], \"response\": [99]}\n", f);
        std::fclose(f);
    }
    CHECK_THROWS_WITH_AS(llm::train::read_sft_jsonl(path, 16), doctest::Contains("line 1"), llm::error);
    llm::train::sft_batch<tiny> small(model, {.batch = 1, .seq = 2});
    CHECK_THROWS_AS(small.fill({{{1, 2, 3, 4}, {5}}}, 0), llm::error);  // the prompt fills the window
}

TEST_CASE("preference_batch: DPO through the whole model matches central finite differences; precomputed reference = reference model") {
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 11, .std = 0.3f});
    auto ref = model.make_params<float>();
    model.init(ref, {.seed = 12, .std = 0.3f});
    const std::vector<llm::train::preference_example> ex{
        {{1, 2}, {3, 4, 5}, {6, 7}}, {{9}, {10, 11}, {12, 13, 14, 15}}};
    llm::train::preference_batch<tiny> pb(model, 2, 6);
    pb.fill(ex, 0);
    const llm::train::preference_loss loss = [](const auto& out, const auto& in) {
        return llm::align::pair_loss(out, in, "sigmoid", llm::align::dpo_config{.beta = 1.0});
    };
    llm::parallel::sequential seq;
    auto g = model.make_params<float>();
    const auto stats = pb.forward_backward(g, 1.0f, model, p, &ref, loss, false, seq);
    CHECK(std::isfinite(stats.loss));
    CHECK(stats.accuracy >= 0.0);
    CHECK(stats.margin == doctest::Approx(stats.chosen_reward - stats.rejected_reward));

    // the loss as a function of the parameters (double log-probs of fp32 logits)
    auto eval = [&](const tiny::params<float>& q) {
        std::vector<double> ref_lp = pb.logprobs(model, ref, seq);
        std::vector<double> lp = pb.logprobs(model, q, seq);
        std::vector<double> l(2), cr(2), rr(2), dc(2), dr(2);
        llm::align::pair_inputs<double> in{.chosen = {lp.data(), 2}, .rejected = {lp.data() + 2, 2}, .ref_chosen = {ref_lp.data(), 2},
                                           .ref_rejected = {ref_lp.data() + 2, 2}};
        llm::align::pair_outputs<double> out{.losses = {l.data(), 2}, .chosen_rewards = {cr.data(), 2}, .rejected_rewards = {rr.data(), 2},
                                             .d_chosen = {dc.data(), 2}, .d_rejected = {dr.data(), 2}};
        return loss(out, in).loss;
    };
    CHECK(eval(p) == doctest::Approx(stats.loss).epsilon(1e-12));
    // Central differences with h = 1e-2 on the largest gradient entries of three tensors: the
    // fp32 logits carry ~1e-7 relative error, summed over <= 6 tokens and divided by 2h gives
    // ~1e-5 absolute; the O(h^2) truncation is ~1e-4 relative here. Tolerance: 1e-3 absolute.
    int checked = 0;
    llm::model::for_each_tensor(
        [&](std::string_view name, auto& w, const auto& dw) {
            if (name.find("q_proj") == std::string_view::npos && name.find("embed_tokens") == std::string_view::npos &&
                name.find("down_proj") == std::string_view::npos)
                return;
            std::size_t best = 0;
            for (std::size_t i = 1; i < dw.size(); ++i) best = std::abs(dw.data()[i]) > std::abs(dw.data()[best]) ? i : best;
            const float h = 1e-2f, w0 = w.data()[best];
            w.data()[best] = w0 + h;
            const double up = eval(p);
            w.data()[best] = w0 - h;
            const double dn = eval(p);
            w.data()[best] = w0;
            const double fd = (up - dn) / (2.0 * static_cast<double>(h));
            INFO(name, " [", best, "]: backward ", dw.data()[best], ", finite differences ", fd);
            CHECK(std::abs(fd - static_cast<double>(dw.data()[best])) < 1e-3 + 1e-2 * std::abs(fd));
            ++checked;
        },
        p, g);
    CHECK(checked >= 4);

    // precomputed reference log-probs give the same loss and gradients as the reference model
    const auto ref_lp = pb.logprobs(model, ref, seq);
    auto ex2 = ex;
    for (std::size_t i = 0; i < 2; ++i) {
        ex2[i].ref_chosen = ref_lp[i];
        ex2[i].ref_rejected = ref_lp[2 + i];
    }
    pb.fill(ex2, 0);
    auto g2 = model.make_params<float>();
    const auto stats2 = pb.forward_backward(g2, 1.0f, model, p, static_cast<const tiny::params<float>*>(nullptr), loss, false, seq);
    CHECK(stats2.loss == stats.loss);
    CHECK(same_bits(g, g2));
    // without either, a clear error
    pb.fill(ex, 0);
    CHECK_THROWS_WITH_AS(pb.forward_backward(g2, 1.0f, model, p, static_cast<const tiny::params<float>*>(nullptr), loss, false, seq),
                         doctest::Contains("precomputed"), llm::error);
}

TEST_CASE("preference_batch: SimPO (reference-free) training through the trainer raises the preference accuracy") {
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 4});
    const std::vector<llm::train::preference_example> ex{{{1, 2}, {3, 4, 5}, {6, 7, 8}}, {{9}, {10, 11}, {12, 13}},
                                                         {{2}, {5, 5, 5}, {0, 1}}, {{3, 3}, {7}, {8}}};
    llm::train::preference_batch<tiny> pb(model, 4, 6);
    pb.fill(ex, 0);
    const llm::train::preference_loss loss = [](const auto& out, const auto& in) {
        return llm::align::pair_loss<llm::align::simpo>(out, in, {.beta = 2.0, .gamma = 0.5});
    };
    llm::parallel::thread_pool pool(2);
    llm::train::adamw_optimizer<> opt({.lr = 1e-2});
    llm::train::trainer tr(model, p, opt, llm::train::constant_lr{1e-2}, {.clip = 1.0, .guard = false});
    llm::align::pair_stats first{}, last{};
    for (int s = 0; s < 30; ++s) {
        tr.step([&](std::size_t, float d) {
            last = pb.forward_backward(tr.grads(), d, model, p, static_cast<const tiny::params<float>*>(nullptr), loss, true, pool);
            if (s == 0) first = last;
            return static_cast<float>(last.loss);
        }, pool);
    }
    CHECK(last.loss < first.loss);
    CHECK(last.accuracy == 1.0);
}

TEST_CASE("preference_batch: KTO through the whole model (KL estimate held fixed) matches central finite differences") {
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 21, .std = 0.3f});
    auto ref = model.make_params<float>();
    model.init(ref, {.seed = 22, .std = 0.3f});
    const std::vector<llm::train::preference_example> ex{{{1, 2}, {3, 4, 5}, {6, 7}}, {{9}, {10, 11}, {12, 13, 14, 15}}};
    llm::train::preference_batch<tiny> pb(model, 2, 6);
    pb.fill(ex, 0);
    llm::parallel::sequential seq;
    auto g = model.make_params<float>();
    const auto stats = pb.forward_backward_unpaired<llm::align::kto>(g, 1.0f, model, p, ref, {.beta = 1.0}, seq);
    CHECK(std::isfinite(stats.loss));
    CHECK(stats.kl >= 0.0);
    CHECK(stats.n_desirable == 2);
    CHECK(stats.n_undesirable == 2);
    // the loss at fixed kl (TRL detaches the KL estimate)
    auto eval = [&](const tiny::params<float>& q) {
        const std::vector<double> r = pb.logprobs(model, ref, seq);
        const std::vector<double> lp = pb.logprobs(model, q, seq);
        std::vector<std::uint8_t> des{1, 1, 0, 0};
        std::vector<double> l(4), rw(4), d(4);
        const llm::align::unpaired_outputs<double> out{.losses = {l.data(), 4}, .rewards = {rw.data(), 4}, .d_logps = {d.data(), 4}};
        const llm::align::unpaired_inputs<double> in{.logps = {lp.data(), 4}, .ref_logps = {r.data(), 4}, .desirable = {des.data(), 4}};
        return llm::align::unpaired_loss<llm::align::kto>(out, in, {.beta = 1.0, .kl = stats.kl}).loss;
    };
    CHECK(eval(p) == doctest::Approx(stats.loss).epsilon(1e-12));
    // The slopes here are ~3e-2 (beta 1, sigmoid near its flat ends), so the absolute part is
    // tightened to 5e-5: the fp32 noise of the difference quotient (~1e-5, as the DPO case) plus
    // margin; 1% relative covers the O(h^2) truncation.
    int checked = 0;
    llm::model::for_each_tensor(
        [&](std::string_view name, auto& w, const auto& dw) {
            if (name.find("k_proj") == std::string_view::npos && name.find("up_proj") == std::string_view::npos) return;
            std::size_t best = 0;
            for (std::size_t i = 1; i < dw.size(); ++i) best = std::abs(dw.data()[i]) > std::abs(dw.data()[best]) ? i : best;
            const float h = 1e-2f, w0 = w.data()[best];
            w.data()[best] = w0 + h;
            const double up = eval(p);
            w.data()[best] = w0 - h;
            const double dn = eval(p);
            w.data()[best] = w0;
            const double fd = (up - dn) / (2.0 * static_cast<double>(h));
            INFO(name, " [", best, "]: backward ", dw.data()[best], ", finite differences ", fd);
            CHECK(std::abs(fd - static_cast<double>(dw.data()[best])) < 5e-5 + 1e-2 * std::abs(fd));
            ++checked;
        },
        p, g);
    CHECK(checked >= 4);
}
