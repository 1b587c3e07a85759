// SPDX-License-Identifier: Apache-2.0
// MinHash with k permutations drawn exactly as datasketch draws them (schemes "legacy" and "affine32").
#pragma once

#include <llm/core/error.hpp>
#include <llm/data/detail/murmur3.hpp>
#include <llm/data/detail/numpy_random.hpp>
#include <llm/data/sketch.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace llm::data {

/// A permutation scheme: how the k hash functions h -> perm_k(h) are drawn from a seed and
/// applied. `word` is the arithmetic width; `draw` fills a[0..n), b[0..n) from the seed;
/// `prepare` maps a shingle hash once before the k permutations; `permute` gives a value
/// below 2^32.
template <class S>
concept permutation_scheme = requires(std::uint32_t seed, std::size_t n, typename S::word* w, std::uint64_t h) {
    requires std::unsigned_integral<typename S::word>;
    S::draw(seed, n, w, w);
    { S::prepare(h) } -> std::same_as<typename S::word>;
    { S::permute(typename S::word{}, typename S::word{}, typename S::word{}) } -> std::same_as<typename S::word>;
};

/// datasketch's classic scheme (`scheme="legacy"`, the only one before datasketch 2.0):
/// perm(h) = ((a*h + b) mod 2^64) mod (2^61 - 1), truncated to 32 bits. The mod 2^64 is
/// numpy's uint64 wrap-around in `a * hv + b`, kept so values are bit-identical. For each
/// permutation a ~ U[1, p) then b ~ U[0, p) from RandomState(seed).
struct mersenne61 {
    /// Members required by llm::data::permutation_scheme; see it for their contracts.
    ///@{
    using word = std::uint64_t;
    static constexpr word prime = (word{1} << 61) - 1;  ///< the modulus p = 2^61 - 1

    static void draw(std::uint32_t seed, std::size_t n, word* a, word* b) {
        detail::legacy_random_state rng(seed);
        for (std::size_t k = 0; k < n; ++k) {
            a[k] = rng.randint_u64(1, prime);
            b[k] = rng.randint_u64(0, prime);
        }
    }
    static constexpr word prepare(std::uint64_t h) noexcept { return h; }
    static constexpr word permute(word a, word b, word x) noexcept {
        const word y = a * x + b;
        // y mod p without division: 2^61 = 1 (mod p), so y = (y >> 61) + (y & p) (mod p), and
        // that sum is below 2p; min(s, s - p) subtracts p exactly when s >= p (else s - p wraps
        // above s). All branch-free, so the loop over permutations vectorises.
        const word s = (y & prime) + (y >> 61);
        return std::min<word>(s, s - prime) & 0xFFFFFFFFu;
    }
    ///@}
};

/// datasketch 2.0's default scheme (`scheme="affine32"`): the hash's low 32 bits are mixed
/// once by the MurmurHash3 finaliser, then perm(h) = a*h + b mod 2^32 with a odd (a
/// bijection). a = 2*U[0, 2^31) + 1 for all permutations, then b ~ U[0, 2^32), from
/// RandomState(seed). Twice the lanes of `mersenne61` per vector.
struct affine32 {
    /// Members required by llm::data::permutation_scheme; see it for their contracts.
    ///@{
    using word = std::uint32_t;
    static void draw(std::uint32_t seed, std::size_t n, word* a, word* b) {
        detail::legacy_random_state rng(seed);
        for (std::size_t k = 0; k < n; ++k) a[k] = rng.randint_u32(0, std::uint64_t{1} << 31) * 2u + 1u;
        for (std::size_t k = 0; k < n; ++k) b[k] = rng.randint_u32(0, std::uint64_t{1} << 32);
    }
    static constexpr word prepare(std::uint64_t h) noexcept { return detail::fmix32(static_cast<word>(h)); }
    static constexpr word permute(word a, word b, word x) noexcept { return a * x + b; }
    ///@}
};

static_assert(permutation_scheme<mersenne61> && permutation_scheme<affine32>);

/// MinHash over `num_perm` permutations of one scheme, with datasketch's seeding: for the
/// same seed, num_perm and shingle hash values, `sketch` equals datasketch's
/// `MinHash(num_perm, seed, scheme=...)` after `update` with those hashes (the values are
/// datasketch's `hashvalues`, which fit 32 bits in both schemes). The empty set gives all
/// values 2^32 - 1, as datasketch.
/// Scheme: a `permutation_scheme` (mersenne61 = datasketch "legacy", affine32 = datasketch 2.0 default).
/// Example: `llm::data::minhash<> mh(128, 1); mh.sketch(hashes, sig);`
template <class Scheme = mersenne61>
class minhash {
    static_assert(permutation_scheme<Scheme>, "minhash: Scheme must satisfy llm::data::permutation_scheme");

public:
    using word = typename Scheme::word;  ///< the scheme's arithmetic width (type of a() and b())

