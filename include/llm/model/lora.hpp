// SPDX-License-Identifier: Apache-2.0
// LoRA adapters on any 2-D weight chosen by name: W' = W + (alpha / r) B A; merge, unmerge, adapter gradients.
#pragma once

#include <llm/core/error.hpp>
#include <llm/model/block.hpp>
#include <llm/tensor/tensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace llm::model {

/// LoRA settings (Hu et al. 2021; PEFT's LoraConfig): rank r, alpha (the update is scaled by
/// alpha / r), the target weights (a 2-D parameter is adapted when its name contains one of
/// the strings, e.g. "q_proj", "v_proj", "attn.c_attn"), and fan_in_fan_out for weights
/// stored [in, out] (GPT-2's Conv1D, as PEFT's option of that name).
/// Example: `llm::model::lora_options o{.rank = 8, .alpha = 16, .targets = {"q_proj", "v_proj"}};`
struct lora_options {
    std::size_t rank = 8;                                   ///< r
    float alpha = 16.0f;                                    ///< scale numerator: the update is alpha / r * B A
    std::vector<std::string> targets{"q_proj", "v_proj"};  ///< name substrings of the adapted weights
    bool fan_in_fan_out = false;                            ///< weights stored [in, out] (GPT-2 Conv1D)
    std::uint64_t seed = 0;                                 ///< seeds A's initialisation
};

/// LoRA adapters for the 2-D tensors of a parameter struct whose names match the targets.
/// Each adapter has A [r, in] (PEFT's init: uniform(-1/sqrt(in), 1/sqrt(in)), Kaiming-uniform
/// with a = sqrt(5)) and B [out, r] (zeros), so training starts from the base model.
/// How it trains only the adapters through any block, unchanged: merge() writes W + s B A
/// into the weights (keeping the base weights), the model's forward and backward run as
/// usual, and accumulate_grads() turns the gradient of each merged weight dW into the
/// adapters' dA += s B^T dW and dB += s dW A^T (exact: W' = W + s B A); unmerge() restores the
/// base weights bit for bit. (The base gradients are computed and discarded: memory for a
/// dense gradient of the adapted weights is the price of not touching the blocks.)
/// `for_each_param(f)` visits the adapters under PEFT's names
/// (`base_model.model.<module>.lora_A.weight`), so optimisers and save_safetensors take them.
/// Example:
/// ```
/// llm::model::lora adapters(params, {.rank = 4, .alpha = 8, .targets = {"q_proj", "v_proj"}});
/// adapters.merge(params); model.forward_loss(...); model.backward_loss(grads, ...);
/// adapters.unmerge(params); adapters.accumulate_grads(grads);  // then update adapters' A, B
/// ```
class lora {
public:
    /// One adapted weight: its name, A, B, their gradients, and the base weights while merged.
    struct adapter {
        std::string name;                    ///< the adapted weight's name
        tensor<float, llm::dims<2>> a;       ///< A [r, in]
        tensor<float, llm::dims<2>> b;       ///< B [out, r]
        tensor<float, llm::dims<2>> grad_a;  ///< dA [r, in]
        tensor<float, llm::dims<2>> grad_b;  ///< dB [out, r]
        std::vector<float> base;             ///< the weight's elements before merge() (fp32)
        std::size_t out = 0;                 ///< rows of the logical weight
        std::size_t in = 0;                  ///< columns of the logical weight
    };

    /// Adapters for every 2-D tensor of `params` whose name contains one of opt.targets.
    /// Throws llm::error when none matches or rank is 0.
    template <param_struct P>
    lora(const P& params, const lora_options& opt) : opt_(opt), scale_(opt.alpha / static_cast<float>(opt.rank)) {
        llm::check(opt.rank > 0, "lora: rank must be > 0");
        std::mt19937_64 rng(opt.seed);
        params.for_each_param([&](std::string_view name, const auto& t) {
            if (t.rank() != 2 || !matches(name)) {
                return;
            }
            adapter ad;
            ad.name = std::string(name);
            ad.out = opt.fan_in_fan_out ? t.extent(1) : t.extent(0);
            ad.in = opt.fan_in_fan_out ? t.extent(0) : t.extent(1);
            ad.a = tensor<float, llm::dims<2>>(opt.rank, ad.in);
            ad.b = tensor<float, llm::dims<2>>(ad.out, opt.rank);
            ad.grad_a = tensor<float, llm::dims<2>>(opt.rank, ad.in);
            ad.grad_b = tensor<float, llm::dims<2>>(ad.out, opt.rank);
            const double bound = 1.0 / std::sqrt(static_cast<double>(ad.in));
            for (std::size_t i = 0; i < ad.a.size(); ++i) {
                ad.a.data()[i] = static_cast<float>((2.0 * (static_cast<double>(rng() >> 11) * 0x1.0p-53) - 1.0) * bound);
            }
            adapters_.push_back(std::move(ad));
        });
        llm::check(!adapters_.empty(), "lora: no 2-D parameter name contains any of the ", opt.targets.size(), " target strings");
    }

    /// The adapters, in the order of the parameters' walk.
    [[nodiscard]] std::vector<adapter>& adapters() noexcept { return adapters_; }
    /// The adapters, read-only.
    [[nodiscard]] const std::vector<adapter>& adapters() const noexcept { return adapters_; }
    /// alpha / r.
    [[nodiscard]] float scale() const noexcept { return scale_; }
    /// True between merge() and unmerge().
    [[nodiscard]] bool merged() const noexcept { return merged_; }

