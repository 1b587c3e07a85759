// SPDX-License-Identifier: Apache-2.0
// GGUF files of the families beyond Llama 2 / Mistral / Qwen2: Llama 3 (rope_freqs.weight), GPT-2
// (architecture "gpt2"), Mixtral ("llama" with llama.expert_count) and Mamba ("mamba"), as llama.cpp's
// convert_hf_to_gguf.py writes them (tests/golden/generate/make_llamacpp_gguf.py) and as our
// convert_hf_to_gguf writes them: transformers' greedy tokens (tests/golden/generate/<family>.txt),
// the same tensors and metadata as llama.cpp's script, and bad files as clear llm::error.
#include "common.hpp"

#include <llm/generate/generate.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../support/temp_dir.hpp"

namespace {
template <class M, class P>
std::vector<std::int32_t> greedy(const M& m, const P& p, const std::vector<std::int32_t>& prompt, std::size_t n) {
    llm::generate::engine<M, typename P::element_type> eng(m, p, {.slots = 1, .context = 32});
    eng.add(prompt, {.max_tokens = n}, llm::generate::make_sampler({}));
    std::vector<std::int32_t> out;
    while (!eng.idle()) for (const auto& e : eng.step(llm::parallel::sequential{})) out.push_back(e.token);
    return out;
}
std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
// The checkpoint directory of a family's tiny model (Mixtral's is the moe tests').
std::string checkpoint(const std::string& family) {
    return family == "mixtral" ? std::string("tests/golden/moe/mixtral")
           : family == "mamba" ? std::string("tests/golden/ssm/mamba_lm")
                               : gen_test::model_dir(family);
}
// tests/golden/generate/mixtral-q8_0.txt: the first greedy token of each prompt with Q8_0 weights.
std::vector<std::int32_t> mixtral_q8_0_first() {
    std::ifstream f("tests/golden/generate/mixtral-q8_0.txt");
    REQUIRE(f.good());
    std::vector<std::int32_t> out;
    std::string a, b;
    while (std::getline(f, a) && std::getline(f, b)) {
        REQUIRE(b.rfind("first: ", 0) == 0);
        out.push_back(std::stoi(b.substr(7)));
    }
    REQUIRE(out.size() == 3);
    return out;
}
// Every golden case of `family` through the GGUF file `path`: transformers' 16 greedy tokens.
void check_goldens(const std::string& family, const std::string& path) {
    CAPTURE(path);
    const auto cases = gen_test::goldens(family);
    llm::generate::open_gguf(path, [&](const auto& m, const auto& p, const auto& cfg) {
        using M = std::remove_cvref_t<decltype(m)>;
        if (family == "gpt2") {
            CHECK(std::is_same_v<M, llm::model::gpt2<>>);
            CHECK(cfg.architecture == "gpt2");
            CHECK(cfg.dims.tie_embeddings);
        } else if (family == "mixtral") {
            CHECK(std::is_same_v<M, llm::moe::mixtral<>>);
            CHECK(cfg.architecture == "llama");
            CHECK(cfg.dims.n_experts == 4);
            CHECK(cfg.dims.experts_per_token == 2);
        } else if (family == "mamba") {
            CHECK(std::is_same_v<M, llm::model::mamba<>>);
            CHECK(cfg.architecture == "mamba");
            CHECK((cfg.ssm.state == 16 && cfg.ssm.conv == 4 && cfg.ssm.dt_rank == 2 && cfg.dims.d_ff == 64));
        } else {
            CHECK(std::is_same_v<M, llm::model::llama<>>);
            CHECK(cfg.dims.rope.scaling == llm::model::rope_scaling_kind::llama3);
        }
        for (const auto& c : cases) CHECK(greedy(m, p, c.prompt, 16) == c.greedy);
        return 0;
    });
}
}  // namespace

