// SPDX-License-Identifier: Apache-2.0
// AdamW and SGD with momentum, with PyTorch's semantics (torch.optim.AdamW, torch.optim.SGD):
// per-tensor kernels, a weight-decay rule, and optimizers that own their state and walk any
// visitor or range of (name, param, grad).
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/io/safetensors.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/train/detail/flat.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::train {

/// Hyperparameters of AdamW, with torch.optim.AdamW's meaning and defaults. Doubles, as
/// PyTorch's Python floats: bias corrections 1 - beta^t are computed in double, and each
/// scalar is rounded to float once where it meets the fp32 tensors, as in PyTorch.
/// Example: `llm::train::adamw_options o{.lr = 6e-4, .beta2 = 0.95, .weight_decay = 0.1};`
struct adamw_options {
    double lr = 1e-3;            ///< learning rate (a schedule sets it before each step)
    double beta1 = 0.9;          ///< decay of the first moment
    double beta2 = 0.999;        ///< decay of the second moment
    double eps = 1e-8;           ///< added to sqrt(v_hat), outside the square root
    double weight_decay = 1e-2;  ///< decoupled: p *= 1 - lr * weight_decay, before the update
};

/// Hyperparameters of SGD, with torch.optim.SGD's meaning and defaults (lr has no default
/// there; 1e-3 here). momentum 0 keeps no buffer; nesterov needs momentum > 0 and dampening 0.
/// Example: `llm::train::sgd_options o{.lr = 0.1, .momentum = 0.9, .nesterov = true};`
struct sgd_options {
    double lr = 1e-3;            ///< learning rate
    double momentum = 0;         ///< momentum factor
    double dampening = 0;        ///< dampening of the momentum (1 - dampening scales the new gradient)
    double weight_decay = 0;     ///< L2 penalty added to the gradient (coupled, as torch.optim.SGD)
    bool nesterov = false;       ///< Nesterov momentum
};

/// A weight-decay rule: given a parameter's name and rank, whether weight decay applies to it.
/// Open: any callable `bool(std::string_view name, std::size_t rank)` is one.
/// Example: `static_assert(llm::train::decay_rule<llm::train::decay_matrices>);`
template <class R>
concept decay_rule = std::predicate<const R&, std::string_view, std::size_t>;

/// The llm.c / nanoGPT rule: decay tensors of 2 or more dimensions (matmul weights,
/// embeddings), not biases, norm gains or other vectors.
/// Example: `bool d = llm::train::decay_matrices{}("model.norm.weight", 1);  // false`
struct decay_matrices {
    /// True when rank >= 2.
    bool operator()(std::string_view /*name*/, std::size_t rank) const noexcept { return rank >= 2; }
};

/// Decay every tensor (what torch.optim.AdamW does on one parameter group).
/// Example: `llm::train::adamw_optimizer<> opt({}, llm::train::decay_all{});`
struct decay_all {
    /// Always true.
    bool operator()(std::string_view /*name*/, std::size_t /*rank*/) const noexcept { return true; }
};

namespace detail {

inline constexpr std::size_t optimizer_grain = std::size_t{1} << 14;

// The float scalars of one AdamW step, computed as PyTorch computes them.
struct adamw_scalars {
    float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps;
};

inline adamw_scalars adamw_scalars_for(const char* fn, const adamw_options& o, std::int64_t step, bool decay) {
    check(step >= 1, fn, ": step = ", step, " must be >= 1 (the 1-based count of this update, as PyTorch's state['step'])");
    check(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0, fn, ": lr = ", o.lr, ", eps = ", o.eps, ", weight_decay = ",
          o.weight_decay, " must be >= 0");
    check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, fn, ": beta1 = ", o.beta1, ", beta2 = ", o.beta2,
          " must be in [0, 1)");
    const double t = static_cast<double>(step);
    const double bc1 = 1 - std::pow(o.beta1, t);
    const double bc2 = 1 - std::pow(o.beta2, t);
    return {static_cast<float>(1 - o.lr * (decay ? o.weight_decay : 0.0)),
            static_cast<float>(o.beta1),
            static_cast<float>(1 - o.beta1),
            static_cast<float>(o.beta2),
            static_cast<float>(1 - o.beta2),
            static_cast<float>(-(o.lr / bc1)),
            static_cast<float>(std::sqrt(bc2)),
            static_cast<float>(o.eps)};
}

// One AdamW update of n elements, in PyTorch's order of operations:
//   p *= decay; m = m * b1 + (1 - b1) g (one fma); v = v * b2 + ((1 - b2) g) g;
//   p += (-step_size * m) / (sqrt(v) / sqrt(bc2) + eps); out = bf16(p) when out is given.
template <simd::backend S, class G>
void adamw_run(float* p, float* m, float* v, const G* g, bf16* out, std::size_t n, const adamw_scalars& c) {
    using V = typename S::f32;
    const V decay = S::set1(c.decay), b1 = S::set1(c.beta1), c1 = S::set1(c.one_minus_beta1), b2 = S::set1(c.beta2),
            c2 = S::set1(c.one_minus_beta2), neg_step = S::set1(c.neg_step_size), bc2s = S::set1(c.bc2_sqrt),
            eps = S::set1(c.eps);
    auto body = [&](V pv, V mv, V vv, V gv, V& po, V& mo, V& vo) {
        pv = S::mul(pv, decay);
        mo = S::fma(gv, c1, S::mul(mv, b1));
        vo = S::add(S::mul(vv, b2), S::mul(S::mul(c2, gv), gv));
        const V denom = S::add(S::div(sqrt<S>(vo), bc2s), eps);
        po = S::add(pv, S::div(S::mul(neg_step, mo), denom));
    };
    std::size_t i = 0;
    for (; i + S::width <= n; i += S::width) {
        V po, mo, vo;
        body(S::loadu(p + i), S::loadu(m + i), S::loadu(v + i), load_any<S>(g + i), po, mo, vo);
        S::storeu(p + i, po);
        S::storeu(m + i, mo);
        S::storeu(v + i, vo);
        if (out) S::store_bf16(out + i, po);
    }
    if (i < n) {
        const std::size_t r = n - i;
        V po, mo, vo;
        body(S::load_partial(p + i, r), S::load_partial(m + i, r), S::load_partial(v + i, r), load_any_partial<S>(g + i, r),
             po, mo, vo);
        S::store_partial(p + i, po, r);
        S::store_partial(m + i, mo, r);
        S::store_partial(v + i, vo, r);
        if (out) S::store_bf16_partial(out + i, po, r);
    }
}

// One SGD update of n elements, in PyTorch's order: d = g + wd p (one fma, when wd != 0);
// buf = first ? d : buf * mom + (1 - damp) d; d = nesterov ? d + mom buf : buf; p += -lr d.
template <simd::backend S, class G>
void sgd_run(float* p, float* buf, const G* g, bf16* out, std::size_t n, const sgd_options& o, bool first) {
    using V = typename S::f32;
    const bool wd = o.weight_decay != 0, mom = o.momentum != 0;
    const V wdv = S::set1(static_cast<float>(o.weight_decay)), mv = S::set1(static_cast<float>(o.momentum)),
            damp = S::set1(static_cast<float>(1 - o.dampening)), neg_lr = S::set1(static_cast<float>(-o.lr));
    auto body = [&](V pv, V bv, V gv, V& po, V& bo) {
        V d = wd ? S::fma(pv, wdv, gv) : gv;
        if (mom) {
            bo = first ? d : S::fma(d, damp, S::mul(bv, mv));
            d = o.nesterov ? S::fma(bo, mv, d) : bo;
        }
        po = S::fma(d, neg_lr, pv);
    };
    std::size_t i = 0;
    for (; i + S::width <= n; i += S::width) {
        V po, bo = S::zero();
        body(S::loadu(p + i), mom && !first ? S::loadu(buf + i) : S::zero(), load_any<S>(g + i), po, bo);
        S::storeu(p + i, po);
        if (mom) S::storeu(buf + i, bo);
        if (out) S::store_bf16(out + i, po);
    }
    if (i < n) {
        const std::size_t r = n - i;
        V po, bo = S::zero();
        body(S::load_partial(p + i, r), mom && !first ? S::load_partial(buf + i, r) : S::zero(), load_any_partial<S>(g + i, r),
             po, bo);
        S::store_partial(p + i, po, r);
        if (mom) S::store_partial(buf + i, bo, r);
        if (out) S::store_bf16_partial(out + i, po, r);
    }
}

template <simd::backend S, class G>
void adamw_flat(const char* fn, std::string_view name, flat<float> p, flat<float> m, flat<float> v, flat<G> g, flat<bf16> out,
                const adamw_options& o, std::int64_t step, bool decay, parallel::policy auto&& exec) {
    check_same_size(fn, name, "param", p, "m", m);
    check_same_size(fn, name, "param", p, "v", v);
    check_same_size(fn, name, "param", p, "grad", g);
    if (out.data) check_same_size(fn, name, "master", p, "param_bf16", out);
    const adamw_scalars c = adamw_scalars_for(fn, o, step, decay);
    parallel::parallel_for(exec, p.size, optimizer_grain, [&](std::size_t b, std::size_t e) {
        adamw_run<S>(p.data + b, m.data + b, v.data + b, g.data + b, out.data ? out.data + b : nullptr, e - b, c);
    });
}

template <simd::backend S, class G>
void sgd_flat(const char* fn, std::string_view name, flat<float> p, flat<float> buf, flat<G> g, flat<bf16> out,
              const sgd_options& o, std::int64_t step, parallel::policy auto&& exec) {
    check(step >= 1, fn, ": step = ", step, " must be >= 1 (the 1-based count of this update)");
    check(o.lr >= 0 && o.momentum >= 0 && o.weight_decay >= 0, fn, ": lr = ", o.lr, ", momentum = ", o.momentum,
          ", weight_decay = ", o.weight_decay, " must be >= 0");
    check(!o.nesterov || (o.momentum > 0 && o.dampening == 0), fn,
          ": Nesterov momentum requires a momentum and zero dampening (momentum = ", o.momentum, ", dampening = ",
          o.dampening, ")");
    if (o.momentum != 0) check_same_size(fn, name, "param", p, "momentum_buffer", buf);
    check_same_size(fn, name, "param", p, "grad", g);
    if (out.data) check_same_size(fn, name, "master", p, "param_bf16", out);
    parallel::parallel_for(exec, p.size, optimizer_grain, [&](std::size_t b, std::size_t e) {
        sgd_run<S>(p.data + b, buf.data ? buf.data + b : nullptr, g.data + b, out.data ? out.data + b : nullptr, e - b, o,
                   step == 1);
    });
}

}  // namespace detail

