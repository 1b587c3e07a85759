// SPDX-License-Identifier: Apache-2.0
// Decode tokens/s of a Mixtral GGUF with Q4_0 experts, opened three ways: the experts kept in
// Q4_0 and repacked into 8-row groups (open_gguf's default: the packed MoE kernels), kept
// row-major ({.repack = false}: the row-major quantized MoE forward), and decoded to fp32
// ({.dequantize = true}: what the loader did before the MoE block took quantized params).
//
// Model: a random Mixtral of d_model 512, 4 layers, 8 query / 2 kv heads of 64, 8 experts of
// d_ff 1408, 2 per token, vocab 4096: the experts are 69 M weights, 277 MB in fp32 and 39 MB in
// Q4_0, so fp32 experts do not fit the caches and a token reads 2 of 8 experts per layer (69 MB
// fp32 / 9.7 MB Q4_0 per token). Written once per run as a Hugging Face directory (seeded
// init_options) and converted by llm::generate::convert_hf_to_gguf with --type q4_0 under the
// system's temporary directory. Each iteration: a fresh state (untimed), then 64 decode steps of
// one sequence from position 0; tokens/s counts them; "expert MB" is the bytes the opened
// params hold for the experts. One thread (llm::parallel::sequential), timed in its CPU time.
// Run the three alternately:
// --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true.
#include <llm/generate/convert.hpp>
#include <llm/generate/gguf_model.hpp>
#include <llm/model/checkpoint.hpp>
#include <llm/moe/mixtral.hpp>
#include <llm/parallel/sequential.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <type_traits>

namespace {

constexpr std::size_t decode_steps = 64;

// The Q4_0 GGUF of the random Mixtral (made once; removed at exit).
struct mixtral_file {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / "llm-bench-mixtral-q4_0";
    std::string gguf = (dir / "mixtral-q4_0.gguf").string();
    mixtral_file() {
        const llm::model::dims d{.vocab = 4096, .d_model = 512, .n_layers = 4, .n_heads = 8, .n_kv_heads = 2, .d_ff = 1408,
                                 .max_seq = 4096, .n_experts = 8, .experts_per_token = 2};
        std::filesystem::create_directories(dir);
        std::ofstream(dir / "config.json")
            << R"({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_act": "silu", "hidden_size": )" << d.d_model
            << R"(, "intermediate_size": )" << d.d_ff << R"(, "max_position_embeddings": )" << d.max_seq
            << R"(, "num_attention_heads": )" << d.n_heads << R"(, "num_key_value_heads": )" << d.n_kv_heads
            << R"(, "num_hidden_layers": )" << d.n_layers << R"(, "num_local_experts": )" << d.n_experts
            << R"(, "num_experts_per_tok": )" << d.experts_per_token << R"(, "vocab_size": )" << d.vocab
            << R"(, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false, "sliding_window": null, "torch_dtype": "float32"})";
        const llm::moe::mixtral<> m(d);
        auto p = m.make_params<float>();
        m.init(p, {.seed = 5});
        llm::model::save_safetensors(p, (dir / "model.safetensors").string());
        llm::generate::convert_hf_to_gguf(dir.string(), gguf, {.type = llm::io::ggml_type::q4_0});
        std::filesystem::remove(dir / "model.safetensors");
    }
    ~mixtral_file() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    mixtral_file(const mixtral_file&) = delete;
    mixtral_file& operator=(const mixtral_file&) = delete;
};

const mixtral_file& the_file() {
    static const mixtral_file f;
    return f;
}

// mode 0: Q4_0 experts repacked (default), 1: Q4_0 row-major, 2: decoded to fp32.
void BM_mixtral_gguf_decode(benchmark::State& state) {
    const auto mode = state.range(0);
    const llm::generate::gguf_options opt{.dequantize = mode == 2, .repack = mode == 0};
    llm::parallel::sequential seq;  // one thread: its CPU time is the step's
    llm::generate::open_gguf(the_file().gguf, opt, [&](const auto& m, const auto& p, const auto&) {
        double expert_bytes = 0;
        if constexpr (requires { std::get<0>(p.layers)[0].ffn.w2; }) {
            for (const auto& layer : std::get<0>(p.layers)) {
                if constexpr (std::is_same_v<std::remove_cvref_t<decltype(layer.ffn.w1)>, llm::quant::any_matrix>) {
                    expert_bytes += static_cast<double>(layer.ffn.w1.bytes().size() + layer.ffn.w3.bytes().size() + layer.ffn.w2.bytes().size());
                } else {
                    expert_bytes += 4.0 * static_cast<double>(layer.ffn.w1.size() + layer.ffn.w3.size() + layer.ffn.w2.size());
                }
            }
        }
        llm::workspace ws;
        llm::tensor<float, llm::dims<2>> logits(1, m.config().vocab);
        for (auto _ : state) {
            state.PauseTiming();
            auto st = m.make_state(1, decode_steps + 1);
            state.ResumeTiming();
            std::int32_t tok = 1;
            for (std::size_t t = 0; t < decode_steps; ++t) {
                m.step(logits.view(), st, llm::model::token_ids(&tok, 1), p, ws, seq);
                tok = static_cast<std::int32_t>((tok * 31 + 7) % 4096);
                benchmark::DoNotOptimize(logits.data());
            }
        }
        state.counters["expert MB"] = expert_bytes / 1e6;
        return 0;
    });
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(decode_steps), benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(mode == 0 ? "q4_0 experts repacked" : mode == 1 ? "q4_0 experts row-major" : "experts decoded to fp32");
}

}  // namespace

BENCHMARK(BM_mixtral_gguf_decode)->ArgName("mode")->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