TEST_CASE("gguf: convert_hf_to_gguf.py's Llama 3 (rope_freqs.weight), GPT-2, Mixtral and Mamba files give transformers' greedy tokens") {
    for (const std::string family : {"llama", "gpt2", "mixtral", "mamba"}) {
        check_goldens(family, "tests/golden/generate/llamacpp-" + family + "-f32.gguf");
    }
    // the rope_freqs.weight factors become the checkpoint's own llama3 frequencies (its config:
    // factor 8, low 1, high 4, original context 16, theta 5e5, head_dim 8)
    const auto hf = llm::model::from_hf_config(gen_test::model_dir("llama") + "/config.json");
    const auto cfg = llm::generate::gguf_model_config(llm::io::gguf_file::open("tests/golden/generate/llamacpp-llama-f32.gguf"));
    for (std::size_t i = 0; i < 4; ++i) {
        const double inv = std::pow(5e5, -2.0 * static_cast<double>(i) / 8.0);
        CAPTURE(i);
        CHECK(cfg.dims.rope.apply(inv) == doctest::Approx(hf.dims.rope.apply(inv)).epsilon(1e-6));  // the file's f32: 6e-8
    }
}

// Mamba through llama.cpp's file: every parameter equals the checkpoint's, bit for bit, except A_log,
// which the file holds as A = -exp(A_log) (rounded to float) and the loader takes back by log(-A):
// |error| <= |log(1 + e_exp)| + e_log |A_log| with e_exp <= 2 ulp of torch's float exp (2^-23) and
// the final rounding (2^-24 relative), so 2.4e-7 + 6e-8 |A_log|; bound 3e-7 + 1.2e-7 |A_log|.
TEST_CASE("gguf: convert_hf_to_gguf.py's Mamba file holds the checkpoint's parameters (A_log through A = -exp(A_log))") {
    const auto hf = llm::model::from_hf_config(checkpoint("mamba") + "/config.json");
    const llm::model::mamba<> hm(hf.dims);
    auto hp = hm.make_params<float>();
    llm::model::load_safetensors(hp, checkpoint("mamba") + "/model.safetensors");
    std::map<std::string, std::vector<float>> want;
    hp.for_each_param([&](std::string_view name, auto& t) { want[std::string(name)].assign(t.data(), t.data() + t.size()); });
    int compared = 0, a_logs = 0;
    llm::generate::open_gguf("tests/golden/generate/llamacpp-mamba-f32.gguf", [&](const auto&, const auto& p, const auto&) {
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (std::is_same_v<P, std::remove_cvref_t<decltype(hp)>>) {
            p.for_each_param([&](std::string_view name, const auto& t) {
                CAPTURE(name);
                const std::vector<float>& w = want.at(std::string(name));
                REQUIRE(w.size() == t.size());
                if (name.ends_with("A_log")) {
                    ++a_logs;
                    for (std::size_t i = 0; i < w.size(); ++i) CHECK(std::fabs(t.data()[i] - w[i]) <= 3e-7 + 1.2e-7 * std::fabs(w[i]));
                } else {
                    CHECK(std::memcmp(t.data(), w.data(), w.size() * sizeof(float)) == 0);
                }
                ++compared;
            });
        }
        return 0;
    });
    CHECK(compared == static_cast<int>(want.size()));
    CHECK(a_logs == 2);
}

