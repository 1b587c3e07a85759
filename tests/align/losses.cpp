// SPDX-License-Identifier: Apache-2.0
// Preference losses against PyTorch-autograd golden values (TRL formulas), finite differences, extremes, bad input.
#include "../support/numeric.hpp"

#include <llm/align/cpo.hpp>
#include <llm/align/dpo.hpp>
#include <llm/align/kto.hpp>
#include <llm/align/loss_by_name.hpp>
#include <llm/align/orpo.hpp>
#include <llm/align/simpo.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

// A paired loss written by a user, outside llm::, from the public types alone: SLiC's hinge
// with a margin (TRL's "hinge" is delta = 1), max(0, delta - beta * (x - y)) with x, y the
// chosen and rejected log-ratios against the reference model.
namespace user_losses {

struct slic_config {
    double beta = 1.0;
    double delta = 1.0;
};

struct slic_hinge {
    using config = slic_config;
    static constexpr std::string_view name = "slic_hinge";
    static constexpr bool needs_tokens = false;
    static constexpr bool needs_reference(const slic_config&) { return true; }
    static void validate(const slic_config& c) {
        llm::check(c.beta > 0 && c.delta >= 0, "slic_hinge: beta = ", c.beta, ", delta = ", c.delta);
    }
    template <class T>
    static llm::align::pair_terms evaluate(const llm::align::pair_outputs<T>& out,
                                           const llm::align::pair_inputs<T>& in, const slic_config& c) {
        const std::size_t n = in.size();
        const T beta = static_cast<T>(c.beta);
        const T delta = static_cast<T>(c.delta);
        const T slope = beta / static_cast<T>(n);  // of the batch mean
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const T x = in.chosen_log_ratio(i);
            const T y = in.rejected_log_ratio(i);
            const T m = delta - beta * (x - y);
            out.losses(i) = m > T(0) ? m : T(0);
            out.d_chosen(i) = m > T(0) ? -slope : T(0);
            out.d_rejected(i) = m > T(0) ? slope : T(0);
            out.chosen_rewards(i) = beta * x;
            out.rejected_rewards(i) = beta * y;
            sum += static_cast<double>(out.losses(i));
        }
        return {.loss = sum / static_cast<double>(n)};
    }
};

// An unpaired loss of the user's own: squared distance of beta * r from +-1.
struct squared_unpaired {
    static constexpr std::string_view name = "squared_unpaired";
    template <class T>
    static llm::align::unpaired_value<T> value(const llm::align::kto_config& c, T r, bool desirable) {
        const T e = static_cast<T>(c.beta) * r - (desirable ? T(1) : T(-1));
        return {e * e, T(2) * static_cast<T>(c.beta) * e};
    }
};

}  // namespace user_losses

static_assert(llm::align::pair_loss_policy<user_losses::slic_hinge>);
static_assert(llm::align::pair_loss_policy<llm::align::dpo_sigmoid> && llm::align::pair_loss_policy<llm::align::orpo>);
static_assert(!llm::align::pair_loss_policy<user_losses::slic_config>);  // no maths: not a policy
static_assert(llm::align::unpaired_loss_policy<user_losses::squared_unpaired>);
static_assert(!llm::align::unpaired_loss_policy<user_losses::slic_hinge>);

namespace {

namespace al = llm::align;

// ---- golden file: "case <name> <family> <loss>", "param k v", "vec k n v...", "scalar k v", "end"
struct golden_case {
    std::string name, family, loss;
    std::map<std::string, double> params;
    std::map<std::string, std::vector<double>> vecs;
    std::map<std::string, double> scalars;

