// SPDX-License-Identifier: Apache-2.0
// Data-parallel pieces of training on one process: the sharded batch_loader (rank r of N with
// batch B reads rows r B .. r B + B - 1 of the single loader's batch N B, in llm.c order and
// shuffled, across epochs), and the trainer's ZeRO-1 path on one rank (flat buffer, pieces of
// parameters as the optimizer's walk, gathered state) against the plain trainer.
#include <llm/dist/single_process.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/train/train.hpp>
#include <llm/train/trainer.hpp>

#include <doctest/doctest.h>

#include "../support/temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <string>
#include <vector>

namespace {

std::string write_tokens(const llm_test::temp_dir& dir, std::size_t n) {
    std::vector<std::uint16_t> t(n);
    for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<std::uint16_t>((i * 7 + 3 * (i / 13)) % 16);
    const std::string path = dir / "t.bin";
    llm::train::write_token_file(path, std::span<const std::uint16_t>(t));
    return path;
}

}  // namespace

TEST_CASE("batch_loader with ranks: rank r reads rows r B .. r B + B - 1 of the single loader's batch of N B") {
    llm_test::temp_dir dir;
    const llm::train::token_file file(write_tokens(dir, 1000));
    constexpr std::size_t B = 2, T = 5;
    for (const std::size_t n : {std::size_t{2}, std::size_t{3}}) {
        for (const bool shuffle : {false, true}) {
            CAPTURE(n);
            CAPTURE(shuffle);
            llm::train::batch_loader one(file, n * B, T, {.shuffle = shuffle, .seed = 7});
            std::vector<llm::train::batch_loader> ranks;
            for (std::size_t r = 0; r < n; ++r) ranks.emplace_back(file, B, T, llm::train::loader_options{.shuffle = shuffle, .seed = 7, .rank = r, .ranks = n});
            CHECK(ranks[0].batches_per_epoch() == one.batches_per_epoch());
            const std::size_t batches = 2 * one.batches_per_epoch() + 1;  // across two epoch boundaries
            bool same = true;
            for (std::size_t b = 0; b < batches; ++b) {
                std::vector<std::int32_t> x(n * B * T), y(n * B * T), xr(B * T), yr(B * T);
                one.next(llm::tensor_view<std::int32_t, llm::dims<1>>(x.data(), x.size()), llm::tensor_view<std::int32_t, llm::dims<1>>(y.data(), y.size()));
                for (std::size_t r = 0; r < n; ++r) {
                    ranks[r].next(llm::tensor_view<std::int32_t, llm::dims<1>>(xr.data(), xr.size()),
                                  llm::tensor_view<std::int32_t, llm::dims<1>>(yr.data(), yr.size()));
                    same = same && std::equal(xr.begin(), xr.end(), x.begin() + static_cast<std::ptrdiff_t>(r * B * T)) &&
                           std::equal(yr.begin(), yr.end(), y.begin() + static_cast<std::ptrdiff_t>(r * B * T));
                    same = same && ranks[r].position() == one.position();  // every rank at the single loader's position
                }
            }
            CHECK(same);
        }
    }
    CHECK_THROWS_AS(llm::train::batch_loader(file, B, T, {.rank = 2, .ranks = 2}), llm::error);
    CHECK_THROWS_AS(llm::train::batch_loader(file, 100, T, {.rank = 0, .ranks = 2}), llm::error);  // 2 x 100 x 5 + 1 > 1000 tokens
}

