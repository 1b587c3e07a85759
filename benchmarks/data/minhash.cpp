// SPDX-License-Identifier: Apache-2.0
// Signatures per second and MB/s per core (2 KB documents, num_perm 128 and 256) and LSH insert+query.
#include <benchmark/benchmark.h>

#include <llm/data/lsh.hpp>
#include <llm/data/minhash.hpp>
#include <llm/data/oph.hpp>
#include <llm/data/signer.hpp>
#include <llm/data/synthetic.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

namespace {

const std::vector<llm::data::synthetic_document>& corpus() {
    static const auto docs = llm::data::make_synthetic_corpus({.documents = 512, .duplicate_fraction = 0});
    return docs;
}

template <class Signer>
void run_sign(benchmark::State& state, const Signer& signer) {
    const auto& docs = corpus();
    std::vector<std::uint32_t> sig(signer.num_perm());
    llm::data::sign_scratch w;
    std::size_t i = 0, bytes = 0, n = 0;
    for (auto _ : state) {
        const auto& text = docs[i++ % docs.size()].text;
        signer.sign(text, sig, w);
        benchmark::DoNotOptimize(sig.data());
        bytes += text.size();
        ++n;
    }
    state.counters["docs/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
    state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsRate);
}

template <class Scheme, class Hash>
void BM_minhash_sign(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    const llm::data::signer<llm::data::word_ngrams, Hash, llm::data::minhash<Scheme>> signer({}, {}, llm::data::minhash<Scheme>(k, 1));
    run_sign(state, signer);
}

void BM_oph_sign(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    const llm::data::signer<llm::data::word_ngrams, llm::data::xxhash64, llm::data::one_permutation> signer({}, {}, llm::data::one_permutation(k, 1));
    run_sign(state, signer);
}

/// Shingling + hashing alone (the part every sketcher shares).
void BM_shingle_hash(benchmark::State& state) {
    const auto& docs = corpus();
    const llm::data::signer<> signer;
    llm::data::sign_scratch w;
    std::size_t i = 0, bytes = 0;
    for (auto _ : state) {
        const auto& text = docs[i++ % docs.size()].text;
        signer.shingle_hashes(text, w);
        benchmark::DoNotOptimize(w.hashes.data());
        bytes += text.size();
    }
    state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsRate);
}

/// Sketching alone from precomputed shingle hashes (what rensa's "sketch only" row adds to hashing).
template <class Sketcher>
void BM_sketch_only(benchmark::State& state) {
    const auto& docs = corpus();
    const llm::data::signer<> signer;
    llm::data::sign_scratch w;
    std::vector<std::vector<std::uint64_t>> hashes;
    for (const auto& d : docs) {
        signer.shingle_hashes(d.text, w);
        hashes.push_back(w.hashes);
    }
    const Sketcher sk(static_cast<std::size_t>(state.range(0)), 1);
    std::vector<std::uint32_t> sig(sk.num_perm());
    std::size_t i = 0;
    for (auto _ : state) {
        sk.sketch(hashes[i++ % hashes.size()], sig);
        benchmark::DoNotOptimize(sig.data());
    }
    state.counters["docs/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

/// Streaming LSH (query then insert) of 20,000 signatures, threshold 0.8.
void BM_lsh_query_insert(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    const std::size_t n = 20000;
    std::vector<std::uint32_t> sigs(n * k);
    std::uint64_t x = 88172645463325252ull;
    for (auto& v : sigs) {  // xorshift: random signatures (a unique corpus, the common case)
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = static_cast<std::uint32_t>(x);
    }
    std::vector<std::uint32_t> out;
    for (auto _ : state) {
        llm::data::lsh_index index(k, llm::data::optimal_params(0.8, k));
        for (std::size_t i = 0; i < n; ++i) index.query_and_insert(std::span(sigs).subspan(i * k, k), out, 1);
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["docs/s"] = benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_minhash_sign, llm::data::mersenne61, llm::data::xxhash64)->Arg(128)->Arg(256);
BENCHMARK_TEMPLATE(BM_minhash_sign, llm::data::affine32, llm::data::xxhash64)->Arg(128)->Arg(256);
BENCHMARK_TEMPLATE(BM_minhash_sign, llm::data::mersenne61, llm::data::sha1_32)->Arg(128);
BENCHMARK_TEMPLATE(BM_minhash_sign, llm::data::mersenne61, llm::data::murmur3_64)->Arg(128);
BENCHMARK(BM_oph_sign)->Arg(128)->Arg(256);
BENCHMARK(BM_shingle_hash);
BENCHMARK_TEMPLATE(BM_sketch_only, llm::data::minhash<llm::data::mersenne61>)->Arg(128)->Arg(256);
BENCHMARK_TEMPLATE(BM_sketch_only, llm::data::minhash<llm::data::affine32>)->Arg(128)->Arg(256);
BENCHMARK_TEMPLATE(BM_sketch_only, llm::data::one_permutation)->Arg(128)->Arg(256);
BENCHMARK(BM_lsh_query_insert)->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond);