    double param(const std::string& k, double fallback = 0) const {
        auto it = params.find(k);
        return it == params.end() ? fallback : it->second;
    }
    const std::vector<double>& vec(const std::string& k) const {
        auto it = vecs.find(k);
        REQUIRE_MESSAGE(it != vecs.end(), name, ": no vec ", k);
        return it->second;
    }
    double scalar(const std::string& k) const {
        auto it = scalars.find(k);
        REQUIRE_MESSAGE(it != scalars.end(), name, ": no scalar ", k);
        return it->second;
    }
};

std::vector<golden_case> load_golden() {
    std::ifstream f(std::string(LLM_SOURCE_DIR) + "/tests/golden/align/losses.txt");
    REQUIRE(f.good());
    std::vector<golden_case> cases;
    std::string line;
    golden_case cur;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag.empty() || tag[0] == '#') {
            continue;
        }
        if (tag == "case") {
            cur = golden_case{};
            in >> cur.name >> cur.family >> cur.loss;
        } else if (tag == "param") {
            std::string k;
            double v;
            in >> k >> v;
            cur.params[k] = v;
        } else if (tag == "vec") {
            std::string k;
            std::size_t n = 0;
            in >> k >> n;
            std::vector<double> v(n);
            for (double& x : v) {
                in >> x;
            }
            cur.vecs[k] = v;
        } else if (tag == "scalar") {
            std::string k;
            double v;
            in >> k >> v;
            cur.scalars[k] = v;
        } else if (tag == "end") {
            cases.push_back(cur);
        }
        REQUIRE_MESSAGE(!in.fail(), "bad golden line: ", line);
    }
    return cases;
}

// ‖a - b‖ / max(‖b‖, tiny): the stated tolerance is on this relative norm.
using llm_test::rel_norm;
double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-300); }

template <class T>
using view1 = llm::tensor_view<T, llm::dims<1>>;

template <class T>
view1<T> as_view(std::vector<T>& v) {
    return view1<T>(v.data(), v.size());
}
template <class T>
view1<const T> as_cview(const std::vector<T>& v) {
    return view1<const T>(v.data(), v.size());
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
}
std::vector<std::size_t> counts(const std::vector<double>& v) { return std::vector<std::size_t>(v.begin(), v.end()); }

// Owns the buffers of one paired call.
template <class T>
struct pair_buffers {
    std::vector<T> c, r, rc, rr, losses, cr, rj, dc, dr;
    std::vector<std::size_t> lc, lr;
    explicit pair_buffers(std::size_t n) : losses(n, NAN), cr(n, NAN), rj(n, NAN), dc(n, NAN), dr(n, NAN) {}
    al::pair_inputs<T> inputs() const {
        return {as_cview(c), as_cview(r), as_cview(rc), as_cview(rr), as_cview(lc), as_cview(lr)};
    }
    al::pair_outputs<T> outputs() { return {as_view(losses), as_view(cr), as_view(rj), as_view(dc), as_view(dr)}; }
};

al::dpo_config dpo_cfg(const golden_case& g) {
    al::dpo_config c;
    c.beta = g.param("beta");
    c.label_smoothing = g.param("label_smoothing");
    c.discopop_tau = g.param("discopop_tau", 0.05);
    c.reference_free = g.param("reference_free") != 0;
    c.rdpo_alpha = g.param("rdpo_alpha");
    return c;
}

template <class T>
al::pair_stats run_pair(const golden_case& g, pair_buffers<T>& b) {
    if (g.family == "dpo") {
        return al::pair_loss(b.outputs(), b.inputs(), g.loss, dpo_cfg(g));
    }
    if (g.family == "orpo") {
        return al::pair_loss<al::orpo>(b.outputs(), b.inputs(), {.beta = g.param("beta")});
    }
    REQUIRE(g.family == "cpo");
    if (g.loss == "simpo") {
        const al::simpo_config c{.beta = g.param("beta"),
                                 .gamma = g.param("simpo_gamma"),
                                 .label_smoothing = g.param("label_smoothing"),
                                 .cpo_alpha = g.param("cpo_alpha")};
        return al::pair_loss<al::simpo>(b.outputs(), b.inputs(), c);
    }
    const al::cpo_config c{
        .beta = g.param("beta"), .label_smoothing = g.param("label_smoothing"), .cpo_alpha = g.param("cpo_alpha")};
    return al::pair_loss<al::cpo>(b.outputs(), b.inputs(), c);
}

