// SPDX-License-Identifier: Apache-2.0
// pipeline: a small language model from raw text to generated text, every stage through the
// library's public API, on public-domain text installed from Debian (the King James Bible of
// bible-kjv; fortunes-min's fortunes give the quality filters something to remove).
//
//   1. curate     quality filters (C4 + Gopher) and MinHash near-dedup, counts of what each removed
//   2. tokenize   train a byte-level BPE, bytes/token and fertility, llm.c token files (train, held-out)
//   3. pretrain   a Llama-style model with compile-time dims: AdamW, warmup + cosine, progress line,
//                 checkpoints, held-out perplexity at intervals, final loss vs the unigram entropy
//   4. align      SimPO on pairs (the real continuation preferred over a shuffled one)
//   5. quantize   Q8_0 and Q4_K GGUF files, size and held-out perplexity of each
//   6. generate   from a prompt with the Q8_0 model (weights decoded from the GGUF), streaming,
//                 through the model's KV-cache decode step
//
// Every stage writes its outputs and a summary into --out DIR; a rerun skips finished stages
// (--force redoes them all). --quick is the one-minute version the ctest runs.
#include "common/args.hpp"

#include <llm/align/simpo.hpp>
#include <llm/data/near_dedup.hpp>
#include <llm/data/quality.hpp>
#include <llm/data/signer.hpp>
#include <llm/io/file.hpp>
#include <llm/io/gguf.hpp>
#include <llm/io/json.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tokenizer/gguf_vocab.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/trainer.hpp>
#include <llm/train/objectives.hpp>
#include <llm/train/train.hpp>
#include <llm/train/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr std::string_view usage =
    "usage: pipeline [--out DIR] [--quick] [--force] [--threads N] [--kjv FILE] [--minutes M]\n"
    "Builds a small language model from Debian's public-domain text (bible-kjv, fortunes-min):\n"
    "curate, tokenize, pretrain, align, quantize, generate. Outputs go to DIR (default\n"
    "pipeline_out, or pipeline_quick with --quick); a rerun skips finished stages, --force redoes\n"
    "them. --kjv FILE reads the Bible from FILE (the output of `bible gen1:1-rev22:21`) instead of\n"
    "running `bible`. --minutes M is the pretraining time budget (default 5; --quick: 0.4).\n";

// The model: Llama structure with compile-time dims. Widths are multiples of 256 so every
// matrix row is whole Q4_K super-blocks (no fallback type in the Q4_K file).
constexpr llm::model::dims model_dims{.vocab = 2048, .d_model = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4,
                                      .d_ff = 512, .max_seq = 256, .rope = {.theta = 10000.0}};
using model_t = llm::model::llama<llm::model::static_dims<model_dims>>;
using params_t = model_t::params<float>;

struct options {
    std::string out, kjv;
    bool quick = false, force = false;
    std::size_t threads = 2;
    double minutes = -1;
};

options parse(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    while (a.next()) {
        if (a.is("--out")) o.out = a.value();
        else if (a.is("--quick")) o.quick = true;
        else if (a.is("--force")) o.force = true;
        else if (a.is("--threads")) o.threads = a.integer<std::size_t>(1, 1024);
        else if (a.is("--kjv")) o.kjv = a.value();
        else if (a.is("--minutes")) o.minutes = a.number_in_open(0, 1e4);
        else a.unknown();
    }
    if (o.out.empty()) o.out = o.quick ? "pipeline_quick" : "pipeline_out";
    if (o.minutes < 0) o.minutes = o.quick ? 0.4 : 5.0;
    return o;
}

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// A stage's printed lines, kept in DIR/stages/<name>.md so a rerun that skips the stage prints
// them again and the final report collects them.
class stage_log {
public:
    stage_log(const fs::path& dir, std::string name) : path_(dir / "stages" / (name + ".md")), name_(std::move(name)) {}
    bool done() const { return fs::exists(path_); }
    void line(const std::string& s) {
        std::printf("%s\n", s.c_str());
        std::fflush(stdout);
        text_ += "- " + s + "\n";
    }
    void finish() const {
        fs::create_directories(path_.parent_path());
        llm::io::write_file_atomically(path_.string(), text_);
    }
    void replay() const {
        std::printf("(done earlier; --force redoes it)\n");
        const std::string t = llm::io::read_file(path_.string(), std::size_t{1} << 24, "pipeline");
        std::istringstream in(t);
        std::string l;
        while (std::getline(in, l)) std::printf("%s\n", l.size() > 2 ? l.c_str() + 2 : l.c_str());
    }

private:
    fs::path path_;
    std::string name_, text_;
};

std::string fmt(const char* f, auto... a) {
    char buf[512];
    std::snprintf(buf, sizeof buf, f, a...);
    return buf;
}

bool on_path(const std::string& exe) {
    const char* path = std::getenv("PATH");
    if (path == nullptr) return false;
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        std::error_code ec;
        if (fs::is_regular_file(fs::path(dir.empty() ? "." : dir) / exe, ec)) return true;
    }
    return false;
}

std::string run_command(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    llm::check(p != nullptr, "cannot run '", cmd, "'");
    char buf[65536];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = pclose(p);
    llm::check(rc == 0, "'", cmd, "' failed (status ", rc, ")");
    return out;
}

struct document {
    std::string source, title, text;
};

// The Bible as `bible` prints it: a "Book N" line opens a chapter, verses are "  N text" with
// wrapped continuation lines. One document per chapter, one line per verse (numbers dropped).
std::vector<document> bible_chapters(const std::string& text) {
    std::vector<document> docs;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (line[0] != ' ') {
            docs.push_back({"kjv", line, ""});
            continue;
        }
        if (docs.empty()) continue;
        std::size_t i = line.find_first_not_of(' ');
        std::size_t j = i;
        while (j < line.size() && line[j] >= '0' && line[j] <= '9') ++j;
        const bool verse = j > i && j < line.size() && line[j] == ' ' && i >= 2;
        std::string& t = docs.back().text;
        if (verse) {
            if (!t.empty()) t += '\n';
            t += line.substr(j + 1);
        } else {
            t += ' ';
            t += line.substr(i);
        }
    }
    return docs;
}

