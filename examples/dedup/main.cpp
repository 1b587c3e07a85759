// SPDX-License-Identifier: Apache-2.0
// dedup: near-duplicate removal for JSONL corpora with MinHash + LSH (llm::data), streaming and multi-threaded.
// Outputs (--output, --clusters, --report) are written through llm::io::atomic_file and committed
// together: a failed run replaces none of them. Errors: one line on stderr, exit status 2.
// Under `mpirun -np N` (built with MPI: LLM_HAS_MPI) each rank takes 1/N of the input file's bytes
// and the clustering runs sharded (llm::dist::sharded_near_dedup); the outputs are the same.
#include "common/args.hpp"

#include <llm/io/jsonl.hpp>
#include <llm/data/hash.hpp>
#include <llm/data/minhash.hpp>
#include <llm/data/near_dedup.hpp>
#include <llm/data/oph.hpp>
#include <llm/data/quality.hpp>
#include <llm/data/signer.hpp>
#include <llm/data/synthetic.hpp>
#include <llm/io/atomic_file.hpp>
#include <llm/dist/near_dedup.hpp>
#include <llm/dist/single_process.hpp>
#include <llm/parallel/thread_pool.hpp>
#if LLM_HAS_MPI
#include <llm/dist/mpi.hpp>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

const char* const usage = R"(usage: dedup --output KEPT.jsonl [options]
Near-duplicate removal of JSONL documents with MinHash + LSH; keeps one document per cluster.
  --input FILE          JSONL input, one object per line ('-' or absent: stdin; spooled to an
                        unnamed temporary file in $TMPDIR); a line may have at most 64 MiB
  --output FILE         kept documents, the input lines unchanged ('-': stdout)
  --clusters FILE       TSV, one line 'id<TAB>cluster' per document (cluster = id of the kept one)
  --report FILE         the report as JSON (a text report always goes to stderr)
                        (outputs must be distinct files other than the input, and regular files
                        or new; they are replaced together, only when the whole run succeeded)
  --field NAME          text field (default text)
  --id-field NAME       id field (default id; a document without it gets its line number)
  --threshold T         Jaccard threshold in (0,1) (default 0.8)
  --num-perm K          signature length, in [2, 4096] (default 128)
  --ngram N             shingle size, in [1, 64] (default 5)
  --shingle word|char   word n-grams (lowercased, whitespace-split) or character n-grams (default word)
  --sketch minhash|affine32|oph   permutations as datasketch legacy, datasketch 2.0, or one-permutation hashing (default minhash)
  --hash xxh64|murmur3|sha1       shingle hash (sha1 = datasketch's sha1_hash32) (default xxh64)
  --seed S              permutation seed, in [0, 4294967295] (default 1)
  --threads N           signature threads, in [1, 1024] (default: all cores)
  --keep first|longest  which document of a cluster to keep (default first)
  --verify              confirm candidate pairs by exact Jaccard of shingle sets (costs 8 bytes per shingle);
                        also weighs false negatives 0.9 in the LSH (bands, rows) choice, for recall
  --fn-weight W         weight of false negatives in the (bands, rows) choice, in (0,1) (default 0.5, 0.9 with --verify)
  --filters LIST        quality filters to run before dedup: c4, gopher or c4,gopher (default none)
  --strict              stop at the first malformed line (exit 2) instead of counting it
  --make-corpus N       instead of deduplicating, write N (at most 1000000) synthetic ~2 KB documents (30% planted
                        near-duplicates, field 'source' = the original's id) to --output and exit
)";

struct options {
    std::string input = "-", output, clusters, report, field = "text", id_field = "id";
    double threshold = 0.8, fn_weight = 0;
    std::size_t num_perm = 128, ngram = 5, threads = 0;
    std::uint32_t seed = 1;
    std::string shingle = "word", sketch = "minhash", hash = "xxh64", keep = "first", filters;
    bool verify = false, strict = false;
    std::size_t make_corpus = 0;
};

// Bounds of the numeric options. num_perm: optimal_params (the LSH choice) takes at most 4096;
// ngram: the shinglers' limit; make_corpus: the synthetic corpus is built in memory (~2 KB each).
constexpr std::size_t max_num_perm = 4096, max_ngram = 64, max_threads = 1024, max_make_corpus = 1000000;
// A line (one document) holds at most 64 MiB: a JSONL document is far smaller, and a stream
// without line breaks (/dev/zero) is refused after 64 MiB instead of exhausting memory.
constexpr std::size_t max_line_bytes = std::size_t{64} << 20;

options parse_args(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    while (a.next()) {
        if (a.is("--input")) o.input = a.value();
        else if (a.is("--output")) o.output = a.value();
        else if (a.is("--clusters")) o.clusters = a.value();
        else if (a.is("--report")) o.report = a.value();
        else if (a.is("--field")) o.field = a.value();
        else if (a.is("--id-field")) o.id_field = a.value();
        else if (a.is("--threshold")) o.threshold = a.number_in_open(0, 1);
        else if (a.is("--fn-weight")) o.fn_weight = a.number_in_open(0, 1);
        else if (a.is("--num-perm")) o.num_perm = a.integer<std::size_t>(2, max_num_perm);
        else if (a.is("--ngram")) o.ngram = a.integer<std::size_t>(1, max_ngram);
        else if (a.is("--threads")) o.threads = a.integer<std::size_t>(1, max_threads);
        else if (a.is("--seed")) o.seed = a.integer<std::uint32_t>(0, 0xFFFFFFFFu);  // numpy's RandomState limit
        else if (a.is("--shingle")) o.shingle = a.choice({"word", "char"});
        else if (a.is("--sketch")) o.sketch = a.choice({"minhash", "affine32", "oph"});
        else if (a.is("--hash")) o.hash = a.choice({"xxh64", "murmur3", "sha1"});
        else if (a.is("--keep")) o.keep = a.choice({"first", "longest"});
        else if (a.is("--filters")) o.filters = a.value();
        else if (a.is("--make-corpus")) o.make_corpus = a.integer<std::size_t>(1, max_make_corpus);
        else if (a.is("--verify")) o.verify = true;
        else if (a.is("--strict")) o.strict = true;
        else a.unknown();
    }
    llm::check(!o.output.empty(), "--output is required (see --help)");
    llm::check((o.output == "-") + (o.clusters == "-") + (o.report == "-") <= 1, "at most one of --output, --clusters and --report can be '-' (stdout)");
    llm::io::check_distinct_paths("dedup", {o.output, o.clusters, o.report}, {o.input});
    if (o.fn_weight == 0) o.fn_weight = o.verify ? 0.9 : 0.5;
    if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
    return o;
}

/// The per-document work that runs on the thread pool, type-erased once per batch (not per
/// document) so the driver below is compiled once for every signer type.
using sign_batch_fn = std::function<void(llm::parallel::thread_pool&, std::span<const std::string_view>, std::span<std::uint32_t>,
                                         std::vector<std::vector<std::uint64_t>>*)>;

template <class Signer>
sign_batch_fn make_sign_batch(Signer signer) {
    return [signer](llm::parallel::thread_pool& pool, std::span<const std::string_view> docs, std::span<std::uint32_t> sigs,
                    std::vector<std::vector<std::uint64_t>>* sets) {
        const std::size_t k = signer.num_perm();
        llm::parallel::parallel_for(pool, docs.size(), 16, [&](std::size_t begin, std::size_t end) {
            llm::data::sign_scratch w;
            for (std::size_t i = begin; i < end; ++i) {
                signer.shingle_hashes(docs[i], w);
                signer.sketching().sketch(w.hashes, sigs.subspan(i * k, k));
                if (sets) {
                    auto& s = (*sets)[i];
                    s.assign(w.hashes.begin(), w.hashes.end());
                    std::sort(s.begin(), s.end());
                    s.erase(std::unique(s.begin(), s.end()), s.end());
                }
            }
        });
    };
}

template <class Shingler, class Hash>
sign_batch_fn pick_sketch(const options& o, Shingler sh, Hash h) {
    using namespace llm::data;
    if (o.sketch == "oph") return make_sign_batch(signer<Shingler, Hash, one_permutation>(sh, h, one_permutation(o.num_perm, o.seed)));
    if (o.sketch == "affine32") return make_sign_batch(signer<Shingler, Hash, minhash<affine32>>(sh, h, minhash<affine32>(o.num_perm, o.seed)));
    return make_sign_batch(signer<Shingler, Hash, minhash<mersenne61>>(sh, h, minhash<mersenne61>(o.num_perm, o.seed)));
}

template <class Shingler>
sign_batch_fn pick_hash(const options& o, Shingler sh) {
    if (o.hash == "sha1") return pick_sketch(o, sh, llm::data::sha1_32{});
    if (o.hash == "murmur3") return pick_sketch(o, sh, llm::data::murmur3_64{});
    return pick_sketch(o, sh, llm::data::xxhash64{});
}

sign_batch_fn pick_signer(const options& o) {
    if (o.shingle == "char") return pick_hash(o, llm::data::char_ngrams{.n = o.ngram});
    return pick_hash(o, llm::data::word_ngrams{.n = o.ngram});
}

std::string tsv_escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if (c == '\t') out += "\\t";
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\\') out += "\\\\";
        else out.push_back(c);
    }
    return out;
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// Reads the next line (without its '\n') into `line`; false at the end of the input. A line
/// longer than max_line_bytes is an error naming its number; no more than that is ever held.
bool read_line(std::istream& in, std::string& line, std::size_t line_no) {
    line.clear();
    char buf[1 << 16];
    for (;;) {
        in.getline(buf, sizeof buf);
        auto n = static_cast<std::size_t>(in.gcount());
        const bool full = in.fail() && !in.eof() && !in.bad() && n == sizeof buf - 1;  // no '\n' in this chunk yet
        const bool newline = !in.fail() && !in.eof();                                   // '\n' counted, not stored
        if (newline) --n;
        llm::check(line.size() + n <= max_line_bytes, "dedup: line ", line_no, " is longer than the limit of ", max_line_bytes,
                   " bytes (64 MiB)");
        line.append(buf, n);
        if (!full) return newline || !line.empty();
        in.clear(in.rdstate() & ~std::ios::failbit);
    }
}

