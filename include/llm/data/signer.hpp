// SPDX-License-Identifier: Apache-2.0
// Document -> MinHash signature pipeline (shingle, hash, sketch) and its multi-threaded batch form.
#pragma once

#include <llm/core/error.hpp>
#include <llm/data/hash.hpp>
#include <llm/data/minhash.hpp>
#include <llm/data/shingle.hpp>
#include <llm/data/sketch.hpp>
#include <llm/parallel/parallel_for.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llm::data {

/// Per-thread working memory of a signer (reused across documents, so signing allocates
/// nothing once warm).
struct sign_scratch {
    std::string text;                   ///< normalised text when normalisation had to copy
    std::vector<std::uint64_t> hashes;  ///< shingle hashes of the current document
};

/// Turns documents into signatures: shingles from `Shingler`, each hashed by `Hash`, the
/// set sketched by `Sketcher`. Defaults: lowercased word 5-grams, XXH64, 128 datasketch
/// "legacy" permutations with seed 1. With `sha1_32` hashes the signatures equal
/// datasketch's `MinHash(num_perm, seed, scheme="legacy")` fed the same shingles.
///   Shingler: an llm::data::shingler (word_ngrams, char_ngrams).
///   Hash:     an llm::data::shingle_hash (xxhash64, murmur3_64, sha1_32).
///   Sketcher: an llm::data::sketcher (minhash<mersenne61>, minhash<affine32>, one_permutation).
/// Example: `llm::data::signer<> s; llm::data::sign_scratch w; s.sign(doc, sig, w);`
template <class Shingler = word_ngrams, class Hash = xxhash64, class Sketcher = minhash<mersenne61>>
class signer {
    static_assert(shingler<Shingler>, "signer: Shingler must satisfy llm::data::shingler");
    static_assert(shingle_hash<Hash>, "signer: Hash must satisfy llm::data::shingle_hash");
    static_assert(sketcher<Sketcher>, "signer: Sketcher must satisfy llm::data::sketcher");

public:
    signer() : sketcher_(128, 1) {}
    /// Uses the given shingler, hash and sketcher (the default constructor: defaults, 128 permutations, seed 1).
    signer(Shingler sh, Hash h, Sketcher k) : shingler_(sh), hash_(h), sketcher_(std::move(k)) {}

    std::size_t num_perm() const noexcept { return sketcher_.num_perm(); }  ///< signature length
    const Shingler& shingling() const noexcept { return shingler_; }        ///< the shingler
    const Sketcher& sketching() const noexcept { return sketcher_; }        ///< the sketcher

    /// The hashes of doc's shingles, in document order with repeats, into w.hashes.
    void shingle_hashes(std::string_view doc, sign_scratch& w) const {
        w.hashes.clear();
        shingler_.for_each(doc, w.text, [&](std::string_view s) { w.hashes.push_back(hash_(s)); });
    }

    /// The signature of doc into out (out.size() == num_perm()).
    void sign(std::string_view doc, std::span<std::uint32_t> out, sign_scratch& w) const {
        shingle_hashes(doc, w);
        sketcher_.sketch(w.hashes, out);
    }

    /// Signatures of docs[i] into rows out[i * num_perm(), (i + 1) * num_perm()) using the
    /// threads of `pol` (an llm::parallel policy); deterministic whatever the thread count.
    /// Shapes: out.size() == docs.size() * num_perm().
    /// Example: `s.sign_all(pool, docs, sigs);`
    template <class Policy>
    void sign_all(Policy&& pol, std::span<const std::string_view> docs, std::span<std::uint32_t> out) const {
        const std::size_t k = num_perm();
        llm::check(out.size() == docs.size() * k, "signer::sign_all: out has ", out.size(), " values, expected ",
                   docs.size(), " documents x ", k, " = ", docs.size() * k);
        // 16 documents of ~2 KB are ~0.2 ms of work: far above the ~1 us cost of a chunk.
        llm::parallel::parallel_for(pol, docs.size(), 16, [&](std::size_t begin, std::size_t end) {
            sign_scratch w;
            for (std::size_t i = begin; i < end; ++i) sign(docs[i], out.subspan(i * k, k), w);
        });
    }

private:
    Shingler shingler_{};
    Hash hash_{};
    Sketcher sketcher_;
};

}  // namespace llm::data