/// One AdamW update of one tensor, exactly torch.optim.AdamW's (amsgrad and maximize off):
/// `p *= 1 - lr * wd` (when `decay`), `m = beta1 m + (1 - beta1) g`,
/// `v = beta2 v + (1 - beta2) g^2`, `p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`.
/// Arguments: param, m, v (fp32, updated in place; m and v start at zero), grad (fp32 or bf16);
/// options; step t (1-based: the first update is 1); decay: whether weight decay applies (see
/// decay_rule). All tensors contiguous with the same number of elements, any ranks.
/// Elementwise, so the result does not depend on the policy or its thread count.
/// Example: `llm::train::adamw(w, m, v, dw, opts, step, true, pool);`
template <simd::backend S = simd::default_backend, any_f32_view P, any_f32_view M, any_f32_view V, any_dense_view G>
void adamw(P&& param, M&& m, V&& v, G&& grad, const adamw_options& options, std::int64_t step, bool decay,
           parallel::policy auto&& exec) {
    constexpr const char* fn = "adamw";
    detail::adamw_flat<S>(fn, "", detail::flat_of(fn, "param", param), detail::flat_of(fn, "m", m), detail::flat_of(fn, "v", v),
                          detail::flat_of(fn, "grad", grad), detail::flat<bf16>{}, options, step, decay, exec);
}

