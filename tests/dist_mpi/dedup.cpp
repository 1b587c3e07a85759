// SPDX-License-Identifier: Apache-2.0
// llm::dist::sharded_near_dedup on every rank of the job (2 in ctest) against llm::data::near_dedup
// run on the whole corpus in each process: every document gets the same cluster (so the kept set
// is identical), for both keep policies, with and without verification, for even shards, uneven
// ones, and a rank with no documents.
#include <llm/data/near_dedup.hpp>
#include <llm/data/signer.hpp>
#include <llm/data/synthetic.hpp>
#include <llm/dist/mpi.hpp>
#include <llm/dist/near_dedup.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

TEST_CASE("mpi dedup: sharded_near_dedup on all ranks equals near_dedup on the whole corpus") {
    llm::dist::mpi comm(MPI_COMM_WORLD, {.timeout = std::chrono::seconds(60)});
    const std::size_t n = 400, k = 128, p = comm.size(), me = comm.rank();
    std::vector<std::string> text;
    for (auto& d : llm::data::make_synthetic_corpus({.documents = n, .words_per_document = 120, .max_edit_rate = 0.06, .seed = 11}))
        text.push_back(std::move(d.text));
    for (std::size_t i = 0; i < n; i += 3) text[i] += " tail";
    llm::data::signer<> s;
    std::vector<std::uint32_t> sigs(n * k);
    const std::vector<std::string_view> views(text.begin(), text.end());
    s.sign_all(llm::parallel::sequential{}, views, sigs);
    std::vector<std::vector<std::uint64_t>> sets;
    llm::data::sign_scratch w;
    for (const auto& t : text) {
        s.shingle_hashes(t, w);
        std::vector<std::uint64_t> set(w.hashes.begin(), w.hashes.end());
        std::sort(set.begin(), set.end());
        set.erase(std::unique(set.begin(), set.end()), set.end());
        sets.push_back(std::move(set));
    }
    // Shard boundaries: even, uneven (rank r's share grows with r), and rank 0 empty.
    const std::vector<std::vector<std::size_t>> splits = [&] {
        std::vector<std::size_t> even(p + 1), uneven(p + 1), empty(p + 1);
        std::size_t weight = 0;
        for (std::size_t r = 0; r <= p; ++r) weight += r;
        for (std::size_t r = 0, acc = 0; r <= p; acc += r + 1, ++r) {
            even[r] = n * r / p;
            uneven[r] = r == p ? n : n * acc / (weight + p);
            empty[r] = r == 0 ? 0 : n * (r - 1) / std::max<std::size_t>(p - 1, 1);
        }
        empty[p] = n;
        return std::vector<std::vector<std::size_t>>{even, uneven, empty};
    }();
    for (const auto& split : splits) {
        for (const bool verify : {false, true}) {
            for (const auto keep : {llm::data::keep_policy::first, llm::data::keep_policy::longest}) {
                CAPTURE(split[me]);
                CAPTURE(verify);
                CAPTURE(static_cast<int>(keep));
                const llm::data::near_dedup_options o{.threshold = 0.7, .fn_weight = verify ? 0.9 : 0.5, .verify = verify, .keep = keep};
                llm::data::near_dedup one(k, o);
                for (std::size_t d = 0; d < n; ++d) {
                    if (d % 17 == 5) one.add_excluded(text[d].size());
                    else one.add(std::span<const std::uint32_t>(sigs).subspan(d * k, k), text[d].size(), sets[d]);
                }
                llm::dist::sharded_near_dedup sharded(k, o, comm);
                for (std::size_t d = split[me]; d < split[me + 1]; ++d) {
                    if (d % 17 == 5) sharded.add_excluded(text[d].size());
                    else sharded.add(std::span<const std::uint32_t>(sigs).subspan(d * k, k), text[d].size(), sets[d]);
                }
                sharded.run();
                std::size_t same = 0;
                std::uint64_t kept = 0, kept_one = 0;
                for (std::size_t d = split[me]; d < split[me + 1]; ++d) {
                    same += sharded.cluster_of(d - split[me]) == one.cluster_of(static_cast<std::uint32_t>(d));
                    kept += sharded.kept(d - split[me]);
                }
                for (std::uint32_t d = 0; d < n; ++d) kept_one += one.kept(d);
                CHECK(same == split[me + 1] - split[me]);
                llm::dist::all_reduce(std::span<std::uint64_t>(&kept, 1), llm::dist::reduce_op::sum, comm);
                CHECK(kept == kept_one);
                CHECK(kept_one < n - 40);  // duplicates exist: the comparison is not vacuous
                CHECK(sharded.candidate_pairs() == one.candidate_pairs());
                CHECK(sharded.global_size() == n);
            }
        }
    }
}
