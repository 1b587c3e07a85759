// SPDX-License-Identifier: Apache-2.0
// LSH index, union-find, near-dedup clustering, exact dedup, Bloom filter, quality rules, JSON reader.
#include <doctest/doctest.h>

#include <llm/data/bloom.hpp>
#include <llm/io/jsonl.hpp>
#include <llm/data/exact.hpp>
#include <llm/data/lsh.hpp>
#include <llm/data/near_dedup.hpp>
#include <llm/data/quality.hpp>
#include <llm/data/union_find.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace {
std::vector<std::uint32_t> random_signature(std::mt19937& rng, std::size_t k) {
    std::vector<std::uint32_t> s(k);
    for (auto& v : s) v = rng();
    return s;
}
}  // namespace

TEST_CASE("lsh_index finds documents sharing a band, and only those") {
    std::mt19937 rng(1);
    llm::data::lsh_index idx(16, {4, 4});
    const auto a = random_signature(rng, 16);
    auto b = random_signature(rng, 16);
    std::copy(a.begin() + 8, a.begin() + 12, b.begin() + 8);  // b shares band 2 with a
    const auto c = random_signature(rng, 16);
    std::vector<std::uint32_t> out{99};
    CHECK(idx.query_and_insert(a, out) == 0);
    CHECK(out.empty());
    CHECK(idx.query_and_insert(c, out) == 1);
    CHECK(out.empty());
    CHECK(idx.query_and_insert(b, out) == 2);
    CHECK(out == std::vector<std::uint32_t>{0});
    idx.query(a, out);
    CHECK(out == std::vector<std::uint32_t>{0, 2});
    // Grow the tables past their first size; every document still finds itself.
    std::vector<std::vector<std::uint32_t>> many;
    for (int i = 0; i < 3000; ++i) many.push_back(random_signature(rng, 16)), idx.insert(many.back());
    for (int i = 0; i < 3000; i += 97) {
        idx.query(many[i], out);
        CHECK(std::find(out.begin(), out.end(), static_cast<std::uint32_t>(i + 3)) != out.end());
    }
    CHECK_THROWS_WITH_AS(llm::data::lsh_index(16, {5, 4}), "lsh_index: bands = 5, rows = 4 need bands, rows >= 1 and bands * rows <= num_perm = 16", llm::error);
    CHECK_THROWS_WITH_AS(idx.insert(std::vector<std::uint32_t>(15)), "lsh_index::insert: signature has 15 values, index expects 16", llm::error);
}

