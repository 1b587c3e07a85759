// SPDX-License-Identifier: Apache-2.0
// tokenize: encode (or decode) documents from stdin with any supported vocabulary file.
//
//   tokenize --vocab FILE [--encoding NAME] [--special none|all] [--decode] [--threads N] [--stats]
//
// Encode: stdin is UTF-8 text whose documents are separated by a line holding only a form feed
// (the three bytes "\n\f\n"); stdout gets one line per document, the ids separated by single
// spaces (an empty document gives an empty line). The output can be compared with the golden
// files of ../shared/data/tokenizers/golden with `cmp`.
// Decode: stdin is that id format; stdout gets the documents' bytes joined by "\n\f\n".
// --encoding names the built-in pattern and specials of a tiktoken rank file (r50k_base,
// p50k_base, p50k_edit, cl100k_base, o200k_base, llama3); other formats are detected from the
// file. --special none (default) encodes special-token text as plain text; all maps it to ids.
// A document (encode) or a line of ids (decode) may have at most 64 MiB: input without
// separators (/dev/zero) is refused once that much of one is read.
// --stats prints to stderr what a user wants to know: documents, bytes, tokens, bytes per
// token, load time, encode throughput, and whether decoding gives the input back.
// Errors: a one-line message on stderr and exit status 2.
#include "common/args.hpp"

#include <llm/parallel/thread_pool.hpp>
#include <llm/tokenizer/batch.hpp>
#include <llm/tokenizer/tokenizer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: tokenize --vocab FILE [--encoding NAME] [--special none|all] [--decode] [--threads N] [--stats]\n"
    "  --threads N   encoding threads, in [1, 1024] (default 1)\n"
    "stdin: documents separated by a line holding only a form feed (\"\\n\\f\\n\"), or with --decode one line\n"
    "of space-separated ids per document; a document or line may have at most 64 MiB\n";

struct options {
    std::string vocab, encoding, special = "none";
    bool decode = false, stats = false;
    std::size_t threads = 1;
};

options parse(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    while (a.next()) {
        if (a.is("--vocab")) o.vocab = a.value();
        else if (a.is("--encoding")) o.encoding = a.value();
        else if (a.is("--special")) o.special = a.choice({"none", "all"});
        else if (a.is("--decode")) o.decode = true;
        else if (a.is("--stats")) o.stats = true;
        else if (a.is("--threads")) o.threads = a.integer<std::size_t>(1, 1024);
        else a.unknown();
    }
    llm::check(!o.vocab.empty(), "--vocab is required (see --help)");
    return o;
}

// A document or a line of ids holds at most 64 MiB (a corpus document is far smaller).
constexpr std::size_t max_document_bytes = std::size_t{64} << 20;

/// Reads all of stdin, in which `separator` ends each `what` ("document", "line"). One longer
/// than max_document_bytes is refused, naming its number, as soon as 64 MiB of it are read (plus
/// at most one 64 KiB chunk), so a stream without separators cannot exhaust memory.
std::string read_stdin(std::string_view separator, const char* what) {
    std::string all;
    std::size_t start = 0, scanned = 0, number = 1;  // the current one: its first byte, number; bytes searched
    char buf[1 << 16];
    for (;;) {
        const std::size_t n = std::fread(buf, 1, sizeof buf, stdin);
        all.append(buf, n);
        for (std::size_t at; (at = all.find(separator, scanned)) != std::string::npos;) {
            start = scanned = at + separator.size();
            ++number;
        }
        scanned = std::max(scanned, all.size() - std::min(all.size(), separator.size() - 1));  // a separator may straddle chunks
        llm::check(all.size() - start <= max_document_bytes, "stdin ", what, " ", number, " is longer than the limit of ",
                   max_document_bytes, " bytes (64 MiB)");
        if (n < sizeof buf) {
            llm::check(!std::ferror(stdin), "reading standard input failed");
            return all;
        }
    }
}

std::vector<std::string_view> split_documents(std::string_view all) {
    std::vector<std::string_view> docs;
    std::size_t pos = 0;
    for (;;) {
        const std::size_t sep = all.find("\n\f\n", pos);
        if (sep == std::string_view::npos) {
            docs.push_back(all.substr(pos));
            return docs;
        }
        docs.push_back(all.substr(pos, sep - pos));
        pos = sep + 3;
    }
}

int run(const options& o) {
    const std::string& vocab = o.vocab;
    const bool decode = o.decode, stats = o.stats;
    using clock = std::chrono::steady_clock;
    const auto t_load = clock::now();
    const llm::tokenizer::tokenizer tok = llm::tokenizer::load_tokenizer(vocab, o.encoding);
    const double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t_load).count();
    const std::string input = decode ? read_stdin("\n", "line") : read_stdin("\n\f\n", "document");
    std::string out;
    if (decode) {
        std::size_t pos = 0, line = 0;
        std::vector<std::uint32_t> ids;
        while (pos < input.size()) {
            ++line;
            std::size_t eol = input.find('\n', pos);
            if (eol == std::string::npos) eol = input.size();
            ids.clear();
            const char* p = input.data() + pos;
            const char* e = input.data() + eol;
            while (p < e) {
                if (*p == ' ') {
                    ++p;
                    continue;
                }
                std::uint64_t v = 0;
                const char* start = p;
                while (p < e && *p >= '0' && *p <= '9' && v <= 0xffffffffu) v = v * 10 + static_cast<unsigned>(*p++ - '0');
                llm::check(p > start && (p == e || *p == ' ') && v <= 0xffffffffu, "--decode: stdin line ", line,
                           ": expected ids separated by single spaces");
                ids.push_back(static_cast<std::uint32_t>(v));
            }
            if (line > 1) out += "\n\f\n";
            out += tok.decode_bytes(ids);
            pos = eol + 1;
        }
    } else {
        const auto docs = split_documents(input);
        const auto policy = o.special == "all" ? llm::tokenizer::special_policy::all() : llm::tokenizer::special_policy::none();
        llm::parallel::thread_pool pool(o.threads);
        const auto t_encode = clock::now();
        const auto ids = llm::tokenizer::encode_batch(tok, docs, policy, pool);
        const double encode_s = std::chrono::duration<double>(clock::now() - t_encode).count();
        if (stats) {
            std::size_t tokens = 0, round_trip = 0;
            for (std::size_t d = 0; d < docs.size(); ++d) {
                tokens += ids[d].size();
                round_trip += tok.decode_bytes(ids[d]) == docs[d];
            }
            std::fprintf(stderr,
                         "%s: %zu documents, %zu bytes -> %zu tokens (%.3f bytes/token); load %.1f ms; "
                         "encode %.1f MB/s on %zu thread(s); round trip %s (%zu/%zu documents)\n",
                         tok.name().c_str(), docs.size(), input.size(), tokens,
                         tokens ? static_cast<double>(input.size()) / static_cast<double>(tokens) : 0.0, load_ms,
                         static_cast<double>(input.size()) / 1e6 / encode_s, pool.size(),
                         round_trip == docs.size() ? "ok" : "FAILED", round_trip, docs.size());
        }
        out.reserve(input.size() * 2);
        char buf[16];
        for (const auto& doc : ids) {
            for (std::size_t k = 0; k < doc.size(); ++k) {
                if (k) out += ' ';
                const int n = std::snprintf(buf, sizeof buf, "%u", doc[k]);
                out.append(buf, static_cast<std::size_t>(n));
            }
            out += '\n';
        }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    llm::check(std::fflush(stdout) == 0, "writing standard output failed");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("tokenize", [&] { return run(parse(argc, argv)); });
}
