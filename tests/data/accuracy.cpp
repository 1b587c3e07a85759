// SPDX-License-Identifier: Apache-2.0
// Accuracy of MinHash LSH dedup on a corpus with planted near-duplicates: candidate recall
// against exact Jaccard, and cluster precision and recall against the planted clusters, each
// checked against a bound derived from the LSH banding in use.
#include <doctest/doctest.h>

#include <llm/data/lsh.hpp>
#include <llm/data/minhash.hpp>
#include <llm/data/near_dedup.hpp>
#include <llm/data/oph.hpp>
#include <llm/data/signer.hpp>
#include <llm/data/synthetic.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

struct corpus_truth {
    std::vector<std::vector<std::uint64_t>> sets;  // sorted distinct shingle hashes per document
    std::vector<std::vector<double>> jaccard;      // exact Jaccard of every pair (i < j in jaccard[j][i])
    std::vector<std::size_t> source;               // planted cluster: the original each document copies
};

const corpus_truth& truth() {
    static const corpus_truth t = [] {
        // 800 documents of ~330 words; 60% are copies of an original with each word replaced
        // with probability U[0, 0.12]: word 5-gram Jaccard of a copy pair spans ~0.35..1.
        const auto docs = llm::data::make_synthetic_corpus({.documents = 800, .duplicate_fraction = 0.6, .max_edit_rate = 0.12, .seed = 7});
        corpus_truth c;
        const llm::data::signer<> s;
        llm::data::sign_scratch w;
        for (const auto& d : docs) {
            s.shingle_hashes(d.text, w);
            auto set = w.hashes;
            std::sort(set.begin(), set.end());
            set.erase(std::unique(set.begin(), set.end()), set.end());
            c.sets.push_back(std::move(set));
            c.source.push_back(d.source);
        }
        c.jaccard.resize(docs.size());
        for (std::size_t j = 0; j < docs.size(); ++j) {
            for (std::size_t i = 0; i < j; ++i) c.jaccard[j].push_back(llm::data::exact_jaccard(c.sets[i], c.sets[j]));
        }
        return c;
    }();
    return t;
}

double jaccard_of(const corpus_truth& t, std::size_t a, std::size_t b) { return a < b ? t.jaccard[b][a] : t.jaccard[a][b]; }

// Probability that two documents of Jaccard s share at least one of b bands of r rows: each
// signature position agrees with probability s (exact for k-permutation MinHash; for OPH with
// densification per bin, with weak dependence between bins), so 1 - (1 - s^r)^b.
double candidate_probability(double s, llm::data::lsh_params p) {
    return 1 - std::pow(1 - std::pow(s, static_cast<double>(p.rows)), static_cast<double>(p.bands));
}

// Deviation that a sum of independent Bernoulli variables with total variance v exceeds (on
// either side of its mean) with probability <= 1e-6 by Bernstein's inequality:
// P(|X - mu| >= d) <= exp(-d^2 / (2 (v + d / 3))) = 1e-6 for d = sqrt(2 v L) + 2 L / 3, L = ln 1e6.
// Pairs share the hash functions, so independence is an approximation; the tail is generous.
double bernstein_slack(double variance) {
    const double L = std::log(1e6);
    return std::sqrt(2 * variance * L) + 2 * L / 3;
}

struct cluster_figures {
    std::size_t copies_at = 0, copies_missed = 0;  // copies with J(copy, original) >= threshold; not put with it
    double expected_missed = 0, missed_variance = 0;
    std::size_t pairs = 0, pairs_planted = 0, planted = 0, planted_found = 0;  // same-cluster pairs; planted pairs
};

