// SPDX-License-Identifier: Apache-2.0
// llm::dist::sharded_near_dedup on one rank (single_process) against llm::data::near_dedup on the
// same corpus: the same cluster for every document, for both keep policies, with and without
// verification, with excluded documents; and its misuse errors. (tests/dist_mpi/dedup.cpp runs the
// same comparison on 2 and 3 ranks under mpirun.)
#include <llm/data/near_dedup.hpp>
#include <llm/data/signer.hpp>
#include <llm/data/synthetic.hpp>
#include <llm/dist/near_dedup.hpp>
#include <llm/dist/single_process.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace {

struct corpus {
    std::vector<std::string> text;
    std::vector<std::uint32_t> sigs;
    std::vector<std::vector<std::uint64_t>> sets;
};

corpus make_corpus(std::size_t n) {
    corpus c;
    for (auto& d : llm::data::make_synthetic_corpus({.documents = n, .words_per_document = 120, .max_edit_rate = 0.06, .seed = 7})) c.text.push_back(std::move(d.text));
    // Lengths differ among copies, so keep_policy::longest picks other documents than first.
    for (std::size_t i = 0; i < n; i += 3) c.text[i] += " tail";
    llm::data::signer<> s;
    c.sigs.resize(n * s.num_perm());
    std::vector<std::string_view> views(c.text.begin(), c.text.end());
    s.sign_all(llm::parallel::sequential{}, views, c.sigs);
    llm::data::sign_scratch w;
    for (const auto& t : c.text) {
        s.shingle_hashes(t, w);
        std::vector<std::uint64_t> set(w.hashes.begin(), w.hashes.end());
        std::sort(set.begin(), set.end());
        set.erase(std::unique(set.begin(), set.end()), set.end());
        c.sets.push_back(std::move(set));
    }
    return c;
}

}  // namespace

TEST_CASE("dist dedup: sharded_near_dedup on single_process gives near_dedup's clusters (keep first / longest, verify or not, excluded documents)") {
    const corpus c = make_corpus(300);
    const std::size_t k = 128;
    std::vector<std::uint64_t> first_keepers, longest_keepers;
    for (const bool verify : {false, true}) {
        for (const auto keep : {llm::data::keep_policy::first, llm::data::keep_policy::longest}) {
            CAPTURE(verify);
            CAPTURE(static_cast<int>(keep));
            const llm::data::near_dedup_options o{.threshold = 0.7, .fn_weight = verify ? 0.9 : 0.5, .verify = verify, .keep = keep};
            llm::data::near_dedup one(k, o);
            llm::dist::single_process comm;
            llm::dist::sharded_near_dedup sharded(k, o, comm);
            for (std::size_t d = 0; d < c.text.size(); ++d) {
                const std::span<const std::uint32_t> sig(c.sigs.data() + d * k, k);
                if (d % 17 == 5) {  // excluded (e.g. dropped by a quality filter)
                    one.add_excluded(c.text[d].size());
                    sharded.add_excluded(c.text[d].size());
                } else {
                    one.add(sig, c.text[d].size(), c.sets[d]);
                    sharded.add(sig, c.text[d].size(), c.sets[d]);
                }
            }
            sharded.run();
            std::size_t same = 0, kept = 0;
            for (std::uint32_t d = 0; d < c.text.size(); ++d) {
                same += sharded.cluster_of(d) == one.cluster_of(d);
                kept += one.kept(d);
            }
            CHECK(same == c.text.size());
            CHECK(kept < c.text.size() - 40);  // the corpus has duplicates: the comparison is not vacuous
            if (verify) CHECK(sharded.rejected_pairs() > 0);  // and verification rejects some candidates
            CHECK(sharded.candidate_pairs() == one.candidate_pairs());
            CHECK(sharded.global_size() == c.text.size());
            for (std::uint32_t d = 0; d < c.text.size() && !verify; ++d)
                (keep == llm::data::keep_policy::first ? first_keepers : longest_keepers).push_back(sharded.cluster_of(d));
        }
    }
    CHECK(first_keepers != longest_keepers);  // the keep policies pick different documents here
}

TEST_CASE("dist dedup: sharded_near_dedup misuse is llm::error naming the call") {
    llm::dist::single_process comm;
    llm::dist::sharded_near_dedup nd(16, {.threshold = 0.8}, comm);
    const std::vector<std::uint32_t> short_sig(8);
    CHECK_THROWS_WITH_AS(nd.add(short_sig, 1), "sharded_near_dedup::add: signature has 8 values, expected 16", llm::error);
    CHECK_THROWS_WITH_AS((void)nd.cluster_of(0), "sharded_near_dedup::cluster_of: call run() first", llm::error);
    nd.run();
    CHECK_THROWS_WITH_AS(nd.run(), "sharded_near_dedup::run: called twice", llm::error);
    CHECK_THROWS_WITH_AS(nd.add_excluded(), "sharded_near_dedup::add_excluded: run() was already called", llm::error);
    CHECK_THROWS_AS(llm::dist::sharded_near_dedup(16, {.threshold = 1.5}, comm), llm::error);
}