// Continuation lines of a wrapped verse start in column 0 in `bible`'s output; join them.
std::vector<document> bible_documents(const std::string& raw) {
    std::string fixed;
    std::istringstream in(raw);
    std::string line;
    bool in_chapter = false;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const bool header = line[0] != ' ' && (line.find_first_of("0123456789") != std::string::npos) &&
                            line.size() < 40 && line.find('.') == std::string::npos && line.find(',') == std::string::npos;
        if (header && line.back() >= '0' && line.back() <= '9') {
            fixed += "\n" + line + "\n";
            in_chapter = true;
        } else if (line[0] == ' ') {
            fixed += line + "\n";
        } else if (in_chapter) {
            if (!fixed.empty() && fixed.back() == '\n') fixed.pop_back();
            fixed += " " + line + "\n";
        }
    }
    return bible_chapters(fixed);
}

std::vector<document> fortunes() {
    std::vector<document> docs;
    const fs::path dir = "/usr/share/games/fortunes";
    for (const char* f : {"fortunes.u8", "literature.u8", "riddles.u8"}) {
        const fs::path p = dir / f;
        if (!fs::exists(p)) continue;
        const std::string t = llm::io::read_file(p.string(), std::size_t{1} << 26, "pipeline");
        std::size_t start = 0;
        int k = 0;
        while (start < t.size()) {
            std::size_t end = t.find("\n%\n", start);
            if (end == std::string::npos) end = t.size();
            std::string d = t.substr(start, end - start);
            if (!d.empty()) docs.push_back({"fortune", std::string(f) + " #" + std::to_string(++k), d});
            start = end + 3;
        }
    }
    return docs;
}

// ---------------------------------------------------------------------------------------------
// 1. curate

void curate(const options& o, const fs::path& dir, stage_log& log) {
    const auto t0 = clock_type::now();
    std::string raw;
    if (!o.kjv.empty()) {
        raw = llm::io::read_file(o.kjv, std::size_t{1} << 28, "pipeline");
    } else {
        llm::check(on_path("bible"), "the `bible` program is missing: apt-get install bible-kjv (or give --kjv FILE)");
        raw = run_command("bible gen1:1-rev22:21 2>&1");
    }
    std::vector<document> docs = bible_documents(raw);
    const std::size_t n_bible = docs.size();
    for (auto& d : fortunes()) docs.push_back(std::move(d));
    const std::size_t n_fortune = docs.size() - n_bible;
    std::size_t bytes_in = 0;
    for (const auto& d : docs) bytes_in += d.text.size();
    log.line(fmt("read %zu documents, %.2f MB: %zu Bible chapters (bible-kjv), %zu fortunes (fortunes-min)", docs.size(),
                 static_cast<double>(bytes_in) / 1e6, n_bible, n_fortune));

    // quality filters: C4 then Gopher, the first failing rule names the reason
    const auto filters = llm::data::quality_pipeline::parse("c4,gopher");
    std::map<std::string, std::size_t> reasons;
    std::vector<bool> passed(docs.size());
    std::size_t n_pass = 0;
    for (std::size_t i = 0; i < docs.size(); ++i) {
        const std::string why = filters.check(docs[i].text);
        passed[i] = why.empty();
        if (passed[i]) ++n_pass;
        else ++reasons[why + (docs[i].source == "kjv" ? " (kjv)" : " (fortune)")];
    }
    log.line(fmt("quality filters (C4 + Gopher) removed %zu of %zu documents:", docs.size() - n_pass, docs.size()));
    for (const auto& [why, n] : reasons) log.line(fmt("  %5zu  %s", n, why.c_str()));

    // MinHash near-dedup: character 5-gram shingles (lowercased, whitespace folded), 128 permutations, LSH at Jaccard 0.5, candidate pairs verified by
    // exact Jaccard of the shingle sets. On this corpus unrelated chapters share at most ~0.24
    // of their character 5-grams; parallel passages (2 Kings 19 / Isaiah 37, Psalms 14 / 53)
    // share 0.55 to 0.8, while their word 5-grams overlap only 0.25 to 0.47 (slightly different
    // wording breaks long word n-grams).
    const llm::data::signer<llm::data::char_ngrams, llm::data::xxhash64, llm::data::minhash<llm::data::mersenne61>> signer(
        llm::data::char_ngrams{.n = 5}, llm::data::xxhash64{}, llm::data::minhash<llm::data::mersenne61>(128, 1));
    llm::data::sign_scratch scratch;
    llm::data::near_dedup nd(signer.num_perm(), {.threshold = 0.5, .fn_weight = 0.9, .verify = true});
    std::vector<std::uint32_t> sig(signer.num_perm());
    for (std::size_t i = 0; i < docs.size(); ++i) {
        if (!passed[i]) {
            nd.add_excluded(docs[i].text.size());
            continue;
        }
        signer.shingle_hashes(docs[i].text, scratch);
        std::vector<std::uint64_t> sh = scratch.hashes;
        std::sort(sh.begin(), sh.end());
        sh.erase(std::unique(sh.begin(), sh.end()), sh.end());
        signer.sign(docs[i].text, sig, scratch);
        nd.add(sig, docs[i].text.size(), sh);
    }
    std::size_t n_dup = 0;
    std::vector<std::string> examples;
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < docs.size(); ++i) {
        if (!passed[i]) continue;
        if (nd.kept(static_cast<std::uint32_t>(i))) {
            kept.push_back(i);
        } else {
            ++n_dup;
            if (examples.size() < 4) examples.push_back(docs[i].title + " ~ " + docs[nd.cluster_of(static_cast<std::uint32_t>(i))].title);
        }
    }
    log.line(fmt("MinHash near-dedup (character 5-grams, 128 permutations, LSH %zu bands x %zu rows, Jaccard >= 0.5 verified) removed %zu "
                 "near-duplicates",
                 nd.params().bands, nd.params().rows, n_dup));
    for (const auto& e : examples) log.line("  e.g. " + e);
    std::string jsonl;
    std::size_t bytes_out = 0;
    for (const std::size_t i : kept) {
        jsonl += "{\"id\": " + std::to_string(i) + ", \"source\": " + llm::io::json_quote(docs[i].source) +
                 ", \"title\": " + llm::io::json_quote(docs[i].title) + ", \"text\": " + llm::io::json_quote(docs[i].text) + "}\n";
        bytes_out += docs[i].text.size();
    }
    llm::io::write_file_atomically((dir / "curated.jsonl").string(), jsonl);
    log.line(fmt("kept %zu documents, %.2f MB -> curated.jsonl (%.1f s)", kept.size(), static_cast<double>(bytes_out) / 1e6,
                 seconds_since(t0)));
}