TEST_CASE("trainer ZeRO-1 on one rank: the plain trainer's updates, full optimizer state gathered by name and shape") {
    using tiny = llm::model::llama<>;
    const llm::model::dims d{.vocab = 16, .d_model = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .d_ff = 24, .max_seq = 64};
    llm_test::temp_dir dir;
    const llm::train::token_file file(write_tokens(dir, 2000));
    const tiny model(d);
    llm::parallel::thread_pool pool(1);
    auto run = [&](bool zero1, tiny::params<float>& p, llm::train::adamw_optimizer<>& opt, const llm::train::adamw_optimizer<>* ref) {
        model.init(p, {.seed = 3});
        llm::train::batch_loader loader(file, 2, 8);
        llm::train::lm_batch<tiny> lm(model, {.batch = 2, .seq = 8});
        llm::dist::single_process comm;
        llm::train::trainer tr(model, p, opt, llm::train::constant_lr{1e-2}, {.clip = 0.5, .grad_accum = 2, .zero1 = zero1}, comm);
        std::vector<double> losses;
        for (int s = 0; s < 4; ++s)
            losses.push_back(tr.step([&](std::size_t, float dl) { lm.fill(loader); return lm.forward_backward(tr.grads(), dl, model, p, pool); }, pool).loss);
        if (zero1) {
            // The optimizer holds pieces of shape [1, n] / [n]; inside the call, the plain
            // optimizer's state: the same names, shapes and (within rounding) values.
            CHECK(opt.states().at("model.layers.0.mlp.down_proj.weight").shape == std::vector<std::size_t>{1, 24 * 16});
            tr.with_full_optimizer_state([&] {
                REQUIRE(opt.states().size() == ref->states().size());
                double dm = 0;
                for (const auto& entry : opt.states()) {
                    const std::string& name = entry.first;  // not a structured binding: CAPTURE's lambda (clang 14)
                    const auto& s = entry.second;
                    CAPTURE(name);
                    const auto& r = ref->states().at(name);
                    CHECK(s.shape == r.shape);
                    REQUIRE(s.m.size() == r.m.size());
                    REQUIRE(s.v.size() == r.v.size());
                    for (std::size_t i = 0; i < s.m.size(); ++i) dm = std::max(dm, std::abs(static_cast<double>(s.m.data()[i]) - r.m.data()[i]));
                }
                CHECK(dm < 1e-7);  // |g| <= 0.5 after clipping, x ~1e-6 from the coefficient, and the drift above (measured 2.8e-9)
                MESSAGE("ZeRO-1 on one rank: max |exp_avg - plain| = " << dm);
            });
            CHECK(opt.states().at("model.layers.0.mlp.down_proj.weight").shape == std::vector<std::size_t>{1, 24 * 16});
        }
        return losses;
    };
    auto p1 = model.make_params<float>(), p2 = model.make_params<float>();
    llm::train::adamw_optimizer<> o1({.lr = 1e-2, .weight_decay = 0.1}), o2({.lr = 1e-2, .weight_decay = 0.1});
    const auto l1 = run(false, p1, o1, nullptr);
    const auto l2 = run(true, p2, o2, &o1);
    // The one difference: the gradient norm's sum of squares over one flat shard instead of per
    // tensor (fp32 within chunks, double across), ~1e-6 relative, so the clipping coefficient
    // (active: the norm is ~3 > 0.5) and every clipped gradient move by ~1e-6 relative. AdamW is
    // scale-invariant for elements with |g| >> eps, but an element whose gradient is the rounding
    // noise of a cancelling sum (|g| << eps = 1e-8) moves by lr g / eps, and once the parameters
    // differ at all, later steps' noise differs: measured 2.9e-7 after 4 steps (Zen 2). Bound
    // 5e-6, as the N-rank test (tests/dist_mpi/train.cpp); a piece mapped onto the wrong
    // elements moves parameters by ~lr = 1e-2.
    double dp = 0;
    llm::model::for_each_tensor(
        [&](std::string_view, const auto& a, const auto& b) {
            for (std::size_t i = 0; i < a.size(); ++i) dp = std::max(dp, std::abs(static_cast<double>(a.data()[i]) - b.data()[i]));
        },
        p1, p2);
    CHECK(dp < 5e-6);
    MESSAGE("ZeRO-1 on one rank: max |param - plain| = " << dp);
    for (std::size_t i = 0; i < l1.size(); ++i) CHECK(std::abs(l1[i] - l2[i]) < 1e-6 * l1[i]);
}

