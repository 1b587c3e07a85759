// SPDX-License-Identifier: Apache-2.0
// train: trains a decoder (Llama, Mistral, Qwen2 or GPT-2 structure) on an llm.c token file
// with AdamW, gradient clipping, a learning-rate schedule, gradient accumulation and the loss
// guard; logs one JSON line per step, prints a progress line, saves a resumable checkpoint
// (data parallel under `mpirun -np N train ...` when built with MPI: docs/dist.md)
// (model.safetensors with Hugging Face names, config.json, optimizer.safetensors,
// train_state.json) and renders the loss curve with gnuplot.
#include "common/args.hpp"

#include <llm/core/bf16.hpp>
#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/train/train.hpp>
#include <llm/train/trainer.hpp>
#include <llm/train/objectives.hpp>
#include <llm/train/reward.hpp>
#include <llm/align/cpo.hpp>
#include <llm/align/loss_by_name.hpp>
#include <llm/align/orpo.hpp>
#include <llm/align/simpo.hpp>
#include <llm/dist/single_process.hpp>
#if LLM_HAS_MPI
#include <llm/dist/mpi.hpp>
#endif

#include <chrono>
#include <cmath>
#include <cstdint>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace {

constexpr std::string_view usage =
    "usage: train (--init HF_DIR | --config config.json) --data tokens.bin [--val val.bin] --batch B --seq T\n"
    "             --steps N --lr X [--schedule constant|cosine|linear|wsd] [--warmup W] [--min-lr X]\n"
    "             [--beta1 0.9] [--beta2 0.95] [--eps 1e-8] [--weight-decay 0] [--clip 1] [--grad-accum K]\n"
    "             [--no-shuffle] [--seed S] --out DIR [--save-every K] [--resume DIR] [--log metrics.jsonl]\n"
    "             [--threads N] [--val-every K] [--val-batches N] [--no-guard] [--plot FILE.png] [--zero1] [--dtype fp32|bf16]\n"
    "             [--objective pretrain|sft|dpo|simpo|orpo|cpo|kto|reward --pairs FILE.jsonl [--ref REF_DIR] [--beta X]\n"
    "              [--loss-type sigmoid|ipo|hinge|...]]\n"
    "Trains on llm.c token files (256 x int32 header, magic 20240520; uint16 or uint32 tokens).\n"
    "With --no-shuffle, batch k row i is the window of T+1 tokens at (k*B + i)*T (llm.c's order).\n"
    "--out DIR receives the final checkpoint; --resume DIR continues a saved run up to --steps.\n"
    "--dtype bf16: bf16 weights in the forward and backward (fp32 activations and gradients), AdamW on fp32 master\n"
    "weights kept in optimizer.safetensors (name.master); model.safetensors is saved in bf16. Not with reward or --zero1.\n"
    "sft: --pairs holds {\"prompt\": [ids], \"response\": [ids]} per line, loss on response tokens.\n"
    "Any of these fields may be a string instead: it is tokenized by tokenizer.json of the model directory (--init,\n"
    "--resume or --config's), prompt and response each on their own and concatenated (TRL's way), no BOS/EOS added.\n"
    "dpo/simpo/orpo/cpo/kto: --pairs holds {\"prompt\", \"chosen\", \"rejected\"} token-id arrays (and optionally\n"
    "\"ref_chosen_logp\", \"ref_rejected_logp\"); dpo takes the frozen reference from --ref (default: the\n"
    "initial weights) unless every line has precomputed reference log-probs; kto always needs it\n"
    "(the KL estimate). --batch counts pairs.\n"
    "reward: a Bradley-Terry reward model on the same pairs (TRL's RewardTrainer): a scalar head on the final\n"
    "hidden state at each row's last token, loss -log sigmoid(r_chosen - r_rejected); logs rewards/margins and\n"
    "rewards/accuracies; the head is saved in model.safetensors as score.weight [1, d_model] (transformers'\n"
    "*ForSequenceClassification name), drawn normal(0, 0.02) from --seed at the start.\n"
    "Data parallel: `mpirun -np N train ...` (built with MPI) runs N ranks with the same flags; --batch is per rank\n"
    "(rank r reads rows r*B .. r*B+B-1 of each global batch of N*B), gradients and losses are averaged over the\n"
    "ranks, rank 0 logs and writes the checkpoints; --zero1 shards the AdamW state over the ranks (ZeRO-1).\n";