/// The stdin spool: a temporary file made by mkstemp in the temp directory ($TMPDIR) and unlinked
/// at once, so no exit path (not even a kill) leaves it behind and no planted name is followed.
std::FILE* make_spool() {
    std::string path = (std::filesystem::temp_directory_path() / "dedup-spool.XXXXXX").string();
    const int fd = ::mkstemp(path.data());
    llm::check(fd >= 0, "dedup: cannot create a spool file in '", std::filesystem::temp_directory_path().string(), "': ", std::strerror(errno));
    ::unlink(path.c_str());
    std::FILE* f = ::fdopen(fd, "w+b");
    if (!f) ::close(fd);
    llm::check(f != nullptr, "dedup: cannot open the spool file: ", std::strerror(errno));
    return f;
}

struct file_closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

struct malformed_line {
    std::size_t line;
    std::string reason;
};

int make_corpus(const options& o) {
    const auto docs = llm::data::make_synthetic_corpus({.documents = o.make_corpus, .seed = o.seed});
    llm::io::atomic_file out(o.output, "dedup");
    for (std::size_t i = 0; i < docs.size(); ++i) {
        out.write("{\"id\": \"doc" + std::to_string(i) + "\", \"source\": \"doc" + std::to_string(docs[i].source) + "\", \"text\": \"" +
                  json_escape(docs[i].text) + "\"}\n");
    }
    out.commit();
    std::cerr << "dedup: wrote " << docs.size() << " synthetic documents to " << o.output << '\n';
    return 0;
}