namespace {

// Two "ranks" that hold the same gradients (so every reduction is the identity), recording each
// collective in a shared log beside the test's own entries: what ran when, relative to the
// model's backward. async = true adds start_all_reduce / test / wait (llm::dist::mpi's shape),
// so gradient_buckets starts reductions in ready() and completes them in finish().
struct recording_comm : llm::dist::single_process {
    std::vector<std::string>* log;
    std::size_t size() const noexcept { return 2; }
    template <class T>
    void all_reduce(std::span<T> out, std::span<const T> in, llm::dist::reduce_op) {
        if constexpr (std::is_same_v<T, float>) log->push_back("reduce " + std::to_string(out.size()));
        if (out.data() != in.data()) std::copy(in.begin(), in.end(), out.begin());
    }
};
struct recording_async_comm : recording_comm {
    struct handle {
        std::size_t n;
    };
    handle start_all_reduce(std::span<float> b, llm::dist::reduce_op) {
        log->push_back("start " + std::to_string(b.size()));
        return {b.size()};
    }
    bool test(handle&) { return false; }
    void wait(handle& h) { log->push_back("wait " + std::to_string(h.n)); }
};
static_assert(llm::dist::communicator<recording_comm> && !llm::dist::async_all_reduce<recording_comm>);
static_assert(llm::dist::async_all_reduce<recording_async_comm>);

}  // namespace