/// adamw on llm::parallel::default_pool(). Example: `llm::train::adamw(w, m, v, dw, opts, 1, true);`
template <simd::backend S = simd::default_backend, any_f32_view P, any_f32_view M, any_f32_view V, any_dense_view G>
void adamw(P&& param, M&& m, V&& v, G&& grad, const adamw_options& options, std::int64_t step, bool decay) {
    adamw<S>(param, m, v, grad, options, step, decay, parallel::default_pool());
}

/// AdamW for bf16 compute with fp32 master weights: the update of adamw on `master`, then
/// `param_bf16 = bf16(master)` (round to nearest even) in the same pass.
/// Example: `llm::train::adamw_master(w_bf16, w_master, m, v, dw_bf16, opts, step, true, pool);`
template <simd::backend S = simd::default_backend, any_view PB, any_f32_view P, any_f32_view M, any_f32_view V,
          any_dense_view G>
    requires std::same_as<view_element_t<PB>, bf16>
void adamw_master(PB&& param_bf16, P&& master, M&& m, V&& v, G&& grad, const adamw_options& options, std::int64_t step,
                  bool decay, parallel::policy auto&& exec) {
    constexpr const char* fn = "adamw_master";
    detail::adamw_flat<S>(fn, "", detail::flat_of(fn, "master", master), detail::flat_of(fn, "m", m),
                          detail::flat_of(fn, "v", v), detail::flat_of(fn, "grad", grad),
                          detail::flat_of(fn, "param_bf16", param_bf16), options, step, decay, exec);
}