// An output that is optional: absent when its path is empty.
std::optional<llm::io::atomic_file> optional_output(const std::string& path) {
    if (path.empty()) return std::nullopt;
    return std::optional<llm::io::atomic_file>(std::in_place, path, "dedup");
}

/// The clustering engine: llm::data::near_dedup (streaming) on one rank, llm::dist::sharded_near_dedup
/// on several; both give the same clusters (tests/dist, tests/dist_mpi). Ids returned are global.
template <class Comm>
class dedup_engine {
public:
    dedup_engine(const options& o, Comm& comm) {
        const llm::data::near_dedup_options opts{.threshold = o.threshold,
                                                 .fn_weight = o.fn_weight,
                                                 .verify = o.verify,
                                                 .keep = o.keep == "longest" ? llm::data::keep_policy::longest : llm::data::keep_policy::first};
        if (comm.size() == 1) one_.emplace(o.num_perm, opts);
        else many_.emplace(o.num_perm, opts, comm);
    }
    void add(std::span<const std::uint32_t> sig, std::uint64_t length, std::span<const std::uint64_t> set) {
        if (one_) one_->add(sig, length, set);
        else many_->add(sig, length, set);
    }
    void add_excluded() {
        if (one_) one_->add_excluded();
        else many_->add_excluded();
    }
    void finish() {
        if (many_) many_->run();
    }
    std::uint64_t cluster_of(std::size_t d) { return one_ ? one_->cluster_of(static_cast<std::uint32_t>(d)) : many_->cluster_of(d); }
    std::uint64_t candidate_pairs() const { return one_ ? one_->candidate_pairs() : many_->candidate_pairs(); }
    std::uint64_t rejected_pairs() const { return one_ ? one_->rejected_pairs() : many_->rejected_pairs(); }
    llm::data::lsh_params params() const { return one_ ? one_->params() : many_->params(); }

private:
    std::optional<llm::data::near_dedup> one_;
    std::optional<llm::dist::sharded_near_dedup<Comm>> many_;
};

