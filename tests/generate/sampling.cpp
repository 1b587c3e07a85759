// SPDX-License-Identifier: Apache-2.0
// Sampling policies: each processor on hand-made logits, the open concept (a processor outside
// llm::), the seeded RNG, log-probs, and Leviathan et al.'s acceptance rule (statistical).
#include <llm/generate/sampling.hpp>
#include <llm/generate/speculative.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace user {
// A user's processor, outside llm::: bans one token.
struct ban {
    std::int32_t token;
    void process(std::span<float> logits, const llm::generate::sample_context&) const {
        logits[static_cast<std::size_t>(token)] = -std::numeric_limits<float>::infinity();
    }
};
struct not_a_processor {};
}  // namespace user

static_assert(llm::generate::logit_processor<user::ban>);
static_assert(!llm::generate::logit_processor<user::not_a_processor>);
static_assert(llm::generate::logit_processor<llm::generate::top_k> && llm::generate::logit_processor<llm::generate::typical>);

namespace {
constexpr float ninf = -std::numeric_limits<float>::infinity();
const llm::generate::sample_context none{};

std::size_t kept(const std::vector<float>& l) {
    std::size_t n = 0;
    for (float x : l) n += x != ninf;
    return n;
}
}  // namespace

TEST_CASE("sampling: greedy picks the first maximum; a user's processor outside llm:: runs in the sampler") {
    std::vector<float> l = {0.5f, 3.0f, 3.0f, -1.0f};
    llm::generate::rng r(1);
    llm::generate::sampler<> g(true);
    CHECK(g.sample(l, none, r) == 1);
    std::vector<float> l2 = {0.5f, 3.0f, 3.0f, -1.0f};
    llm::generate::sampler<user::ban> s(true, user::ban{1});
    CHECK(s.sample(l2, none, r) == 2);
    std::vector<float> all = {ninf, ninf};
    CHECK_THROWS_WITH_AS(g.sample(all, none, r), doctest::Contains("every token was removed"), llm::error);
}

TEST_CASE("sampling: temperature, top-k, top-p, min-p, typical remove what they should") {
    // probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (logits are their logs)
    const std::vector<float> base = {std::log(0.5f), std::log(0.25f), std::log(0.125f), std::log(0.0625f), std::log(0.0625f)};
    auto l = base;
    llm::generate::temperature{2.0f}.process(l, none);
    CHECK(l[0] == doctest::Approx(base[0] / 2));
    CHECK_THROWS_AS(llm::generate::temperature{0.0f}.process(l, none), llm::error);

    l = base;
    llm::generate::top_k{2}.process(l, none);
    CHECK(kept(l) == 2);
    CHECK(l[0] == base[0]);
    CHECK(l[1] == base[1]);

    l = base;  // 0.5 + 0.25 = 0.75 < 0.8 -> needs the third
    llm::generate::top_p{0.8f}.process(l, none);
    CHECK(kept(l) == 3);
    l = base;
    llm::generate::top_p{0.45f}.process(l, none);
    CHECK(kept(l) == 1);

    l = base;  // min-p 0.2: p >= 0.1 kept: 0.5, 0.25, 0.125
    llm::generate::min_p{0.2f}.process(l, none);
    CHECK(kept(l) == 3);

    l = base;  // entropy H = 1.875 bits = 1.2997 nats; surprisals ln 2 (0.69), ln 4 (1.39), ln 8 (2.08), ln 16 (2.77)
    // closest to H: 0.25 (|1.386-1.300| = 0.087), then 0.5 (0.607), then 0.125 (0.780): p = 0.3 -> 0.25 + 0.5
    llm::generate::typical{0.3f}.process(l, none);
    CHECK(kept(l) == 2);
    CHECK(l[1] == base[1]);
    CHECK(l[0] == base[0]);
    CHECK(l[2] == ninf);
}