/// adamw_master on llm::parallel::default_pool().
/// Example: `llm::train::adamw_master(w_bf16, w_master, m, v, dw_bf16, opts, step, true);`
template <simd::backend S = simd::default_backend, any_view PB, any_f32_view P, any_f32_view M, any_f32_view V,
          any_dense_view G>
    requires std::same_as<view_element_t<PB>, bf16>
void adamw_master(PB&& param_bf16, P&& master, M&& m, V&& v, G&& grad, const adamw_options& options, std::int64_t step,
                  bool decay) {
    adamw_master<S>(param_bf16, master, m, v, grad, options, step, decay, parallel::default_pool());
}

/// One SGD update of one tensor, exactly torch.optim.SGD's (maximize off):
/// `d = g + wd p`; with momentum `buf = (step == 1 ? d : momentum buf + (1 - dampening) d)` and
/// `d = nesterov ? d + momentum buf : buf`; then `p -= lr d`. Step 1 initialises the buffer
/// from d (PyTorch's absent buffer); with momentum 0 the buffer is not touched (may be empty).
/// Arguments: param (fp32), momentum_buffer (fp32), grad (fp32 or bf16), options, step (1-based).
/// Example: `llm::train::sgd(w, buf, dw, {.lr = 0.1, .momentum = 0.9}, step, pool);`
template <simd::backend S = simd::default_backend, any_f32_view P, any_f32_view B, any_dense_view G>
void sgd(P&& param, B&& momentum_buffer, G&& grad, const sgd_options& options, std::int64_t step,
         parallel::policy auto&& exec) {
    constexpr const char* fn = "sgd";
    detail::sgd_flat<S>(fn, "", detail::flat_of(fn, "param", param), detail::flat_of(fn, "momentum_buffer", momentum_buffer),
                        detail::flat_of(fn, "grad", grad), detail::flat<bf16>{}, options, step, exec);
}

/// sgd on llm::parallel::default_pool(). Example: `llm::train::sgd(w, buf, dw, {.lr = 0.1}, 1);`
template <simd::backend S = simd::default_backend, any_f32_view P, any_f32_view B, any_dense_view G>
void sgd(P&& param, B&& momentum_buffer, G&& grad, const sgd_options& options, std::int64_t step) {
    sgd<S>(param, momentum_buffer, grad, options, step, parallel::default_pool());
}