template <class T>
pair_buffers<T> buffers_from(const golden_case& g) {
    const std::size_t n = g.vec("chosen").size();
    pair_buffers<T> b(n);
    b.c = cast<T>(g.vec("chosen"));
    b.r = cast<T>(g.vec("rejected"));
    b.rc = cast<T>(g.vec("ref_chosen"));
    b.rr = cast<T>(g.vec("ref_rejected"));
    b.lc = counts(g.vec("chosen_tokens"));
    b.lr = counts(g.vec("rejected_tokens"));
    return b;
}

template <class T>
void check_pair_case(const golden_case& g, double tol) {
    CAPTURE(g.name);
    auto b = buffers_from<T>(g);
    const al::pair_stats s = run_pair(g, b);
    CHECK(rel(s.loss, g.scalar("loss")) <= tol);
    const auto d = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
    CHECK(rel_norm(d(b.losses), g.vec("losses")) <= tol);
    CHECK(rel_norm(d(b.dc), g.vec("d_chosen")) <= tol);
    CHECK(rel_norm(d(b.dr), g.vec("d_rejected")) <= tol);
    CHECK(rel_norm(d(b.cr), g.vec("chosen_rewards")) <= tol);
    CHECK(rel_norm(d(b.rj), g.vec("rejected_rewards")) <= tol);
    CHECK(s.accuracy == doctest::Approx(g.scalar("accuracy")));
    CHECK(std::fabs(s.margin - g.scalar("margin")) <= tol * (1 + std::fabs(g.scalar("margin"))));
    for (const char* k : {"nll", "log_odds_ratio", "log_odds_chosen"}) {
        if (g.scalars.count(k) != 0) {
            const double got = std::string(k) == "nll" ? s.nll : std::string(k) == "log_odds_ratio" ? s.log_odds_ratio
                                                                                                   : s.log_odds_chosen;
            CHECK(rel(got, g.scalar(k)) <= tol);
        }
    }
}

template <class L>
al::unpaired_stats run_unpaired(const al::kto_config& c, const std::vector<double>& x, const std::vector<double>& ref,
                                const std::vector<std::uint8_t>& des, std::vector<double>& losses,
                                std::vector<double>& rewards, std::vector<double>& dx) {
    return al::unpaired_loss<L>(al::unpaired_outputs<double>{as_view(losses), as_view(rewards), as_view(dx)},
                                al::unpaired_inputs<double>{as_cview(x), as_cview(ref), as_cview(des)}, c);
}

template <class T>
void check_kto_case(const golden_case& g, double tol) {
    CAPTURE(g.name);
    const al::kto_config c{.beta = g.param("beta"),
                           .desirable_weight = g.param("desirable_weight"),
                           .undesirable_weight = g.param("undesirable_weight"),
                           .kl = g.param("kl")};
    const std::vector<T> x = cast<T>(g.vec("logps"));
    const std::vector<T> ref = cast<T>(g.vec("ref_logps"));
    std::vector<std::uint8_t> des;
    for (double v : g.vec("desirable")) {
        des.push_back(v != 0 ? 1 : 0);
    }
    std::vector<T> losses(x.size(), NAN), rewards(x.size(), NAN), dx(x.size(), NAN);
    const al::unpaired_inputs<T> in{as_cview(x), as_cview(ref), as_cview(des)};
    const al::unpaired_outputs<T> out{as_view(losses), as_view(rewards), as_view(dx)};
    const al::unpaired_stats s = g.loss == "kto" ? al::unpaired_loss<al::kto>(out, in, c)
                                                 : al::unpaired_loss<al::apo_zero_unpaired>(out, in, c);
    const auto d = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
    CHECK(rel(s.loss, g.scalar("loss")) <= tol);
    CHECK(rel_norm(d(losses), g.vec("losses")) <= tol);
    CHECK(rel_norm(d(dx), g.vec("d_logps")) <= tol);
    CHECK(rel_norm(d(rewards), g.vec("rewards")) <= tol);
    CHECK(std::fabs(s.chosen_reward - g.scalar("chosen_reward")) <= tol * (1 + std::fabs(g.scalar("chosen_reward"))));
    CHECK(std::fabs(s.rejected_reward - g.scalar("rejected_reward")) <=
          tol * (1 + std::fabs(g.scalar("rejected_reward"))));
}

