// SPDX-License-Identifier: Apache-2.0
// Averaged weights: an exponential moving average kept beside the model, and the average of the
// last k saved checkpoints.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/io/safetensors.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/train/clip.hpp>
#include <llm/train/detail/flat.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llm::train {

/// ema = ema + (1 - decay) (param - ema), elementwise (torch's `ema.lerp_(param, 1 - decay)`,
/// as timm's ModelEmaV3 and torch.optim.swa_utils' EMA update). ema fp32, param fp32 or bf16,
/// contiguous, same element count; decay in [0, 1].
/// Example: `llm::train::ema_update(w_ema, w, 0.999, pool);`
template <simd::backend S = simd::default_backend, any_f32_view E, any_dense_view P>
void ema_update(E&& ema, P&& param, double decay, parallel::policy auto&& exec) {
    constexpr const char* fn = "ema_update";
    check(decay >= 0 && decay <= 1, fn, ": decay = ", decay, " must be in [0, 1]");
    const auto e = detail::flat_of(fn, "ema", ema);
    const auto p = detail::flat_of(fn, "param", param);
    detail::check_same_size(fn, "", "ema", e, "param", p);
    const float w = static_cast<float>(1 - decay);
    parallel::parallel_for(exec, e.size, detail::norm_grain, [&](std::size_t b, std::size_t end) {
        const auto wv = S::set1(w);
        std::size_t i = b;
        for (; i + S::width <= end; i += S::width) {
            const auto ev = S::loadu(e.data + i);
            S::storeu(e.data + i, S::fma(wv, S::sub(detail::load_any<S>(p.data + i), ev), ev));
        }
        if (i < end) {
            const auto ev = S::load_partial(e.data + i, end - i);
            S::store_partial(e.data + i, S::fma(wv, S::sub(detail::load_any_partial<S>(p.data + i, end - i), ev), ev), end - i);
        }
    });
}

/// ema_update on llm::parallel::default_pool(). Example: `llm::train::ema_update(w_ema, w, 0.999);`
template <simd::backend S = simd::default_backend, any_f32_view E, any_dense_view P>
void ema_update(E&& ema, P&& param, double decay) {
    ema_update<S>(ema, param, decay, parallel::default_pool());
}

/// An exponential moving average of a model's weights, owned by name: the first update copies
/// the parameters (fp32), later ones apply ema_update. The walk passes (name, ..., param): the
/// last view of each call, so a (name, param) walk works.
/// Example:
/// ```
/// llm::train::ema_weights ema(0.999);
/// ema.update([&](auto&& f) { f("w", w); }, pool);
/// llm::io::save_safetensors("ema.safetensors", ema.tensors());
/// ```
class ema_weights {
public:
    /// decay in [0, 1].
    explicit ema_weights(double decay) : decay_(decay) {
        check(decay >= 0 && decay <= 1, "ema_weights: decay = ", decay, " must be in [0, 1]");
    }
    /// The decay.
    double decay() const noexcept { return decay_; }
    /// Updates taken so far.
    std::int64_t updates() const noexcept { return updates_; }

    /// One update from the parameters a walk visits.
    template <simd::backend S = simd::default_backend, class Walk>
    void update(Walk&& walk, parallel::policy auto&& exec) {
        constexpr const char* fn = "ema_weights::update";
        detail::visit(walk, [&](std::string_view name, auto&&... views) {
            auto&& p = detail::last(views...);
            static_assert(any_dense_view<decltype(p)>, "ema_weights::update: the parameter must be an fp32 or bf16 view");
            const auto f = detail::flat_of(fn, name, p);
            auto it = weights_.find(name);
            if (it == weights_.end()) {
                check(updates_ == 0, fn, ": parameter '", name, "' appeared after the first update");
                entry e{{}, llm::tensor<float, dims<1>>(uninitialized, f.size)};
                for (std::size_t r = 0; r < f.rank; ++r) e.shape.push_back(static_cast<std::size_t>(p.extent(r)));
                for (std::size_t i = 0; i < f.size; ++i) e.w.data()[i] = static_cast<float>(f.data[i]);
                weights_.emplace(std::string(name), std::move(e));
                return;
            }
            ema_update<S>(it->second.w, tensor_view<const view_element_t<decltype(p)>, dims<1>>(f.data, f.size), decay_, exec);
        });
        ++updates_;
    }

    /// The averaged weights as safetensors tensors (fp32, the parameters' names and shapes),
    /// pointing into this object. Example: `llm::io::save_safetensors("ema.safetensors", ema.tensors());`
    std::vector<io::safetensors_tensor> tensors() const {
        std::vector<io::safetensors_tensor> out;
        for (const auto& [name, e] : weights_) {
            auto t = io::safetensors_tensor::from_view(name, e.w.view());
            t.shape = e.shape;
            out.push_back(std::move(t));
        }
        return out;
    }

