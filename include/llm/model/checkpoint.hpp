// SPDX-License-Identifier: Apache-2.0
// Model parameters from and to safetensors files with Hugging Face names.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/io/safetensors.hpp>
#include <llm/model/block.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/views.hpp>

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace llm::model {

/// Options of load_safetensors.
/// Example: `llm::model::load_safetensors(p, "model.safetensors", {.base_prefix = "model."});`
struct load_options {
    /// The base model's prefix ("model.", "transformer."): a name not found in the file is also
    /// looked up without it (checkpoints saved from the base model class, e.g. the hub's gpt2).
    std::string_view base_prefix{};
    /// Tensor names in the file to accept unused (e.g. "lm_head.weight" beside a tied model).
    std::vector<std::string> ignore{};
};

namespace detail {
inline bool ignorable_buffer(std::string_view name) {
    // GPT-2's causal-mask buffers, saved by older transformers versions: not parameters.
    return name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias");
}
}  // namespace detail

/// Reads every tensor of a parameter struct (a decoder's params<T>, or any
/// llm::model::param_struct) from a safetensors file or sharded checkpoint (a
/// model.safetensors.index.json) by its Hugging Face name, converting F32, BF16 or F16 to T.
/// llm::error, naming the tensor and the file, when a tensor is missing, has another shape
/// (the name, both shapes) or another dtype, or when the file holds tensors the model does not
/// have ("extra tensors", listed) other than opt.ignore and GPT-2's attn.bias buffers.
/// Example: `auto p = m.make_params<float>(); llm::model::load_safetensors(p, "tiny/model.safetensors");`
template <param_struct P>
void load_safetensors(P& params, const std::string& path, const load_options& opt = {}) {
    constexpr const char* fn = "load_safetensors";
    const io::safetensors_checkpoint ck(path);
    std::set<std::string, std::less<>> used;
    params.for_each_param([&](std::string_view name, auto& t) {
        std::string key(name);
        if (ck.find(key) == nullptr && !opt.base_prefix.empty() && key.starts_with(opt.base_prefix) &&
            ck.find(key.substr(opt.base_prefix.size())) != nullptr) {
            key = key.substr(opt.base_prefix.size());
        }
        const io::safetensors_tensor* st = ck.find(key);
        llm::check(st != nullptr, fn, ": tensor '", name, "' is missing from '", path, "'");
        std::vector<std::size_t> want;
        for (std::size_t r = 0; r < t.rank(); ++r) {
            want.push_back(t.extent(r));
        }
        llm::check(st->shape == want, fn, ": tensor '", key, "' in '", path, "' has shape ", io::detail::safetensors_shape(st->shape),
                   " but the model expects ", io::detail::safetensors_shape(want));
        used.insert(key);
        auto dst = llm::reshape(t, t.size());
        switch (st->dtype) {
            case io::dtype::F32:
                llm::convert(ck.template flat_view<float>(key), dst);
                break;
            case io::dtype::BF16:
                llm::convert(ck.template flat_view<bf16>(key), dst);
                break;
            case io::dtype::F16:
                llm::convert(ck.template flat_view<f16>(key), dst);
                break;
            default:
                llm::fail(fn, ": tensor '", key, "' in '", path, "' has dtype ", io::dtype_name(st->dtype),
                          "; F32, BF16 and F16 are supported");
        }
    });
    std::string extra;
    std::size_t n_extra = 0;
    for (const std::string_view name : ck.names()) {
        if (used.contains(name) || detail::ignorable_buffer(name)) {
            continue;
        }
        bool ignored = false;
        for (const auto& ig : opt.ignore) {
            ignored = ignored || ig == name;
        }
        if (!ignored) {
            extra += (n_extra++ == 0 ? "'" : ", '");
            extra += name;
            extra += "'";
        }
    }
    llm::check(n_extra == 0, fn, ": '", path, "' holds ", n_extra, " tensor(s) the model does not have: ", extra);
}

/// Writes every tensor of a parameter struct under its Hugging Face name (the element type
/// of the tensors: F32 or BF16), with metadata {"format": "pt"} so transformers loads it;
/// atomic (llm::io::save_safetensors).
/// Example: `llm::model::save_safetensors(p, "out/model.safetensors");`
template <param_struct P>
void save_safetensors(const P& params, const std::string& path) {
    std::vector<io::safetensors_tensor> tensors;
    params.for_each_param([&](std::string_view name, const auto& t) {
        tensors.push_back(io::safetensors_tensor::from_view(std::string(name), t.view()));
    });
    io::save_safetensors(path, tensors, {{"format", "pt"}});
}

}  // namespace llm::model