struct options {
    std::string init, config, data, val, objective = "pretrain", pairs, ref, out, resume, log, plot;
    std::size_t batch = 0, seq = 0, grad_accum = 1, threads = 2, val_batches = 20;
    std::int64_t steps = -1, warmup = 0, save_every = 0, val_every = 0;
    double lr = -1, min_lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0, clip = 1.0;
    std::string schedule = "constant", loss_type = "sigmoid", dtype = "fp32";
    double beta = -1;
    bool shuffle = true, guard = true, zero1 = false;
    std::uint64_t seed = 1337;
};

options parse(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    constexpr std::int64_t big = std::int64_t{1} << 40;
    while (a.next()) {
        if (a.is("--init")) o.init = a.value();
        else if (a.is("--config")) o.config = a.value();
        else if (a.is("--data")) o.data = a.value();
        else if (a.is("--val")) o.val = a.value();
        else if (a.is("--objective")) o.objective = a.choice({"pretrain", "sft", "dpo", "simpo", "orpo", "kto", "cpo", "reward"});
        else if (a.is("--pairs")) o.pairs = a.value();
        else if (a.is("--ref")) o.ref = a.value();
        else if (a.is("--batch")) o.batch = a.integer<std::size_t>(1, 1 << 20);
        else if (a.is("--seq")) o.seq = a.integer<std::size_t>(1, 1 << 20);
        else if (a.is("--steps")) o.steps = a.integer<std::int64_t>(0, big);
        else if (a.is("--lr")) o.lr = a.number_in_open(-1e-300, 1e6);
        else if (a.is("--schedule")) o.schedule = a.choice({"constant", "cosine", "linear", "wsd"});
        else if (a.is("--warmup")) o.warmup = a.integer<std::int64_t>(0, big);
        else if (a.is("--min-lr")) o.min_lr = a.number_in_open(-1e-300, 1e6);
        else if (a.is("--beta1")) o.beta1 = a.number_in_open(-1e-300, 1);
        else if (a.is("--beta2")) o.beta2 = a.number_in_open(-1e-300, 1);
        else if (a.is("--eps")) o.eps = a.number_in_open(-1e-300, 1);
        else if (a.is("--weight-decay")) o.weight_decay = a.number_in_open(-1e-300, 1e6);
        else if (a.is("--clip")) o.clip = a.number_in_open(-1e-300, 1e30);
        else if (a.is("--grad-accum")) o.grad_accum = a.integer<std::size_t>(1, 1 << 20);
        else if (a.is("--no-shuffle")) o.shuffle = false;
        else if (a.is("--seed")) o.seed = a.integer<std::uint64_t>(0, ~std::uint64_t{0});
        else if (a.is("--out")) o.out = a.value();
        else if (a.is("--save-every")) o.save_every = a.integer<std::int64_t>(0, big);
        else if (a.is("--resume")) o.resume = a.value();
        else if (a.is("--log")) o.log = a.value();
        else if (a.is("--threads")) o.threads = a.integer<std::size_t>(1, 1024);
        else if (a.is("--val-every")) o.val_every = a.integer<std::int64_t>(0, big);
        else if (a.is("--val-batches")) o.val_batches = a.integer<std::size_t>(0, std::size_t{1} << 40);
        else if (a.is("--no-guard")) o.guard = false;
        else if (a.is("--zero1")) o.zero1 = true;
        else if (a.is("--dtype")) o.dtype = a.choice({"fp32", "bf16"});
        else if (a.is("--plot")) o.plot = a.value();
        else if (a.is("--beta")) o.beta = a.number_in_open(0, 1e6);
        else if (a.is("--loss-type")) o.loss_type = a.value();
        else a.unknown();
    }
    const int sources = !o.init.empty() + !o.config.empty() + !o.resume.empty();
    llm::check(sources == 1, "give exactly one of --init HF_DIR, --config config.json, --resume DIR (see --help)");
    const bool pretrain = o.objective == "pretrain";
    llm::check(!pretrain || !o.data.empty(), "--data tokens.bin is required (see --help)");
    llm::check(pretrain || !o.pairs.empty(), "--objective ", o.objective, " needs --pairs FILE.jsonl (see --help)");
    llm::check(o.batch > 0 && o.seq > 0, "--batch and --seq are required (see --help)");
    llm::check(o.steps >= 0, "--steps is required (see --help)");
    llm::check(o.lr >= 0, "--lr is required (see --help)");
    llm::check(!o.out.empty(), "--out DIR is required (see --help)");
    llm::check(o.dtype == "fp32" || (o.objective != "reward" && !o.zero1), "--dtype bf16 is not supported with ",
               o.objective == "reward" ? "--objective reward" : "--zero1", " yet (use --dtype fp32)");
    llm::check(o.schedule == "constant" || o.warmup < o.steps || o.steps == 0, "--warmup ", o.warmup, " must be below --steps ",
               o.steps, " for the ", o.schedule, " schedule");
    return o;
}