/// This rank's part of a file input: the lines starting in bytes [begin, end) (a 1/ranks share of
/// the file), and the number of lines before them (so line numbers and default ids are global).
struct input_shard {
    std::uint64_t begin = 0, end = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t first_line = 0;
};

// Lines starting in [begin, end) of a file of `size` bytes: offset 0, and every offset after a '\n'.
std::uint64_t count_line_starts(const std::string& path, std::uint64_t begin, std::uint64_t end, std::uint64_t size) {
    end = std::min(end, size);
    if (begin >= end) return 0;
    std::uint64_t count = begin == 0 ? 1 : 0;
    std::ifstream in(path, std::ios::binary);
    llm::check(in.good(), "dedup: cannot open --input '", path, "'");
    const std::uint64_t lo = begin == 0 ? 0 : begin - 1, hi = end - 1;  // a '\n' at i starts a line at i + 1
    in.seekg(static_cast<std::streamoff>(lo));
    std::vector<char> buf(1 << 20);
    for (std::uint64_t at = lo; at < hi;) {
        const auto want = static_cast<std::streamsize>(std::min<std::uint64_t>(buf.size(), hi - at));
        in.read(buf.data(), want);
        llm::check(in.gcount() == want, "dedup: the input changed during the run");
        count += static_cast<std::uint64_t>(std::count(buf.data(), buf.data() + want, '\n'));
        at += static_cast<std::uint64_t>(want);
    }
    return count;
}

// Strings in one byte array, each as 8 bytes of length then its bytes.
void put_string(std::vector<char>& out, std::string_view s) {
    const std::uint64_t n = s.size();
    out.insert(out.end(), reinterpret_cast<const char*>(&n), reinterpret_cast<const char*>(&n) + sizeof n);
    out.insert(out.end(), s.begin(), s.end());
}
std::string_view get_string(const std::vector<char>& in, std::size_t& at) {
    std::uint64_t n = 0;
    std::memcpy(&n, in.data() + at, sizeof n);
    const std::string_view s(in.data() + at + sizeof n, static_cast<std::size_t>(n));
    at += sizeof n + static_cast<std::size_t>(n);
    return s;
}

