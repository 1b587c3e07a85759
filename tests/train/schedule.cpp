// SPDX-License-Identifier: Apache-2.0
// Learning-rate schedules against the golden formulas (tests/golden/train/make_golden.py), EMA
// of weights, checkpoint averaging and the loss guard.
#include <llm/io/safetensors.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/train/ema.hpp>
#include <llm/train/guard.hpp>
#include <llm/train/schedule.hpp>

#include <doctest/doctest.h>

#include "../support/golden.hpp"
#include "../support/temp_dir.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace {

const llm_test::golden_file& golden() {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/train/golden.txt");
    return file;
}

// The schedules evaluate the golden formulas in double with the same operations; the cosine
// comes from two libms (glibc here, CPython's math.cos calls the same glibc), so a relative 1e-14
// (a few ulp of double) is ample and any formula slip (off-by-one warmup, a wrong end) is 1e-2.
template <class S>
void check_schedule(const S& s, const std::string& name) {
    const auto& want = golden().get(name);
    for (std::size_t k = 0; k < want.values.size(); ++k) {
        INFO(name, " step ", k);
        CHECK(s(static_cast<std::int64_t>(k)) == doctest::Approx(want.values[k]).epsilon(1e-14));
    }
}

}  // namespace

TEST_CASE("schedules: constant, warmup + cosine, linear decay, WSD (three ramps) and multi-stage match the golden values") {
    using namespace llm::train;
    static_assert(lr_schedule<cosine_lr> && lr_schedule<wsd_lr> && lr_schedule<multi_stage_lr> && lr_schedule<constant_lr>);
    CHECK(constant_lr{3e-4}(123) == 3e-4);
    check_schedule(cosine_lr{.max_lr = 1e-3, .warmup = 5, .total = 40, .min_lr = 1e-4}, "sched_cosine");
    check_schedule(linear_lr{.max_lr = 1e-3, .warmup = 5, .total = 40}, "sched_linear");
    check_schedule(wsd_lr{.max_lr = 1e-3, .warmup = 5, .total = 40, .decay = 10, .min_lr = 1e-5}, "sched_wsd_linear");
    check_schedule(wsd_lr{.max_lr = 1e-3, .warmup = 5, .total = 40, .decay = 10, .min_lr = 1e-5, .shape = decay_shape::cosine},
                   "sched_wsd_cosine");
    check_schedule(
        wsd_lr{.max_lr = 1e-3, .warmup = 5, .total = 40, .decay = 10, .min_lr = 1e-5, .shape = decay_shape::one_minus_sqrt},
        "sched_wsd_sqrt");
    const multi_stage_lr multi({{20, cosine_lr{.max_lr = 1e-3, .warmup = 5, .total = 20, .min_lr = 1e-4}},
                                {30, cosine_lr{.max_lr = 5e-4, .warmup = 3, .total = 30, .min_lr = 5e-5}}});
    check_schedule(multi, "sched_multi");
    CHECK(multi.stage_of(19) == 0);
    CHECK(multi.stage_of(20) == 1);
    CHECK(multi(20) < multi(22));  // re-warms
    CHECK_THROWS_WITH_AS((cosine_lr{.warmup = 10, .total = 10}(0)), doctest::Contains("warmup = 10 and total = 10"), llm::error);
    CHECK_THROWS_WITH_AS((wsd_lr{.warmup = 5, .total = 10, .decay = 6}(0)), doctest::Contains("decay = 6"), llm::error);
    CHECK_THROWS_AS(multi_stage_lr({}), llm::error);
}

TEST_CASE("ema: lerp towards the parameters; ema_weights copies on the first update, then averages") {
    llm::tensor<float, llm::dims<1>> e(5), p(5);
    llm::fill(e, 1.0f);
    llm::fill(p, 3.0f);
    llm::train::ema_update(e, p, 0.75, llm::parallel::sequential{});
    CHECK(e.data()[4] == 1.5f);  // 1 + 0.25 (3 - 1)
    llm::train::ema_weights ema(0.5);
    llm::tensor<float, llm::dims<2>> w(2, 3);
    llm::fill(w, 2.0f);
    ema.update([&](auto&& f) { f("w", w); }, llm::parallel::sequential{});
    CHECK(ema["w"](0) == 2.0f);
    llm::fill(w, 4.0f);
    ema.update([&](auto&& f) { f("w", w); }, llm::parallel::sequential{});
    CHECK(ema["w"](5) == 3.0f);
    const auto ts = ema.tensors();
    REQUIRE(ts.size() == 1);
    CHECK(ts[0].shape == std::vector<std::size_t>{2, 3});
    CHECK_THROWS_AS(llm::train::ema_weights(1.5), llm::error);
}