    /// Draws `num_perm` permutations (1 <= num_perm <= 2^20) from `seed`, as datasketch does.
    explicit minhash(std::size_t num_perm = 128, std::uint32_t seed = 1) : a_(num_perm), b_(num_perm), seed_(seed) {
        llm::check(num_perm >= 1 && num_perm <= (std::size_t{1} << 20), "minhash: num_perm = ", num_perm,
                   " must be in [1, 2^20]");
        Scheme::draw(seed, num_perm, a_.data(), b_.data());
    }

    std::size_t num_perm() const noexcept { return a_.size(); }  ///< number of permutations (signature length)
    std::uint32_t seed() const noexcept { return seed_; }        ///< the seed the permutations were drawn from
    std::span<const word> a() const noexcept { return a_; }      ///< the num_perm() multipliers
    std::span<const word> b() const noexcept { return b_; }      ///< the num_perm() offsets

    /// out[k] = min over h in hashes of perm_k(h); out.size() == num_perm().
    void sketch(std::span<const std::uint64_t> hashes, std::span<std::uint32_t> out) const {
        llm::check(out.size() == num_perm(), "minhash::sketch: out has ", out.size(), " values, num_perm is ", num_perm());
        // Blocks of `block` permutations keep their running minima in registers (4 AVX-512
        // registers of words) while every hash streams past; a and b of the block are reused
        // for every hash. The compiler vectorises the fixed-size inner loop.
        constexpr std::size_t block = 256 / sizeof(word);
        std::size_t k0 = 0;
        for (; k0 + block <= num_perm(); k0 += block) sketch_block<block>(hashes, k0, out);
        if (k0 < num_perm()) sketch_tail(hashes, k0, out);
    }

private:
    template <std::size_t B>
    void sketch_block(std::span<const std::uint64_t> hashes, std::size_t k0, std::span<std::uint32_t> out) const {
        word a[B], b[B], acc[B];
        for (std::size_t j = 0; j < B; ++j) {
            a[j] = a_[k0 + j];
            b[j] = b_[k0 + j];
            acc[j] = 0xFFFFFFFFu;
        }
        for (const std::uint64_t h : hashes) {
            const word x = Scheme::prepare(h);
            for (std::size_t j = 0; j < B; ++j) acc[j] = std::min(acc[j], Scheme::permute(a[j], b[j], x));
        }
        for (std::size_t j = 0; j < B; ++j) out[k0 + j] = static_cast<std::uint32_t>(acc[j]);
    }

    void sketch_tail(std::span<const std::uint64_t> hashes, std::size_t k0, std::span<std::uint32_t> out) const {
        // Raw pointers and a local count: GCC 12 otherwise warns (-Waggressive-loop-optimizations)
        // about a loop it cannot bound when the tail is provably empty for the call site.
        const std::size_t n = num_perm() - k0;
        const word* a = a_.data() + k0;
        const word* b = b_.data() + k0;
        std::uint32_t* o = out.data() + k0;
        for (std::size_t k = 0; k < n; ++k) o[k] = 0xFFFFFFFFu;
        for (const std::uint64_t h : hashes) {
            const word x = Scheme::prepare(h);
            for (std::size_t k = 0; k < n; ++k) o[k] = std::min<std::uint32_t>(o[k], static_cast<std::uint32_t>(Scheme::permute(a[k], b[k], x)));
        }
    }

    std::vector<word> a_, b_;
    std::uint32_t seed_;
};

static_assert(sketcher<minhash<mersenne61>> && sketcher<minhash<affine32>>);

/// The oracle for `minhash<mersenne61>::sketch`: datasketch's formula written literally with
/// `%` (no folding trick), one hash and one permutation at a time. For tests.
/// Example: `llm::data::minhash_reference(mh.a(), mh.b(), hashes, sig);`
inline void minhash_reference(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b,
                              std::span<const std::uint64_t> hashes, std::span<std::uint32_t> out) {
    llm::check(a.size() == b.size() && out.size() == a.size(), "minhash_reference: a, b, out sizes ", a.size(), ", ",
               b.size(), ", ", out.size(), " must be equal");
    for (std::size_t k = 0; k < a.size(); ++k) {
        std::uint64_t m = 0xFFFFFFFFu;
        for (const std::uint64_t h : hashes) m = std::min(m, ((a[k] * h + b[k]) % mersenne61::prime) & 0xFFFFFFFFu);
        out[k] = static_cast<std::uint32_t>(m);
    }
}

}  // namespace llm::data