    /// W += (alpha / r) B A for every adapted weight (the base weights are kept for unmerge).
    /// Throws llm::error when already merged or `params` lacks an adapted name or shape.
    template <param_struct P>
    void merge(P& params) {
        llm::check(!merged_, "lora::merge: the adapters are already merged");
        visit(params, [&](adapter& ad, auto& w) {
            ad.base.resize(w.size());
            for (std::size_t i = 0; i < w.size(); ++i) {
                ad.base[i] = static_cast<float>(w.data()[i]);
            }
            for (std::size_t o = 0; o < ad.out; ++o) {
                for (std::size_t i = 0; i < ad.in; ++i) {
                    double delta = 0.0;
                    for (std::size_t k = 0; k < opt_.rank; ++k) {
                        delta += static_cast<double>(ad.b(o, k)) * ad.a(k, i);
                    }
                    auto& e = element(w, o, i);
                    e = static_cast<std::remove_reference_t<decltype(e)>>(static_cast<float>(ad.base[offset(w, o, i)] + scale_ * delta));
                }
            }
        });
        merged_ = true;
    }

    /// Restores the base weights exactly (those merge() kept). Throws llm::error when not merged.
    template <param_struct P>
    void unmerge(P& params) {
        llm::check(merged_, "lora::unmerge: the adapters are not merged");
        visit(params, [&](adapter& ad, auto& w) {
            using E = std::remove_reference_t<decltype(*w.data())>;
            for (std::size_t i = 0; i < w.size(); ++i) {
                w.data()[i] = static_cast<E>(ad.base[i]);
            }
            ad.base.clear();
        });
        merged_ = false;
    }

    /// The adapters' gradients from the model's gradients of the merged weights (ACCUMULATES,
    /// as every backward): dA += s B^T dW, dB += s dW A^T.
    template <param_struct G>
    void accumulate_grads(G& grads) {
        visit(grads, [&](adapter& ad, auto& dw) {
            for (std::size_t k = 0; k < opt_.rank; ++k) {
                for (std::size_t i = 0; i < ad.in; ++i) {
                    double s = 0.0;
                    for (std::size_t o = 0; o < ad.out; ++o) {
                        s += static_cast<double>(ad.b(o, k)) * static_cast<float>(element(dw, o, i));
                    }
                    ad.grad_a(k, i) += static_cast<float>(scale_ * s);
                }
            }
            for (std::size_t o = 0; o < ad.out; ++o) {
                for (std::size_t k = 0; k < opt_.rank; ++k) {
                    double s = 0.0;
                    for (std::size_t i = 0; i < ad.in; ++i) {
                        s += static_cast<double>(static_cast<float>(element(dw, o, i))) * ad.a(k, i);
                    }
                    ad.grad_b(o, k) += static_cast<float>(scale_ * s);
                }
            }
        });
    }

    /// Clears dA and dB.
    void zero_grad() {
        for (auto& ad : adapters_) {
            llm::zero_grad(ad.grad_a, ad.grad_b);
        }
    }

    /// Visits (PEFT name, tensor) for every A and B: `base_model.model.<module>.lora_A.weight`.
    template <class F>
    void for_each_param(F&& f) {
        walk_names(f, [](adapter& ad) -> auto& { return ad.a; }, [](adapter& ad) -> auto& { return ad.b; });
    }
    /// Visits (PEFT name, gradient) for every dA and dB, in the order of for_each_param.
    template <class F>
    void for_each_grad(F&& f) {
        walk_names(f, [](adapter& ad) -> auto& { return ad.grad_a; }, [](adapter& ad) -> auto& { return ad.grad_b; });
    }

private:
    bool matches(std::string_view name) const {
        for (const auto& t : opt_.targets) {
            if (name.find(t) != std::string_view::npos) {
                return true;
            }
        }
        return false;
    }
    // The element of the logical [out, in] weight (stored transposed with fan_in_fan_out).
    template <class W>
    auto& element(W& w, std::size_t o, std::size_t i) const {
        return opt_.fan_in_fan_out ? w(i, o) : w(o, i);
    }
    template <class W>
    std::size_t offset(const W& w, std::size_t o, std::size_t i) const {
        return opt_.fan_in_fan_out ? i * w.extent(1) + o : o * w.extent(1) + i;
    }
    template <class P, class F>
    void visit(P& params, F&& f) {
        std::size_t found = 0;
        params.for_each_param([&](std::string_view name, auto& t) {
            if constexpr (std::remove_reference_t<decltype(t)>::rank() == 2) {
                for (auto& ad : adapters_) {
                    if (ad.name == name) {
                        const std::size_t out = opt_.fan_in_fan_out ? t.extent(1) : t.extent(0);
                        const std::size_t in = opt_.fan_in_fan_out ? t.extent(0) : t.extent(1);
                        llm::check(out == ad.out && in == ad.in, "lora: '", name, "' is ", out, " x ", in, " but its adapter is for ",
                                   ad.out, " x ", ad.in);
                        f(ad, t);
                        ++found;
                    }
                }
            }
        });
        llm::check(found == adapters_.size(), "lora: the parameters hold ", found, " of the ", adapters_.size(), " adapted weights");
    }
    template <class F, class GA, class GB>
    void walk_names(F& f, GA get_a, GB get_b) {
        for (auto& ad : adapters_) {
            std::string module = ad.name;
            if (module.ends_with(".weight")) {
                module.resize(module.size() - 7);
            }
            const std::string na = "base_model.model." + module + ".lora_A.weight";
            const std::string nb = "base_model.model." + module + ".lora_B.weight";
            f(std::string_view(na), get_a(ad));
            f(std::string_view(nb), get_b(ad));
        }
    }

    lora_options opt_;
    float scale_;
    std::vector<adapter> adapters_;
    bool merged_ = false;
};

}  // namespace llm::model