std::vector<std::string> read_curated(const fs::path& dir) {
    const std::string t = llm::io::read_file((dir / "curated.jsonl").string(), std::size_t{1} << 30, "pipeline");
    std::vector<std::string> out;
    std::istringstream in(t);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const auto v = llm::io::parse_json(line, "curated.jsonl");
        out.emplace_back(v.at("text", "curated.jsonl").as_string("curated.jsonl"));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// 2. tokenize

constexpr const char* eot = "<|endoftext|>";

// Token counts and their unigram entropy (nats): the loss of the best model that ignores context.
double unigram_entropy(std::span<const std::uint16_t> tokens) {
    std::vector<double> count(model_dims.vocab, 0.0);
    for (const auto t : tokens) count[t] += 1;
    const double n = static_cast<double>(tokens.size());
    double h = 0;
    for (const double c : count)
        if (c > 0) h -= c / n * std::log(c / n);
    return h;
}

void tokenize(const options& o, const fs::path& dir, stage_log& log) {
    const auto t0 = clock_type::now();
    const std::vector<std::string> docs = read_curated(dir);
    std::vector<std::string_view> train_docs, val_docs;
    for (std::size_t i = 0; i < docs.size(); ++i) (i % 20 == 19 ? val_docs : train_docs).push_back(docs[i]);
    // --quick trains the tokenizer on a tenth of the training documents (the time is in the merges)
    std::vector<std::string_view> bpe_docs;
    for (std::size_t i = 0; i < train_docs.size(); ++i)
        if (!o.quick || i % 10 == 0) bpe_docs.push_back(train_docs[i]);
    const auto vocab = llm::tokenizer::train_bpe(bpe_docs, {.vocab_size = model_dims.vocab, .min_frequency = 2,
                                                            .pre = llm::tokenizer::pattern::cl100k, .specials = {eot}});
    const auto enc = vocab.tokenizer("pipeline");
    llm::tokenizer::write_tiktoken(vocab, (dir / "tokenizer.tiktoken").string());
    llm::tokenizer::write_hf_tokenizer(vocab, (dir / "tokenizer.json").string());
    log.line(fmt("trained a byte-level BPE (cl100k pre-tokenizer) on %zu documents: vocabulary %zu (%zu merges + 256 bytes + %s) "
                 "in %.1f s -> tokenizer.json, tokenizer.tiktoken",
                 bpe_docs.size(), enc.n_vocab(), vocab.merges.size(), eot, seconds_since(t0)));
    const auto m_train = llm::tokenizer::measure(enc, train_docs);
    const auto m_val = llm::tokenizer::measure(enc, val_docs);
    log.line(fmt("train: %.3f bytes/token, fertility %.3f tokens/word; held-out: %.3f bytes/token, fertility %.3f", m_train.bytes_per_token(),
                 m_train.fertility(), m_val.bytes_per_token(), m_val.fertility()));
    const auto eot_id = static_cast<std::uint16_t>(enc.encode(eot, llm::tokenizer::special_policy::all()).at(0));
    auto encode_all = [&](const std::vector<std::string_view>& ds, const char* name) {
        std::vector<std::uint16_t> tokens;
        for (const auto d : ds) {
            tokens.push_back(eot_id);  // llm.c's layout: every document starts with <|endoftext|>
            for (const auto t : enc.encode(d)) tokens.push_back(static_cast<std::uint16_t>(t));
        }
        llm::train::write_token_file((dir / name).string(), std::span<const std::uint16_t>(tokens));
        return tokens;
    };
    const auto train = encode_all(train_docs, "train.bin");
    const auto val = encode_all(val_docs, "val.bin");
    log.line(fmt("llm.c token files: train.bin %zu tokens (%zu documents), val.bin %zu tokens (%zu documents)", train.size(),
                 train_docs.size(), val.size(), val_docs.size()));
    log.line(fmt("unigram entropy of the training tokens: %.4f nats/token", unigram_entropy(train)));
}

// ---------------------------------------------------------------------------------------------
// 3. pretrain

std::string config_json() {
    const auto& d = model_dims;
    return fmt("{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n  \"vocab_size\": %zu,\n"
               "  \"hidden_size\": %zu,\n  \"num_hidden_layers\": %zu,\n  \"num_attention_heads\": %zu,\n"
               "  \"num_key_value_heads\": %zu,\n  \"intermediate_size\": %zu,\n  \"max_position_embeddings\": %zu,\n"
               "  \"rms_norm_eps\": %g,\n  \"rope_theta\": %g,\n  \"tie_word_embeddings\": false,\n  \"hidden_act\": \"silu\"\n}\n",
               d.vocab, d.d_model, d.n_layers, d.n_heads, d.kv_heads(), d.ff(), d.max_seq, static_cast<double>(d.norm_eps),
               d.rope.theta);
}

void save_checkpoint(const params_t& p, const fs::path& d) {
    fs::create_directories(d);
    llm::model::save_safetensors(p, (d / "model.safetensors").string());
    llm::io::write_file_atomically((d / "config.json").string(), config_json());
}

struct run_shape {
    std::size_t batch, seq, val_batches;
};
run_shape shape_of(const options& o) { return o.quick ? run_shape{4, 64, 4} : run_shape{8, 128, 16}; }

// The loss and held-out perplexity curves (metrics.jsonl) as a PNG; false when gnuplot is absent.
bool plot(const fs::path& dir, double unigram) {
    if (!on_path("gnuplot")) return false;
    const std::string text = llm::io::read_file((dir / "metrics.jsonl").string(), std::size_t{1} << 30, "pipeline");
    const fs::path dat = dir / "curves.dat", gp = dir / "curves.gp";
    {
        std::ofstream d(dat);
        std::istringstream lines(text);
        std::string line;
        while (std::getline(lines, line)) {
            if (line.empty()) continue;
            const auto v = llm::io::parse_json(line, "metrics.jsonl");
            const auto* val = v.find("val_ppl");
            const auto* stage = v.find("stage");
            if (stage != nullptr) continue;  // alignment steps: another loss
            d << v.at("step", "metrics.jsonl").as_number("metrics.jsonl") << ' ' << v.at("loss", "metrics.jsonl").as_number("metrics.jsonl")
              << ' ' << (val != nullptr && val->is_number() ? std::to_string(val->as_number("metrics.jsonl")) : std::string("NaN")) << '\n';
        }
    }
    {
        std::ofstream g(gp);
        g << "set terminal pngcairo size 1000,480 noenhanced\nset output '" << (dir / "curves.png").string() << "'\n"
          << "set datafile missing 'NaN'\nset multiplot layout 1,2\nset grid\nset xlabel 'step'\n"
          << "set title 'training loss (nats/token)'\nplot '" << dat.string() << "' using 1:2 with lines lw 2 title 'train', "
          << unigram << " with lines dt 2 lw 2 title 'unigram entropy'\n"
          << "set title 'held-out perplexity'\nset logscale y\nplot '" << dat.string()
          << "' using 1:3 with linespoints pt 7 title 'val'\nunset multiplot\n";
    }
    const int rc = std::system(("gnuplot '" + gp.string() + "' 2>&1").c_str());
    fs::remove(dat);
    fs::remove(gp);
    llm::check(rc == 0, "gnuplot failed (status ", rc, ")");
    return true;
}

void pretrain(const options& o, const fs::path& dir, stage_log& log, llm::parallel::thread_pool& pool) {
    const model_t model;
    auto params = model.make_params<float>();
    model.init(params, {.seed = 1234});
    const llm::train::token_file train((dir / "train.bin").string()), val((dir / "val.bin").string());
    const auto rs = shape_of(o);
    const llm::model::batch_shape shape{.batch = rs.batch, .seq = rs.seq};
    llm::train::batch_loader loader(train, rs.batch, rs.seq, llm::train::loader_options{.shuffle = true, .seed = 7});
    llm::train::lm_batch<model_t> lm(model, shape);
    log.line(fmt("model: Llama structure, compile-time dims (vocab %zu, d_model %zu, %zu layers, %zu heads, d_ff %zu), %zu parameters; "
                 "batch %zu x %zu tokens, %zu threads",
                 model_dims.vocab, model_dims.d_model, model_dims.n_layers, model_dims.n_heads, model_dims.ff(),
                 model_t::parameter_count(model_dims), rs.batch, rs.seq, o.threads));
    // the step count from the time budget: time 2 steps (forward + backward, no update) first
    auto grads = model.make_params<float>();
    const auto c0 = clock_type::now();
    for (int i = 0; i < 2; ++i) {
        lm.fill(loader);
        (void)lm.forward_backward(grads, 1.0f, model, params, pool);
    }
    loader.seek(llm::train::data_position{});
    const double step_s = seconds_since(c0) / 2 * 1.05;
    // the held-out evaluations (a forward of val_batches batches, 10 times) add ~20%
    const auto steps = std::max<std::int64_t>(20, static_cast<std::int64_t>(o.minutes * 60 / (step_s * 1.2)));
    const std::int64_t warmup = std::max<std::int64_t>(2, steps / 20), val_every = std::max<std::int64_t>(1, steps / (o.quick ? 4 : 10));
    const double lr = 3e-3;
    log.line(fmt("%lld steps (%.2f s each, %.1f minutes budget), AdamW lr %.0e, warmup %lld + cosine to %.0e, clip 1.0, "
                 "held-out perplexity every %lld steps",
                 static_cast<long long>(steps), step_s, o.minutes, lr, static_cast<long long>(warmup), lr / 10,
                 static_cast<long long>(val_every)));
    llm::train::adamw_optimizer<> opt({.lr = lr, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
    llm::train::trainer tr(model, params, opt, llm::train::cosine_lr{.max_lr = lr, .warmup = warmup, .total = steps, .min_lr = lr / 10},
                           {.clip = 1.0});
    llm::train::metrics_log mlog((dir / "metrics.jsonl").string(), false);
    const auto t0 = clock_type::now();
    double first_loss = 0, last_loss = 0, tail = 0;
    std::int64_t tail_n = 0;
    for (std::int64_t step = 0; step < steps; ++step) {
        const auto s0 = clock_type::now();
        const auto r = tr.step(
            [&](std::size_t, float dloss) {
                lm.fill(loader);
                return lm.forward_backward(tr.grads(), dloss, model, params, pool);
            },
            pool);
        const double secs = seconds_since(s0);
        llm::train::step_metrics m{.step = step, .loss = r.loss, .lr = r.lr, .grad_norm = r.grad_norm,
                                   .tokens_per_s = static_cast<double>(shape.tokens()) / secs, .skipped = r.skipped, .reason = r.reason,
                                   .extra = {}};
        if ((step + 1) % val_every == 0 || step + 1 == steps) {
            const auto e = llm::train::evaluate(model, params, val, shape, rs.val_batches, pool);
            m.extra.emplace_back("val_loss", e.loss);
            m.extra.emplace_back("val_ppl", e.perplexity);
            std::printf("  held-out: loss %.4f, perplexity %.2f\n", e.loss, e.perplexity);
            if (step + 1 < steps) save_checkpoint(params, dir / "checkpoints" / fmt("step_%05lld", static_cast<long long>(step + 1)));
        }
        mlog.write(m);
        if (step == 0) first_loss = r.loss;
        last_loss = r.loss;
        if (step >= steps - std::max<std::int64_t>(1, steps / 10)) {
            tail += r.loss;
            ++tail_n;
        }
        std::printf("%s\n", llm::train::progress_line(step + 1, steps, r.loss, r.lr, m.tokens_per_s, seconds_since(t0)).c_str());
        std::fflush(stdout);
    }
    save_checkpoint(params, dir / "checkpoints" / "final");
    const double train_s = seconds_since(t0);
    const auto e = llm::train::evaluate(model, params, val, shape, rs.val_batches, pool);
    std::vector<std::uint16_t> tok(train.size());
    for (std::size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<std::uint16_t>(train[i]);
    const double h = unigram_entropy(tok);
    const double final_loss = tail / static_cast<double>(tail_n);
    log.line(fmt("trained %lld steps in %.1f s (%.0f tokens/s): loss %.4f -> %.4f (mean of the last %lld steps %.4f)",
                 static_cast<long long>(steps), train_s, static_cast<double>(steps) * static_cast<double>(shape.tokens()) / train_s, first_loss,
                 last_loss, static_cast<long long>(tail_n), final_loss));
    log.line(fmt("final training loss %.4f vs unigram entropy %.4f nats/token: %.4f below it%s", final_loss, h, h - final_loss,
                 final_loss < h - 0.5 ? "" : " (NOT well below: train longer)"));
    log.line(fmt("held-out: loss %.4f, perplexity %.2f (%zu tokens)", e.loss, e.perplexity, e.tokens));
    log.line("checkpoints: checkpoints/step_*/ and checkpoints/final/ (model.safetensors, config.json); metrics.jsonl");
    if (plot(dir, h)) log.line("curves: curves.png (training loss, held-out perplexity; gnuplot)");
    else log.line("curves: skipped, gnuplot is not installed (apt-get install gnuplot-nox)");
    llm::check(o.quick ? last_loss < first_loss - 1.0 : final_loss < h, "pretraining: the loss did not fall enough (", first_loss,
               " -> ", final_loss, ", unigram entropy ", h, ")");
}

}  // namespace

namespace {

params_t load_params(const model_t& model, const fs::path& d) {
    auto p = model.make_params<float>();
    llm::model::load_safetensors(p, (d / "model.safetensors").string());
    return p;
}

// ---------------------------------------------------------------------------------------------
// 4. align

constexpr std::size_t prompt_len = 32, response_len = 24;

// Pairs from a token file: a prompt of 32 tokens, the real next 24 tokens (chosen) and the same
// 24 tokens shuffled (rejected), from windows spread over the file.
// With `swap_one`, the rejected continuation differs from the real one by one swap of two
// neighbouring tokens (a harder test than a full shuffle).
std::vector<llm::train::preference_example> make_pairs(const llm::train::token_file& f, std::size_t n, std::uint64_t seed,
                                                       bool swap_one = false) {
    std::mt19937_64 rng(seed);
    std::vector<llm::train::preference_example> out;
    const std::size_t span = prompt_len + response_len;
    std::uniform_int_distribution<std::size_t> pos(0, f.size() - span - 1);
    while (out.size() < n) {
        const std::size_t p = pos(rng);
        llm::train::preference_example e;
        for (std::size_t i = 0; i < prompt_len; ++i) e.prompt.push_back(static_cast<std::int32_t>(f[p + i]));
        for (std::size_t i = 0; i < response_len; ++i) e.chosen.push_back(static_cast<std::int32_t>(f[p + prompt_len + i]));
        e.rejected = e.chosen;
        if (swap_one) {
            const std::size_t k = std::uniform_int_distribution<std::size_t>(0, response_len - 2)(rng);
            std::swap(e.rejected[k], e.rejected[k + 1]);
        } else {
            std::shuffle(e.rejected.begin(), e.rejected.end(), rng);
        }
        if (e.rejected == e.chosen) continue;
        out.push_back(std::move(e));
    }
    return out;
}

struct pref_eval {
    double margin = 0, accuracy = 0, logp_margin = 0;
};

// SimPO's implicit rewards beta / |y| log pi(y | x) of chosen and rejected, over every pair.
pref_eval evaluate_pairs(const model_t& model, const params_t& params, const std::vector<llm::train::preference_example>& pairs,
                         std::size_t batch, double beta, llm::parallel::thread_pool& pool) {
    llm::train::preference_batch<model_t> pb(model, batch, prompt_len + response_len);
    pref_eval r;
    for (std::size_t first = 0; first < pairs.size(); first += batch) {
        pb.fill(pairs, first);
        const auto& lp = pb.logprobs(model, params, pool);
        for (std::size_t k = 0; k < batch; ++k) {
            const double d = lp[k] - lp[batch + k];
            r.logp_margin += d;
            r.margin += beta / static_cast<double>(response_len) * d;
            r.accuracy += d > 0 ? 1.0 : 0.0;
        }
    }
    const auto n = static_cast<double>(pairs.size());
    r.margin /= n;
    r.accuracy /= n;
    r.logp_margin /= n;
    return r;
}

void align(const options& o, const fs::path& dir, stage_log& log, llm::parallel::thread_pool& pool) {
    const model_t model;
    auto params = load_params(model, dir / "checkpoints" / "final");
    const llm::train::token_file train((dir / "train.bin").string()), val((dir / "val.bin").string());
    const std::size_t batch = 4, steps = o.quick ? 8 : 60;
    const auto train_pairs = make_pairs(train, batch * steps, 11);
    const auto eval_pairs = make_pairs(val, o.quick ? 16 : 64, 12);
    const auto hard_pairs = make_pairs(val, o.quick ? 16 : 64, 13, true);
    const llm::align::simpo_config cfg{.beta = 2.0, .gamma = 0.5};
    log.line(fmt("SimPO (beta %.1f, gamma %.1f) on %zu pairs from train.bin, evaluated on %zu held-out pairs: prompt %zu tokens, chosen = "
                 "the real next %zu tokens, rejected = the same tokens shuffled",
                 cfg.beta, cfg.gamma, train_pairs.size(), eval_pairs.size(), prompt_len, response_len));
    const auto before = evaluate_pairs(model, params, eval_pairs, batch, cfg.beta, pool);
    const auto hard_before = evaluate_pairs(model, params, hard_pairs, batch, cfg.beta, pool);
    log.line(fmt("before: reward margin %.4f, accuracy %.3f (mean log-prob margin %.2f nats per pair); harder held-out pairs (one "
                 "neighbouring swap): margin %.4f, accuracy %.3f",
                 before.margin, before.accuracy, before.logp_margin, hard_before.margin, hard_before.accuracy));
    llm::train::adamw_optimizer<> opt({.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0});
    llm::train::trainer tr(model, params, opt, llm::train::cosine_lr{.max_lr = 1e-4, .warmup = 1, .total = static_cast<std::int64_t>(steps), .min_lr = 1e-5},
                           {.clip = 1.0, .guard = false});
    llm::train::preference_batch<model_t> pb(model, batch, prompt_len + response_len);
    const llm::train::preference_loss ploss = [cfg](const auto& out, const auto& in) { return llm::align::pair_loss<llm::align::simpo>(out, in, cfg); };
    llm::train::metrics_log mlog((dir / "align_metrics.jsonl").string(), false);
    const auto t0 = clock_type::now();
    for (std::size_t step = 0; step < steps; ++step) {
        const auto s0 = clock_type::now();
        llm::align::pair_stats ps{};
        const auto r = tr.step(
            [&](std::size_t, float dloss) {
                pb.fill(train_pairs, step * batch);
                ps = pb.forward_backward(tr.grads(), dloss, model, params, static_cast<const params_t*>(nullptr), ploss, true, pool);
                return static_cast<float>(ps.loss);
            },
            pool);
        const double secs = seconds_since(s0);
        llm::train::step_metrics m{.step = static_cast<std::int64_t>(step), .loss = r.loss, .lr = r.lr, .grad_norm = r.grad_norm,
                                   .tokens_per_s = static_cast<double>(2 * batch * (prompt_len + response_len)) / secs,
                                   .skipped = r.skipped, .reason = r.reason, .extra = {}};
        m.extra.emplace_back("rewards/margins", ps.margin);
        m.extra.emplace_back("rewards/accuracies", ps.accuracy);
        mlog.write(m);
        std::printf("%s | margin %.3f | acc %.2f\n",
                    llm::train::progress_line(static_cast<std::int64_t>(step + 1), static_cast<std::int64_t>(steps), r.loss, r.lr,
                                              m.tokens_per_s, seconds_since(t0)).c_str(), ps.margin, ps.accuracy);
        std::fflush(stdout);
    }
    const auto after = evaluate_pairs(model, params, eval_pairs, batch, cfg.beta, pool);
    const auto hard_after = evaluate_pairs(model, params, hard_pairs, batch, cfg.beta, pool);
    log.line(fmt("after %zu steps (%.1f s): reward margin %.4f, accuracy %.3f (mean log-prob margin %.2f nats per pair); harder pairs: "
                 "margin %.4f, accuracy %.3f",
                 steps, seconds_since(t0), after.margin, after.accuracy, after.logp_margin, hard_after.margin, hard_after.accuracy));
    const auto val_e = llm::train::evaluate(model, params, val, {.batch = shape_of(o).batch, .seq = shape_of(o).seq}, shape_of(o).val_batches, pool);
    log.line(fmt("held-out perplexity after alignment %.2f; checkpoints/aligned/, align_metrics.jsonl", val_e.perplexity));
    save_checkpoint(params, dir / "checkpoints" / "aligned");
    llm::check(after.margin > before.margin, "alignment: the reward margin did not grow (", before.margin, " -> ", after.margin, ")");
}

// ---------------------------------------------------------------------------------------------
// 5. quantize

// Hugging Face tensor names to llama.cpp's (convert_hf_to_gguf.py for LlamaForCausalLM).
std::string gguf_name(std::string n) {
    auto replace = [&](std::string_view from, std::string_view to) {
        const auto p = n.find(from);
        if (p != std::string::npos) n.replace(p, from.size(), to);
    };
    if (n == "model.embed_tokens.weight") return "token_embd.weight";
    if (n == "model.norm.weight") return "output_norm.weight";
    if (n == "lm_head.weight") return "output.weight";
    replace("model.layers.", "blk.");
    replace("input_layernorm", "attn_norm");
    replace("post_attention_layernorm", "ffn_norm");
    replace("self_attn.q_proj", "attn_q");
    replace("self_attn.k_proj", "attn_k");
    replace("self_attn.v_proj", "attn_v");
    replace("self_attn.o_proj", "attn_output");
    replace("mlp.gate_proj", "ffn_gate");
    replace("mlp.up_proj", "ffn_up");
    replace("mlp.down_proj", "ffn_down");
    return n;
}

// llama.cpp's Llama q and k rows are RoPE-interleaved (convert_hf_to_gguf's permute): row
// h*hd + i*hd/2 + j of the Hugging Face matrix becomes row h*hd + 2j + i. `inverse` undoes it.
std::vector<float> permute_rows(std::span<const float> w, std::size_t heads, std::size_t cols, bool inverse) {
    const std::size_t rows = w.size() / cols, hd = rows / heads, half = hd / 2;
    std::vector<float> out(w.size());
    for (std::size_t h = 0; h < heads; ++h)
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t j = 0; j < half; ++j) {
                const std::size_t hf = h * hd + i * half + j, gg = h * hd + 2 * j + i;
                const std::size_t from = inverse ? gg : hf, to = inverse ? hf : gg;
                std::copy_n(w.begin() + static_cast<std::ptrdiff_t>(from * cols), cols, out.begin() + static_cast<std::ptrdiff_t>(to * cols));
            }
    return out;
}

std::size_t heads_of(std::string_view gg) {
    if (gg.ends_with("attn_q.weight")) return model_dims.n_heads;
    if (gg.ends_with("attn_k.weight")) return model_dims.kv_heads();
    return 0;
}

// GPT-2's byte-to-unicode map, as llama.cpp's vocabularies spell byte-level tokens.
std::string byte_level(std::string_view bytes) {
    std::string out;
    for (const unsigned char b : bytes) {
        unsigned cp = b;
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))) {
            unsigned k = 0;
            for (unsigned c = 0; c < b; ++c)
                if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174))) ++k;
            cp = 256 + k;
        }
        if (cp < 0x80) out += static_cast<char>(cp);
        else {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    return out;
}