// Central differences of the batch loss in double: d loss / d chosen[i], d rejected[i].
void check_fd(const golden_case& g) {
    CAPTURE(g.name);
    auto b = buffers_from<double>(g);
    run_pair(g, b);
    const auto loss_at = [&](bool chosen) {
        return [&g, &b, chosen](const std::vector<double>& x) {
            auto p = b;
            (chosen ? p.c : p.r) = x;
            return run_pair(g, p).loss;
        };
    };
    const std::vector<double> fd_c = llm_test::finite_difference(loss_at(true), b.c, 1e-5, /*relative_step=*/true);
    const std::vector<double> fd_r = llm_test::finite_difference(loss_at(false), b.r, 1e-5, /*relative_step=*/true);
    // central differences with h ~ 1e-5 |x|: truncation ~ h^2 |f'''|, rounding ~ 1e-16 |f| / h
    CHECK(rel_norm(b.dc, fd_c) <= 1e-5);
    CHECK(rel_norm(b.dr, fd_r) <= 1e-5);
}

}  // namespace

TEST_CASE("align losses: golden values from PyTorch autograd with TRL's formulas (double 1e-6, float 1e-4)") {
    const auto cases = load_golden();
    REQUIRE(cases.size() >= 90);
    for (const auto& g : cases) {
        if (g.family == "kto") {
            check_kto_case<double>(g, 1e-6);
            check_kto_case<float>(g, 1e-4);
        } else {
            check_pair_case<double>(g, 1e-6);
            check_pair_case<float>(g, 1e-4);
        }
    }
}

TEST_CASE("align losses: gradients match central finite differences") {
    for (const auto& g : load_golden()) {
        // hinge has a kink at z = 1 and the extreme cases saturate to slopes of exactly 0 or
        // +-beta/n; both are covered by the golden gradients instead
        if (g.family == "kto" || g.name.find("extreme") != std::string::npos) {
            continue;
        }
        check_fd(g);
    }
    // KTO: central differences over logps
    for (const auto& g : load_golden()) {
        if (g.family != "kto" || g.name.find("extreme") != std::string::npos) {
            continue;
        }
        CAPTURE(g.name);
        const al::kto_config c{.beta = g.param("beta"),
                               .desirable_weight = g.param("desirable_weight"),
                               .undesirable_weight = g.param("undesirable_weight"),
                               .kl = g.param("kl")};
        const std::vector<double> x = g.vec("logps");
        const std::vector<double> ref = g.vec("ref_logps");
        std::vector<std::uint8_t> des;
        for (double v : g.vec("desirable")) {
            des.push_back(v != 0 ? 1 : 0);
        }
        std::vector<double> l(x.size()), rw(x.size()), dx(x.size()), tmp(x.size());
        const auto run = [&](const std::vector<double>& at) {
            return g.loss == "kto" ? run_unpaired<al::kto>(c, at, ref, des, l, rw, tmp).loss
                                   : run_unpaired<al::apo_zero_unpaired>(c, at, ref, des, l, rw, tmp).loss;
        };
        g.loss == "kto" ? run_unpaired<al::kto>(c, x, ref, des, l, rw, dx)
                        : run_unpaired<al::apo_zero_unpaired>(c, x, ref, des, l, rw, dx);
        const std::vector<double> fd = llm_test::finite_difference(run, x, 1e-5, /*relative_step=*/true);
        CHECK(rel_norm(dx, fd) <= 1e-5);
    }
}