TEST_CASE("sampling: repetition, frequency and presence penalties") {
    const std::vector<std::int32_t> toks = {0, 1, 1, 2, 2, 2};
    const llm::generate::sample_context ctx{toks, 2};  // prompt: 0, 1
    std::vector<float> l = {2.0f, -2.0f, 4.0f, 1.0f};
    llm::generate::repetition_penalty{2.0f}.process(l, ctx);
    CHECK(l == std::vector<float>{1.0f, -4.0f, 2.0f, 1.0f});
    l = {2.0f, -2.0f, 4.0f, 1.0f};
    llm::generate::repetition_penalty{2.0f, false}.process(l, ctx);  // generated only: 1, 2
    CHECK(l == std::vector<float>{2.0f, -4.0f, 2.0f, 1.0f});
    l = {2.0f, -2.0f, 4.0f, 1.0f};
    llm::generate::frequency_presence_penalty{0.5f, 1.0f}.process(l, ctx);
    // generated: 1 once, 2 three times
    CHECK(l == std::vector<float>{2.0f, -3.5f, 1.5f, 1.0f});
}

TEST_CASE("sampling: the seeded draw follows the softmax; same seed, same tokens") {
    std::vector<float> base = {0.0f, std::log(3.0f), ninf, std::log(4.0f)};  // 1/8, 3/8, 0, 4/8
    auto s = llm::generate::make_sampler({.greedy = false, .temp = 1.0f});
    llm::generate::rng r(7), r2(7);
    const int n = 80000;
    std::vector<int> count(4);
    std::vector<std::int32_t> first, second;
    for (int i = 0; i < n; ++i) {
        auto l = base;
        const auto t = s.sample(l, none, r);
        ++count[static_cast<std::size_t>(t)];
        if (i < 100) first.push_back(t);
    }
    for (int i = 0; i < 100; ++i) {
        auto l = base;
        second.push_back(s.sample(l, none, r2));
    }
    CHECK(first == second);
    CHECK(count[2] == 0);
    // binomial standard deviation sqrt(p (1 - p) / n) <= 0.0018; bound 5 sigma = 0.009
    CHECK(std::abs(count[0] / double(n) - 0.125) < 0.009);
    CHECK(std::abs(count[1] / double(n) - 0.375) < 0.009);
    CHECK(std::abs(count[3] / double(n) - 0.5) < 0.009);
    // different streams of one seed differ
    llm::generate::rng a(7, 0), b(7, 1);
    CHECK(a.next() != b.next());
}

TEST_CASE("sampling: log-probs of the chosen and the top tokens") {
    const std::vector<float> l = {std::log(0.5f), std::log(0.25f), ninf, std::log(0.25f)};
    std::vector<llm::generate::token_logprob> top;
    const float lp = llm::generate::logprobs(l, 1, 2, top);
    CHECK(lp == doctest::Approx(std::log(0.25)).epsilon(1e-6));
    REQUIRE(top.size() == 2);
    CHECK(top[0].token == 0);
    CHECK(top[0].logprob == doctest::Approx(std::log(0.5)).epsilon(1e-6));
    CHECK(top[1].token == 1);  // ties broken by the smaller id
    llm::generate::logprobs(l, 0, 10, top);
    CHECK(top.size() == 3);  // the removed token is not a candidate
}

TEST_CASE("speculative: the acceptance rule keeps the target distribution (statistical)") {
    // target p and draft q over 6 tokens, deliberately different (q puts mass where p has none)
    const std::vector<double> p = {0.30, 0.25, 0.20, 0.15, 0.10, 0.00};
    const std::vector<double> q = {0.05, 0.10, 0.40, 0.05, 0.20, 0.20};
    llm::generate::rng r(2023);
    std::vector<double> scratch;
    const int n = 200000;
    std::vector<int> count(6);
    int accepted = 0;
    for (int i = 0; i < n; ++i) {
        const auto d = llm::generate::draw(q, r);
        bool ok = false;
        ++count[static_cast<std::size_t>(llm::generate::accept_or_resample(p, q, d, r, scratch, &ok))];
        accepted += ok;
    }
    // Pearson chi-square over the 5 tokens p allows (4 degrees of freedom): mean 4, sd sqrt(8);
    // bound 4 + 8 sd = 26.6 (a false failure chance below 1e-5; the seed is fixed anyway).
    double chi2 = 0;
    for (std::size_t t = 0; t < 5; ++t) {
        const double e = p[t] * n;
        chi2 += (count[t] - e) * (count[t] - e) / e;
    }
    CHECK(count[5] == 0);
    CHECK(chi2 < 26.6);
    // acceptance probability sum_t min(p, q) = 0.05 + 0.10 + 0.20 + 0.05 + 0.10 = 0.5; sd of the rate 0.0011, bound 0.006
    CHECK(std::abs(accepted / double(n) - 0.5) < 0.006);
}