// The fit of rope_freqs.weight: Llama 3.1 8B's own scaling (head_dim 128, theta 5e5, factor 8,
// low 1, high 4, original context 8192: 64 frequencies, 8 of them in the band) and the tiny ones'
// (1 band frequency, none) give back every frequency; no scaling and a uniform divisor give none
// and linear; factors no Llama 3 rule gives are llm::error naming the pair.
TEST_CASE("gguf: rope_freqs.weight factors give back the Llama 3 scaling's frequencies; others are llm::error") {
    using llm::model::rope_config;
    using llm::model::rope_scaling_kind;
    const rope_config cases[] = {
        {.theta = 500000.0, .scaling = rope_scaling_kind::llama3, .factor = 8.0, .low_freq_factor = 1.0, .high_freq_factor = 4.0, .original_max_position = 8192.0},
        {.theta = 500000.0, .scaling = rope_scaling_kind::llama3, .factor = 32.0, .low_freq_factor = 1.0, .high_freq_factor = 4.0, .original_max_position = 8192.0},
        {.theta = 500000.0, .scaling = rope_scaling_kind::llama3, .factor = 8.0, .low_freq_factor = 1.0, .high_freq_factor = 4.0, .original_max_position = 16.0},
        {.theta = 10000.0, .scaling = rope_scaling_kind::llama3, .factor = 4.0, .low_freq_factor = 2.0, .high_freq_factor = 3.0, .original_max_position = 300.0},
        {.theta = 10000.0, .scaling = rope_scaling_kind::none},
        {.theta = 10000.0, .scaling = rope_scaling_kind::linear, .factor = 2.0}};
    for (const std::size_t head_dim : {8u, 16u, 64u, 128u}) {
        for (const rope_config& want : cases) {
            CAPTURE(head_dim);
            CAPTURE(want.factor);
            CAPTURE(want.original_max_position);
            std::vector<float> factors(head_dim / 2);
            std::vector<double> inv(head_dim / 2);
            for (std::size_t i = 0; i < factors.size(); ++i) {
                inv[i] = std::pow(want.theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
                factors[i] = static_cast<float>(inv[i] / want.apply(inv[i]));
            }
            // llama3: as convert and llama.cpp's script write them (torch float32 arithmetic)
            if (want.scaling == rope_scaling_kind::llama3) factors = llm::generate::detail::llama3_rope_factors(want, head_dim);
            const rope_config got = llm::generate::detail::rope_from_factors(factors, want.theta, head_dim);
            if (want.scaling != rope_scaling_kind::llama3) CHECK(got.scaling == want.scaling);
            // each frequency within 2e-6 relative: the script's float32 steps (frequency, wavelength,
            // smooth, divisor: a few roundings of 6e-8 each, amplified up to factor-fold in the band's
            // interpolation) and the fit's edges taken from them
            for (std::size_t i = 0; i < inv.size(); ++i) CHECK(got.apply(inv[i]) == doctest::Approx(want.apply(inv[i])).epsilon(2e-6));
        }
    }
    // Llama 3.1's factors with the last (divided by 8) set to 1: the band still fixes the rule, which that factor breaks
    std::vector<float> bad = llm::generate::detail::llama3_rope_factors(cases[0], 128);
    CHECK_NOTHROW(llm::generate::detail::rope_from_factors(bad, 500000.0, 128));
    bad.back() = 1.0f;
    CHECK_THROWS_WITH_AS(llm::generate::detail::rope_from_factors(bad, 500000.0, 128), doctest::Contains("factor 63 = 1 is not the Llama 3 scaling"),
                         llm::error);
    // the tiny Llama's factors with a divided one turned into a band value: no band edges fit
    bad = {1.7359413f, 8.0f, 5.0f, 8.0f};
    CHECK_THROWS_WITH_AS(llm::generate::detail::rope_from_factors(bad, 500000.0, 8), doctest::Contains("not those of a Llama 3 rope scaling"),
                         llm::error);
    bad = {1.0f, 8.0f, 1.0f, 8.0f};  // divided, then kept again
    CHECK_THROWS_AS(llm::generate::detail::rope_from_factors(bad, 500000.0, 8), llm::error);
    bad = {1.0f, 0.5f, 1.0f, 1.0f};  // a divisor below 1
    CHECK_THROWS_WITH_AS(llm::generate::detail::rope_from_factors(bad, 500000.0, 8), doctest::Contains("factor 1 = 0.5"), llm::error);
    CHECK_THROWS_WITH_AS(llm::generate::detail::rope_from_factors(std::vector<float>(3, 1.0f), 500000.0, 8),
                         doctest::Contains("expected head_dim / 2 = 4"), llm::error);
}

// Our converter against llama.cpp's for the new families: the same tensors byte for byte (names,
// types, shapes, Llama 3's rope_freqs.weight, GPT-2's transposed Conv1D weights and f32
// position table, Mixtral's stacked experts and f32 router, the permuted Q/K rows) and the same
// metadata except general.name / general.size_label and tokenizer.ggml.add_eos_token; our files
// give transformers' greedy tokens (f32), and in q8_0 (GPT-2's 32-wide rows; the other two fall
// back to f16 / keep f32 where rows are 48 wide) their first greedy token.
TEST_CASE("convert_hf_to_gguf: Llama 3, GPT-2, Mixtral and Mamba files equal llama.cpp's convert_hf_to_gguf.py output and give the greedy tokens") {
    llm_test::temp_dir tmp;
    const std::string tok = "tests/golden/generate/tiny-tokenizer/tokenizer.json";
    for (const std::string family : {"llama", "gpt2", "mixtral", "mamba"}) {
        CAPTURE(family);
        const std::string out = (tmp.path / (family + ".gguf")).string();
        const auto st = llm::generate::convert_hf_to_gguf(checkpoint(family), out, {.type = llm::io::ggml_type::f32, .tokenizer = tok});
        CHECK(st.architecture == (family == "gpt2" || family == "mamba" ? family : "llama"));
        const auto ours = llm::io::gguf_file::open(out);
        const auto ref = llm::io::gguf_file::open("tests/golden/generate/llamacpp-" + family + "-f32.gguf");
        CHECK(st.tensors == ref.tensors().size());
        REQUIRE(ours.tensors().size() == ref.tensors().size());
        for (const auto& t : ref.tensors()) {
            CAPTURE(t.name);
            const auto* o = ours.find_tensor(t.name);
            REQUIRE(o != nullptr);
            CHECK(o->type == t.type);
            CHECK(o->shape() == t.shape());
            const auto a = ours.tensor_bytes(*o);
            const auto b = ref.tensor_bytes(t);
            REQUIRE(a.size() == b.size());
            if (t.name.ends_with("ssm_a")) {
                // Mamba's A = -exp(A_log): ours correctly rounded, the script's from torch's SLEEF
                // exp (1 ulp): each within one unit in the last place, same sign and exponent range
                for (std::size_t i = 0; i < a.size(); i += 4) {
                    std::int32_t x = 0, y = 0;
                    std::memcpy(&x, a.data() + i, 4);
                    std::memcpy(&y, b.data() + i, 4);
                    CHECK(std::abs(x - y) <= 1);
                }
            } else {
                CHECK(std::memcmp(a.data(), b.data(), a.size()) == 0);
            }
        }
        std::size_t compared = 0;
        for (const auto& kv : ref.metadata()) {
            if (kv.key == "general.name" || kv.key == "general.size_label" || kv.key == "tokenizer.ggml.add_eos_token") continue;
            CAPTURE(kv.key);
            const auto* v = ours.find(kv.key);
            REQUIRE(v != nullptr);
            CHECK(v->type() == kv.value.type());
            if (kv.value.type() == llm::io::gguf_type::string) CHECK(v->as_string() == kv.value.as_string());
            if (kv.value.type() == llm::io::gguf_type::u32) CHECK(v->as<std::uint32_t>() == kv.value.as<std::uint32_t>());
            if (kv.value.type() == llm::io::gguf_type::f32) CHECK(v->as<float>() == kv.value.as<float>());
            if (kv.value.type() == llm::io::gguf_type::boolean) CHECK(v->as<bool>() == kv.value.as<bool>());
            ++compared;
        }
        CHECK(compared >= 15);
        check_goldens(family, out);
        // q8_0: rows that are not whole blocks fall back as llama.cpp's script does
        const std::string q8 = (tmp.path / (family + "-q8_0.gguf")).string();
        llm::generate::convert_hf_to_gguf(checkpoint(family), q8, {.type = llm::io::ggml_type::q8_0, .tokenizer = tok});
        const auto cases = gen_test::goldens(family);
        const std::vector<std::int32_t> q8_first = family == "mixtral" ? mixtral_q8_0_first() : std::vector<std::int32_t>{};
        llm::generate::open_gguf(q8, [&](const auto& m, const auto& p, const auto&) {
            // Q8_0 rounds each weight by up to half a step (|w|max / 254 per block): a near tie may
            // flip late in a run; the first token of each case must agree. Mixtral's prompt [1] has
            // its fp32 top two logits 0.02 apart and Q8_0 flips them: its first tokens are those of
            // transformers on the Q8_0-rounded weights (make_golden_q8_0.py; gaps >= 0.024 there).
            for (std::size_t i = 0; i < cases.size(); ++i) {
                CHECK(greedy(m, p, cases[i].prompt, 1)[0] == (q8_first.empty() ? cases[i].greedy[0] : q8_first[i]));
            }
            return 0;
        });
    }
    // a Mamba whose SSM sizes llm::model::mamba<> does not hold
    const auto bad = tmp.path / "mamba-state8";
    std::filesystem::create_directories(bad);
    std::filesystem::copy_file(checkpoint("mamba") + "/model.safetensors", bad / "model.safetensors");
    std::string config = slurp(checkpoint("mamba") + "/config.json");
    const std::string state = "\"state_size\": 16";
    const std::size_t at = config.find(state);
    REQUIRE(at != std::string::npos);
    config.replace(at, state.size(), "\"state_size\": 8");
    std::ofstream(bad / "config.json") << config;
    CHECK_THROWS_WITH_AS(llm::generate::convert_hf_to_gguf(bad.string(), (tmp.path / "m.gguf").string()),
                         doctest::Contains("state_size = 8"), llm::error);
}

TEST_CASE("gguf: GPT-2, Mixtral and Mamba files with a missing or wrong-shape tensor, missing experts, bad SSM sizes, an unknown architecture: clear llm::error") {
    auto load = [](const std::string& bytes) {
        const auto f = llm::io::gguf_file::parse(bytes, "test.gguf");
        llm::generate::open_gguf(f, "test.gguf", [](const auto&...) { return 0; });
    };
    auto replaced = [](std::string b, const std::string& from, const std::string& to) {
        REQUIRE(from.size() == to.size());
        const auto at = b.find(from);
        REQUIRE(at != std::string::npos);
        b.replace(at, from.size(), to);
        return b;
    };
    // a u32 value of `key`, after its 4-byte type tag
    auto set_u32 = [](std::string b, const std::string& key, unsigned char value) {
        const auto at = b.find(key);
        REQUIRE(at != std::string::npos);
        b[at + key.size() + 4] = static_cast<char>(value);
        return b;
    };
    const std::string gpt2 = slurp("tests/golden/generate/llamacpp-gpt2-f32.gguf");
    const std::string mixtral = slurp("tests/golden/generate/llamacpp-mixtral-f32.gguf");
    CHECK_NOTHROW(load(gpt2));
    CHECK_NOTHROW(load(mixtral));
    CHECK_THROWS_WITH_AS(load(replaced(gpt2, "gpt2", "gpt5")), doctest::Contains("architecture 'gpt5' is not supported"), llm::error);
    CHECK_THROWS_WITH_AS(load(replaced(gpt2, "blk.1.attn_qkv.weight", "blk.1.attn_qkX.weight")), doctest::Contains("blk.1.attn_qkv.weight"),
                         llm::error);
    CHECK_THROWS_WITH_AS(load(replaced(gpt2, "position_embd.weight", "position_embX.weight")), doctest::Contains("position_embd.weight"),
                         llm::error);
    CHECK_THROWS_WITH_AS(load(set_u32(gpt2, "gpt2.feed_forward_length", 120)), doctest::Contains("feed_forward_length"), llm::error);
    // n_embd 32 -> 16: every tensor's shape disagrees; the first checked is named
    CHECK_THROWS_WITH_AS(load(set_u32(gpt2, "gpt2.embedding_length", 16)), doctest::Contains("position_embd.weight"), llm::error);
    // a missing expert tensor: of layer 1 (named when its parameter is loaded), of layer 0 (named with expert_count)
    CHECK_THROWS_WITH_AS(load(replaced(mixtral, "blk.1.ffn_up_exps.weight", "blk.1.ffn_up_expX.weight")),
                         doctest::Contains("blk.1.ffn_up_exps.weight"), llm::error);
    CHECK_THROWS_WITH_AS(load(replaced(mixtral, "blk.0.ffn_gate_exps.weight", "blk.0.ffn_gate_expX.weight")),
                         doctest::Contains("has no blk.0.ffn_gate_exps.weight"), llm::error);
    CHECK_THROWS_WITH_AS(load(replaced(mixtral, "blk.0.ffn_gate_inp.weight", "blk.0.ffn_gate_inX.weight")),
                         doctest::Contains("blk.0.ffn_gate_inp.weight"), llm::error);
    // expert_count 4 -> 3: the stacked tensors hold 4 experts
    CHECK_THROWS_WITH_AS(load(set_u32(mixtral, "llama.expert_count", 3)), doctest::Contains("expected [expert_count 3"), llm::error);
    // expert_used_count 2 -> 5: more than there are experts
    CHECK_THROWS_WITH_AS(load(set_u32(mixtral, "llama.expert_used_count", 5)), doctest::Contains("experts_per_token = 5"), llm::error);
    CHECK_THROWS_AS(load(mixtral.substr(0, mixtral.size() - 100)), llm::error);
    // a Llama 3 file whose rope_freqs.weight is not Llama 3 scaling: the factor named
    std::string llama = slurp("tests/golden/generate/llamacpp-llama-f32.gguf");
    CHECK_NOTHROW(load(llama));
    {
        const auto f = llm::io::gguf_file::parse(llama, "test.gguf");
        const auto bytes = f.tensor_bytes(f.tensor("rope_freqs.weight"));
        REQUIRE(bytes.size() == 16);
        const auto at = llama.find(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        REQUIRE(at != std::string::npos);
        const float five = 5.0f;
        std::memcpy(llama.data() + at + 2 * sizeof(float), &five, sizeof(float));
    }
    CHECK_THROWS_WITH_AS(load(llama), doctest::Contains("rope_freqs.weight: the factors are not those of a Llama 3 rope scaling"), llm::error);
    // Mamba: a missing tensor, SSM sizes mamba<> does not serve, an inner size ssm_in contradicts,
    // an A that is not -exp(A_log)
    std::string mamba = slurp("tests/golden/generate/llamacpp-mamba-f32.gguf");
    CHECK_NOTHROW(load(mamba));
    CHECK_THROWS_WITH_AS(load(replaced(mamba, "blk.1.ssm_a", "blk.1.ssm_X")), doctest::Contains("blk.1.ssm_a"), llm::error);
    CHECK_THROWS_WITH_AS(load(set_u32(mamba, "mamba.ssm.state_size", 8)), doctest::Contains("generation serves llm::model::mamba<>"),
                         llm::error);
    CHECK_THROWS_WITH_AS(load(set_u32(mamba, "mamba.ssm.inner_size", 32)), doctest::Contains("does not match blk.0.ssm_in.weight"),
                         llm::error);
    {
        const auto f = llm::io::gguf_file::parse(mamba, "test.gguf");
        const auto bytes = f.tensor_bytes(f.tensor("blk.0.ssm_a"));
        const auto at = mamba.find(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        REQUIRE(at != std::string::npos);
        const float positive = 0.5f;
        std::memcpy(mamba.data() + at + 3 * sizeof(float), &positive, sizeof(float));
    }
    CHECK_THROWS_WITH_AS(load(mamba), doctest::Contains("(A = -exp(A_log)) holds 0.5"), llm::error);
}

// Linear RoPE scaling (rope_scaling {rope_type: linear}) goes through the file as
// ARCH.rope.scaling.type / .factor (convert_hf_to_gguf.py's keys) and comes back: the tiny Llama's
// weights with a linear factor 2 give the same greedy tokens from the GGUF file as from the
// Hugging Face directory (our open_hf path, whose llama3 goldens the tests above check).
TEST_CASE("gguf: linear RoPE scaling round-trips through convert (rope.scaling.type / factor) with open_hf's greedy tokens") {
    llm_test::temp_dir tmp;
    const std::filesystem::path dir = tmp.path / "linear";
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(gen_test::model_dir("llama") + "/model.safetensors", dir / "model.safetensors");
    std::string cfg = slurp(gen_test::model_dir("llama") + "/config.json");
    const auto from = cfg.find("\"rope_scaling\"");
    const auto to = cfg.find('}', from);
    REQUIRE((from != std::string::npos && to != std::string::npos));
    cfg.replace(from, to + 1 - from, "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.0}");
    std::ofstream(dir / "config.json") << cfg;
    const std::string out = (tmp.path / "linear.gguf").string();
    llm::generate::convert_hf_to_gguf(dir.string(), out, {.type = llm::io::ggml_type::f32});
    const auto f = llm::io::gguf_file::open(out);
    CHECK(f.get_string("llama.rope.scaling.type") == "linear");
    CHECK(f.find_tensor("rope_freqs.weight") == nullptr);
    std::vector<std::vector<std::int32_t>> want, got;
    const auto cases = gen_test::goldens("llama");
    llm::generate::open_hf(dir.string(), [&](const auto& m, const auto& p, const auto& c) {
        CHECK(c.dims.rope.scaling == llm::model::rope_scaling_kind::linear);
        for (const auto& g : cases) want.push_back(greedy(m, p, g.prompt, 16));
        return 0;
    });
    llm::generate::open_gguf(out, [&](const auto& m, const auto& p, const auto& c) {
        CHECK(c.dims.rope.scaling == llm::model::rope_scaling_kind::linear);
        CHECK(c.dims.rope.factor == 2.0);
        for (const auto& g : cases) got.push_back(greedy(m, p, g.prompt, 16));
        return 0;
    });
    CHECK(got == want);
    CHECK(want[1] != cases[1].greedy);  // the scaling changes the tokens (else this test could not fail)
}