/// The state of one parameter inside an optimizer: fp32 moments (m, v for AdamW; m as the
/// momentum buffer for SGD) and, for a bf16 parameter, its fp32 master copy.
struct param_state {
    std::vector<std::size_t> shape;        ///< the parameter's shape
    llm::tensor<float, dims<1>> m;         ///< AdamW exp_avg, or SGD momentum_buffer
    llm::tensor<float, dims<1>> v;         ///< AdamW exp_avg_sq (empty for SGD)
    llm::tensor<float, dims<1>> master;    ///< fp32 master weights of a bf16 parameter (else empty)
    bool visited = false;                  ///< seen during the current step
};

namespace detail {

// State of every parameter by name, created on the first step and checked on later ones.
class state_table {
public:
    template <class P>
    param_state& slot(const char* fn, std::string_view name, const P& p, std::int64_t steps, bool with_v, bool with_m) {
        const auto f = flat_of(fn, std::string("param '") + std::string(name) + "'", p);
        auto it = states_.find(name);
        constexpr bool is_bf16_param = std::is_same_v<std::remove_const_t<view_element_t<const P>>, bf16>;
        if (it == states_.end()) {
            // After the first step a parameter must have state, unless it needs none (SGD
            // without momentum on fp32, or no elements): such state is not saved either.
            const bool needs_state = f.size != 0 && (with_m || with_v || is_bf16_param);
            check(steps == 0 || !needs_state, fn, ": parameter '", name, "' has no optimizer state but ", steps,
                  " steps were taken (the walk must visit the same parameters every step)");
            param_state s;
            for (std::size_t r = 0; r < f.rank; ++r) s.shape.push_back(static_cast<std::size_t>(p.extent(r)));
            if (with_m) s.m = llm::tensor<float, dims<1>>(f.size);
            if (with_v) s.v = llm::tensor<float, dims<1>>(f.size);
            if constexpr (is_bf16_param) {
                s.master = llm::tensor<float, dims<1>>(uninitialized, f.size);
                for (std::size_t i = 0; i < f.size; ++i) s.master.data()[i] = static_cast<float>(f.data[i]);
            }
            it = states_.emplace(std::string(name), std::move(s)).first;
        }
        param_state& s = it->second;
        std::size_t n = 1;
        for (const std::size_t e : s.shape) n *= e;
        check(n == f.size && s.shape.size() == f.rank, fn, ": parameter '", name, "' has ", f.size, " elements (rank ",
              f.rank, ") but its optimizer state has shape ", io::detail::safetensors_shape(s.shape));
        check(!s.visited, fn, ": the walk visits parameter '", name, "' twice in one step");
        check((is_bf16_param && f.size != 0) == (s.master.size() != 0), fn, ": parameter '", name, "' is ",
              is_bf16_param ? "bf16" : "fp32", " but its optimizer state ", is_bf16_param ? "has no" : "has a", " master copy");
        s.visited = true;
        return s;
    }

    void end_step(const char* fn) {
        for (auto& [name, s] : states_) {
            check(s.visited, fn, ": the optimizer holds state for parameter '", name, "' but the walk did not visit it");
            s.visited = false;
        }
    }

    void clear_visits() noexcept {
        for (auto& [name, s] : states_) s.visited = false;
    }

    std::map<std::string, param_state, std::less<>> states_;
};

// What adamw_optimizer and sgd_optimizer share: the options, the weight-decay rule, the state
// table and the step count, with their accessors, and step on the default pool. Derived: the
// optimizer (its step(walk, exec)); name: its class name in messages ("adamw_optimizer").
template <class Derived, class Options>
class optimizer_base {
public:
    /// The hyperparameters (change lr here between steps).
    Options& options() noexcept { return options_; }
    /// The hyperparameters.
    const Options& options() const noexcept { return options_; }
    /// Updates taken so far (PyTorch's state['step']).
    std::int64_t steps() const noexcept { return steps_; }
    /// Sets the update count (used when loading state).
    void set_steps(std::int64_t steps) {
        check(steps >= 0, name_, "::set_steps: steps = ", steps, " must be >= 0");
        steps_ = steps;
    }
    /// The state of every parameter, by name.
    const std::map<std::string, param_state, std::less<>>& states() const noexcept { return table_.states_; }
    /// The state of every parameter, by name (writable: for loading).
    std::map<std::string, param_state, std::less<>>& states() noexcept { return table_.states_; }