template <class F>
std::vector<std::byte> encode_blocks(std::span<const float> x) {
    const auto blocks = llm::quant::quantize<F>(x);
    const auto bytes = std::as_bytes(std::span(blocks));
    return {bytes.begin(), bytes.end()};
}

// Writes the parameters as a llama.cpp GGUF: llama metadata, the tokenizer (gpt2 model, the
// cl100k pattern as "llama-bpe"), 2-D weights as `type` (q8_0 or q4_K), norms as f32.
std::uint64_t write_gguf(const params_t& params, const fs::path& dir, const fs::path& path, llm::io::ggml_type type) {
    const auto& d = model_dims;
    llm::io::gguf_writer w;
    w.add("general.architecture", "llama");
    w.add("general.name", "pipeline-kjv");
    w.add<std::uint32_t>("llama.context_length", static_cast<std::uint32_t>(d.max_seq));
    w.add<std::uint32_t>("llama.embedding_length", static_cast<std::uint32_t>(d.d_model));
    w.add<std::uint32_t>("llama.block_count", static_cast<std::uint32_t>(d.n_layers));
    w.add<std::uint32_t>("llama.feed_forward_length", static_cast<std::uint32_t>(d.ff()));
    w.add<std::uint32_t>("llama.rope.dimension_count", static_cast<std::uint32_t>(d.head_width()));
    w.add<std::uint32_t>("llama.attention.head_count", static_cast<std::uint32_t>(d.n_heads));
    w.add<std::uint32_t>("llama.attention.head_count_kv", static_cast<std::uint32_t>(d.kv_heads()));
    w.add<float>("llama.attention.layer_norm_rms_epsilon", d.norm_eps);
    w.add<float>("llama.rope.freq_base", static_cast<float>(d.rope.theta));
    w.add<std::uint32_t>("llama.vocab_size", static_cast<std::uint32_t>(d.vocab));
    w.add<std::uint32_t>("general.file_type", *llm::quant::llama_file_type(type));
    w.add<std::uint32_t>("general.quantization_version", 2);
    // the tokenizer, from tokenizer.json; ids past it (the model's vocabulary is 2048) are unused
    const auto tok = std::get<llm::tokenizer::byte_bpe>(llm::tokenizer::load_hf_tokenizer((dir / "tokenizer.json").string()));
    std::vector<std::string> tokens(d.vocab);
    std::vector<std::int32_t> types(d.vocab, 5);
    std::uint32_t eot_id = 0;
    for (std::uint32_t id = 0; id < d.vocab; ++id) {
        if (!tok.contains(id)) {
            tokens[id] = "[PAD" + std::to_string(id) + "]";
            continue;
        }
        const std::string_view b = tok.token_bytes(id);
        if (b == eot) {
            tokens[id] = std::string(b);
            types[id] = 3;
            eot_id = id;
        } else {
            tokens[id] = byte_level(b);
            types[id] = 1;
        }
    }
    const std::string hf = llm::io::read_file((dir / "tokenizer.json").string(), std::size_t{1} << 28, "pipeline");
    const auto doc = llm::io::parse_json(hf, "tokenizer.json");
    std::vector<std::string> merges;
    for (const auto& m : doc.at("model", "tokenizer.json").at("merges", "tokenizer.json").as_array("tokenizer.json")) {
        if (m.is_string()) merges.push_back(m.as_string("tokenizer.json"));
        else merges.push_back(m.as_array("tokenizer.json").at(0).as_string("merge") + " " + m.as_array("tokenizer.json").at(1).as_string("merge"));
    }
    w.add("tokenizer.ggml.model", "gpt2");
    w.add("tokenizer.ggml.pre", "llama-bpe");
    w.add_array("tokenizer.ggml.tokens", tokens);
    w.add_array("tokenizer.ggml.token_type", types);
    w.add_array("tokenizer.ggml.merges", merges);
    w.add<std::uint32_t>("tokenizer.ggml.bos_token_id", eot_id);
    w.add<std::uint32_t>("tokenizer.ggml.eos_token_id", eot_id);

    std::vector<std::vector<std::byte>> kept;
    kept.reserve(64);
    llm::model::for_each_tensor(
        [&](std::string_view name, const auto& t) {
            const std::string gg = gguf_name(std::string(name));
            std::span<const float> x(t.data(), t.size());
            std::vector<std::uint64_t> shape;
            for (std::size_t r = 0; r < t.rank(); ++r) shape.push_back(t.extent(r));
            if (shape.size() == 1) {
                const auto b = std::as_bytes(x);
                kept.emplace_back(b.begin(), b.end());
                w.add_tensor(gg, llm::io::ggml_type::f32, shape, kept.back());
                return;
            }
            std::vector<float> permuted;
            if (const std::size_t h = heads_of(gg)) {
                permuted = permute_rows(x, h, shape[1], false);
                x = permuted;
            }
            kept.push_back(type == llm::io::ggml_type::q8_0 ? encode_blocks<llm::quant::q8_0>(x) : encode_blocks<llm::quant::q4_k>(x));
            w.add_tensor(gg, type, shape, kept.back());
        },
        params);
    w.write(path.string());
    return fs::file_size(path);
}