TEST_CASE("trainer data parallel with the backward hook: bucket reduces start inside the last micro-batch's backward, same bits") {
    using tiny = llm::model::llama<>;
    const llm::model::dims d{.vocab = 16, .d_model = 16, .n_layers = 3, .n_heads = 2, .n_kv_heads = 1, .d_ff = 24, .max_seq = 64};  // untied: the head is a block of its own
    llm_test::temp_dir dir;
    const llm::train::token_file file(write_tokens(dir, 2000));
    const tiny model(d);
    llm::parallel::thread_pool pool(1);
    // bucket_bytes 2 KB (512 floats): a layer is 1 632 floats, so several buckets, the head's first
    auto run = [&](auto& comm, bool hooked, std::vector<std::string>& log) {
        comm.log = &log;
        auto p = model.make_params<float>();
        model.init(p, {.seed = 3});
        llm::train::adamw_optimizer<> opt({.lr = 1e-2, .weight_decay = 0.1});
        llm::train::batch_loader loader(file, 2, 8);
        llm::train::lm_batch<tiny> lm(model, {.batch = 2, .seq = 8});
        llm::train::trainer tr(model, p, opt, llm::train::constant_lr{1e-2}, {.clip = 0.5, .grad_accum = 2, .bucket_bytes = 2048}, comm);
        for (int s = 0; s < 3; ++s) {
            log.push_back("step");
            if (hooked) {
                tr.step(
                    [&](std::size_t k, float dl, auto ready) {
                        lm.fill(loader);
                        const float l = lm.forward_backward(tr.grads(), dl, model, p,
                                                            [&](const llm::model::grads_ready& r) {
                                                                log.push_back(r.part == llm::model::grads_part::layer ? "hook layer " + std::to_string(r.layer)
                                                                                                                      : "hook " + std::to_string(static_cast<int>(r.part)));
                                                                ready(r);
                                                            },
                                                            pool);
                        log.push_back("end " + std::to_string(k));
                        return l;
                    },
                    pool);
            } else {
                tr.step([&](std::size_t k, float dl) { lm.fill(loader); const float l = lm.forward_backward(tr.grads(), dl, model, p, pool); log.push_back("end " + std::to_string(k)); return l; }, pool);
            }
        }
        return p;
    };
    // The log of one step: position of each entry.
    auto index_of = [](const std::vector<std::string>& log, const std::string& what, std::size_t from = 0) {
        return static_cast<std::size_t>(std::find(log.begin() + static_cast<std::ptrdiff_t>(from), log.end(), what) - log.begin());
    };
    auto count_prefix = [](const std::vector<std::string>& log, std::size_t a, std::size_t b, const std::string& prefix) {
        std::size_t n = 0;
        for (std::size_t i = a; i < b; ++i) n += log[i].starts_with(prefix);
        return n;
    };
    const std::size_t n_params = tiny::parameter_count(d);
    auto floats_in = [](const std::vector<std::string>& log, std::size_t a, std::size_t b, const std::string& prefix) {
        std::size_t n = 0;
        for (std::size_t i = a; i < b; ++i)
            if (log[i].starts_with(prefix)) n += std::stoul(log[i].substr(prefix.size()));
        return n;
    };

    for (const bool async : {false, true}) {
        CAPTURE(async);
        std::vector<std::string> hooked_log, plain_log;
        auto hooked_params = [&] {
            if (async) {
                recording_async_comm c;
                return run(c, true, hooked_log);
            }
            recording_comm c;
            return run(c, true, hooked_log);
        }();
        auto plain_params = [&] {
            if (async) {
                recording_async_comm c;
                return run(c, false, plain_log);
            }
            recording_comm c;
            return run(c, false, plain_log);
        }();
        const std::string issue = async ? "start " : "reduce ";
        // First step of each log (the constructor's broadcast is not logged).
        const std::size_t h0 = index_of(hooked_log, "step"), h_end0 = index_of(hooked_log, "end 0", h0), h_end1 = index_of(hooked_log, "end 1", h0);
        REQUIRE(h_end1 < hooked_log.size());
        // Micro-batch 0 (of grad_accum 2) launches nothing; its hooks do fire.
        CHECK(count_prefix(hooked_log, h0, h_end0, issue) == 0);
        CHECK(count_prefix(hooked_log, h0, h_end0, "hook") == 1 + 1 + d.n_layers + 1);
        // Micro-batch 1: every bucket issued before its backward returns, all parameters once.
        const std::size_t issued = count_prefix(hooked_log, h_end0, h_end1, issue);
        CHECK(issued >= 4);
        CHECK(floats_in(hooked_log, h_end0, h_end1, issue) == n_params);
        // ... the first of them before layer 0's backward has finished: the reduce overlaps it.
        const std::size_t first_issue = [&] {
            for (std::size_t i = h_end0; i < h_end1; ++i)
                if (hooked_log[i].starts_with(issue)) return i;
            return h_end1;
        }();
        CHECK(first_issue < index_of(hooked_log, "hook layer 0", h_end0));
        CHECK(first_issue > index_of(hooked_log, "hook 0", h_end0));  // not before the head's gradient is final
        if (async) {  // completed after backward, before the next step
            const std::size_t next = index_of(hooked_log, "step", h0 + 1);
            CHECK(count_prefix(hooked_log, h_end0, h_end1, "wait ") == 0);
            CHECK(floats_in(hooked_log, h_end1, next, "wait ") == n_params);
        }
        // Without the hook: the same buckets, all issued after backward has returned.
        const std::size_t p0 = index_of(plain_log, "step"), p_end1 = index_of(plain_log, "end 1", p0);
        CHECK(count_prefix(plain_log, p0, p_end1, issue) == 0);
        CHECK(count_prefix(plain_log, p_end1, index_of(plain_log, "step", p0 + 1), issue) == issued);
        // Same parameters bit for bit after 3 steps: a bucket packed before its gradients were
        // final would lose the later additions (async: unpacked over them at finish()).
        bool same = true;
        llm::model::for_each_tensor(
            [&](std::string_view, const auto& a, const auto& b) {
                same = same && std::equal(a.data(), a.data() + a.size(), b.data());
            },
            hooked_params, plain_params);
        CHECK(same);
    }
}
