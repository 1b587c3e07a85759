// SPDX-License-Identifier: Apache-2.0
// GGUF open + validate: a header shaped like a real model's (1000 tensor infos, a 150k-entry
// vocabulary with scores and token types, 100 scalar keys), parsed from memory and through mmap.
#include <llm/io/gguf.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

constexpr std::size_t n_tensors = 1000;
constexpr std::size_t n_vocab = 150000;

// The file's bytes, built once. Tensors are small ([16, 8] f32) so the header dominates, as in
// the header-only work opening a model does; the data section is never read by the parser.
const std::string& model_header() {
    static const std::string bytes = [] {
        static std::vector<float> weights(16 * 8, 0.5f);
        static std::vector<std::string> tokens;
        std::vector<float> scores(n_vocab);
        std::vector<std::int32_t> types(n_vocab, 1);
        for (std::size_t i = 0; i < n_vocab; ++i) {
            tokens.push_back("tok" + std::to_string(i * 7919 % 1000003));
            scores[i] = -static_cast<float>(i);
        }
        llm::io::gguf_writer w;
        w.add("general.architecture", "llama");
        for (int k = 0; k < 100; ++k) w.add<std::uint32_t>("llama.key_" + std::to_string(k), static_cast<std::uint32_t>(k));
        w.add("tokenizer.ggml.model", "llama");
        w.add_array("tokenizer.ggml.tokens", tokens);
        w.add_array("tokenizer.ggml.scores", scores);
        w.add_array("tokenizer.ggml.token_type", types);
        for (std::size_t t = 0; t < n_tensors; ++t)
            w.add_tensor("blk." + std::to_string(t / 10) + ".w" + std::to_string(t % 10) + ".weight",
                         llm::tensor_view<const float, llm::dims<2>>(weights.data(), 16, 8));
        return w.to_bytes();
    }();
    return bytes;
}

std::uint64_t header_bytes(const llm::io::gguf_file& f) { return f.data_offset(); }

void set_counters(benchmark::State& state, std::uint64_t header) {
    state.counters["tensors/s"] = benchmark::Counter(static_cast<double>(n_tensors), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["MB/s"] = benchmark::Counter(static_cast<double>(header) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["header_MB"] = static_cast<double>(header) / 1e6;
}

// Parse + validate bytes already in memory (the fuzz harness's entry point).
void BM_gguf_parse_bytes(benchmark::State& state) {
    const std::string& bytes = model_header();
    std::uint64_t header = 0;
    for (auto _ : state) {
        const auto f = llm::io::gguf_file::parse(bytes, "bench.gguf");
        header = header_bytes(f);
        benchmark::DoNotOptimize(f.tensors().data());
    }
    set_counters(state, header);
}
BENCHMARK(BM_gguf_parse_bytes)->Unit(benchmark::kMillisecond);

// open(): mmap a file (warm in the page cache) + parse + validate + unmap.
void BM_gguf_open_mmap(benchmark::State& state) {
    const std::string path = (std::filesystem::temp_directory_path() / ("llm_bench_gguf_" + std::to_string(::getpid()) + ".gguf")).string();
    llm::io::write_file_atomically(path, model_header(), "bench");
    std::uint64_t header = 0;
    for (auto _ : state) {
        const auto f = llm::io::gguf_file::open(path);
        header = header_bytes(f);
        benchmark::DoNotOptimize(f.tensors().data());
    }
    std::filesystem::remove(path);
    set_counters(state, header);
}
BENCHMARK(BM_gguf_open_mmap)->Unit(benchmark::kMillisecond);

// Reading the vocabulary once it is parsed: the 150k token strings as views, and the scores.
void BM_gguf_read_vocab(benchmark::State& state) {
    const auto f = llm::io::gguf_file::parse(model_header(), "bench.gguf");
    for (auto _ : state) {
        const auto tokens = f.get_strings("tokenizer.ggml.tokens").to_vector();
        float sum = 0;
        for (const float s : f.get_array<float>("tokenizer.ggml.scores")) sum += s;
        benchmark::DoNotOptimize(tokens.data());
        benchmark::DoNotOptimize(sum);
    }
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(n_vocab), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_gguf_read_vocab)->Unit(benchmark::kMillisecond);

}  // namespace