// Compares the clusters of `nd` with the planted ones. A copy c whose exact Jaccard with its
// original o is >= threshold is joined to o whenever the two share a band (verification, when
// on, accepts the pair); other edges only add links, so P(c missed) <= 1 - candidate_probability(J).
cluster_figures measure_clusters(llm::data::near_dedup& nd, const corpus_truth& t, double threshold) {
    cluster_figures f;
    const std::size_t n = t.sets.size();
    for (std::size_t d = 0; d < n; ++d) {
        const std::size_t o = t.source[d];
        if (o == d) continue;
        const double jac = jaccard_of(t, o, d);
        if (jac < threshold) continue;
        const double miss = 1 - candidate_probability(jac, nd.params());
        ++f.copies_at;
        f.copies_missed += nd.cluster_of(static_cast<std::uint32_t>(d)) != nd.cluster_of(static_cast<std::uint32_t>(o));
        f.expected_missed += miss;
        f.missed_variance += miss * (1 - miss);
    }
    for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t i = 0; i < j; ++i) {
            const bool same = nd.cluster_of(static_cast<std::uint32_t>(i)) == nd.cluster_of(static_cast<std::uint32_t>(j));
            const bool planted = t.source[i] == t.source[j];
            f.pairs += same;
            f.pairs_planted += same && planted;
            f.planted += planted;
            f.planted_found += same && planted;
        }
    }
    return f;
}

// Connected components of the graph with an edge for every pair of exact Jaccard >= threshold
// (depth-first search): a verified cluster can only join documents of one component.
std::vector<std::size_t> threshold_components(const corpus_truth& t, double threshold) {
    const std::size_t n = t.sets.size(), unseen = n;
    std::vector<std::size_t> comp(n, unseen), stack;
    for (std::size_t root = 0; root < n; ++root) {
        if (comp[root] != unseen) continue;
        comp[root] = root;
        stack.assign(1, root);
        while (!stack.empty()) {
            const std::size_t a = stack.back();
            stack.pop_back();
            for (std::size_t b = 0; b < n; ++b) {
                if (b != a && comp[b] == unseen && jaccard_of(t, a, b) >= threshold) {
                    comp[b] = root;
                    stack.push_back(b);
                }
            }
        }
    }
    return comp;
}

double ratio(std::size_t a, std::size_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 1.0; }

}  // namespace