TEST_CASE_TEMPLATE("align losses: finite outputs for log-probs of -1e4 and margins of +-1e4", T, float, double) {
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int> pick(0, 4);
    const T values[] = {T(-1e4), T(-1e-3), T(-1), T(-5000), T(-9999.5)};
    const std::size_t n = 33;
    pair_buffers<T> b(n);
    for (std::size_t i = 0; i < n; ++i) {
        b.c.push_back(values[pick(rng)]);
        b.r.push_back(values[pick(rng)]);
        b.rc.push_back(values[pick(rng)]);
        b.rr.push_back(values[pick(rng)]);
        b.lc.push_back(1 + i % 3);
        b.lr.push_back(1 + i % 2);
    }
    const auto finite = [&](const al::pair_stats& s) {
        bool ok = std::isfinite(s.loss) && std::isfinite(s.nll) && std::isfinite(s.log_odds_ratio);
        for (std::size_t i = 0; i < n; ++i) {
            ok = ok && std::isfinite(b.losses[i]) && std::isfinite(b.dc[i]) && std::isfinite(b.dr[i]);
        }
        return ok;
    };
    for (double beta : {0.1, 1.0, 10.0}) {
        CAPTURE(beta);
        for (std::string_view name : al::dpo_loss_names) {
            CAPTURE(name);
            al::dpo_config c{.beta = beta, .label_smoothing = name == "exo_pair" ? 1e-3 : 0.1};
            CHECK(finite(al::pair_loss(b.outputs(), b.inputs(), name, c)));
            c.reference_free = true;
            CHECK(finite(al::pair_loss(b.outputs(), b.inputs(), name, c)));
        }
        CHECK(finite(al::pair_loss<al::dpo_sigmoid>(b.outputs(), b.inputs(), {.beta = beta, .rdpo_alpha = 0.5})));
        CHECK(finite(al::pair_loss<al::simpo>(b.outputs(), b.inputs(), {.beta = beta, .cpo_alpha = 1})));
        CHECK(finite(al::pair_loss<al::cpo>(b.outputs(), b.inputs(), {.beta = beta})));
        CHECK(finite(al::pair_loss<al::orpo>(b.outputs(), b.inputs(), {.beta = beta})));
    }
}

TEST_CASE("align losses: names map to policies and unknown names raise llm::error") {
    CHECK(al::dpo_loss_names.size() == 15);
    for (std::string_view name : al::dpo_loss_names) {
        const auto loss = al::dpo_loss_from_name(name);
        CHECK(std::visit([](auto p) { return decltype(p)::name; }, loss) == name);
    }
    CHECK(std::holds_alternative<al::dpo_aot_unpaired>(al::dpo_loss_from_name("aot_pair")));
    CHECK_THROWS_WITH_AS(al::dpo_loss_from_name("sigmoid2"),
                         doctest::Contains("dpo_loss_from_name: unknown loss_type 'sigmoid2'"), llm::error);
    CHECK_THROWS_WITH_AS(al::dpo_loss_from_name(""), doctest::Contains("expected one of sigmoid, hinge"), llm::error);
}

