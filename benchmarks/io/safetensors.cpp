// SPDX-License-Identifier: Apache-2.0
// safetensors: open + validate time of a checkpoint with many tensors (header parse, offset
// checks, name index), and typed view access by name. Counters: tensors/s, MB/s of header.
#include <benchmark/benchmark.h>

#include <llm/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

// A checkpoint-like file in memory: `n` bf16 tensors named like a transformer's
// ("model.layers.17.mlp.up_proj.weight"), shapes [64, 32], data 8-aligned.
struct checkpoint {
    std::vector<std::string> names;
    std::vector<std::uint64_t> storage;  // 8-aligned copy of the file
    std::size_t size = 0;
    std::size_t header = 0;

    explicit checkpoint(std::size_t n) {
        static const char* parts[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",    "input_layernorm"};
        std::vector<std::uint16_t> data(64 * 32, 0x3f80);  // bf16 1.0
        std::vector<llm::io::safetensors_tensor> ts;
        for (std::size_t i = 0; i < n; ++i) {
            names.push_back("model.layers." + std::to_string(i / 8) + "." + parts[i % 8] + ".weight");
            ts.push_back({names.back(), llm::io::dtype::BF16, {64, 32}, std::as_bytes(std::span(data))});
        }
        const std::string bytes = llm::io::serialize_safetensors(ts, {{"format", "pt"}});
        size = bytes.size();
        std::memcpy(&header, bytes.data(), 8);
        storage.resize((size + 7) / 8);
        std::memcpy(storage.data(), bytes.data(), size);
    }
    std::span<const std::byte> bytes() const { return std::as_bytes(std::span(storage)).first(size); }
};

void BM_safetensors_open(benchmark::State& state) {
    const checkpoint c(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        const auto f = llm::io::safetensors_file::parse(c.bytes(), "bench");
        benchmark::DoNotOptimize(f.size());
    }
    const auto files = static_cast<double>(state.iterations());
    state.counters["tensors/s"] = benchmark::Counter(files * static_cast<double>(state.range(0)), benchmark::Counter::kIsRate);
    state.counters["MB/s"] = benchmark::Counter(files * static_cast<double>(c.header) / 1e6, benchmark::Counter::kIsRate);
    state.counters["header_bytes"] = static_cast<double>(c.header);
}

void BM_safetensors_view(benchmark::State& state) {
    const checkpoint c(static_cast<std::size_t>(state.range(0)));
    const auto f = llm::io::safetensors_file::parse(c.bytes(), "bench");
    std::size_t i = 0;
    for (auto _ : state) {
        const auto v = f.view<llm::bf16, 2>(c.names[i]);
        benchmark::DoNotOptimize(v.data());
        i = i + 1 == c.names.size() ? 0 : i + 1;
    }
    state.counters["tensors/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_safetensors_serialize(benchmark::State& state) {
    const checkpoint c(static_cast<std::size_t>(state.range(0)));
    const auto f = llm::io::safetensors_file::parse(c.bytes(), "bench");
    std::vector<llm::io::safetensors_tensor> ts;
    for (std::size_t i = 0; i < f.size(); ++i) ts.push_back(f[i]);
    for (auto _ : state) {
        const std::string out = llm::io::serialize_safetensors(ts, f.metadata());
        benchmark::DoNotOptimize(out.data());
    }
    const auto files = static_cast<double>(state.iterations());
    state.counters["tensors/s"] = benchmark::Counter(files * static_cast<double>(state.range(0)), benchmark::Counter::kIsRate);
    state.counters["MB/s"] = benchmark::Counter(files * static_cast<double>(c.size) / 1e6, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_safetensors_open)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_safetensors_view)->Arg(1000);
BENCHMARK(BM_safetensors_serialize)->Arg(1000)->Unit(benchmark::kMicrosecond);
