// SPDX-License-Identifier: Apache-2.0
// Tokenizer throughput: documents encoded one by one (1 thread, warm or cold cache), batch on 2 threads, long runs, vocabulary load.
//
// Input: corpus_public.txt repeated to LLM_BENCH_TOKENIZER_MB megabytes (default 2 so the ctest
// smoke run stays short; the figures in BENCHMARKS.md use 10), split into its documents.
// Peers on the same documents: benchmarks/peers/tokenizer_peers.py.
#include <benchmark/benchmark.h>

#include <llm/io/file.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tokenizer/batch.hpp>
#include <llm/tokenizer/tokenizer.hpp>

#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

std::string data_path(const std::string& name) { return std::string(LLM_SHARED_DATA_DIR) + "/tokenizers/" + name; }

const llm::tokenizer::tokenizer& vocab(const std::string& file) {
    static std::map<std::string, std::unique_ptr<llm::tokenizer::tokenizer>> cache;
    auto& slot = cache[file];
    if (!slot) slot = std::make_unique<llm::tokenizer::tokenizer>(llm::tokenizer::load_tokenizer(data_path(file)));
    return *slot;
}

struct documents {
    std::string corpus;
    std::vector<std::string_view> docs;
    std::size_t bytes = 0;
};

const documents& mixed_text() {
    static const documents d = [] {
        documents out;
        out.corpus = llm::io::read_file(data_path("corpus_public.txt"), llm::io::default_read_limit, "bench");
        std::vector<std::string_view> base;
        const std::string_view all = out.corpus;
        for (std::size_t pos = 0;;) {
            const std::size_t sep = all.find("\n\f\n", pos);
            base.push_back(all.substr(pos, sep == std::string_view::npos ? std::string_view::npos : sep - pos));
            if (sep == std::string_view::npos) break;
            pos = sep + 3;
        }
        const char* env = std::getenv("LLM_BENCH_TOKENIZER_MB");
        const double mb = env ? std::atof(env) : 2.0;
        while (out.bytes < mb * 1e6) {
            for (const auto doc : base) {
                out.docs.push_back(doc);
                out.bytes += doc.size();
            }
        }
        return out;
    }();
    return d;
}

void report(benchmark::State& state, std::size_t bytes, std::size_t tokens) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
    state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bytes/token"] = static_cast<double>(bytes) / static_cast<double>(tokens);
}

// One document per call, one encode_context reused across calls (warm piece cache).
void BM_encode_1T(benchmark::State& state, const std::string& file) {
    const auto& tok = vocab(file);
    const auto& text = mixed_text();
    llm::tokenizer::encode_context ctx;
    std::vector<std::uint32_t> ids;
    std::size_t tokens = 0;
    for (auto _ : state) {
        tokens = 0;
        for (const auto doc : text.docs) {
            ids.clear();
            tok.encode(doc, ids, {}, ctx);
            tokens += ids.size();
        }
        benchmark::DoNotOptimize(ids.data());
    }
    report(state, text.bytes, tokens);
}

// One document per call with a fresh context each time: no cache carried between documents.
void BM_encode_1T_cold(benchmark::State& state, const std::string& file) {
    const auto& tok = vocab(file);
    const auto& text = mixed_text();
    std::size_t tokens = 0;
    for (auto _ : state) {
        tokens = 0;
        for (const auto doc : text.docs) tokens += tok.encode(doc).size();
    }
    report(state, text.bytes, tokens);
}

// encode_batch over a 2-thread pool.
void BM_encode_batch_2T(benchmark::State& state, const std::string& file) {
    const auto& tok = vocab(file);
    const auto& text = mixed_text();
    llm::parallel::thread_pool pool(2);
    std::size_t tokens = 0;
    for (auto _ : state) {
        const auto ids = llm::tokenizer::encode_batch(tok, text.docs, {}, pool);
        tokens = 0;
        for (const auto& d : ids) tokens += d.size();
    }
    report(state, text.bytes, tokens);
}

// A 100,000-character run without spaces: one piece, merged by the heap path.
void BM_long_run(benchmark::State& state) {
    const auto& tok = vocab("o200k_base.tiktoken");
    std::mt19937 rng(3);
    std::string run;
    for (int k = 0; k < 100000; ++k) run += static_cast<char>('a' + rng() % 26);
    std::size_t tokens = 0;
    for (auto _ : state) tokens = tok.encode(run).size();
    report(state, run.size(), tokens);
}

void BM_load(benchmark::State& state, const std::string& file) {
    const std::string path = data_path(file);
    for (auto _ : state) benchmark::DoNotOptimize(llm::tokenizer::load_tokenizer(path).n_vocab());
}

}  // namespace

BENCHMARK_CAPTURE(BM_encode_1T, cl100k, std::string("cl100k_base.tiktoken"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_encode_1T, o200k, std::string("o200k_base.tiktoken"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_encode_1T, llama3, std::string("llama3.tiktoken"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_encode_1T, llama2_sp, std::string("llama2_sp_bpe.tokenizer.json"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_encode_1T_cold, cl100k, std::string("cl100k_base.tiktoken"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_encode_1T_cold, o200k, std::string("o200k_base.tiktoken"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_encode_batch_2T, cl100k, std::string("cl100k_base.tiktoken"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_encode_batch_2T, o200k, std::string("o200k_base.tiktoken"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_long_run)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_load, o200k, std::string("o200k_base.tiktoken"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_load, cl100k, std::string("cl100k_base.tiktoken"))->Unit(benchmark::kMillisecond);
