// SPDX-License-Identifier: Apache-2.0
// generate: text generation from a Hugging Face checkpoint directory or a GGUF file.
//
// Usage: generate --model PATH [--prompt TEXT | --prompt-ids 1,2,3] [-n N]
//                 [--temp T --top-k K --top-p P --min-p P --repeat-penalty R --seed S]
//                 [--draft PATH --draft-k K] [--ids] [--threads N]
// Streams the generated text to stdout as it is produced (never a broken UTF-8 character);
// --ids prints the generated token ids on one line instead. --temp 0 (the default) is greedy.
// --draft: speculative decoding with a draft model of the same vocabulary (k tokens a round).
// At the end, on stderr: prompt tokens and prefill tokens/s, generated tokens and decode
// tokens/s, load time (and the draft's acceptance rate).
// Errors: a one-line message on stderr and exit status 2.
#include "common/args.hpp"

#include <llm/generate/generate.hpp>
#include <llm/io/gguf.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tokenizer/tokenizer.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace gen = llm::generate;

namespace {

constexpr const char* usage =
    "usage: generate --model PATH [--prompt TEXT | --prompt-ids 1,2,3] [-n N]\n"
    "                [--temp T --top-k K --top-p P --min-p P --repeat-penalty R --seed S]\n"
    "                [--draft PATH --draft-k K] [--ids] [--threads N]\n"
    "  --model PATH       Hugging Face directory (config.json, model.safetensors, tokenizer.json) or .gguf\n"
    "  --prompt TEXT      prompt text (needs tokenizer.json or the GGUF's tokenizer.ggml.*)\n"
    "  --prompt-ids LIST  prompt token ids, comma-separated\n"
    "  -n N               tokens to generate (default 32)\n"
    "  --temp T           temperature (default 0: greedy)\n"
    "  --top-k K, --top-p P, --min-p P, --repeat-penalty R, --seed S   sampling settings\n"
    "  --draft PATH       draft model for speculative decoding; --draft-k K tokens per round (default 4)\n"
    "  --ids              print the generated ids on one line instead of text\n"
    "  --threads N        threads (default: all)\n";

struct options {
    std::string model, prompt, draft;
    std::vector<std::int32_t> prompt_ids;
    bool have_prompt = false, have_ids = false, ids = false;
    std::size_t n = 32, draft_k = 4, threads = 0;
    gen::sampler_options s{};
};

std::vector<std::int32_t> parse_ids(const std::string& list) {
    std::vector<std::int32_t> out;
    std::size_t at = 0;
    while (at <= list.size()) {
        const std::size_t end = std::min(list.find(',', at), list.size());
        const std::string item = list.substr(at, end - at);
        llm::check(!item.empty() && item.find_first_not_of("0123456789") == std::string::npos && item.size() < 10,
                   "--prompt-ids: '", item, "' is not a token id");
        out.push_back(static_cast<std::int32_t>(std::stol(item)));
        at = end + 1;
    }
    return out;
}

options parse(int argc, char** argv) {
    cli::args a(argc, argv, usage);
    options o;
    float temp = 0.0f;
    while (a.next()) {
        if (a.is("--model")) o.model = a.value();
        else if (a.is("--prompt")) { o.prompt = a.value(); o.have_prompt = true; }
        else if (a.is("--prompt-ids")) { o.prompt_ids = parse_ids(a.value()); o.have_ids = true; }
        else if (a.is("-n")) o.n = a.integer<std::size_t>(1, 1 << 20);
        else if (a.is("--temp")) temp = static_cast<float>(a.number_in_open(-1e-300, 1e6));
        else if (a.is("--top-k")) o.s.top_k = a.integer<std::size_t>(0, 1 << 24);
        else if (a.is("--top-p")) o.s.top_p = static_cast<float>(a.number_in_open(0.0, 1.0000001));
        else if (a.is("--min-p")) o.s.min_p = static_cast<float>(a.number_in_open(-1e-300, 1.0000001));
        else if (a.is("--repeat-penalty")) o.s.repeat_penalty = static_cast<float>(a.number_in_open(0.0, 1e6));
        else if (a.is("--seed")) o.s.seed = a.integer<std::uint64_t>(0, ~std::uint64_t{0});
        else if (a.is("--draft")) o.draft = a.value();
        else if (a.is("--draft-k")) o.draft_k = a.integer<std::size_t>(1, 64);
        else if (a.is("--ids")) o.ids = true;
        else if (a.is("--threads")) o.threads = a.integer<std::size_t>(1, 1024);
        else a.unknown();
    }
    llm::check(!o.model.empty(), "--model PATH is required (see --help)");
    llm::check(o.have_prompt != o.have_ids, "give one of --prompt TEXT or --prompt-ids LIST (see --help)");
    o.s.greedy = temp == 0.0f;
    o.s.temp = o.s.greedy ? 1.0f : temp;
    return o;
}

// Opens a Hugging Face directory or a .gguf file and calls f(model, params, learned_positions);
// a GGUF file's matrices are repacked at load on the pool's threads.
template <class F>
int open_model(const std::string& path, llm::parallel::thread_pool& pool, F&& f) {
    if (path.ends_with(".gguf")) {
        return gen::open_gguf(path, {.pool = &pool},
                              [&](const auto& m, const auto& p, const auto& cfg) { return f(m, p, cfg.family == llm::model::family::gpt2); });
    }
    return gen::open_hf(path, [&](const auto& m, const auto& p, const auto& cfg) { return f(m, p, cfg.family == llm::model::family::gpt2); });
}

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

int run(const options& o) {
    const auto t0 = clock_type::now();
    std::optional<llm::tokenizer::tokenizer> tok;
    const bool gguf = o.model.ends_with(".gguf");
    const std::string tok_path = gguf ? o.model : (std::filesystem::path(o.model) / "tokenizer.json").string();
    if (gguf ? llm::io::gguf_file::open(o.model).find("tokenizer.ggml.tokens") != nullptr : std::filesystem::exists(tok_path)) {
        tok.emplace(llm::tokenizer::load_tokenizer(tok_path));
    }
    std::vector<std::int32_t> prompt = o.prompt_ids;
    if (o.have_prompt) {
        llm::check(tok.has_value(), "--prompt needs ", tok_path, " (or give --prompt-ids)");
        for (const auto id : tok->encode(o.prompt)) prompt.push_back(static_cast<std::int32_t>(id));
    }
    llm::check(o.ids || tok.has_value(), "printing text needs ", tok_path, " (or give --ids)");
    llm::parallel::thread_pool pool(o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
    std::optional<llm::tokenizer::decode_stream> ds;
    if (!o.ids) ds.emplace(*tok);
    std::vector<std::int32_t> out;
    auto show = [&](std::int32_t t) {
        out.push_back(t);
        if (ds) {
            std::fputs(ds->push(static_cast<std::uint32_t>(t)).c_str(), stdout);
            std::fflush(stdout);
        }
    };
    return open_model(o.model, pool, [&](const auto& m, const auto& p, bool learned_positions) {
        using M = std::remove_cvref_t<decltype(m)>;
        const double load_s = seconds_since(t0);
        double prefill_s = 0, decode_s = 0;
        std::string extra;
        if (!o.draft.empty()) {
            // speculative decoding rolls the draft's and the target's caches back: KV-cache models only
            llm::check(gen::kv_cached_state<typename M::state>, "--draft: ", o.model,
                       " is a recurrent model (Mamba): speculative decoding needs a KV cache to roll back");
            open_model(o.draft, pool, [&](const auto& dm, const auto& dp, bool) {
                using D = std::remove_cvref_t<decltype(dm)>;
                llm::check(gen::kv_cached_state<typename D::state>, "--draft: ", o.draft,
                           " is a recurrent model (Mamba): speculative decoding needs a KV cache to roll back");
                if constexpr (gen::kv_cached_state<typename M::state> && gen::kv_cached_state<typename D::state>) {
                    gen::speculative_stats st;
                    const auto t1 = clock_type::now();
                    const auto toks = gen::speculative_generate(m, p, dm, dp, prompt, o.n, o.draft_k, o.s, st, pool);
                    decode_s = seconds_since(t1);
                    for (const auto t : toks) show(t);
                    extra = "draft acceptance " + std::to_string(st.acceptance_rate()) + " (" + std::to_string(st.accepted) + "/" +
                            std::to_string(st.proposed) + ", k = " + std::to_string(o.draft_k) + ")\n";
                }
                return 0;
            });
        } else {
            gen::engine<M, typename std::remove_cvref_t<decltype(p)>::element_type> eng(m, p, {.slots = 1, .context = prompt.size() + o.n, .learned_positions = learned_positions});
            eng.add(prompt, {.max_tokens = o.n, .seed = o.s.seed}, gen::make_sampler(o.s));
            auto t1 = clock_type::now();
            bool first = true;
            while (!eng.idle()) {
                for (const auto& e : eng.step(pool)) {
                    if (first) {
                        prefill_s = seconds_since(t1);  // the prompt's steps and the first token
                        t1 = clock_type::now();
                        first = false;
                    }
                    show(e.token);
                }
            }
            decode_s = seconds_since(t1);
        }
        if (ds) std::fputs(ds->finish().c_str(), stdout);
        if (o.ids) {
            for (std::size_t i = 0; i < out.size(); ++i) std::printf(i ? " %d" : "%d", out[i]);
        }
        std::printf("\n");
        const double decoded = static_cast<double>(out.size() > 0 && o.draft.empty() ? out.size() - 1 : out.size());
        std::fprintf(stderr, "prompt: %zu tokens, prefill %.1f tokens/s\n", prompt.size(),
                     prefill_s > 0 ? static_cast<double>(prompt.size()) / prefill_s : 0.0);
        std::fprintf(stderr, "generated: %zu tokens, decode %.1f tokens/s\n", out.size(), decode_s > 0 ? decoded / decode_s : 0.0);
        std::fprintf(stderr, "load: %.3f s\n%s", load_s, extra.c_str());
        return 0;
    });
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("generate", [&] { return run(parse(argc, argv)); });
}