std::function<double(std::int64_t)> make_schedule(const options& o) {
    const double warm = static_cast<double>(o.warmup);
    if (o.schedule == "cosine") return llm::train::cosine_lr{.max_lr = o.lr, .warmup = o.warmup, .total = o.steps, .min_lr = o.min_lr};
    if (o.schedule == "linear") return llm::train::linear_lr{.max_lr = o.lr, .warmup = o.warmup, .total = o.steps, .min_lr = o.min_lr};
    if (o.schedule == "wsd")  // the last 20% of the run decays (linear), as Hägele et al.'s default
        return llm::train::wsd_lr{.max_lr = o.lr, .warmup = o.warmup, .total = o.steps,
                                  .decay = std::max<std::int64_t>(1, o.steps / 5), .min_lr = o.min_lr};
    // constant: with a warmup, linear warmup then constant (llm.c's get_lr shape)
    return [lr = o.lr, w = o.warmup, warm](std::int64_t step) {
        return step < w ? lr * static_cast<double>(step + 1) / warm : lr;
    };
}

// Finds an executable on PATH.
bool on_path(const std::string& exe) {
    const char* path = std::getenv("PATH");
    if (path == nullptr) return false;
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        std::error_code ec;
        const auto p = std::filesystem::path(dir.empty() ? "." : dir) / exe;
        if (std::filesystem::is_regular_file(p, ec)) return true;
    }
    return false;
}

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// The loss curve of the log (every step line, a resumed run's earlier steps included) as a PNG
// rendered by gnuplot. Returns false when gnuplot is absent (training succeeded: not an error).
bool plot_losses(const std::string& log, const std::string& png) {
    if (!on_path("gnuplot")) return false;
    const std::string text = llm::io::read_file(log, std::size_t{1} << 32, "train");
    const std::string dat = png + ".dat", gp = png + ".gp";
    bool has_val = false;
    {
        std::ofstream d(dat);
        std::istringstream lines(text);
        std::string line;
        while (std::getline(lines, line)) {
            if (line.empty()) continue;
            const auto v = llm::io::parse_json(line, log);
            const auto* loss = v.find("loss");
            const auto* val = v.find("val_loss");
            has_val = has_val || (val != nullptr && val->is_number());
            if (loss != nullptr && loss->is_number())
                d << v.at("step", log).as_number(log) << ' ' << loss->as_number(log) << ' '
                  << (val != nullptr && val->is_number() ? std::to_string(val->as_number(log)) : std::string("NaN")) << '\n';
        }
        llm::check(static_cast<bool>(d), "train: cannot write '", dat, "'");
    }
    {
        std::ofstream g(gp);
        g << "set terminal pngcairo size 900,540 noenhanced\n"
          << "set output " << shell_quote(png) << "\n"
          << "set datafile missing 'NaN'\n"
          << "set xlabel 'step'\nset ylabel 'loss (nats)'\nset grid\nset key top right\n"
          << "set title 'training loss'\n"
          << "plot " << shell_quote(dat) << " using 1:2 with lines lw 2 title 'train'";
        if (has_val) g << ", " << shell_quote(dat) << " using 1:3 with linespoints pt 7 title 'val'";
        g << "\n";
        llm::check(static_cast<bool>(g), "train: cannot write '", gp, "'");
    }
    const int rc = std::system(("gnuplot " + shell_quote(gp) + " 2>&1").c_str());
    std::filesystem::remove(dat);
    std::filesystem::remove(gp);
    llm::check(rc == 0, "train: gnuplot failed (status ", rc, ") rendering '", png, "'");
    return true;
}