TEST_CASE("align losses: bad input raises llm::error naming the argument") {
    pair_buffers<double> b(3);
    b.c = {-1, -2, -3};
    b.r = {-2, -3, -4};
    b.rc = {-1, -1, -1};
    b.rr = {-2, -2, -2};
    b.lc = {1, 2, 3};
    b.lr = {1, 2, 3};
    CHECK_NOTHROW(al::pair_loss<al::dpo_sigmoid>(b.outputs(), b.inputs()));

    SUBCASE("mismatched batch sizes") {
        auto bad = b;
        bad.r.pop_back();
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_sigmoid>(bad.outputs(), bad.inputs()),
                             "pair_loss(sigmoid): rejected has 2 entries but chosen has 3", llm::error);
        bad = b;
        bad.rr.push_back(0);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_ipo>(bad.outputs(), bad.inputs()),
                             "pair_loss(ipo): ref_rejected has 4 entries but chosen has 3", llm::error);
        bad = b;
        bad.dc.pop_back();
        CHECK_THROWS_WITH_AS(al::pair_loss<al::orpo>(bad.outputs(), bad.inputs()),
                             "pair_loss(orpo): d_chosen has 2 entries but chosen has 3", llm::error);
        bad = b;
        bad.lr.pop_back();
        CHECK_THROWS_WITH_AS(al::pair_loss<al::simpo>(bad.outputs(), bad.inputs()),
                             "pair_loss(simpo): rejected_tokens has 2 entries but chosen has 3", llm::error);
        std::vector<double> none;
        CHECK_THROWS_WITH_AS(
            al::pair_loss<al::dpo_sigmoid>(b.outputs(), al::pair_inputs<double>{as_cview(none), as_cview(none)}),
            "pair_loss(sigmoid): the batch is empty (chosen has 0 entries)", llm::error);
    }
    SUBCASE("missing reference or token counts") {
        auto bad = b;
        bad.rc.clear();
        bad.rr.clear();
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_hinge>(bad.outputs(), bad.inputs()),
                             "pair_loss(hinge): ref_chosen has 0 entries but chosen has 3", llm::error);
        CHECK_NOTHROW(al::pair_loss<al::dpo_hinge>(bad.outputs(), bad.inputs(), {.reference_free = true}));
        CHECK_NOTHROW(al::pair_loss<al::simpo>(bad.outputs(), bad.inputs()));
        bad = b;
        bad.lc.clear();
        bad.lr.clear();
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_ipo>(bad.outputs(), bad.inputs()),
                             "pair_loss(ipo): chosen_tokens has 0 entries but chosen has 3", llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_sigmoid>(bad.outputs(), bad.inputs(), {.rdpo_alpha = 0.1}),
                             doctest::Contains("chosen_tokens and rejected_tokens are required"), llm::error);
        CHECK_NOTHROW(al::pair_loss<al::cpo>(bad.outputs(), bad.inputs(), {.cpo_alpha = 0}));
    }
    SUBCASE("empty masks: zero token counts") {
        auto bad = b;
        bad.lr[1] = 0;
        CHECK_THROWS_WITH_AS(al::pair_loss<al::simpo>(bad.outputs(), bad.inputs()),
                             "pair_loss(simpo): rejected_tokens[1] = 0: the rejected response has no tokens (empty "
                             "loss mask)",
                             llm::error);
        CHECK_THROWS_AS(al::pair_loss<al::orpo>(bad.outputs(), bad.inputs()), llm::error);
        bad.lr[1] = 1;
        bad.lc[2] = 0;
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_sft>(bad.outputs(), bad.inputs()),
                             doctest::Contains("chosen_tokens[2] = 0"), llm::error);
        // TRL clamps the counts to >= 1 in ipo and sigmoid_norm, so a zero count is allowed there
        CHECK_NOTHROW(al::pair_loss<al::dpo_ipo>(bad.outputs(), bad.inputs()));
    }
    SUBCASE("beta <= 0 and other parameters out of range") {
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_sigmoid>(b.outputs(), b.inputs(), {.beta = 0}),
                             "dpo_config(sigmoid): beta = 0 must be > 0", llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss(b.outputs(), b.inputs(), "ipo", al::dpo_config{.beta = -0.5}),
                             "dpo_config(ipo): beta = -0.5 must be > 0", llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::simpo>(b.outputs(), b.inputs(), {.beta = 0}),
                             "simpo_config: beta = 0 must be > 0", llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::cpo>(b.outputs(), b.inputs(), {.beta = -1}),
                             "cpo_config: beta = -1 must be > 0", llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::orpo>(b.outputs(), b.inputs(), {.beta = NAN}),
                             doctest::Contains("orpo_config: beta = "), llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_robust>(b.outputs(), b.inputs(), {.label_smoothing = 0.5}),
                             "dpo_config(robust): label_smoothing = 0.5 must be in [0, 0.5)", llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_exo_pair>(b.outputs(), b.inputs()),
                             doctest::Contains("dpo_config(exo_pair): label_smoothing = 0 must be in (0, 1)"),
                             llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_hinge>(b.outputs(), b.inputs(), {.rdpo_alpha = 0.1}),
                             "dpo_config(hinge): rdpo_alpha = 0.1 applies to the sigmoid loss only", llm::error);
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_discopop>(b.outputs(), b.inputs(), {.discopop_tau = 0}),
                             "dpo_config(discopop): discopop_tau = 0 must be > 0", llm::error);
    }
    SUBCASE("non-finite or impossible log-probs") {
        auto bad = b;
        bad.rc[2] = INFINITY;
        CHECK_THROWS_WITH_AS(al::pair_loss<al::dpo_sigmoid>(bad.outputs(), bad.inputs()),
                             "pair_loss(sigmoid): ref_chosen[2] = inf is not finite", llm::error);
        bad = b;
        bad.c[0] = 0;
        CHECK_THROWS_WITH_AS(al::pair_loss<al::orpo>(bad.outputs(), bad.inputs()),
                             doctest::Contains("average log-probs must be < 0"), llm::error);
    }
    SUBCASE("unpaired losses") {
        std::vector<double> x{-1, -2}, ref{-1, -1}, l(2), rw(2), dx(2), short_ref{-1};
        std::vector<std::uint8_t> des{1, 0};
        CHECK_NOTHROW(run_unpaired<al::kto>({}, x, ref, des, l, rw, dx));
        CHECK_THROWS_WITH_AS(run_unpaired<al::kto>({}, x, short_ref, des, l, rw, dx),
                             "unpaired_loss(kto): ref_logps has 1 entries but logps has 2", llm::error);
        CHECK_THROWS_WITH_AS(run_unpaired<al::kto>({.beta = 0}, x, ref, des, l, rw, dx),
                             "unpaired_loss(kto): beta = 0 must be > 0", llm::error);
        CHECK_THROWS_WITH_AS(run_unpaired<al::kto>({.kl = -0.1}, x, ref, des, l, rw, dx),
                             "unpaired_loss(kto): kl = -0.1 must be >= 0", llm::error);
        CHECK_THROWS_WITH_AS(run_unpaired<al::apo_zero_unpaired>({.undesirable_weight = -1}, x, ref, des, l, rw, dx),
                             "unpaired_loss(apo_zero_unpaired): undesirable_weight = -1 must be >= 0", llm::error);
        std::vector<double> kl{-1, -2}, ref_kl{-1.5, -1.5}, ref_kl_short{-1};
        std::vector<double> ref_lo{-3, -3};
        CHECK(al::kto_kl_estimate(as_cview(kl), as_cview(ref_lo)) == doctest::Approx(1.5));
        CHECK(al::kto_kl_estimate(as_cview(ref_lo), as_cview(kl)) == 0.0);  // -1.5 clamps to 0
        CHECK_THROWS_WITH_AS(al::kto_kl_estimate(as_cview(kl), as_cview(ref_kl_short)),
                             "kto_kl_estimate: kl_logps has 2 entries but ref_kl_logps has 1", llm::error);
    }
}

