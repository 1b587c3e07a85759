// SPDX-License-Identifier: Apache-2.0
// from_hf_config: a Hugging Face config.json -> the family and llm::model::dims; unknown options refused by name.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/model/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llm::model {

/// The families from_hf_config recognises.
enum class family {
    llama,    ///< LlamaForCausalLM
    mistral,  ///< MistralForCausalLM
    qwen2,    ///< Qwen2ForCausalLM
    gpt2,     ///< GPT2LMHeadModel
    mixtral,  ///< MixtralForCausalLM (llm::moe::mixtral, <llm/moe/mixtral.hpp>)
    mamba,    ///< MambaForCausalLM (llm::model::mamba, <llm/model/mamba_family.hpp>)
};

/// The sizes of a state-space (Mamba) config that llm::model::dims has no field for; zero for
/// the other families.
struct ssm_sizes {
    std::size_t state = 0;    ///< state_size (d_state)
    std::size_t conv = 0;     ///< conv_kernel (d_conv)
    std::size_t dt_rank = 0;  ///< time_step_rank (ceil(hidden_size / 16) for "auto")
};

/// What a config.json says: the architecture name, the family and the dims.
struct hf_config {
    std::string architecture;  ///< e.g. "LlamaForCausalLM"
    model::family family{};    ///< the family (selects llm::model::llama / mistral / qwen2 / gpt2, llm::moe::mixtral)
    model::dims dims{};        ///< sizes and options
    model::ssm_sizes ssm{};    ///< family::mamba: state, conv and dt-rank sizes
};

namespace detail {

class config_reader {
public:
    config_reader(const io::json_value& root, std::string source) : root_(root), src_(std::move(source)) {}

    std::size_t size(std::string_view key) const {
        const std::string what = src_ + ": " + std::string(key);
        return static_cast<std::size_t>(root_.at(key, what).as_int(what, 1, std::int64_t{1} << 40));
    }
    std::size_t size_or(std::string_view key, std::size_t fallback) const {
        const io::json_value* v = root_.find(key);
        if (v == nullptr || v->is_null()) {
            return fallback;
        }
        const std::string what = src_ + ": " + std::string(key);
        return static_cast<std::size_t>(v->as_int(what, 1, std::int64_t{1} << 40));
    }
    double number_or(std::string_view key, double fallback) const {
        const io::json_value* v = root_.find(key);
        return v == nullptr || v->is_null() ? fallback : v->as_number(src_ + ": " + std::string(key));
    }
    bool flag_or(std::string_view key, bool fallback) const {
        const io::json_value* v = root_.find(key);
        return v == nullptr || v->is_null() ? fallback : v->as_bool(src_ + ": " + std::string(key));
    }
    std::string string_or(std::string_view key, std::string fallback) const {
        const io::json_value* v = root_.find(key);
        return v == nullptr || v->is_null() ? fallback : v->as_string(src_ + ": " + std::string(key));
    }
    // An option we do not implement: refused by name unless it has its neutral value.
    void refuse_flag(std::string_view key, bool neutral) const {
        llm::check(flag_or(key, neutral) == neutral, "from_hf_config: ", src_, ": ", key, " = ", !neutral,
                   " is not supported by llm::model");
    }
    void require_string(std::string_view key, std::string_view want, std::string_view fallback) const {
        const std::string got = string_or(key, std::string(fallback));
        llm::check(got == want, "from_hf_config: ", src_, ": ", key, " = '", got, "' is not supported by llm::model (only '", want, "')");
    }
    const io::json_value& root() const { return root_; }
    const std::string& source() const { return src_; }

private:
    const io::json_value& root_;
    std::string src_;
};

inline rope_config read_rope(const config_reader& r, double default_theta) {
    rope_config rope{};
    rope.theta = r.number_or("rope_theta", default_theta);
    const io::json_value* s = r.root().find("rope_scaling");
    if (s == nullptr || s->is_null()) {
        return rope;
    }
    const std::string what = r.source() + ": rope_scaling";
    s->as_object(what);
    std::string type;
    if (const auto* t = s->find("rope_type"); t != nullptr) {
        type = t->as_string(what + ".rope_type");
    } else if (const auto* t2 = s->find("type"); t2 != nullptr) {
        type = t2->as_string(what + ".type");
    }
    auto num = [&](std::string_view key, double fallback) {
        const io::json_value* v = s->find(key);
        return v == nullptr || v->is_null() ? fallback : v->as_number(what + "." + std::string(key));
    };
    if (type == "default") {
        return rope;
    }
    if (type == "linear") {
        rope.scaling = rope_scaling_kind::linear;
        rope.factor = num("factor", 1.0);
    } else if (type == "llama3") {
        rope.scaling = rope_scaling_kind::llama3;
        rope.factor = num("factor", 8.0);
        rope.low_freq_factor = num("low_freq_factor", 1.0);
        rope.high_freq_factor = num("high_freq_factor", 4.0);
        rope.original_max_position = num("original_max_position_embeddings", 8192.0);
    } else {
        llm::fail("from_hf_config: ", r.source(), ": rope_scaling type '", type,
                  "' is not supported by llm::model (supported: default, linear, llama3)");
    }
    llm::check(rope.factor > 0.0, "from_hf_config: ", r.source(), ": rope_scaling.factor = ", rope.factor, " must be > 0");
    return rope;
}

}  // namespace detail