// Targets from issue 6: recall >= 0.95 of candidate pairs for pairs with J >= threshold + 0.05.
// Cluster precision and recall are measured against the planted clusters (which document copies
// which original) with bounds derived from the banding (b, r) in use:
// - recall: a copy with J >= threshold misses its original's cluster with probability at most
//   1 - P(J), P(J) = 1 - (1 - J^r)^b, so misses <= sum(1 - P(J)) + Bernstein slack;
// - with verification an edge needs exact J >= threshold, so a cluster stays inside one
//   component of the J >= threshold graph, and if no pair across
//   planted clusters reaches the threshold (checked on the truth) no cluster may mix them:
//   precision must be exactly 1;
// - precision without verification: a cross pair becomes an edge with probability P(J), so
//   P(any wrong edge) <= lambda = sum over cross pairs of P(J); with lambda <= 1e-3 no wrong
//   pair may appear (the chance this check fails on a correct library is <= 1e-3).
TEST_CASE_TEMPLATE("planted near-duplicates: candidate recall, cluster precision and recall at 0.5/0.7/0.8/0.9", K,
                   llm::data::minhash<llm::data::mersenne61>, llm::data::minhash<llm::data::affine32>, llm::data::one_permutation) {
    const auto& t = truth();
    const std::size_t n = t.sets.size(), k = 128;
    const llm::data::signer<llm::data::word_ngrams, llm::data::xxhash64, K> s({}, {}, K(k, 1));
    std::vector<std::uint32_t> sigs(n * k);
    for (std::size_t d = 0; d < n; ++d) {
        s.sketching().sketch(t.sets[d], std::span(sigs).subspan(d * k, k));
    }
    double cross_max = 0;  // largest exact Jaccard between documents of different planted clusters
    for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t i = 0; i < j; ++i) {
            if (t.source[i] != t.source[j]) cross_max = std::max(cross_max, t.jaccard[j][i]);
        }
    }
    for (const double threshold : {0.5, 0.7, 0.8, 0.9}) {
        CAPTURE(threshold);
        // With verification, false negatives weigh 0.9 in the (bands, rows) choice (see near_dedup_options).
        const llm::data::lsh_params params = llm::data::optimal_params(threshold, k, 0.1, 0.9);
        llm::data::lsh_index index(k, params);
        llm::data::near_dedup verified(k, {.threshold = threshold, .fn_weight = 0.9, .verify = true, .max_per_bucket = 1000});
        llm::data::near_dedup unverified(k, {.threshold = threshold, .fn_weight = 0.9, .verify = false});
        REQUIRE(verified.params() == params);
        REQUIRE(unverified.params() == params);
        std::size_t truth_pairs = 0, truth_found = 0, candidates = 0, candidates_true = 0;
        double expected_found = 0, found_variance = 0;
        std::vector<std::uint8_t> is_candidate;
        std::vector<std::uint32_t> out;
        for (std::size_t j = 0; j < n; ++j) {
            const auto sig = std::span<const std::uint32_t>(sigs).subspan(j * k, k);
            index.query_and_insert(sig, out);
            verified.add(sig, 0, t.sets[j]);
            unverified.add(sig, 0);
            is_candidate.assign(j, 0);
            for (const auto i : out) is_candidate[i] = 1;
            for (std::size_t i = 0; i < j; ++i) {
                const double jac = t.jaccard[j][i];
                if (jac >= threshold + 0.05) {
                    const double p = candidate_probability(jac, params);
                    ++truth_pairs;
                    truth_found += is_candidate[i];
                    expected_found += p;
                    found_variance += p * (1 - p);
                }
                candidates += is_candidate[i];
                candidates_true += is_candidate[i] && jac >= threshold;
            }
        }
        double lambda = 0;  // expected candidate pairs across planted clusters
        for (std::size_t j = 0; j < n; ++j) {
            for (std::size_t i = 0; i < j; ++i) {
                if (t.source[i] != t.source[j]) lambda += candidate_probability(t.jaccard[j][i], params);
            }
        }
        const auto v = measure_clusters(verified, t, threshold);
        const auto u = measure_clusters(unverified, t, threshold);
        const double recall = ratio(truth_found, truth_pairs);
        MESSAGE("threshold ", threshold, ": bands x rows ", params.bands, " x ", params.rows, "; pairs with J >= t+0.05: ",
                truth_pairs, ", candidate recall ", recall, " (expected ", expected_found / static_cast<double>(truth_pairs),
                "), candidate precision ", ratio(candidates_true, candidates), "; copies with J >= t: ", v.copies_at,
                ", missed verified ", v.copies_missed, " / unverified ", u.copies_missed, " (expected <= ", v.expected_missed,
                "); cluster pair precision verified ", ratio(v.pairs_planted, v.pairs), " / unverified ",
                ratio(u.pairs_planted, u.pairs), " (max cross-cluster J ", cross_max, ", expected wrong edges unverified ",
                lambda, "); planted pair recall verified ", ratio(v.planted_found, v.planted), " / unverified ",
                ratio(u.planted_found, u.planted));
        CHECK(truth_pairs >= 20);  // the corpus really tests this threshold
        CHECK(v.copies_at >= 20);
        CHECK(recall >= 0.95);
        CHECK(static_cast<double>(truth_found) >= expected_found - bernstein_slack(found_variance));
        for (const auto* f : {&v, &u}) {
            CHECK(static_cast<double>(f->copies_missed) <= f->expected_missed + bernstein_slack(f->missed_variance));
            CHECK(f->pairs >= f->copies_at - f->copies_missed);  // clusters really formed
        }
        // Verification: every edge has exact J >= threshold, so no cluster spans two components
        // of the J >= threshold graph (candidate precision is ~0.4, so skipping it would show).
        const auto comp = threshold_components(t, threshold);
        std::size_t spanning = 0;
        for (std::size_t j = 0; j < n; ++j) {
            for (std::size_t i = 0; i < j; ++i) {
                spanning += verified.cluster_of(static_cast<std::uint32_t>(i)) == verified.cluster_of(static_cast<std::uint32_t>(j)) &&
                            comp[i] != comp[j];
            }
        }
        CHECK(spanning == 0);
        CHECK(verified.rejected_pairs() > 0);
        REQUIRE(cross_max < threshold);  // so verification admits no cross-cluster edge
        CHECK(v.pairs_planted == v.pairs);
        REQUIRE(lambda <= 1e-3);
        CHECK(u.pairs_planted == u.pairs);
    }
}