TEST_CASE("average_checkpoints: the elementwise mean of the last k files, F32 and BF16; mismatches are errors") {
    llm_test::temp_dir dir;
    std::vector<std::string> paths;
    for (int k = 0; k < 3; ++k) {
        llm::tensor<float, llm::dims<2>> w(2, 2);
        llm::tensor<llm::bf16, llm::dims<1>> b(3);
        for (std::size_t i = 0; i < 4; ++i) w.data()[i] = static_cast<float>(k * 10 + static_cast<int>(i));
        for (std::size_t i = 0; i < 3; ++i) b.data()[i] = llm::bf16(static_cast<float>(k));
        paths.push_back(dir / ("ckpt" + std::to_string(k) + ".safetensors"));
        std::vector<llm::io::safetensors_tensor> ts{llm::io::safetensors_tensor::from_view("w", w.view()),
                                                    llm::io::safetensors_tensor::from_view("b", b.view())};
        llm::io::save_safetensors(paths.back(), ts, {{"format", "pt"}});
    }
    llm::train::average_checkpoints(dir / "avg.safetensors", paths);
    llm::io::safetensors_file avg(dir / "avg.safetensors");
    const auto w = avg.view<float, 2>("w");
    CHECK(w(0, 0) == 10.0f);
    CHECK(w(1, 1) == 13.0f);
    CHECK(static_cast<float>(avg.view<llm::bf16, 1>("b")(2)) == 1.0f);
    CHECK(avg.metadata().at("format") == "pt");
    // A file with another shape is refused, naming the tensor and both files.
    llm::tensor<float, llm::dims<2>> other(1, 4);
    llm::tensor<llm::bf16, llm::dims<1>> b(3);
    std::vector<llm::io::safetensors_tensor> ts{llm::io::safetensors_tensor::from_view("w", other.view()),
                                                llm::io::safetensors_tensor::from_view("b", b.view())};
    llm::io::save_safetensors(dir / "bad.safetensors", ts);
    CHECK_THROWS_WITH_AS(llm::train::average_checkpoints(dir / "avg2.safetensors", {paths[0], dir / "bad.safetensors"}),
                         doctest::Contains("tensor 'w' has shape [1, 4]"), llm::error);
}

TEST_CASE("loss_guard: NaN, infinite and spiking losses are skipped with a reason; restore continues identically") {
    llm::train::loss_guard guard({.spike_factor = 2.0, .window = 4, .min_history = 3});
    CHECK(!guard.check(3.0).skip);
    CHECK(!guard.check(10.0).skip);  // no spike test before 3 accepted losses
    auto v = guard.check(std::nan(""));
    CHECK(v.skip);
    CHECK(v.reason == "loss is NaN");
    CHECK(guard.check(INFINITY).reason == "loss is infinite");
    CHECK(!guard.check(2.0).skip);    // mean of 3, 10, 2 = 5
    v = guard.check(10.5);            // > 2 x 5
    CHECK(v.skip);
    CHECK(v.mean == 5.0);
    CHECK(v.reason.find("running mean 5") != std::string::npos);
    CHECK(!guard.check(9.0).skip);
    CHECK(!guard.check(1.0).skip);    // window of 4: 10, 2, 9, 1
    CHECK(guard.mean() == 5.5);
    CHECK(guard.skipped() == 3);
    llm::train::loss_guard resumed({.spike_factor = 2.0, .window = 4, .min_history = 3});
    resumed.restore(guard.history(), guard.skipped());
    for (double loss : {4.0, 30.0, 6.0, 2.0, 12.5}) {
        const auto a = guard.check(loss), b = resumed.check(loss);
        CHECK(a.skip == b.skip);
        CHECK(a.mean == b.mean);
    }
    CHECK(guard.skipped() == resumed.skipped());
}