TEST_CASE_TEMPLATE("align losses: a paired loss defined outside llm:: runs through pair_loss and matches a plain loop",
                   T, float, double) {
    // log-probs in [-20, -1]; pairs whose hinge argument is within 0.01 of the kink are redrawn,
    // so float rounding cannot move a pair across it
    const user_losses::slic_config cfg{.beta = 0.5, .delta = 2.0};
    std::mt19937_64 rng(31);
    std::uniform_real_distribution<double> lp(-20.0, -1.0);
    const std::size_t n = 37;
    pair_buffers<T> b(n);
    std::size_t active = 0;
    while (b.c.size() < n) {
        const T c = static_cast<T>(lp(rng)), r = static_cast<T>(lp(rng)), rc = static_cast<T>(lp(rng)),
                rr = static_cast<T>(lp(rng));
        const double m = cfg.delta - cfg.beta * ((double(c) - double(rc)) - (double(r) - double(rr)));
        if (std::fabs(m) < 0.01) {
            continue;
        }
        active += m > 0 ? 1 : 0;
        b.c.push_back(c);
        b.r.push_back(r);
        b.rc.push_back(rc);
        b.rr.push_back(rr);
    }
    REQUIRE(active > 0);
    REQUIRE(active < n);  // both sides of the hinge are exercised
    const al::pair_stats s = al::pair_loss<user_losses::slic_hinge>(b.outputs(), b.inputs(), cfg);

    // the plain loop, in double on the same (T-rounded) inputs
    std::vector<double> losses, dc, dr, cr, rj;
    double loss = 0, accuracy = 0;
    const double slope = static_cast<double>(static_cast<T>(cfg.beta) / static_cast<T>(n));  // beta / n, rounded to T
    for (std::size_t i = 0; i < n; ++i) {
        const double x = double(b.c[i]) - double(b.rc[i]);
        const double y = double(b.r[i]) - double(b.rr[i]);
        const double m = cfg.delta - cfg.beta * (x - y);
        losses.push_back(std::max(m, 0.0));
        dc.push_back(m > 0 ? -slope : 0.0);
        dr.push_back(m > 0 ? slope : 0.0);
        cr.push_back(cfg.beta * x);
        rj.push_back(cfg.beta * y);
        loss += losses.back() / double(n);
        accuracy += (cfg.beta * x > cfg.beta * y ? 1.0 : 0.0) / double(n);
    }
    // double: the same operations in the same order, up to the summation of the mean (1e-12);
    // float: x - y carries 4 roundings of |log-prob| <= 20 at 2^-24, ~5e-6 absolute, against
    // losses and rewards of order 1: 1e-4 relative
    const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-4;
    const auto d = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
    CHECK(rel(s.loss, loss) <= tol);
    CHECK(rel_norm(d(b.losses), losses) <= tol);
    CHECK(d(b.dc) == dc);  // slopes are exactly 0 or +-beta / n: the active set must agree
    CHECK(d(b.dr) == dr);
    CHECK(rel_norm(d(b.cr), cr) <= tol);
    CHECK(rel_norm(d(b.rj), rj) <= tol);
    CHECK(s.accuracy == doctest::Approx(accuracy));

    // with delta = 1 it is the library's dpo_hinge (TRL's "hinge"): the same losses bit for bit,
    // slopes equal up to the rounding of beta / n (dpo_hinge scales by 1 / n): 1 ulp of T
    pair_buffers<T> lib = b;
    const al::pair_stats h = al::pair_loss<al::dpo_hinge>(lib.outputs(), lib.inputs(), {.beta = 0.5});
    const al::pair_stats u = al::pair_loss<user_losses::slic_hinge>(b.outputs(), b.inputs(), {.beta = 0.5, .delta = 1});
    const double ulp = std::numeric_limits<T>::epsilon();
    CHECK(h.loss == doctest::Approx(u.loss).epsilon(1e-12));
    CHECK(lib.losses == b.losses);
    CHECK(rel_norm(d(lib.dc), d(b.dc)) <= ulp);
    CHECK(rel_norm(d(lib.dr), d(b.dr)) <= ulp);

    // the driver's checks apply to a user's policy as to the library's
    auto bad = b;
    bad.rr.pop_back();
    CHECK_THROWS_WITH_AS(al::pair_loss<user_losses::slic_hinge>(bad.outputs(), bad.inputs(), cfg),
                         "pair_loss(slic_hinge): ref_rejected has 36 entries but chosen has 37", llm::error);
}

TEST_CASE("align losses: an unpaired loss defined outside llm:: runs through unpaired_loss") {
    const std::vector<double> x{-3, -5, -2}, ref{-4, -4, -4};
    const std::vector<std::uint8_t> des{1, 0, 1};
    std::vector<double> l(3), rw(3), dx(3);
    const al::kto_config c{.beta = 0.5, .desirable_weight = 2.0};
    const al::unpaired_stats s = run_unpaired<user_losses::squared_unpaired>(c, x, ref, des, l, rw, dx);
    double loss = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        const double e = 0.5 * (x[i] - ref[i]) - (des[i] != 0 ? 1.0 : -1.0);
        const double w = des[i] != 0 ? 2.0 : 1.0;
        CHECK(l[i] == doctest::Approx(w * e * e).epsilon(1e-15));
        CHECK(dx[i] == doctest::Approx(w * 2 * 0.5 * e / 3).epsilon(1e-15));
        loss += w * e * e / 3;
    }
    CHECK(s.loss == doctest::Approx(loss).epsilon(1e-15));
}
