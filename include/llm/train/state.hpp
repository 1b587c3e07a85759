// SPDX-License-Identifier: Apache-2.0
// Saving and loading what a resumed run needs besides the weights: the optimizer's state
// (safetensors), the step, the RNG state, the data position and the loss guard (a small JSON),
// written atomically as a group, so that a resumed run continues bit for bit.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/atomic_file.hpp>
#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/io/safetensors.hpp>
#include <llm/train/guard.hpp>
#include <llm/train/loader.hpp>
#include <llm/train/optimizer.hpp>
#include <llm/train/rng.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace llm::train {

/// The run's state besides weights and optimizer: the updates taken, the data position, the
/// RNG, the loss guard's history and skip count, and free-form string entries for the caller.
struct train_state {
    std::int64_t step = 0;                     ///< updates taken
    data_position data{};                      ///< the loader's next batch
    rng::state_type rng_state{};               ///< the generator's state (all zero: none saved)
    std::vector<double> loss_history{};        ///< loss_guard::history()
    std::int64_t skipped = 0;                  ///< loss_guard::skipped()
    std::map<std::string, std::string> extra{};  ///< the caller's own entries
};

namespace detail {

inline std::string u64_string(std::uint64_t x) { return std::to_string(x); }

inline std::uint64_t parse_u64(const io::json_value& v, const std::string& what) {
    const std::string& s = v.as_string(what);
    std::uint64_t x = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    check(ec == std::errc() && p == s.data() + s.size() && !s.empty(), what, ": '", s,
          "' is not an unsigned 64-bit integer in decimal");
    return x;
}

inline std::string double_string(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    return buf;
}

}  // namespace detail

/// The JSON text of a train_state: 64-bit integers as decimal strings (a JSON number is a
/// double), losses with 17 significant digits (they read back to the same double).
/// Example: `std::string j = llm::train::train_state_json(state);`
inline std::string train_state_json(const train_state& s) {
    using detail::u64_string;
    std::string j = "{\"format\": \"llm.train_state\", \"version\": 1,\n";
    j += " \"step\": \"" + std::to_string(s.step) + "\",\n";
    j += " \"data\": {\"epoch\": \"" + u64_string(s.data.epoch) + "\", \"batch\": \"" + u64_string(s.data.batch) + "\"},\n";
    j += " \"rng\": [";
    for (std::size_t i = 0; i < s.rng_state.size(); ++i) j += (i ? ", \"" : "\"") + u64_string(s.rng_state[i]) + "\"";
    j += "],\n \"loss_guard\": {\"skipped\": \"" + std::to_string(s.skipped) + "\", \"history\": [";
    for (std::size_t i = 0; i < s.loss_history.size(); ++i) {
        check(std::isfinite(s.loss_history[i]), "train_state_json: loss_history[", i, "] = ", s.loss_history[i],
              " is not finite (JSON has no NaN or infinity)");
        j += (i ? ", " : "") + detail::double_string(s.loss_history[i]);
    }
    j += "]},\n \"extra\": {";
    bool first = true;
    for (const auto& [k, v] : s.extra) {
        j += (first ? "" : ", ") + io::json_quote(k) + ": " + io::json_quote(v);
        first = false;
    }
    j += "}}\n";
    return j;
}

/// Parses the JSON written by train_state_json; llm::error naming `source` and the field on
/// anything missing, mistyped or out of range.
/// Example: `auto s = llm::train::parse_train_state(text, "run/train_state.json");`
inline train_state parse_train_state(std::string_view text, const std::string& source) {
    const std::string what = "parse_train_state: '" + source + "'";
    const io::json_value doc = io::parse_json(text, what);
    check(doc.is_object(), what, ": not a JSON object");
    check(doc.at("format", what).as_string(what + " format") == "llm.train_state", what, ": format is not llm.train_state");
    check(doc.at("version", what).as_int(what + " version", 1, 1) == 1, what, ": unsupported version");
    train_state s;
    const std::uint64_t step = detail::parse_u64(doc.at("step", what), what + " step");
    check(step <= static_cast<std::uint64_t>(INT64_MAX), what, ": step ", step, " out of range");
    s.step = static_cast<std::int64_t>(step);
    const io::json_value& data = doc.at("data", what);
    s.data.epoch = detail::parse_u64(data.at("epoch", what + " data"), what + " data.epoch");
    s.data.batch = detail::parse_u64(data.at("batch", what + " data"), what + " data.batch");
    const auto& r = doc.at("rng", what).as_array(what + " rng");
    check(r.size() == 4, what, ": rng has ", r.size(), " words, expected 4");
    for (std::size_t i = 0; i < 4; ++i) s.rng_state[i] = detail::parse_u64(r[i], what + " rng");
    const io::json_value& g = doc.at("loss_guard", what);
    const std::uint64_t skipped = detail::parse_u64(g.at("skipped", what + " loss_guard"), what + " loss_guard.skipped");
    check(skipped <= static_cast<std::uint64_t>(INT64_MAX), what, ": skipped ", skipped, " out of range");
    s.skipped = static_cast<std::int64_t>(skipped);
    for (const io::json_value& h : g.at("history", what + " loss_guard").as_array(what + " loss_guard.history"))
        s.loss_history.push_back(h.as_number(what + " loss_guard.history"));
    for (const auto& [k, v] : doc.at("extra", what).as_object(what + " extra")) s.extra[k] = v.as_string(what + " extra." + k);
    return s;
}