// Text fields of the --pairs JSONL: tokenized by DIR/tokenizer.json of the model directory (loaded
// on the first string; prompt and responses each on their own, special-token texts matched as
// Hugging Face's tokenizer does, no BOS/EOS added). Without the file a string is an error naming it.
llm::train::text_tokenizer pairs_tokenizer(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
    auto tok = std::make_shared<std::optional<llm::tokenizer::any_bpe>>();
    return [path, tok](std::string_view text, const std::string& what) {
        if (!*tok) {
            llm::check(std::filesystem::exists(path), what, " is text, but the model directory has no tokenizer.json ('", path,
                       "'): give token-id arrays or put the model's tokenizer.json there");
            tok->emplace(llm::tokenizer::load_hf_tokenizer(path));
        }
        const auto ids = std::visit([&](const auto& t) { return t.encode(text, llm::tokenizer::special_policy::all()); }, **tok);
        return std::vector<std::int32_t>(ids.begin(), ids.end());
    };
}

// The decoder's part of the trained parameters (all of them, or a reward model's without its head).
template <class P>
auto& model_part(P& p) {
    if constexpr (requires { p.score; }) return p.model;
    else return p;
}

// Reward: the trained parameters are llm::train::reward_params (the decoder's and score.weight).
// T: the parameters' element type (float, or llm::bf16 with fp32 master weights in the optimizer).
// comm: llm::dist::single_process, or llm::dist::mpi under mpirun (data parallel: rank 0 logs and saves).
template <class Model, bool Reward = false, class T = float, class Comm>
int run(const options& o, const llm::model::hf_config& cfg, const std::string& config_path, const std::string& weights, Comm& comm) {
    const bool lead = comm.rank() == 0;
    using clock = std::chrono::steady_clock;
    Model model(cfg.dims);
    const llm::train::reward_model<Model> rmodel(model);
    const auto& tmodel = [&]() -> const auto& {
        if constexpr (Reward) return rmodel;
        else return model;
    }();
    auto params = tmodel.template make_params<T>();
    auto& mparams = model_part(params);
    if (weights.empty()) {
        model.init(mparams, {.seed = o.seed});
    } else if (Reward && !o.resume.empty()) {
        llm::model::load_safetensors(params, weights);  // the saved head (score.weight) too
    } else {
        llm::model::load_safetensors(mparams, weights, {.ignore = {"score.weight"}});  // a reward checkpoint's head is not used
    }
    if constexpr (Reward) {
        if (o.resume.empty()) rmodel.init_head(params, o.seed);
    }
    llm::parallel::thread_pool pool(o.threads);
    const bool pretrain = o.objective == "pretrain";
    const llm::train::token_file data = o.data.empty() ? llm::train::token_file{} : llm::train::token_file(o.data);
    if (!o.data.empty()) data.check_vocab(static_cast<std::uint32_t>(cfg.dims.vocab));
    std::optional<llm::train::token_file> val;
    if (!o.val.empty()) {
        val.emplace(o.val);
        val->check_vocab(static_cast<std::uint32_t>(cfg.dims.vocab));
    }
    const llm::model::batch_shape shape{.batch = o.batch, .seq = o.seq};
    std::optional<llm::train::batch_loader> loader_storage;
    if (!o.data.empty()) loader_storage.emplace(data, o.batch, o.seq, llm::train::loader_options{.shuffle = o.shuffle, .seed = o.seed, .rank = comm.rank(), .ranks = comm.size()});
    llm::train::adamw_optimizer<> opt({.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.weight_decay});
    llm::train::trainer tr(tmodel, params, opt, make_schedule(o), {.clip = o.clip, .grad_accum = o.grad_accum, .guard = o.guard, .zero1 = o.zero1},
                           comm);  // data parallel: rank 0's parameters are broadcast here
    std::optional<llm::train::lm_batch<Model>> lm;
    if (pretrain) lm.emplace(model, shape);
    // fine-tuning data: examples in file order, batch k of step s starting at example (s K + k) B
    std::vector<llm::train::sft_example> sft_ex;
    std::vector<llm::train::preference_example> pref_ex;
    std::optional<llm::train::sft_batch<Model>> sft;
    std::optional<llm::train::preference_batch<Model>> pref;
    std::optional<llm::train::reward_batch<Model>> rwd;
    std::optional<std::remove_reference_t<decltype(mparams)>> ref_params;
    llm::train::preference_loss ploss;
    const bool reference_free = o.objective == "simpo" || o.objective == "orpo" || o.objective == "cpo";
    const std::string model_dir = std::filesystem::path(config_path).parent_path().string();  // --init, --resume or --config's directory
    if (o.objective == "sft") {
        sft_ex = llm::train::read_sft_jsonl(o.pairs, cfg.dims.vocab, pairs_tokenizer(model_dir));
        sft.emplace(model, shape);
    } else if (Reward) {
        pref_ex = llm::train::read_preference_jsonl(o.pairs, cfg.dims.vocab, pairs_tokenizer(model_dir));
        rwd.emplace(model, o.batch, o.seq);
    } else if (!pretrain) {
        pref_ex = llm::train::read_preference_jsonl(o.pairs, cfg.dims.vocab, pairs_tokenizer(model_dir));
        pref.emplace(model, o.batch, o.seq);
        const double beta = o.beta;
        if (o.objective == "dpo" || o.objective == "kto") {
            if (o.objective == "dpo") (void)llm::align::dpo_loss_from_name(o.loss_type);  // an unknown name fails before training
            ploss = [lt = o.loss_type, beta](const auto& out, const auto& in) {
                return llm::align::pair_loss(out, in, lt, llm::align::dpo_config{.beta = beta > 0 ? beta : 0.1});
            };
            bool all_pre = true;
            for (const auto& e : pref_ex) all_pre = all_pre && std::isfinite(e.ref_chosen) && std::isfinite(e.ref_rejected);
            if (!all_pre || !o.ref.empty() || o.objective == "kto") {
                ref_params.emplace(model.template make_params<T>());
                const std::string ref_dir = !o.ref.empty() ? o.ref : !o.init.empty() ? o.init : std::string();
                llm::check(!ref_dir.empty(), "--objective ", o.objective, " needs --ref REF_DIR (or --init, or precomputed reference log-probs)");
                llm::model::load_safetensors(*ref_params, (std::filesystem::path(ref_dir) / "model.safetensors").string());
            }
        } else if (o.objective == "simpo") {
            ploss = [beta](const auto& out, const auto& in) {
                return llm::align::pair_loss<llm::align::simpo>(out, in, {.beta = beta > 0 ? beta : 2.0});
            };
        } else if (o.objective == "orpo") {
            ploss = [beta](const auto& out, const auto& in) { return llm::align::pair_loss<llm::align::orpo>(out, in, {.beta = beta > 0 ? beta : 0.1}); };
        } else {
            ploss = [beta](const auto& out, const auto& in) { return llm::align::pair_loss<llm::align::cpo>(out, in, {.beta = beta > 0 ? beta : 0.1}); };
        }
    }

    std::int64_t start = 0;
    if (!o.resume.empty()) {
        const auto st = llm::train::load_resume_state(o.resume, opt);
        start = st.step;
        if (pretrain) loader_storage->seek(st.data);
        tr.guard().restore(st.loss_history, st.skipped);
        if (lead) std::printf("resumed '%s' at step %lld (%lld updates)\n", o.resume.c_str(), static_cast<long long>(start),
                    static_cast<long long>(opt.steps()));
    }
    std::optional<llm::train::metrics_log> log;
    if (!o.log.empty() && lead) log.emplace(o.log, !o.resume.empty());

    auto save = [&](std::int64_t step) {  // every rank calls it (ZeRO-1 gathers the optimizer state); rank 0 writes
      tr.with_full_optimizer_state([&] {
        if (!lead) return;
        std::filesystem::create_directories(o.out);
        llm::model::save_safetensors(params, (std::filesystem::path(o.out) / "model.safetensors").string());
        const std::string cfg_out = (std::filesystem::path(o.out) / "config.json").string();
        if (std::filesystem::absolute(cfg_out) != std::filesystem::absolute(config_path))
            std::filesystem::copy_file(config_path, cfg_out, std::filesystem::copy_options::overwrite_existing);
        const auto tok_in = std::filesystem::path(config_path).parent_path() / "tokenizer.json";
        const auto tok_out = std::filesystem::path(o.out) / "tokenizer.json";
        if (std::filesystem::exists(tok_in) && std::filesystem::absolute(tok_in) != std::filesystem::absolute(tok_out))
            std::filesystem::copy_file(tok_in, tok_out, std::filesystem::copy_options::overwrite_existing);
        llm::train::save_resume_state(o.out, opt,
                                      {.step = step, .data = pretrain ? loader_storage->position() : llm::train::data_position{}, .rng_state = {}, .loss_history = tr.guard().history(),
                                       .skipped = tr.guard().skipped(), .extra = {{"objective", o.objective}}});
      });
    };

    if (lead) std::printf("%s: %zu layers, d_model %zu, vocab %zu, %zu parameters; %zu batches of %zu x %zu per epoch, %zu threads, %zu ranks\n",
                cfg.architecture.c_str(), cfg.dims.n_layers, cfg.dims.d_model, cfg.dims.vocab, Model::parameter_count(cfg.dims),
                pretrain ? loader_storage->batches_per_epoch() : (sft ? sft_ex.size() : pref_ex.size()) / o.batch, o.batch, o.seq, o.threads, comm.size());
    const auto t0 = clock::now();
    double last_loss = 0;
    for (std::int64_t step = start; step < o.steps; ++step) {
        const auto s0 = clock::now();
        llm::align::pair_stats ps{};
        const auto r = tr.step(
            [&](std::size_t k, float dloss, auto ready) -> float {
                // this rank's B examples of the global batch of ranks x B; `ready` starts each
                // gradient bucket's all-reduce as the model's backward finishes its blocks
                const std::size_t first = ((static_cast<std::size_t>(step) * o.grad_accum + k) * comm.size() + comm.rank()) * o.batch;
                auto& grads = model_part(tr.grads());
                if constexpr (Reward) {
                    rwd->fill(pref_ex, first);
                    auto& g = tr.grads();
                    const std::size_t d = cfg.dims.d_model;
                    const auto s = rwd->forward_backward(grads, llm::tensor_view<float, llm::dims<1>>(g.score.data(), d), dloss, model, mparams,
                                                         llm::tensor_view<const float, llm::dims<1>>(params.score.data(), d), pool);
                    const double w = static_cast<double>(dloss);
                    ps.chosen_reward += w * s.chosen_reward;
                    ps.rejected_reward += w * s.rejected_reward;
                    ps.margin += w * s.margin;
                    ps.accuracy += w * s.accuracy;
                    return static_cast<float>(s.loss);
                }
                if (pretrain) {
                    lm->fill(*loader_storage);
                    return lm->forward_backward(grads, dloss, model, mparams, ready, pool);
                }
                if (sft) {
                    sft->fill(sft_ex, first);
                    return sft->forward_backward(grads, dloss, model, mparams, pool);
                }
                pref->fill(pref_ex, first);
                if (o.objective == "kto") {
                    const auto u = pref->template forward_backward_unpaired<llm::align::kto>(
                        grads, dloss, model, mparams, *ref_params, {.beta = o.beta > 0 ? o.beta : 0.1}, pool);
                    const double w = static_cast<double>(dloss);
                    ps.chosen_reward += w * u.chosen_reward;
                    ps.rejected_reward += w * u.rejected_reward;
                    ps.margin += w * u.margin;
                    ps.chosen_logps += w * u.chosen_logps;
                    ps.rejected_logps += w * u.rejected_logps;
                    ps.log_odds_ratio += w * u.kl;  // logged as "kl"
                    return static_cast<float>(u.loss);
                }
                const auto s = pref->forward_backward(grads, dloss, model, mparams, ref_params ? &*ref_params : nullptr, ploss,
                                                      reference_free, pool);
                const double w = static_cast<double>(dloss);  // the mean over micro-batches, as TRL's logged means
                ps.chosen_reward += w * s.chosen_reward;
                ps.rejected_reward += w * s.rejected_reward;
                ps.margin += w * s.margin;
                ps.accuracy += w * s.accuracy;
                ps.chosen_logps += w * s.chosen_logps;
                ps.rejected_logps += w * s.rejected_logps;
                return static_cast<float>(s.loss);
            },
            pool);
        if (comm.size() > 1 && (pref || rwd)) {  // the logged statistics are global means, as the loss
            std::array<double, 7> v{ps.chosen_reward, ps.rejected_reward, ps.margin, ps.accuracy, ps.chosen_logps, ps.rejected_logps, ps.log_odds_ratio};
            llm::dist::all_reduce(v, llm::dist::reduce_op::mean, comm);
            ps.chosen_reward = v[0], ps.rejected_reward = v[1], ps.margin = v[2], ps.accuracy = v[3];
            ps.chosen_logps = v[4], ps.rejected_logps = v[5], ps.log_odds_ratio = v[6];
        }
        const double secs = std::chrono::duration<double>(clock::now() - s0).count();
        const double tok_s = static_cast<double>(shape.tokens() * o.grad_accum * comm.size()) / secs;  // all ranks
        llm::train::step_metrics m{.step = step, .loss = r.loss, .lr = r.lr, .grad_norm = r.grad_norm, .tokens_per_s = tok_s,
                                   .skipped = r.skipped, .reason = r.reason, .extra = {}};
        m.extra.emplace_back("step_s", secs);
        if (pref || rwd) {
            m.extra.emplace_back("rewards/chosen", ps.chosen_reward);
            m.extra.emplace_back("rewards/rejected", ps.rejected_reward);
            m.extra.emplace_back("rewards/margins", ps.margin);
            if (o.objective == "kto") m.extra.emplace_back("kl", ps.log_odds_ratio);
            else m.extra.emplace_back("rewards/accuracies", ps.accuracy);
        }
        if (pref) {
            m.extra.emplace_back("logps/chosen", ps.chosen_logps);
            m.extra.emplace_back("logps/rejected", ps.rejected_logps);
        }
        if (val && lead && o.val_every > 0 && ((step + 1) % o.val_every == 0 || step + 1 == o.steps)) {
            const auto e = llm::train::evaluate(model, mparams, *val, shape, o.val_batches, pool);
            m.extra.emplace_back("val_loss", e.loss);
            m.extra.emplace_back("val_ppl", e.perplexity);
        }
        if (log) log->write(m);
        last_loss = r.loss;
        const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
        if (lead) std::printf("%s%s\n", llm::train::progress_line(step + 1 - start, o.steps - start, r.loss, r.lr, tok_s, elapsed).c_str(),
                    r.skipped ? (" | skipped: " + r.reason).c_str() : "");
        std::fflush(stdout);
        if (o.save_every > 0 && (step + 1) % o.save_every == 0 && step + 1 < o.steps) save(step + 1);
    }
    save(o.steps > start ? o.steps : start);
    if (!lead) return 0;  // rank 0 reports, evaluates and plots
    std::printf("saved %s (model.safetensors, config.json, optimizer.safetensors, train_state.json)\n", o.out.c_str());
    if (val) {
        const auto e = llm::train::evaluate(model, mparams, *val, shape, o.val_batches, pool);
        std::printf("val: loss %.4f, perplexity %.3f over %zu batches (%zu tokens)\n", e.loss, e.perplexity, e.batches, e.tokens);
    }
    (void)last_loss;
    if (!o.log.empty()) {
        const std::string png = o.plot.empty() ? (std::filesystem::path(o.out) / "loss.png").string() : o.plot;
        if (plot_losses(o.log, png)) {
            std::printf("loss curve: %s\n", png.c_str());
        } else {
            std::printf("loss curve: skipped, gnuplot is not installed (apt-get install gnuplot-nox); training succeeded\n");
        }
    }
    return 0;
}

