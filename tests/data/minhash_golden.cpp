// SPDX-License-Identifier: Apache-2.0
// llm::data against datasketch, xxhash and mmh3 outputs recorded by tests/golden/data/make_minhash_golden.py.
#include <doctest/doctest.h>

#include <llm/data/hash.hpp>
#include <llm/data/lsh_params.hpp>
#include <llm/data/minhash.hpp>
#include <llm/data/signer.hpp>

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string unhex(const std::string& h) {
    if (h == "-") return {};
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
    return out;
}

std::vector<std::uint64_t> numbers(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::uint64_t> v;
    std::uint64_t x;
    while (in >> x) v.push_back(x);
    return v;
}

struct golden {
    std::vector<std::string> lines;
    golden() {
        std::ifstream in(std::string(LLM_SOURCE_DIR) + "/tests/golden/data/minhash_golden.txt");
        REQUIRE(in.good());
        for (std::string l; std::getline(in, l);) lines.push_back(l);
    }
};

const golden& data() {
    static const golden g;
    return g;
}

template <class Shingler, class Scheme>
void check_signatures(const std::string& scheme, const std::string& kind, Shingler sh, std::size_t n_checked_min) {
    const auto& lines = data().lines;
    std::map<int, std::string> docs;
    for (const auto& l : lines) {
        std::istringstream in(l);
        std::string tag;
        int id;
        std::string hex;
        if (in >> tag && tag == "doc" && in >> id >> hex) docs[id] = unhex(hex);
    }
    std::size_t checked = 0;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
        std::istringstream in(lines[i]);
        std::string tag, s, k;
        std::uint32_t seed;
        std::size_t num_perm;
        int doc;
        if (!(in >> tag >> s >> seed >> num_perm >> k >> doc) || tag != "sig" || s != scheme || k != kind) continue;
        const auto expected = numbers(lines[i + 1]);
        llm::data::signer<Shingler, llm::data::sha1_32, llm::data::minhash<Scheme>> signer(sh, {}, llm::data::minhash<Scheme>(num_perm, seed));
        std::vector<std::uint32_t> sig(num_perm, 0xDEADBEEF);
        llm::data::sign_scratch w;
        signer.sign(docs.at(doc), sig, w);
        INFO("scheme ", scheme, " seed ", seed, " num_perm ", num_perm, " ", kind, " doc ", doc);
        REQUIRE(expected.size() == num_perm);
        std::size_t mismatches = 0;
        for (std::size_t j = 0; j < num_perm; ++j) mismatches += sig[j] != expected[j];
        CHECK(mismatches == 0);
        ++checked;
    }
    CHECK(checked >= n_checked_min);
}

}  // namespace

TEST_CASE("shingle hashes equal sha1_hash32, xxhash.xxh64 and mmh3.hash64") {
    std::size_t sha = 0, xx = 0, mm = 0;
    for (const auto& l : data().lines) {
        std::istringstream in(l);
        std::string tag, hex;
        if (!(in >> tag >> hex) || (tag != "sha1_32" && tag != "xxh64" && tag != "murmur3")) continue;
        const std::string s = unhex(hex);
        if (tag == "sha1_32") {
            std::uint64_t v;
            in >> v;
            CHECK(llm::data::sha1_32{}(s) == v);
            ++sha;
        } else if (tag == "xxh64") {
            std::uint64_t seed, v;
            in >> seed >> v;
            CHECK(llm::data::xxhash64{seed}(s) == v);
            ++xx;
        } else if (tag == "murmur3") {
            std::uint64_t seed, h1, h2;
            in >> seed >> h1 >> h2;
            const auto [g1, g2] = llm::data::detail::murmur3_x64_128(s, static_cast<std::uint32_t>(seed));
            CHECK(g1 == h1);
            CHECK(g2 == h2);
            CHECK(llm::data::murmur3_64{static_cast<std::uint32_t>(seed)}(s) == h1);
            ++mm;
        }
    }
    CHECK(sha >= 12);
    CHECK(xx >= 24);
    CHECK(mm >= 30);
}

TEST_CASE("permutations equal datasketch's RandomState draws") {
    const auto& lines = data().lines;
    std::size_t checked = 0;
    for (std::size_t i = 0; i + 2 < lines.size(); ++i) {
        std::istringstream in(lines[i]);
        std::string tag, scheme;
        std::uint32_t seed;
        std::size_t num_perm;
        if (!(in >> tag >> scheme >> seed >> num_perm) || tag != "perm") continue;
        const auto a = numbers(lines[i + 1]), b = numbers(lines[i + 2]);
        INFO(scheme, " seed ", seed, " num_perm ", num_perm);
        if (scheme == "legacy") {
            llm::data::minhash<llm::data::mersenne61> mh(num_perm, seed);
            CHECK(std::vector<std::uint64_t>(mh.a().begin(), mh.a().end()) == a);
            CHECK(std::vector<std::uint64_t>(mh.b().begin(), mh.b().end()) == b);
        } else {
            llm::data::minhash<llm::data::affine32> mh(num_perm, seed);
            CHECK(std::vector<std::uint64_t>(mh.a().begin(), mh.a().end()) == a);
            CHECK(std::vector<std::uint64_t>(mh.b().begin(), mh.b().end()) == b);
        }
        ++checked;
    }
    CHECK(checked == 4);
}

TEST_CASE("signatures equal datasketch MinHash (legacy and affine32) on word and char shingles") {
    using llm::data::affine32;
    using llm::data::char_ngrams;
    using llm::data::mersenne61;
    using llm::data::word_ngrams;
    check_signatures<word_ngrams, mersenne61>("legacy", "word5", word_ngrams{.n = 5}, 12);
    check_signatures<word_ngrams, mersenne61>("legacy", "word3", word_ngrams{.n = 3}, 12);
    check_signatures<char_ngrams, mersenne61>("legacy", "char5", char_ngrams{.n = 5}, 12);
    check_signatures<word_ngrams, affine32>("affine32", "word5", word_ngrams{.n = 5}, 6);
    check_signatures<word_ngrams, affine32>("affine32", "word3", word_ngrams{.n = 3}, 6);
    check_signatures<char_ngrams, affine32>("affine32", "char5", char_ngrams{.n = 5}, 6);
}

TEST_CASE("optimal_params equals datasketch _optimal_param") {
    std::size_t checked = 0;
    for (const auto& l : data().lines) {
        std::istringstream in(l);
        std::string tag;
        double threshold, fpw, fnw;
        std::size_t num_perm, b, r;
        if (!(in >> tag >> threshold >> num_perm >> fpw >> fnw >> b >> r) || tag != "optimal") continue;
        INFO("threshold ", threshold, " num_perm ", num_perm, " weights ", fpw, ", ", fnw);
        const auto p = llm::data::optimal_params(threshold, num_perm, fpw, fnw);
        CHECK(p.bands == b);
        CHECK(p.rows == r);
        ++checked;
    }
    CHECK(checked == 24);
}