/// Writes `dir/optimizer.safetensors` (state_tensors(opt), metadata: optimizer kind and step)
/// and `dir/train_state.json`, creating `dir`; both files are written and fsynced before either
/// is renamed into place (io::commit_together), so a crash leaves the old pair or the new one.
/// Example: `llm::train::save_resume_state("run/ckpt", opt, state);`
template <class Optimizer>
void save_resume_state(const std::string& dir, const Optimizer& opt, const train_state& state) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    check(!ec, "save_resume_state: cannot create '", dir, "': ", ec.message());
    const auto tensors = state_tensors(opt);
    const std::map<std::string, std::string> meta{{"optimizer", std::string(Optimizer::kind)},
                                                  {"step", std::to_string(opt.steps())}};
    io::atomic_file st((std::filesystem::path(dir) / "optimizer.safetensors").string(), "save_resume_state");
    io::detail::write_safetensors(tensors, meta, "save_resume_state", [&](const void* p, std::size_t n) { st.write(p, n); });
    io::atomic_file js((std::filesystem::path(dir) / "train_state.json").string(), "save_resume_state");
    js.write(train_state_json(state));
    io::commit_together({&st, &js});
}

/// Loads what save_resume_state wrote: replaces `opt`'s state and step count (the optimizer
/// kind must match) and returns the train_state. Tensors are checked: fp32, known suffixes,
/// and one shape per parameter; the next step checks them against the model's parameters.
/// Example: `llm::train::train_state s = llm::train::load_resume_state("run/ckpt", opt);`
template <class Optimizer>
train_state load_resume_state(const std::string& dir, Optimizer& opt) {
    constexpr const char* fn = "load_resume_state";
    const std::string path = (std::filesystem::path(dir) / "optimizer.safetensors").string();
    io::safetensors_file f(path);
    const auto kind = f.metadata().find("optimizer");
    check(kind != f.metadata().end() && kind->second == Optimizer::kind, fn, ": '", path, "' holds the state of optimizer '",
          kind == f.metadata().end() ? std::string("(none)") : kind->second, "', not '", Optimizer::kind, "'");
    const auto step_it = f.metadata().find("step");
    check(step_it != f.metadata().end(), fn, ": '", path, "' has no step in its metadata");
    std::int64_t steps = -1;
    const auto [p, ec] = std::from_chars(step_it->second.data(), step_it->second.data() + step_it->second.size(), steps);
    check(ec == std::errc() && p == step_it->second.data() + step_it->second.size() && steps >= 0, fn, ": '", path,
          "': step '", step_it->second, "' is not a count");
    std::map<std::string, param_state, std::less<>> states;
    for (std::size_t i = 0; i < f.size(); ++i) {
        const io::safetensors_tensor& t = f[i];
        const std::size_t dot = t.name.rfind('.');
        check(dot != std::string::npos && dot > 0, fn, ": '", path, "': tensor '", t.name, "' is not <param>.<state>");
        const std::string param = t.name.substr(0, dot);
        const std::string slot = t.name.substr(dot + 1);
        check(t.dtype == io::dtype::F32, fn, ": '", path, "': tensor '", t.name, "' is ", io::dtype_name(t.dtype), ", expected F32");
        param_state& s = states[param];
        if (s.m.size() == 0 && s.v.size() == 0 && s.master.size() == 0) s.shape = t.shape;
        check(s.shape == t.shape, fn, ": '", path, "': tensor '", t.name, "' has shape ", io::detail::safetensors_shape(t.shape),
              " but another state of '", param, "' has ", io::detail::safetensors_shape(s.shape));
        llm::tensor<float, dims<1>>* dst = slot == Optimizer::first_moment_name ? &s.m
                                           : slot == "exp_avg_sq" && Optimizer::kind == std::string_view("adamw") ? &s.v
                                           : slot == "master"                                                       ? &s.master
                                                                                                                    : nullptr;
        check(dst != nullptr, fn, ": '", path, "': tensor '", t.name, "' is not a state of a ", Optimizer::kind, " optimizer");
        *dst = llm::tensor<float, dims<1>>(uninitialized, t.elements());
        if (!t.data.empty()) std::memcpy(dst->data(), t.data.data(), t.data.size());
    }
    if constexpr (Optimizer::kind == std::string_view("adamw")) {
        for (const auto& [name, s] : states)
            check(s.m.size() != 0 && s.v.size() != 0, fn, ": '", path, "': parameter '", name, "' lacks ",
                  s.m.size() == 0 ? "exp_avg" : "exp_avg_sq");
    }
    const std::string json_path = (std::filesystem::path(dir) / "train_state.json").string();
    train_state state = parse_train_state(io::read_file(json_path, std::size_t{64} << 20, fn), json_path);
    opt.states() = std::move(states);
    opt.set_steps(steps);
    return state;
}

}  // namespace llm::train