// Launched by mpirun with several processes (Open MPI, or a PMI launcher such as Slurm's)?
[[maybe_unused]] bool launched_with_several_ranks() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
        if (const char* v = std::getenv(name); v && std::atoi(v) > 1) return true;
    }
    return false;
}

int main_body(int argc, char** argv) {
    const options o = parse(argc, argv);
    std::string config_path, weights;
    if (!o.init.empty()) {
        config_path = (std::filesystem::path(o.init) / "config.json").string();
        weights = (std::filesystem::path(o.init) / "model.safetensors").string();
        if (!std::filesystem::exists(weights)) weights = (std::filesystem::path(o.init) / "model.safetensors.index.json").string();
    } else if (!o.config.empty()) {
        config_path = o.config;
    } else {
        config_path = (std::filesystem::path(o.resume) / "config.json").string();
        weights = (std::filesystem::path(o.resume) / "model.safetensors").string();
    }
    const auto cfg = llm::model::from_hf_config(config_path);
    auto go = [&](auto& comm) {
        if (o.objective == "reward") {
            if (cfg.family == llm::model::family::gpt2) return run<llm::model::gpt2<>, true>(o, cfg, config_path, weights, comm);
            return run<llm::model::llama<>, true>(o, cfg, config_path, weights, comm);
        }
        if (o.dtype == "bf16") {
            if (cfg.family == llm::model::family::gpt2) return run<llm::model::gpt2<>, false, llm::bf16>(o, cfg, config_path, weights, comm);
            return run<llm::model::llama<>, false, llm::bf16>(o, cfg, config_path, weights, comm);
        }
        if (cfg.family == llm::model::family::gpt2) return run<llm::model::gpt2<>>(o, cfg, config_path, weights, comm);
        return run<llm::model::llama<>>(o, cfg, config_path, weights, comm);  // Llama, Mistral, Qwen2 share the structure
    };
#if LLM_HAS_MPI
    if (launched_with_several_ranks()) {  // data parallel; a rank that fails alone ends the job (the others may wait in a collective)
        llm::dist::mpi comm;
        const int status = cli::run_main("train", [&] { return go(comm); });
        if (status != 0) comm.abort(status);
        return status;
    }
#endif
    llm::dist::single_process comm;
    return go(comm);
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("train", [&] { return main_body(argc, argv); });
}