    /// step on llm::parallel::default_pool().
    template <class Walk>
    void step(Walk&& walk) {
        static_cast<Derived&>(*this).step(walk, parallel::default_pool());
    }

protected:
    optimizer_base(const char* name, const Options& options, std::function<bool(std::string_view, std::size_t)> rule)
        : options_(options), rule_(std::move(rule)), name_(name) {}

    Options options_;
    std::function<bool(std::string_view, std::size_t)> rule_;
    state_table table_;
    std::int64_t steps_ = 0;

private:
    const char* name_;
};

}  // namespace detail

/// Tensors of an optimizer's state for a checkpoint: for each parameter `name`, `name.exp_avg`
/// and `name.exp_avg_sq` (AdamW) or `name.momentum_buffer` (SGD), and `name.master` for bf16
/// parameters, each with the parameter's shape, fp32. The views point into the optimizer.
/// Example: `auto ts = llm::train::state_tensors(opt); llm::io::save_safetensors("opt.safetensors", ts);`
template <class Optimizer>
std::vector<io::safetensors_tensor> state_tensors(const Optimizer& opt) {
    std::vector<io::safetensors_tensor> out;
    auto add = [&](const std::string& name, const param_state& s, const llm::tensor<float, dims<1>>& t) {
        if (t.size() == 0) return;
        io::safetensors_tensor x = io::safetensors_tensor::from_view(name, t.view());
        x.shape = s.shape;
        out.push_back(std::move(x));
    };
    for (const auto& [name, s] : opt.states()) {
        add(name + "." + std::string(Optimizer::first_moment_name), s, s.m);
        add(name + ".exp_avg_sq", s, s.v);
        add(name + ".master", s, s.master);
    }
    return out;
}

/// AdamW over a whole model: owns each parameter's state (created on the first step, found by
/// name afterwards), applies the weight-decay rule by name and rank, and keeps bf16 parameters
/// as fp32 master weights whose bf16 copy is written after each step. `options().lr` may be
/// changed between steps (a schedule).
/// A walk is either a callable taking a visitor (`walk(f)` calls `f(name, param, grad)` for
/// every parameter, as a model's zipped walk over params and grads does) or a range of
/// tuple-likes (name, param, grad). param: an fp32 or bf16 any_view; grad fp32 or bf16.
/// Example:
/// ```
/// llm::train::adamw_optimizer<> opt({.lr = 6e-4, .beta2 = 0.95, .weight_decay = 0.1});
/// opt.step([&](auto&& f) { f("w", w, dw); f("b", b, db); }, pool);
/// ```
template <simd::backend S = simd::default_backend>
class adamw_optimizer : public detail::optimizer_base<adamw_optimizer<S>, adamw_options> {
    using base = detail::optimizer_base<adamw_optimizer<S>, adamw_options>;

public:
    /// The optimizer's name in saved state.
    static constexpr std::string_view kind = "adamw";
    /// The name suffix of the first moment in state_tensors.
    static constexpr std::string_view first_moment_name = "exp_avg";

    /// Options and the weight-decay rule (default: tensors of rank 2 and more, as llm.c).
    explicit adamw_optimizer(const adamw_options& options = {},
                             std::function<bool(std::string_view, std::size_t)> rule = decay_matrices{})
        : base("adamw_optimizer", options, std::move(rule)) {}

    using base::step;