// Reads a GGUF written by write_gguf back into fp32 parameters (blocks decoded, q and k rows
// un-permuted).
params_t read_gguf(const model_t& model, const fs::path& path) {
    auto params = model.make_params<float>();
    const auto f = llm::io::gguf_file::open(path.string());
    llm::model::for_each_tensor(
        [&](std::string_view name, auto& t) {
            const std::string gg = gguf_name(std::string(name));
            const auto& info = f.tensor(gg);
            const auto bytes = f.tensor_bytes(info);
            std::vector<float> x;
            if (info.type == llm::io::ggml_type::f32) {
                x.resize(info.n_elements);
                std::memcpy(x.data(), bytes.data(), bytes.size());
            } else if (info.type == llm::io::ggml_type::q8_0) {
                x = llm::quant::dequantize<llm::quant::q8_0>(std::span(reinterpret_cast<const llm::quant::block_q8_0*>(bytes.data()),
                                                                       bytes.size() / sizeof(llm::quant::block_q8_0)));
            } else {
                llm::check(info.type == llm::io::ggml_type::q4_k, path.string(), ": tensor ", gg, " has an unexpected type");
                x = llm::quant::dequantize<llm::quant::q4_k>(std::span(reinterpret_cast<const llm::quant::block_q4_k*>(bytes.data()),
                                                                       bytes.size() / sizeof(llm::quant::block_q4_k)));
            }
            llm::check(x.size() == t.size(), path.string(), ": tensor ", gg, " has ", x.size(), " values, the model ", t.size());
            if (const std::size_t h = heads_of(gg)) x = permute_rows(x, h, t.extent(1), true);
            std::copy(x.begin(), x.end(), t.data());
        },
        params);
    return params;
}

