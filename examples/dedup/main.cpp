// SPDX-License-Identifier: Apache-2.0
// dedup: near-duplicate removal for JSONL corpora with MinHash + LSH (llm::data), streaming and multi-threaded.
// Outputs (--output, --clusters, --report) are written through llm::io::atomic_file and committed
// together: a failed run replaces none of them. Errors: one line on stderr, exit status 2.
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
#include <llm/parallel/thread_pool.hpp>

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
#include <map>
#include <memory>
#include <optional>
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

int run(const options& o) {
    if (o.make_corpus) return make_corpus(o);
    // The temporaries are created before the input is read, so a target that cannot be written
    // (a symlink, a FIFO, a missing or read-only directory) is refused before any work; the
    // targets are replaced only by the commit_together at the end.
    llm::io::atomic_file kept_out(o.output, "dedup");
    std::optional<llm::io::atomic_file> clusters_out = optional_output(o.clusters), report_out = optional_output(o.report);
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const sign_batch_fn sign_batch = pick_signer(o);
    const auto filters = llm::data::quality_pipeline::parse(o.filters);
    llm::parallel::thread_pool pool(o.threads);
    llm::data::near_dedup dedup(o.num_perm, {.threshold = o.threshold,
                                             .fn_weight = o.fn_weight,
                                             .verify = o.verify,
                                             .keep = o.keep == "longest" ? llm::data::keep_policy::longest : llm::data::keep_policy::first});

    // Pass 1 reads the input once. Documents are kept as (byte offset, length) of their line in
    // a re-readable source: the input file itself, or for stdin a spool file written as we go.
    std::ifstream file_in;
    std::istream* in = &std::cin;
    file_ptr spool;
    if (o.input != "-") {
        file_in.open(o.input, std::ios::binary);
        llm::check(file_in.good(), "dedup: cannot open --input '", o.input, "'");
        in = &file_in;
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
    std::uint64_t source_offset = 0;
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

    for (std::string line; read_line(*in, line, lines + 1);) {
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
        batch_line_no.push_back(lines);
        if (batch_lines.size() == batch_docs) flush_batch();
    }
    llm::check(!in->bad(), "dedup: read error on input");
    flush_batch();
    if (spool) llm::check(std::fflush(spool.get()) == 0 && !std::ferror(spool.get()), "dedup: writing the spool file failed: ", std::strerror(errno));

    // Pass 2: write kept lines and the cluster table.
    file_ptr input_again;
    if (!spool) input_again.reset(std::fopen(o.input.c_str(), "rb"));
    std::FILE* const source = spool ? spool.get() : input_again.get();
    llm::check(source != nullptr, "dedup: cannot reopen the input for the second pass");
    const std::size_t docs = offsets.size();
    std::size_t kept = 0, dropped_dup = 0, multi_clusters = 0, largest = 1;
    std::vector<std::uint32_t> cluster_size(docs, 0);
    for (std::size_t d = 0; d < docs; ++d) {
        if (!dropped_by_filter[d]) ++cluster_size[dedup.cluster_of(static_cast<std::uint32_t>(d))];
    }
    const auto id_of = [&](std::size_t d) {
        const std::size_t end = d + 1 < docs ? id_start[d + 1] : ids.size();
        return std::string_view(ids).substr(id_start[d], end - id_start[d]);
    };
    std::string line;
    for (std::size_t d = 0; d < docs; ++d) {
        if (dropped_by_filter[d]) {
            if (clusters_out) clusters_out->write(tsv_escape(id_of(d)) + "\t\n");
            continue;
        }
        const std::uint32_t c = dedup.cluster_of(static_cast<std::uint32_t>(d));
        if (clusters_out) clusters_out->write(tsv_escape(id_of(d)) + '\t' + tsv_escape(id_of(c)) + '\n');
        if (c != d) {
            ++dropped_dup;
            continue;
        }
        ++kept;
        if (cluster_size[d] > 1) ++multi_clusters;
        largest = std::max<std::size_t>(largest, cluster_size[d]);
        line.resize(lengths[d]);
        llm::check(::fseeko(source, static_cast<off_t>(offsets[d]), SEEK_SET) == 0 &&
                       std::fread(line.data(), 1, lengths[d], source) == lengths[d],
                   "dedup: the input changed during the run");
        line += '\n';
        kept_out.write(line);
    }

    const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    std::size_t filtered_total = 0;
    for (const auto& [reason, count] : filtered) filtered_total += count;
    const double docs_per_s = static_cast<double>(lines) / seconds, mb_per_s = static_cast<double>(bytes_in) / 1e6 / seconds;
    const auto p = dedup.params();
    std::ostringstream text;
    text << "dedup: " << lines << " lines in (" << bytes_in / 1e6 << " MB), " << docs << " documents, " << kept << " kept, "
         << dropped_dup << " dropped as near-duplicates, " << filtered_total << " dropped by filters, " << malformed.size()
         << " malformed lines\n";
    for (const auto& [reason, count] : filtered) text << "  filter: " << count << " dropped: " << reason << '\n';
    for (std::size_t i = 0; i < malformed.size() && i < 20; ++i) text << "  malformed line " << malformed[i].line << ": " << malformed[i].reason << '\n';
    if (malformed.size() > 20) text << "  ... " << malformed.size() - 20 << " more malformed lines (all listed in --report)\n";
    text << "clusters: " << kept << " (" << multi_clusters << " with duplicates, largest " << largest << " documents)\n";
    text << "minhash: " << o.sketch << ", " << o.hash << ", " << o.shingle << " " << o.ngram << "-grams, num_perm " << o.num_perm
         << ", seed " << o.seed << "; LSH threshold " << o.threshold << ": " << p.bands << " bands x " << p.rows << " rows; "
         << dedup.candidate_pairs() << " candidate pairs" << (o.verify ? ", " + std::to_string(dedup.rejected_pairs()) + " rejected by exact Jaccard" : "") << '\n';
    text << "time: " << seconds << " s (parse + filter + signatures " << sign_seconds << " s on " << o.threads << " threads), "
         << docs_per_s << " docs/s, " << mb_per_s << " MB/s\n";
    if (report_out) {
        std::ostringstream r;
        r << "{\"lines\": " << lines << ", \"bytes\": " << bytes_in << ", \"documents\": " << docs << ", \"kept\": " << kept
          << ", \"dropped_near_duplicates\": " << dropped_dup << ", \"dropped_by_filters\": {";
        bool first = true;
        for (const auto& [reason, count] : filtered) {
            r << (first ? "" : ", ") << '"' << json_escape(reason) << "\": " << count;
            first = false;
        }
        r << "}, \"clusters\": " << kept << ", \"clusters_with_duplicates\": " << multi_clusters << ", \"largest_cluster\": " << largest
          << ", \"bands\": " << p.bands << ", \"rows\": " << p.rows << ", \"candidate_pairs\": " << dedup.candidate_pairs()
          << ", \"rejected_pairs\": " << dedup.rejected_pairs() << ", \"seconds\": " << seconds << ", \"docs_per_s\": " << docs_per_s
          << ", \"mb_per_s\": " << mb_per_s << ", \"malformed\": [";
        for (std::size_t i = 0; i < malformed.size(); ++i) {
            r << (i ? ", " : "") << "{\"line\": " << malformed[i].line << ", \"reason\": \"" << json_escape(malformed[i].reason) << "\"}";
        }
        r << "]}\n";
        report_out->write(r.str());
    }
    llm::io::commit_together({&kept_out, clusters_out ? &*clusters_out : nullptr, report_out ? &*report_out : nullptr});
    std::cerr << text.str();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // std::cin is read in 64 KiB chunks; synchronised with C stdio it would go a byte at a time.
    // (Outputs go through llm::io::atomic_file's file descriptors, the report through std::cerr.)
    std::ios::sync_with_stdio(false);
    return cli::run_main("dedup", [&] { return run(parse_args(argc, argv)); });
}