namespace {

// The LSH candidates by brute force from the definition: the earlier documents whose rows of
// some band equal the query's, comparing the rows themselves (no hashing, no tables), keeping
// per band the `cap` newest such documents; ascending, without repeats.
std::vector<std::uint32_t> lsh_reference(const std::vector<std::vector<std::uint32_t>>& docs, const std::vector<std::uint32_t>& q,
                                         llm::data::lsh_params p, std::size_t cap) {
    std::vector<std::uint32_t> out;
    for (std::size_t band = 0; band < p.bands; ++band) {
        const auto first = static_cast<std::ptrdiff_t>(band * p.rows), last = first + static_cast<std::ptrdiff_t>(p.rows);
        std::size_t taken = 0;
        for (std::size_t d = docs.size(); d-- > 0 && taken < cap;) {
            if (std::equal(q.begin() + first, q.begin() + last, docs[d].begin() + first)) {
                out.push_back(static_cast<std::uint32_t>(d));
                ++taken;
            }
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace

TEST_CASE("lsh_index equals the brute-force band comparison on random signatures") {
    std::mt19937 rng(2);
    constexpr std::size_t all = std::numeric_limits<std::size_t>::max();
    // (num_perm, bands, rows, documents): one band, one row, unused tail values, table growth past 512 keys.
    for (const auto& shape : {std::tuple<std::size_t, std::size_t, std::size_t, std::size_t>{1, 1, 1, 300},
                              {7, 3, 2, 700}, {16, 4, 4, 2000}, {65, 9, 7, 1500}, {128, 32, 4, 1200}}) {
        // Named copies, not a structured binding: INFO captures them in a lambda (clang 14 cannot).
        const std::size_t k = std::get<0>(shape), bands = std::get<1>(shape), rows = std::get<2>(shape), n = std::get<3>(shape);
        for (const std::size_t cap : {all, std::size_t{1}, std::size_t{3}}) {
            const llm::data::lsh_params p{bands, rows};
            llm::data::lsh_index idx(k, p);
            std::vector<std::vector<std::uint32_t>> docs;
            std::vector<std::uint32_t> got{12345}, q;
            for (std::size_t d = 0; d < n; ++d) {
                // Each band copies an earlier document's band (a collision), or takes values from a
                // tiny alphabet (chance collisions) or from all of 2^32 (new keys that grow the tables).
                std::vector<std::uint32_t> sig(k);
                for (auto& v : sig) v = rng();
                for (std::size_t band = 0; band < bands; ++band) {
                    const auto at = sig.begin() + static_cast<std::ptrdiff_t>(band * rows);
                    const std::uint32_t kind = rng() % 4;
                    if (kind == 0 && d > 0) {
                        const auto& src = docs[rng() % d];
                        std::copy(src.begin() + static_cast<std::ptrdiff_t>(band * rows),
                                  src.begin() + static_cast<std::ptrdiff_t>((band + 1) * rows), at);
                    } else if (kind == 1) {
                        for (std::size_t r = 0; r < rows; ++r) at[static_cast<std::ptrdiff_t>(r)] = rng() % 2;
                    }
                }
                INFO("num_perm ", k, " bands ", bands, " rows ", rows, " cap ", cap, " document ", d);
                if (d % 5 == 0) {  // query alone, then query_and_insert of the same signature
                    idx.query(sig, got, cap);
                    CHECK(got == lsh_reference(docs, sig, p, cap));
                    REQUIRE(idx.size() == d);
                }
                got.assign(1, 12345);
                if (d % 7 == 3) {
                    CHECK(idx.insert(sig) == d);
                } else {
                    CHECK(idx.query_and_insert(sig, got, cap) == d);
                    CHECK(got == lsh_reference(docs, sig, p, cap));
                }
                docs.push_back(std::move(sig));
            }
            // Queries of random earlier documents (each finds itself and its band mates).
            for (int t = 0; t < 50; ++t) {
                q = docs[rng() % n];
                idx.query(q, got, cap);
                CHECK(got == lsh_reference(docs, q, p, cap));
            }
        }
    }
}

TEST_CASE("union_find merges transitively") {
    llm::data::union_find uf(6);
    uf.unite(0, 1);
    uf.unite(2, 3);
    uf.unite(1, 3);
    CHECK(uf.find(0) == uf.find(2));
    CHECK(uf.find(4) != uf.find(0));
    CHECK(uf.add() == 6);
    CHECK_THROWS_AS(uf.find(7), llm::error);
}

TEST_CASE("near_dedup: clusters, keep first or longest, verification rejects false candidates") {
    std::mt19937 rng(2);
    const auto a = random_signature(rng, 32), c = random_signature(rng, 32);
    for (const auto keep : {llm::data::keep_policy::first, llm::data::keep_policy::longest}) {
        llm::data::near_dedup nd(32, {.threshold = 0.8, .params = {8, 4}, .keep = keep});
        nd.add(a, 10);
        nd.add(c, 10);
        nd.add_excluded(1000);
        nd.add(a, 50);  // an exact copy of doc 0, longer
        CHECK(nd.cluster_of(1) == 1);
        CHECK(nd.cluster_of(2) == 2);
        CHECK(nd.cluster_of(0) == nd.cluster_of(3));
        CHECK(nd.cluster_of(0) == (keep == llm::data::keep_policy::first ? 0u : 3u));
    }
    // Same signatures but disjoint shingle sets: verification keeps them apart.
    llm::data::near_dedup verified(32, {.threshold = 0.8, .params = {8, 4}, .verify = true});
    const std::vector<std::uint64_t> s1{1, 2, 3}, s2{4, 5, 6}, s3{1, 2, 3};
    verified.add(a, 1, s1);
    verified.add(a, 1, s2);
    verified.add(a, 1, s3);
    CHECK(verified.cluster_of(1) == 1);
    CHECK(verified.cluster_of(2) == 0);
    CHECK(verified.rejected_pairs() >= 1);
    const std::vector<std::uint64_t> unsorted{3, 1};
    CHECK_THROWS_AS(verified.add(a, 1, unsorted), llm::error);
    CHECK_THROWS_AS(llm::data::near_dedup(32, {.threshold = 1.5}), llm::error);
    CHECK(llm::data::exact_jaccard(s1, s2) == 0.0);
    CHECK(llm::data::exact_jaccard(s1, s3) == 1.0);
}

TEST_CASE("exact_dedup and line_dedup") {
    llm::data::exact_dedup ex;
    CHECK(ex.insert("a doc"));
    CHECK(ex.insert("a doc!"));
    CHECK_FALSE(ex.insert("a doc"));
    llm::data::line_dedup lines;
    std::string out;
    CHECK(lines.filter("Header line\nbody one\n\n", out) == 0);
    CHECK(out == "Header line\nbody one\n\n");
    CHECK(lines.filter("HEADER   line\nbody two\n\n", out) == 1);
    CHECK(out == "body two\n\n");
}

TEST_CASE("bloom_filter: no false negatives, false-positive rate near the target") {
    llm::data::bloom_filter bf(10000, 0.01);
    CHECK(bf.probes() == 7);
    for (int i = 0; i < 10000; ++i) bf.insert("item" + std::to_string(i));
    for (int i = 0; i < 10000; ++i) CHECK(bf.contains("item" + std::to_string(i)));
    int fp = 0;
    for (int i = 0; i < 20000; ++i) fp += bf.contains("other" + std::to_string(i));
    // Expected (1 - e^{-kn/m})^k = 0.0100 of 20000 = 200, standard deviation 14: 4 of them either
    // side. The lower side catches a filter larger (or with more probes) than asked for.
    CHECK(fp < 260);
    CHECK(fp > 140);
    CHECK_THROWS_AS(llm::data::bloom_filter(10, 0.0), llm::error);
    CHECK_THROWS_AS(llm::data::bloom_filter(0, 0.1), llm::error);
}

TEST_CASE("quality rules report why a document is dropped") {
    // Varied English-like prose: random common words, sentences of 8 words, 3 per line.
    static const char* const vocab[] = {"the", "cat", "sat", "with", "dog", "and", "that", "was", "fine", "today", "river",
                                        "house", "green", "walked", "under", "bright", "stars", "people", "often", "quiet",
                                        "morning", "of", "to", "have", "be", "garden", "winter", "letters", "window", "slowly"};
    std::mt19937 rng(3);
    std::string prose;
    for (int line = 0; line < 8; ++line) {
        for (int sentence = 0; sentence < 3; ++sentence) {
            for (int w = 0; w < 8; ++w) prose += std::string(vocab[rng() % 30]) + (w == 7 ? ". " : " ");
        }
        prose.back() = '\n';
    }
    CHECK(llm::data::c4_rules{}.check(llm::data::quality_input(prose)) == nullptr);
    CHECK(llm::data::gopher_rules{}.check(llm::data::quality_input(prose)) == nullptr);
    CHECK(std::string(llm::data::c4_rules{}.check(llm::data::quality_input(prose + "int f() { return 1; }\n"))) == "c4: curly bracket");
    CHECK(std::string(llm::data::c4_rules{}.check(llm::data::quality_input(prose + "Lorem Ipsum dolor.\n"))) == "c4: lorem ipsum");
    CHECK(std::string(llm::data::c4_rules{}.check(llm::data::quality_input("One line only.\nno punctuation here\n")))
              .starts_with("c4: fewer than 5 sentences"));
    CHECK(std::string(llm::data::gopher_rules{}.check(llm::data::quality_input("too short"))) == "gopher: fewer than 50 words");
    std::string repeated;
    for (int i = 0; i < 10; ++i) repeated += "the same line with the words of the day and more words\n";
    CHECK(std::string(llm::data::gopher_rules{}.check(llm::data::quality_input(repeated))) == "gopher: duplicate lines");
    std::string hashes;
    for (int i = 0; i < 60; ++i) hashes += "#tag the ";
    CHECK(std::string(llm::data::gopher_rules{}.check(llm::data::quality_input(hashes))) == "gopher: symbol-to-word ratio above 0.1");
    const auto q = llm::data::quality_pipeline::parse("c4,gopher");
    CHECK(q.check(prose).empty());
    CHECK(q.check("x") == "c4: fewer than 5 sentences in lines ending in terminal punctuation with >= 3 words, no javascript");
    CHECK_THROWS_WITH_AS(llm::data::quality_pipeline::parse("c4,fineweb"), "quality_pipeline::parse: unknown filter 'fineweb' (known: c4, gopher)", llm::error);
}

TEST_CASE("read_jsonl_record: fields, escapes, and hostile input") {
    llm::io::jsonl_record r;
    llm::io::read_jsonl_record(R"( {"a": [1, {"b": null}], "id": 12.5e3, "text": "x\"\u00e9\ud83d\ude00\n", "z": true} )", "text", "id", r);
    CHECK(r.has_text);
    CHECK(r.text == "x\"\xC3\xA9\xF0\x9F\x98\x80\n");
    CHECK(r.id == "12.5e3");
    llm::io::read_jsonl_record(R"({"id": "a\tb"})", "text", "id", r);
    CHECK_FALSE(r.has_text);
    CHECK(r.id == "a\tb");
    for (const char* bad : {"", "[]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}", "{\"a\":\"\\x\"}", "{\"a\":\"\xC3\"}",
                            "{\"a\":\"\xED\xA0\x80\"}", "{\"a\":\"\\udc00\"}", "{\"a\":1} x", "{\"a\":tru}", "{\"a\":\"\x01\"}", "{\"a\":-}"}) {
        INFO(bad);
        CHECK_THROWS_AS(llm::io::read_jsonl_record(bad, "text", "id", r), llm::error);
    }
    // The object is level 0 and its members level 1, as in parse_json: the 257th '[' (offset
    // 5 + 256) is the first value deeper than 256 levels.
    std::string deep(300, '[');
    CHECK_THROWS_WITH_AS(llm::io::read_jsonl_record("{\"a\":" + deep, "text", "id", r),
                         "jsonl record:1:262 (offset 261): nesting deeper than 256 levels", llm::error);
}