void quantize(const options& o, const fs::path& dir, stage_log& log, llm::parallel::thread_pool& pool) {
    const model_t model;
    const auto params = load_params(model, dir / "checkpoints" / "aligned");
    const llm::train::token_file val((dir / "val.bin").string());
    const auto rs = shape_of(o);
    const llm::model::batch_shape shape{.batch = rs.batch, .seq = rs.seq};
    const auto base = llm::train::evaluate(model, params, val, shape, rs.val_batches, pool);
    const auto f32_bytes = fs::file_size(dir / "checkpoints" / "aligned" / "model.safetensors");
    log.line(fmt("fp32 (checkpoints/aligned/model.safetensors): %.2f MB, held-out perplexity %.3f (%zu tokens)",
                 static_cast<double>(f32_bytes) / 1e6, base.perplexity, base.tokens));
    for (const auto& [type, file] : {std::pair{llm::io::ggml_type::q8_0, "model-q8_0.gguf"}, std::pair{llm::io::ggml_type::q4_k, "model-q4_k.gguf"}}) {
        const auto t0 = clock_type::now();
        const auto bytes = write_gguf(params, dir, dir / file, type);
        const double secs = seconds_since(t0);
        const auto q = read_gguf(model, dir / file);
        const auto e = llm::train::evaluate(model, q, val, shape, rs.val_batches, pool);
        log.line(fmt("%s: %.2f MB (%.2fx smaller), written in %.2f s; held-out perplexity %.3f (%+.2f%%)", file,
                     static_cast<double>(bytes) / 1e6, static_cast<double>(f32_bytes) / static_cast<double>(bytes), secs, e.perplexity,
                     100.0 * (e.perplexity / base.perplexity - 1)));
    }
    log.line("2-D weights quantized (token_embd and output included, as llama-quantize --pure), norms f32; tokenizer in the GGUF metadata");
}