template <class Comm>
int run(const options& o, Comm& comm) {
    const std::size_t ranks = comm.size(), rank = comm.rank();
    const bool writer = rank == 0;  // with several ranks, rank 0 writes every output and the report
    if (o.make_corpus) return writer ? make_corpus(o) : 0;
    llm::check(ranks == 1 || o.input != "-", "dedup: under mpirun with ", ranks, " ranks, --input must name a file (stdin is read by one process)");
    // The temporaries are created before the input is read, so a target that cannot be written
    // (a symlink, a FIFO, a missing or read-only directory) is refused before any work; the
    // targets are replaced only by the commit_together at the end.
    std::optional<llm::io::atomic_file> kept_out = optional_output(writer ? o.output : std::string());
    std::optional<llm::io::atomic_file> clusters_out = optional_output(writer ? o.clusters : std::string()),
                                        report_out = optional_output(writer ? o.report : std::string());
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const sign_batch_fn sign_batch = pick_signer(o);
    const auto filters = llm::data::quality_pipeline::parse(o.filters);
    llm::parallel::thread_pool pool(o.threads);
    dedup_engine<Comm> dedup(o, comm);

    // Pass 1 reads the input once. Documents are kept as (byte offset, length) of their line in
    // a re-readable source: the input file itself, or for stdin a spool file written as we go.
    std::ifstream file_in;
    std::istream* in = &std::cin;
    file_ptr spool;
    input_shard shard;
    if (o.input != "-") {
        file_in.open(o.input, std::ios::binary);
        llm::check(file_in.good(), "dedup: cannot open --input '", o.input, "'");
        in = &file_in;
        if (ranks > 1) {
            // Rank r takes the lines starting in bytes [size * r / ranks, size * (r + 1) / ranks).
            std::error_code ec;
            const std::uint64_t size = std::filesystem::file_size(o.input, ec);
            llm::check(!ec, "dedup: cannot size --input '", o.input, "': ", ec.message());
            shard.begin = size * rank / ranks;
            shard.end = size * (rank + 1) / ranks;
            const std::uint64_t mine = count_line_starts(o.input, shard.begin, shard.end, size);
            std::vector<std::uint64_t> all(ranks);
            llm::dist::all_gather(all, std::span<const std::uint64_t>(&mine, 1), comm);
            for (std::size_t r = 0; r < rank; ++r) shard.first_line += all[r];
            // Start at the first line starting at or after begin.
            if (shard.begin > 0) {
                file_in.seekg(static_cast<std::streamoff>(shard.begin - 1));
                if (file_in.get() != '\n') file_in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
                const auto at = file_in.tellg();
                if (at < 0) file_in.clear();  // no line starts in this shard: the loop below reads nothing
                shard.begin = at < 0 ? shard.end : static_cast<std::uint64_t>(at);
            }
        }
    } else {
        spool.reset(make_spool());
    }

    std::vector<std::uint64_t> offsets, lengths;  // per kept-for-dedup document: its line in the source
    std::vector<std::size_t> id_start;             // ids in one arena
    std::string ids;
    std::vector<malformed_line> malformed;
    std::map<std::string, std::size_t> filtered;  // reason -> documents dropped by quality filters
    std::vector<std::uint8_t> dropped_by_filter;  // per document
    std::size_t lines = 0, bytes_in = 0;
    std::uint64_t source_offset = ranks > 1 ? shard.begin : 0;
    double sign_seconds = 0;

    constexpr std::size_t batch_docs = 2048;
    std::vector<std::string> batch_lines;
    std::vector<std::size_t> batch_line_no;
    std::vector<std::uint64_t> batch_offsets;
    std::vector<llm::io::jsonl_record> records(batch_docs);
    std::vector<std::string> errors(batch_docs);
    std::vector<std::string> filter_reason(batch_docs);
    std::vector<std::uint32_t> sigs(batch_docs * o.num_perm);
    std::vector<std::vector<std::uint64_t>> sets(o.verify ? batch_docs : 0);

    const auto flush_batch = [&] {
        const std::size_t n = batch_lines.size();
        if (n == 0) return;
        const auto ts = clock::now();
        // Parse and filter in parallel; errors are recorded per line and reported in order below.
        llm::parallel::parallel_for(pool, n, 64, [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) {
                errors[i].clear();
                filter_reason[i].clear();
                try {
                    const std::string& line = batch_lines[i];
                    if (line.find_first_not_of(" \t") == std::string::npos) {
                        errors[i] = "empty line";
                        continue;
                    }
                    llm::io::read_jsonl_record(line, o.field, o.id_field, records[i]);
                    if (records[i].text_not_string) errors[i] = "field '" + o.field + "' is not a string";
                    else if (!records[i].has_text) errors[i] = "missing field '" + o.field + "'";
                    else if (filters) filter_reason[i] = filters.check(records[i].text);
                } catch (const llm::error& e) {
                    errors[i] = e.what();
                }
            }
        });
        // Sign the well-formed documents that passed the filters.
        std::vector<std::string_view> docs;
        std::vector<std::size_t> which;
        for (std::size_t i = 0; i < n; ++i) {
            if (errors[i].empty() && filter_reason[i].empty()) {
                docs.push_back(records[i].text);
                which.push_back(i);
            }
        }
        sign_batch(pool, docs, std::span(sigs).first(docs.size() * o.num_perm), o.verify ? &sets : nullptr);
        sign_seconds += std::chrono::duration<double>(clock::now() - ts).count();
        std::size_t next_signed = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (!errors[i].empty()) {
                if (o.strict) llm::fail("dedup: line ", batch_line_no[i], ": ", errors[i], " (--strict)");
                malformed.push_back({batch_line_no[i], errors[i]});
                continue;
            }
            offsets.push_back(batch_offsets[i]);
            lengths.push_back(batch_lines[i].size());
            id_start.push_back(ids.size());
            if (records[i].has_id) ids += records[i].id;
            else ids += std::to_string(batch_line_no[i]);
            const bool filtered_out = !filter_reason[i].empty();
            dropped_by_filter.push_back(filtered_out);
            if (filtered_out) {
                ++filtered[filter_reason[i]];
                // Keeps document numbering aligned with dedup ids: a filtered document is a
                // cluster of its own that is not written (empty signature, no LSH insert).
                dedup.add_excluded();
                continue;
            }
            const std::size_t j = next_signed++;
            const std::span<const std::uint64_t> set = o.verify ? std::span<const std::uint64_t>(sets[j]) : std::span<const std::uint64_t>();
            dedup.add(std::span<const std::uint32_t>(sigs).subspan(j * o.num_perm, o.num_perm), records[i].text.size(), set);
        }
        batch_lines.clear();
        batch_line_no.clear();
        batch_offsets.clear();
    };

    for (std::string line; source_offset < shard.end && read_line(*in, line, shard.first_line + lines + 1);) {
        ++lines;
        const std::uint64_t line_bytes = line.size() + 1;
        bytes_in += line.size();
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (spool) {
            std::fwrite(line.data(), 1, line.size(), spool.get());
            std::fputc('\n', spool.get());
            batch_offsets.push_back(source_offset);
            source_offset += line.size() + 1;
        } else {
            batch_offsets.push_back(source_offset);
            source_offset += line_bytes;
        }
        batch_lines.push_back(std::move(line));
        batch_line_no.push_back(shard.first_line + lines);
        if (batch_lines.size() == batch_docs) flush_batch();
    }
    llm::check(!in->bad(), "dedup: read error on input");
    flush_batch();
    if (spool) llm::check(std::fflush(spool.get()) == 0 && !std::ferror(spool.get()), "dedup: writing the spool file failed: ", std::strerror(errno));
    dedup.finish();  // several ranks: the collective clustering

    // Global document ids: this rank's documents start at doc_base.
    const std::size_t docs = offsets.size();
    std::vector<std::uint64_t> doc_offsets(ranks + 1, 0);
    {
        const std::uint64_t mine = docs;
        std::vector<std::uint64_t> all(ranks);
        llm::dist::all_gather(all, std::span<const std::uint64_t>(&mine, 1), comm);
        for (std::size_t r = 0; r < ranks; ++r) doc_offsets[r + 1] = doc_offsets[r] + all[r];
    }
    const std::uint64_t doc_base = doc_offsets[rank];
    const auto owner_of = [&](std::uint64_t g) {
        return static_cast<std::size_t>(std::upper_bound(doc_offsets.begin(), doc_offsets.end(), g) - doc_offsets.begin()) - 1;
    };
    const auto id_of = [&](std::size_t d) {
        const std::size_t end = d + 1 < docs ? id_start[d + 1] : ids.size();
        return std::string_view(ids).substr(id_start[d], end - id_start[d]);
    };

    // Cluster sizes: members other than the keeper are counted on the keeper's rank.
    std::vector<std::uint64_t> keeper(docs);
    std::vector<std::vector<std::uint64_t>> to_rank(ranks);
    {
        std::map<std::uint64_t, std::uint64_t> members;  // remote or local keeper -> members here besides it
        for (std::size_t d = 0; d < docs; ++d) {
            keeper[d] = dedup.cluster_of(d);
            if (!dropped_by_filter[d] && keeper[d] != doc_base + d) ++members[keeper[d]];
        }
        for (const auto& [k, count] : members) to_rank[owner_of(k)].insert(to_rank[owner_of(k)].end(), {k, count});
    }
    std::vector<std::uint64_t> cluster_size(docs, 1);
    {
        std::vector<std::uint64_t> flat, got;
        std::vector<std::size_t> counts(ranks), got_counts;
        for (std::size_t r = 0; r < ranks; ++r) {
            counts[r] = to_rank[r].size();
            flat.insert(flat.end(), to_rank[r].begin(), to_rank[r].end());
        }
        llm::dist::exchange(got, got_counts, flat, counts, comm);
        for (std::size_t i = 0; i < got.size(); i += 2) cluster_size[got[i] - doc_base] += got[i + 1];
    }
    // Ids of keepers on other ranks (for --clusters): requested from their ranks.
    std::map<std::uint64_t, std::string> remote_id;
    if (!o.clusters.empty() && ranks > 1) {
        std::vector<std::set<std::uint64_t>> wanted(ranks);
        for (std::size_t d = 0; d < docs; ++d)
            if (!dropped_by_filter[d] && owner_of(keeper[d]) != rank) wanted[owner_of(keeper[d])].insert(keeper[d]);
        std::vector<std::uint64_t> flat, got;
        std::vector<std::size_t> counts(ranks), got_counts;
        for (std::size_t r = 0; r < ranks; ++r) {
            counts[r] = wanted[r].size();
            flat.insert(flat.end(), wanted[r].begin(), wanted[r].end());
        }
        llm::dist::exchange(got, got_counts, flat, counts, comm);
        std::vector<char> reply, answers;
        std::vector<std::size_t> reply_counts(ranks), answer_counts;
        for (std::size_t r = 0, at = 0; r < ranks; ++r) {
            const std::size_t before = reply.size();
            for (std::size_t end = at + got_counts[r]; at < end; ++at) put_string(reply, id_of(got[at] - doc_base));
            reply_counts[r] = reply.size() - before;
        }
        llm::dist::exchange(answers, answer_counts, reply, reply_counts, comm);
        std::size_t at = 0;
        for (std::size_t r = 0; r < ranks; ++r)
            for (const std::uint64_t k : wanted[r]) remote_id.emplace(k, std::string(get_string(answers, at)));
    }

    // Pass 2: kept lines and the cluster table, written by rank 0 (the other ranks' parts gathered to it).
    file_ptr input_again;
    if (!spool) input_again.reset(std::fopen(o.input.c_str(), "rb"));
    std::FILE* const source = spool ? spool.get() : input_again.get();
    llm::check(source != nullptr, "dedup: cannot reopen the input for the second pass");
    std::size_t kept = 0, dropped_dup = 0, multi_clusters = 0, largest = 1;
    std::string tsv;                           // this rank's cluster lines (several ranks)
    std::vector<std::uint64_t> kept_lines;     // (offset, length) of this rank's kept lines (several ranks)
    std::string line;
    const auto write_kept = [&](std::uint64_t offset, std::uint64_t length) {
        line.resize(length);
        llm::check(::fseeko(source, static_cast<off_t>(offset), SEEK_SET) == 0 && std::fread(line.data(), 1, length, source) == length,
                   "dedup: the input changed during the run");
        line += '\n';
        kept_out->write(line);
    };
    const auto write_tsv = [&](const std::string& s) {
        if (ranks > 1) tsv += s;
        else if (clusters_out) clusters_out->write(s);
    };
    for (std::size_t d = 0; d < docs; ++d) {
        if (dropped_by_filter[d]) {
            if (!o.clusters.empty()) write_tsv(tsv_escape(id_of(d)) + "\t\n");
            continue;
        }
        const std::uint64_t c = keeper[d];
        if (!o.clusters.empty()) {
            const std::string_view cid = owner_of(c) == rank ? id_of(static_cast<std::size_t>(c - doc_base)) : std::string_view(remote_id.at(c));
            write_tsv(tsv_escape(id_of(d)) + '\t' + tsv_escape(cid) + '\n');
        }
        if (c != doc_base + d) {
            ++dropped_dup;
            continue;
        }
        ++kept;
        if (cluster_size[d] > 1) ++multi_clusters;
        largest = std::max<std::size_t>(largest, cluster_size[d]);
        if (ranks > 1) kept_lines.insert(kept_lines.end(), {offsets[d], lengths[d]});
        else write_kept(offsets[d], lengths[d]);
    }
    // The totals of all ranks, and the malformed lines and filter counts as text.
    std::size_t filtered_total = 0;
    for (const auto& [reason, count] : filtered) filtered_total += count;
    std::size_t total_lines = lines, total_bytes = bytes_in, total_docs = docs, total_filtered = filtered_total;
    if (ranks > 1) {
        std::uint64_t sums[7] = {lines, bytes_in, docs, kept, dropped_dup, multi_clusters, filtered_total};
        llm::dist::all_reduce(std::span<std::uint64_t>(sums), llm::dist::reduce_op::sum, comm);
        std::vector<std::uint64_t> all_largest(ranks);
        const std::uint64_t my_largest = largest;
        llm::dist::all_gather(all_largest, std::span<const std::uint64_t>(&my_largest, 1), comm);
        total_lines = sums[0];
        total_bytes = sums[1];
        total_docs = sums[2];
        kept = sums[3];
        dropped_dup = sums[4];
        multi_clusters = sums[5];
        total_filtered = sums[6];
        largest = *std::max_element(all_largest.begin(), all_largest.end());
        std::vector<char> text, all_text;
        std::vector<std::size_t> counts;
        for (const auto& m : malformed) {
            put_string(text, std::to_string(m.line));
            put_string(text, m.reason);
        }
        llm::dist::all_gatherv(all_text, counts, text, comm);
        malformed.clear();
        for (std::size_t at = 0; at < all_text.size();) {
            const std::string_view no = get_string(all_text, at);
            malformed.push_back({static_cast<std::size_t>(std::stoull(std::string(no))), std::string(get_string(all_text, at))});
        }
        text.clear();
        for (const auto& [reason, count] : filtered) {
            put_string(text, reason);
            put_string(text, std::to_string(count));
        }
        llm::dist::all_gatherv(all_text, counts, text, comm);
        filtered.clear();
        for (std::size_t at = 0; at < all_text.size();) {
            const std::string reason(get_string(all_text, at));
            filtered[reason] += static_cast<std::size_t>(std::stoull(std::string(get_string(all_text, at))));
        }
        std::vector<std::uint64_t> all_kept;
        llm::dist::all_gatherv(all_kept, counts, kept_lines, comm);
        std::vector<char> all_tsv;
        llm::dist::all_gatherv(all_tsv, counts, std::span<const char>(tsv.data(), tsv.size()), comm);
        if (!writer) return 0;
        for (std::size_t i = 0; i < all_kept.size(); i += 2) write_kept(all_kept[i], all_kept[i + 1]);
        if (clusters_out) clusters_out->write(std::string_view(all_tsv.data(), all_tsv.size()));
    }

    const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    const double docs_per_s = static_cast<double>(total_lines) / seconds, mb_per_s = static_cast<double>(total_bytes) / 1e6 / seconds;
    const auto p = dedup.params();
    std::ostringstream text;
    text << "dedup: " << total_lines << " lines in (" << total_bytes / 1e6 << " MB), " << total_docs << " documents, " << kept << " kept, "
         << dropped_dup << " dropped as near-duplicates, " << total_filtered << " dropped by filters, " << malformed.size()
         << " malformed lines\n";
    for (const auto& [reason, count] : filtered) text << "  filter: " << count << " dropped: " << reason << '\n';
    for (std::size_t i = 0; i < malformed.size() && i < 20; ++i) text << "  malformed line " << malformed[i].line << ": " << malformed[i].reason << '\n';
    if (malformed.size() > 20) text << "  ... " << malformed.size() - 20 << " more malformed lines (all listed in --report)\n";
    text << "clusters: " << kept << " (" << multi_clusters << " with duplicates, largest " << largest << " documents)\n";
    text << "minhash: " << o.sketch << ", " << o.hash << ", " << o.shingle << " " << o.ngram << "-grams, num_perm " << o.num_perm
         << ", seed " << o.seed << "; LSH threshold " << o.threshold << ": " << p.bands << " bands x " << p.rows << " rows; "
         << dedup.candidate_pairs() << " candidate pairs" << (o.verify ? ", " + std::to_string(dedup.rejected_pairs()) + " rejected by exact Jaccard" : "") << '\n';
    text << "time: " << seconds << " s (parse + filter + signatures " << sign_seconds << " s on " << o.threads << " threads"
         << (ranks > 1 ? " on rank 0 of " + std::to_string(ranks) + " ranks" : std::string()) << "), " << docs_per_s << " docs/s, " << mb_per_s
         << " MB/s\n";
    if (report_out) {
        std::ostringstream r;
        r << "{\"lines\": " << total_lines << ", \"bytes\": " << total_bytes << ", \"documents\": " << total_docs << ", \"kept\": " << kept
          << ", \"dropped_near_duplicates\": " << dropped_dup << ", \"dropped_by_filters\": {";
        bool first = true;
        for (const auto& [reason, count] : filtered) {
            r << (first ? "" : ", ") << '"' << json_escape(reason) << "\": " << count;
            first = false;
        }
        r << "}, \"clusters\": " << kept << ", \"clusters_with_duplicates\": " << multi_clusters << ", \"largest_cluster\": " << largest
          << ", \"bands\": " << p.bands << ", \"rows\": " << p.rows << ", \"candidate_pairs\": " << dedup.candidate_pairs()
          << ", \"rejected_pairs\": " << dedup.rejected_pairs() << ", \"seconds\": " << seconds << ", \"docs_per_s\": " << docs_per_s
          << ", \"mb_per_s\": " << mb_per_s << ", \"ranks\": " << ranks << ", \"malformed\": [";
        for (std::size_t i = 0; i < malformed.size(); ++i) {
            r << (i ? ", " : "") << "{\"line\": " << malformed[i].line << ", \"reason\": \"" << json_escape(malformed[i].reason) << "\"}";
        }
        r << "]}\n";
        report_out->write(r.str());
    }
    llm::io::commit_together({&*kept_out, clusters_out ? &*clusters_out : nullptr, report_out ? &*report_out : nullptr});
    std::cerr << text.str();
    return 0;
}

// Launched by mpirun with several processes (Open MPI, or a PMI launcher such as Slurm's)?
bool launched_with_several_ranks() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
        if (const char* v = std::getenv(name); v && std::atoi(v) > 1) return true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    // std::cin is read in 64 KiB chunks; synchronised with C stdio it would go a byte at a time.
    // (Outputs go through llm::io::atomic_file's file descriptors, the report through std::cerr.)
    std::ios::sync_with_stdio(false);
#if LLM_HAS_MPI
    // Under mpirun with several ranks: the sharded run (same flags, same outputs). A rank that fails
    // prints its error and ends the whole job (the others may be waiting in a collective).
    if (launched_with_several_ranks()) {
        llm::dist::mpi comm;
        int status = 0;
        try {
            status = cli::run_main("dedup", [&] { return run(parse_args(argc, argv), comm); });
        } catch (...) {
            status = 2;
        }
        if (status != 0) comm.abort(status);
        return 0;
    }
#endif
    return cli::run_main("dedup", [&] {
        llm::dist::single_process comm;
        return run(parse_args(argc, argv), comm);
    });
}