/// Reads a Hugging Face config.json document: the architecture (`architectures[0]`:
/// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, MixtralForCausalLM (num_local_experts
/// and num_experts_per_tok into dims.n_experts / experts_per_token), GPT2LMHeadModel) picks the family
/// and the sizes and options fill llm::model::dims with transformers' defaults for absent
/// keys. Unknown architectures and options this library does not implement (an unsupported
/// rope_scaling type, attention_bias or mlp_bias on Llama, another hidden_act, Qwen2's
/// use_sliding_window, GPT-2's scale_attn_by_inverse_layer_idx ...) raise llm::error naming
/// the key and the value.
/// Example: `auto cfg = llm::model::from_hf_config_text(text, "config.json"); llm::model::llama<> m(cfg.dims);`
inline hf_config from_hf_config_text(std::string_view text, const std::string& source) {
    const io::json_value root = io::parse_json(text, source);
    root.as_object(source);
    const detail::config_reader r(root, source);
    hf_config out;
    const io::json_value* archs = root.find("architectures");
    llm::check(archs != nullptr && archs->is_array() && !archs->as_array(source + ": architectures").empty(), "from_hf_config: ", source,
               ": no 'architectures' list naming the model class");
    out.architecture = archs->as_array(source + ": architectures")[0].as_string(source + ": architectures[0]");
    dims& d = out.dims;
    const std::string& a = out.architecture;
    if (a == "LlamaForCausalLM" || a == "MistralForCausalLM" || a == "Qwen2ForCausalLM" || a == "MixtralForCausalLM") {
        out.family = a == "LlamaForCausalLM"     ? family::llama
                     : a == "MistralForCausalLM" ? family::mistral
                     : a == "Qwen2ForCausalLM"   ? family::qwen2
                                                 : family::mixtral;
        d.vocab = r.size("vocab_size");
        d.d_model = r.size("hidden_size");
        d.n_layers = r.size("num_hidden_layers");
        d.n_heads = r.size("num_attention_heads");
        d.n_kv_heads = r.size_or("num_key_value_heads", d.n_heads);
        d.head_dim = r.size_or("head_dim", 0);
        d.d_ff = r.size("intermediate_size");
        d.max_seq = r.size_or("max_position_embeddings", 2048);
        d.norm_eps = static_cast<float>(r.number_or("rms_norm_eps", 1e-6));
        d.rope = detail::read_rope(r, 10000.0);
        r.require_string("hidden_act", "silu", "silu");
        d.tie_embeddings = r.flag_or("tie_word_embeddings", false);
        if (out.family == family::llama) {
            r.refuse_flag("attention_bias", false);
            r.refuse_flag("mlp_bias", false);
        } else if (out.family == family::mistral) {
            d.sliding_window = r.size_or("sliding_window", 0);
        } else if (out.family == family::mixtral) {
            d.sliding_window = r.size_or("sliding_window", 0);
            d.n_experts = r.size_or("num_local_experts", 8);
            d.experts_per_token = r.size_or("num_experts_per_tok", 2);
            llm::check(r.number_or("router_jitter_noise", 0.0) == 0.0, "from_hf_config: ", source,
                       ": router_jitter_noise != 0 is not supported by llm::model");
            r.refuse_flag("output_router_logits", false);
        } else {
            d.qkv_bias = true;
            r.refuse_flag("use_sliding_window", false);
        }
    } else if (a == "GPT2LMHeadModel") {
        out.family = family::gpt2;
        d.vocab = r.size("vocab_size");
        d.d_model = r.size("n_embd");
        d.n_layers = r.size("n_layer");
        d.n_heads = r.size("n_head");
        d.d_ff = r.size_or("n_inner", 4 * d.d_model);
        d.max_seq = r.size_or("n_positions", 1024);
        d.norm_eps = static_cast<float>(r.number_or("layer_norm_epsilon", 1e-5));
        d.tie_embeddings = r.flag_or("tie_word_embeddings", true);
        r.require_string("activation_function", "gelu_new", "gelu_new");
        r.refuse_flag("scale_attn_weights", true);
        r.refuse_flag("scale_attn_by_inverse_layer_idx", false);
        llm::check(d.tie_embeddings, "from_hf_config: ", source, ": tie_word_embeddings = false is not supported for GPT2LMHeadModel");
    } else if (a == "MambaForCausalLM") {
        out.family = family::mamba;
        d.vocab = r.size("vocab_size");
        d.d_model = r.size("hidden_size");
        d.n_layers = r.size("num_hidden_layers");
        d.n_heads = 1;  // Mamba has no heads
        d.d_ff = r.size_or("intermediate_size", 2 * d.d_model);
        d.norm_eps = static_cast<float>(r.number_or("layer_norm_epsilon", 1e-5));
        d.tie_embeddings = r.flag_or("tie_word_embeddings", true);
        out.ssm.state = r.size_or("state_size", 16);
        out.ssm.conv = r.size_or("conv_kernel", 4);
        const io::json_value* rank = root.find("time_step_rank");
        out.ssm.dt_rank = rank != nullptr && !rank->is_null() && !rank->is_string() ? r.size("time_step_rank") : (d.d_model + 15) / 16;
        if (rank != nullptr && rank->is_string()) {
            r.require_string("time_step_rank", "auto", "auto");
        }
        r.refuse_flag("use_bias", false);
        r.refuse_flag("use_conv_bias", true);
        r.require_string("hidden_act", "silu", "silu");
    } else {
        llm::fail("from_hf_config: ", source, ": architecture '", a,
                  "' is not supported by llm::model (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, MixtralForCausalLM, "
                  "GPT2LMHeadModel, MambaForCausalLM)");
    }
    d.validate("from_hf_config");
    return out;
}

/// from_hf_config_text on the file at `path` (a config.json).
/// Example: `auto cfg = llm::model::from_hf_config("tiny-llama/config.json");`
inline hf_config from_hf_config(const std::string& path) {
    return from_hf_config_text(io::read_file(path, std::size_t{16} << 20, "from_hf_config"), path);
}

}  // namespace llm::model