// ---------------------------------------------------------------------------------------------
// 6. generate

void generate(const options& o, const fs::path& dir, stage_log& log, llm::parallel::thread_pool& pool) {
    const model_t model;
    const fs::path gguf = dir / "model-q8_0.gguf";
    const auto params = read_gguf(model, gguf);
    const auto tok = std::get<llm::tokenizer::byte_bpe>(llm::tokenizer::load_gguf_tokenizer(gguf.string()));
    const std::string prompt = "And God said unto Moses,";
    std::vector<std::int32_t> ids;
    for (const auto t : tok.encode(prompt)) ids.push_back(static_cast<std::int32_t>(t));
    const std::size_t max_tokens = o.quick ? 24 : 64;
    // Decoding through the model's KV-cache step, one token per call (the prompt too), sampling
    // with temperature 0.8 from the 40 most likely tokens.
    auto state = model.make_state(1, model_dims.max_seq);
    llm::tensor<float, llm::dims<2>> logits(1, model_dims.vocab);
    llm::workspace ws;
    std::mt19937_64 rng(42);
    log.line(fmt("model-q8_0.gguf (weights decoded to fp32 for the forward; tokenizer from the GGUF metadata), prompt %zu tokens, "
                 "temperature 0.8, top-k 40, seed 42:",
                 ids.size()));
    std::printf("%s", prompt.c_str());
    std::string text = prompt;
    std::size_t generated = 0;
    const auto t0 = clock_type::now();
    double first_token_s = 0;
    std::vector<std::int32_t> order(model_dims.vocab);
    std::vector<double> probs;
    std::string pending;  // bytes of an incomplete UTF-8 character
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) model.step(logits.view(), state, llm::model::token_ids(&ids[i], 1), params, ws, pool);
    std::int32_t next = ids.back();
    while (generated < max_tokens) {
        model.step(logits.view(), state, llm::model::token_ids(&next, 1), params, ws, pool);
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + 40, order.end(), [&](std::int32_t x, std::int32_t y) { return logits(0, x) > logits(0, y); });
        probs.assign(40, 0.0);
        for (std::size_t k = 0; k < 40; ++k) probs[k] = std::exp((logits(0, order[k]) - logits(0, order[0])) / 0.8);
        next = order[std::discrete_distribution<std::size_t>(probs.begin(), probs.end())(rng)];
        if (generated == 0) first_token_s = seconds_since(t0);
        ++generated;
        if (tok.contains(static_cast<std::uint32_t>(next)) && tok.token_bytes(static_cast<std::uint32_t>(next)) != eot) {
            pending += tok.token_bytes(static_cast<std::uint32_t>(next));
            // print up to the last complete UTF-8 character (streaming)
            std::size_t cut = pending.size();
            for (std::size_t back = 1; back <= std::min<std::size_t>(3, pending.size()); ++back) {
                const auto c = static_cast<unsigned char>(pending[pending.size() - back]);
                if ((c & 0xC0) == 0xC0) {
                    const std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
                    if (back < need) cut = pending.size() - back;
                    break;
                }
                if ((c & 0x80) == 0) break;
            }
            std::printf("%.*s", static_cast<int>(cut), pending.data());
            std::fflush(stdout);
            text += pending.substr(0, cut);
            pending.erase(0, cut);
        }
    }
    const double secs = seconds_since(t0);
    std::printf("\n");
    std::string quoted = text;
    std::replace(quoted.begin(), quoted.end(), '\n', ' ');
    log.line("> " + quoted);
    log.line(fmt("%zu tokens in %.2f s: %.1f tokens/s (prompt and first token %.3f s)", generated, secs,
                 static_cast<double>(generated) / secs, first_token_s));
    const bool llama_cpp = std::system("python3 -c 'import llama_cpp' >/dev/null 2>&1") == 0;
    if (!llama_cpp) {
        log.line("llama.cpp comparison skipped: llama-cpp-python is not installed (pip install llama-cpp-python)");
    } else {
        const std::string cmd = "python3 -c \"import llama_cpp; m = llama_cpp.Llama(model_path='" + gguf.string() +
                                "', verbose=False); print(m('" + prompt + "', max_tokens=16, temperature=0)['choices'][0]['text'])\" 2>&1";
        log.line("llama.cpp (llama-cpp-python) loads model-q8_0.gguf, greedy: " + run_command(cmd));
    }
    llm::check(generated > 0, "generation produced no token");
}

}  // namespace

