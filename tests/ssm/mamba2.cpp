// SPDX-License-Identifier: Apache-2.0
// The Mamba-2 mixer block: Hugging Face's Mamba2Mixer (tests/golden/ssm/make_mamba2_golden.py) on a tiny random
// configuration, the decode step against the forward at every position, the block contract, and the backward
// against finite differences of the forward with gradients accumulating.
//
// Tolerances: the golden's weights and input are exact float32 values and its output float64; our forward is
// fp32 through two GEMMs (K <= 16), the conv (4 taps), SSD (see ssd.cpp: 3e-5 for sums of up to 128 terms,
// here 4 + 4) and an RMSNorm: relative 2e-5 of the output norm; the issue asks for 1e-4. The step runs the
// recurrence instead of the chunked form: 2e-5.
#include "mixer_checks.hpp"

#include <llm/model/block.hpp>
#include <llm/ssm/mamba2.hpp>

#include <doctest/doctest.h>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;
namespace model = llm::model;

static_assert(model::block_like<ssm::mamba2_mixer>);
static_assert(model::steppable_block<ssm::mamba2_mixer>);

ssm::mamba2_mixer make_mixer() {
    ssm::mamba2_mixer m{.d_model = 8, .heads = 4, .head_dim = 4, .groups = 1, .d_state = 4, .d_conv = 4};
    m.eps = 1e-5f;     // the golden's layer_norm_epsilon (checked in the first test)
    m.dt_min = 1e-3f;  // its time_step_min
    m.chunk = 4;
    return m;
}
const ssm::mamba2_mixer mixer = make_mixer();

/// The golden (2 sequences of 6 tokens) with the mixer above.
const mixer_golden<ssm::mamba2_mixer>& golden() {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/ssm/mamba2_golden.txt");
    static const mixer_golden<ssm::mamba2_mixer> g{file, mixer, 2};
    return g;
}

}  // namespace

TEST_CASE("mamba2_mixer: forward matches Hugging Face Mamba2Mixer (torch path, float64) on a tiny random model") {
    CHECK(static_cast<float>(golden().file.get("eps").values.at(0)) == mixer.eps);
    CHECK(static_cast<float>(golden().file.get("dt_min").values.at(0)) == mixer.dt_min);
    check_forward_golden(golden(), 2e-5);
}

TEST_CASE("mamba2_mixer: the decode step, token by token, equals the forward at every position") {
    check_step_equals_forward(golden(), 2e-5);
}

TEST_CASE("mamba2_mixer: backward matches finite differences of the forward; gradients accumulate") {
    check_backward_fd(golden());
}