    /// One update of every parameter the walk visits. Throws llm::error when the walk visits
    /// another set of parameters than earlier steps did (or a state loaded for another model).
    template <class Walk>
    void step(Walk&& walk, parallel::policy auto&& exec) {
        constexpr const char* fn = "adamw_optimizer::step";
        this->table_.clear_visits();
        const std::int64_t t = this->steps_ + 1;
        detail::visit(walk, [&](std::string_view name, auto&& param, auto&& grad) {
            static_assert(any_dense_view<decltype(param)> && any_dense_view<decltype(grad)>,
                          "adamw_optimizer::step: the walk must pass (name, param, grad) with fp32 or bf16 views");
            param_state& s = this->table_.slot(fn, name, param, this->steps_, true, true);
            const bool decay = this->rule_(name, s.shape.size());
            const auto g = detail::flat_of(fn, std::string("grad of '") + std::string(name) + "'", grad);
            const detail::flat<float> m{s.m.data(), s.m.size(), 1}, v{s.v.data(), s.v.size(), 1};
            if constexpr (std::same_as<view_element_t<decltype(param)>, bf16>) {
                detail::adamw_flat<S>(fn, name, detail::flat<float>{s.master.data(), s.master.size(), 1}, m, v, g,
                                      detail::flat_of(fn, name, param), this->options_, t, decay, exec);
            } else {
                detail::adamw_flat<S>(fn, name, detail::flat_of(fn, name, param), m, v, g, detail::flat<bf16>{},
                                      this->options_, t, decay, exec);
            }
        });
        this->table_.end_step(fn);
        this->steps_ = t;
    }

};

/// SGD with momentum over a whole model, as adamw_optimizer (same walks, names, bf16 master
/// weights); the momentum buffer is created on the first step (PyTorch's absent buffer).
/// Weight decay follows torch.optim.SGD (added to the gradient) on the tensors the rule picks.
/// Example: `llm::train::sgd_optimizer<> opt({.lr = 0.1, .momentum = 0.9}); opt.step(walk, pool);`
template <simd::backend S = simd::default_backend>
class sgd_optimizer : public detail::optimizer_base<sgd_optimizer<S>, sgd_options> {
    using base = detail::optimizer_base<sgd_optimizer<S>, sgd_options>;

public:
    /// The optimizer's name in saved state.
    static constexpr std::string_view kind = "sgd";
    /// The name suffix of the momentum buffer in state_tensors.
    static constexpr std::string_view first_moment_name = "momentum_buffer";

    /// Options and the weight-decay rule (default: every tensor, as torch.optim.SGD).
    explicit sgd_optimizer(const sgd_options& options = {},
                           std::function<bool(std::string_view, std::size_t)> rule = decay_all{})
        : base("sgd_optimizer", options, std::move(rule)) {}

    using base::step;

    /// One update of every parameter the walk visits (errors as adamw_optimizer::step).
    template <class Walk>
    void step(Walk&& walk, parallel::policy auto&& exec) {
        constexpr const char* fn = "sgd_optimizer::step";
        this->table_.clear_visits();
        const std::int64_t t = this->steps_ + 1;
        const bool mom = this->options_.momentum != 0;
        detail::visit(walk, [&](std::string_view name, auto&& param, auto&& grad) {
            static_assert(any_dense_view<decltype(param)> && any_dense_view<decltype(grad)>,
                          "sgd_optimizer::step: the walk must pass (name, param, grad) with fp32 or bf16 views");
            param_state& s = this->table_.slot(fn, name, param, this->steps_, false, mom);
            sgd_options o = this->options_;
            if (!this->rule_(name, s.shape.size())) o.weight_decay = 0;
            const auto g = detail::flat_of(fn, std::string("grad of '") + std::string(name) + "'", grad);
            check(!mom || s.m.size() == g.size, fn, ": parameter '", name, "' has no momentum buffer (momentum was off when its state was made)");
            const detail::flat<float> buf{s.m.data(), s.m.size(), 1};
            if constexpr (std::same_as<view_element_t<decltype(param)>, bf16>) {
                detail::sgd_flat<S>(fn, name, detail::flat<float>{s.master.data(), s.master.size(), 1}, buf, g,
                                    detail::flat_of(fn, name, param), o, t, exec);
            } else {
                detail::sgd_flat<S>(fn, name, detail::flat_of(fn, name, param), buf, g, detail::flat<bf16>{}, o, t, exec);
            }
        });
        this->table_.end_step(fn);
        this->steps_ = t;
    }

};

}  // namespace llm::train