namespace {

int main_body(int argc, char** argv) {
    const options o = parse(argc, argv);
    const fs::path dir = fs::absolute(o.out);
    fs::create_directories(dir);
    const auto t0 = clock_type::now();
    llm::parallel::thread_pool pool(o.threads);
    std::printf("pipeline%s: outputs in %s\n", o.quick ? " (--quick)" : "", dir.string().c_str());
    struct stage {
        const char* name;
        const char* title;
        std::function<void(stage_log&)> run;
    };
    const std::vector<stage> stages = {
        {"1_curate", "1. curate: quality filters and MinHash near-dedup", [&](stage_log& l) { curate(o, dir, l); }},
        {"2_tokenize", "2. tokenize: train a BPE, encode llm.c token files", [&](stage_log& l) { tokenize(o, dir, l); }},
        {"3_pretrain", "3. pretrain a Llama-style model", [&](stage_log& l) { pretrain(o, dir, l, pool); }},
        {"4_align", "4. align: SimPO on real vs shuffled continuations", [&](stage_log& l) { align(o, dir, l, pool); }},
        {"5_quantize", "5. quantize to Q8_0 and Q4_K GGUF", [&](stage_log& l) { quantize(o, dir, l, pool); }},
        {"6_generate", "6. generate from the Q8_0 model", [&](stage_log& l) { generate(o, dir, l, pool); }},
    };
    bool redo = o.force;
    std::string report = "# pipeline report\n\nOutputs in `" + dir.string() + "`" + (o.quick ? " (--quick run)" : "") + ".\n";
    for (const auto& s : stages) {
        std::printf("\n== %s ==\n", s.title);
        stage_log log(dir, s.name);
        if (!redo && log.done()) {
            log.replay();
        } else {
            redo = true;  // a redone stage invalidates the ones after it
            const auto s0 = clock_type::now();
            s.run(log);
            log.line(fmt("stage time: %.1f s", seconds_since(s0)));
            log.finish();
        }
        report += std::string("\n## ") + s.title + "\n\n" + llm::io::read_file((dir / "stages" / (std::string(s.name) + ".md")).string(), std::size_t{1} << 24, "pipeline");
    }
    llm::io::write_file_atomically((dir / "report.md").string(), report);
    std::printf("\npipeline done in %.1f s; outputs in %s (report.md)\n", seconds_since(t0), dir.string().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("pipeline", [&] { return main_body(argc, argv); });
}
