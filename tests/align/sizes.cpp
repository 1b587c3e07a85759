// SPDX-License-Identifier: Apache-2.0
// Sequence log-probs on broadcast views (stride 0) that claim absurd batch and sequence sizes:
// llm::error naming the function and the sizes before any loop or allocation, never a wrapped
// row count, std::length_error or std::bad_alloc.
#include <llm/align/logprobs.hpp>
#include <llm/align/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

using llm::dims;
using strided2 = llm::layout_strided::mapping<dims<2>>;
using strided3 = llm::layout_strided::mapping<dims<3>>;

// One real row of V logits, one label and one mask value, broadcast to B x S.
struct broadcast_batch {
    static constexpr std::size_t V = 4;
    std::vector<float> row = std::vector<float>(V, 0.5f);
    std::int32_t label = 1;
    std::uint8_t keep = 1;

    auto logits(std::size_t B, std::size_t S) const {
        return llm::tensor_view<const float, dims<3>, llm::layout_strided>(row.data(),
                                                                           strided3(dims<3>(B, S, V), {0, 0, 1}));
    }
    auto labels(std::size_t B, std::size_t S) const {
        return llm::tensor_view<const std::int32_t, dims<2>, llm::layout_strided>(&label, strided2(dims<2>(B, S), {0, 0}));
    }
    auto mask(std::size_t B, std::size_t S) const {
        return llm::tensor_view<const std::uint8_t, dims<2>, llm::layout_strided>(&keep, strided2(dims<2>(B, S), {0, 0}));
    }
};

constexpr std::size_t two_32 = std::size_t{1} << 32;
constexpr std::size_t two_62 = std::size_t{1} << 62;

}  // namespace

TEST_CASE("sequence_logprobs: a broadcast batch whose row count wraps is llm::error before any loop") {
    llm::parallel::sequential seq;
    const broadcast_batch x;
    // B * S = 2^64 wraps to 0: the plain product would make an empty row list (and a 2^64-step mask loop).
    CHECK_THROWS_WITH_AS(llm::align::sequence_logprobs(llm::align::logprob_outputs<float>{}, {}, x.logits(two_32, two_32),
                                                       x.labels(two_32, two_32), x.mask(two_32, two_32), seq),
                         "sequence_logprobs: the rows B * S = 4294967296 * 4294967296 overflows std::size_t", llm::error);
    // 2^62 rows of 16 bytes of workspace: the byte count overflows.
    CHECK_THROWS_WITH_AS(llm::align::sequence_logprobs(llm::align::logprob_outputs<float>{}, {}, x.logits(two_62, 1),
                                                       x.labels(two_62, 1), x.mask(two_62, 1), seq),
                         doctest::Contains("sequence_logprobs: the per-row workspace = 4611686018427387904 * 16 overflows"),
                         llm::error);
    // S = 0: no rows, but 2^62 token counts would be allocated before the empty-mask check.
    CHECK_THROWS_WITH_AS(llm::align::sequence_logprobs(llm::align::logprob_outputs<float>{}, {}, x.logits(two_62, 0),
                                                       x.labels(two_62, 0), x.mask(two_62, 0), seq),
                         doctest::Contains("sequence_logprobs: the token counts = 4611686018427387904 * 8 overflows"),
                         llm::error);
    // A small broadcast batch still works: every row is the same, log-prob log(1/4) each.
    std::vector<float> sum(3);
    llm::align::sequence_logprobs(llm::align::logprob_outputs<float>{.sum = {sum.data(), 3}}, {}, x.logits(3, 2),
                                  x.labels(3, 2), x.mask(3, 2), seq);
    for (const float s : sum) {
        CHECK(s == doctest::Approx(2.0 * std::log(0.25)).epsilon(1e-6));
    }
}

TEST_CASE("sequence_logprobs_backward: the same row-count check runs before the gradient loop") {
    llm::parallel::sequential seq;
    const broadcast_batch x;
    const float lse = 0;
    const double d_sum = 1;
    float dlogit = 0;
    // lse and d_sum are never read: the shapes are checked first.
    const auto lse_v = llm::tensor_view<const float, dims<2>>(&lse, two_32, two_32);
    const auto d_sum_v = llm::tensor_view<const double, dims<1>>(&d_sum, 1);
    const auto d_v = llm::tensor_view<float, dims<3>, llm::layout_strided>(&dlogit, strided3(dims<3>(two_32, two_32, 4), {0, 0, 1}));
    CHECK_THROWS_WITH_AS(llm::align::sequence_logprobs_backward(d_v, lse_v, d_sum_v, {}, x.logits(two_32, two_32),
                                                                x.labels(two_32, two_32), x.mask(two_32, two_32), seq),
                         "sequence_logprobs_backward: the rows B * S = 4294967296 * 4294967296 overflows std::size_t",
                         llm::error);
}

TEST_CASE("reference::sequence_logprobs: an overflowing row count is llm::error") {
    const float logit = 0;
    const std::int32_t label = 0;
    const std::uint8_t keep = 1;
    const auto get = [&](std::size_t) { return static_cast<double>(logit); };
    CHECK_THROWS_WITH_AS(llm::align::reference::sequence_logprobs(1, two_62, 1, get, &label, &keep),
                         doctest::Contains("reference::sequence_logprobs: the log-sum-exps = 4611686018427387904 * 8"),
                         llm::error);
}