    /// The averaged weights of parameter `name` (llm::error when unknown).
    tensor_view<const float, dims<1>> operator[](std::string_view name) const {
        const auto it = weights_.find(name);
        check(it != weights_.end(), "ema_weights: no parameter '", name, "'");
        return it->second.w.view();
    }

private:
    struct entry {
        std::vector<std::size_t> shape;
        llm::tensor<float, dims<1>> w;
    };
    double decay_;
    std::int64_t updates_ = 0;
    std::map<std::string, entry, std::less<>> weights_;
};

/// Writes the elementwise mean of several safetensors checkpoints (the last k of a run) to
/// `out`, atomically. Every input must hold the same tensor names with the same shapes; F32 and
/// BF16 tensors are averaged (sums in double, rounded once to the first file's dtype), other
/// dtypes must be identical in every file and are copied. Metadata of the first file is kept.
/// llm::error names the file and tensor that disagree.
/// Example: `llm::train::average_checkpoints("avg.safetensors", {"step900.safetensors", "step1000.safetensors"});`
inline void average_checkpoints(const std::string& out, const std::vector<std::string>& inputs) {
    constexpr const char* fn = "average_checkpoints";
    check(!inputs.empty(), fn, ": no input checkpoints");
    std::vector<io::safetensors_file> files;
    for (const std::string& p : inputs) files.emplace_back(p);
    const io::safetensors_file& first = files.front();
    for (std::size_t k = 1; k < files.size(); ++k) {
        check(files[k].size() == first.size(), fn, ": '", inputs[k], "' holds ", files[k].size(), " tensors but '", inputs[0],
              "' holds ", first.size());
    }
    auto value = [](const io::safetensors_tensor& t, std::size_t i) -> double {
        if (t.dtype == io::dtype::F32) {
            float x;
            std::memcpy(&x, t.data.data() + 4 * i, 4);
            return x;
        }
        std::uint16_t b;
        std::memcpy(&b, t.data.data() + 2 * i, 2);
        return static_cast<float>(bf16::from_bits(b));
    };
    std::vector<std::vector<std::byte>> buffers;
    std::vector<io::safetensors_tensor> result;
    for (std::size_t i = 0; i < first.size(); ++i) {
        const io::safetensors_tensor& t = first[i];
        std::vector<const io::safetensors_tensor*> ts{&t};
        for (std::size_t k = 1; k < files.size(); ++k) {
            const io::safetensors_tensor* u = files[k].find(t.name);
            check(u != nullptr, fn, ": '", inputs[k], "' has no tensor '", t.name, "' (found in '", inputs[0], "')");
            check(u->shape == t.shape, fn, ": tensor '", t.name, "' has shape ", io::detail::safetensors_shape(u->shape),
                  " in '", inputs[k], "' but ", io::detail::safetensors_shape(t.shape), " in '", inputs[0], "'");
            ts.push_back(u);
        }
        const bool averaged = t.dtype == io::dtype::F32 || t.dtype == io::dtype::BF16;
        std::vector<std::byte> bytes(t.data.size());
        if (!averaged) {
            for (std::size_t k = 1; k < ts.size(); ++k)
                check(ts[k]->dtype == t.dtype && std::memcmp(ts[k]->data.data(), t.data.data(), t.data.size()) == 0, fn,
                      ": tensor '", t.name, "' (", io::dtype_name(t.dtype), ", not averaged) differs in '", inputs[k], "'");
            if (!bytes.empty()) std::memcpy(bytes.data(), t.data.data(), bytes.size());
        } else {
            for (std::size_t k = 1; k < ts.size(); ++k)
                check(ts[k]->dtype == io::dtype::F32 || ts[k]->dtype == io::dtype::BF16, fn, ": tensor '", t.name, "' is ",
                      io::dtype_name(ts[k]->dtype), " in '", inputs[k], "'; only F32 and BF16 are averaged");
            const std::size_t n = t.elements();
            for (std::size_t e = 0; e < n; ++e) {
                double s = 0;
                for (const auto* u : ts) s += value(*u, e);
                const double mean = s / static_cast<double>(ts.size());
                if (t.dtype == io::dtype::F32) {
                    const float x = static_cast<float>(mean);
                    std::memcpy(bytes.data() + 4 * e, &x, 4);
                } else {
                    const std::uint16_t b = bf16(mean).bits();
                    std::memcpy(bytes.data() + 2 * e, &b, 2);
                }
            }
        }
        buffers.push_back(std::move(bytes));
        io::safetensors_tensor r{t.name, t.dtype, t.shape, {}};
        result.push_back(std::move(r));
    }
    for (std::size_t i = 0; i < result.size(); ++i) result[i].data = std::span<const std::byte>(buffers[i]);
    io::save_safetensors(out, result, first.metadata());
}

}  // namespace llm::train
