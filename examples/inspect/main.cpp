// SPDX-License-Identifier: Apache-2.0
// inspect: what a user asks first of a model file. Format, metadata (long arrays abbreviated) and
// a table of tensors (name, dtype or ggml type, shape, bytes, offset) with totals, as text or JSON.
//
// Usage: inspect FILE [--json] [--max-items N]
//   FILE: a GGUF file, a .safetensors file, or a sharded checkpoint's model.safetensors.index.json.
// Nothing but the header is read (the file is memory-mapped), so a 10 GB model opens at once.
// Errors: a one-line message on stderr and exit status 2.
#include "common/args.hpp"

#include <llm/io/file.hpp>
#include <llm/io/gguf.hpp>
#include <llm/io/json.hpp>
#include <llm/io/safetensors.hpp>

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace io = llm::io;

namespace {

constexpr const char* usage =
    "usage: inspect FILE [--json] [--max-items N]\n"
    "  FILE           a .gguf file, a .safetensors file or a model.safetensors.index.json\n"
    "  --json         print one JSON object instead of text\n"
    "  --max-items N  array elements shown per metadata value, in [0, 1000000] (default 8)\n";

struct options {
    std::string path;
    bool json = false;
    std::size_t max_items = 8;
};

options parse(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    while (a.next()) {
        if (a.is("--json")) o.json = true;
        else if (a.is("--max-items")) o.max_items = a.integer<std::size_t>(0, 1000000);
        else if (!a.flag().starts_with("-") && o.path.empty()) o.path = std::string(a.flag());
        else a.unknown();
    }
    llm::check(!o.path.empty(), "no FILE given (see --help)");
    return o;
}

// One metadata entry, already rendered for text and for JSON.
struct entry {
    std::string key, type, text, json;
};

// One tensor row.
struct row {
    std::string name, type;
    std::vector<std::uint64_t> shape;
    std::uint64_t bytes = 0, offset = 0, elements = 0;
    std::string file;  // the shard, for sharded checkpoints
};

struct description {
    std::string format;                                    // "GGUF v3", "safetensors", ...
    std::vector<std::pair<std::string, std::string>> facts;  // alignment, data offset, shards ...
    std::vector<entry> metadata;
    std::vector<row> tensors;
};

// ---- GGUF ----------------------------------------------------------------------------------

template <class T>
std::string number(T v) {
    std::ostringstream s;
    if constexpr (std::is_floating_point_v<T>) s.precision(9);
    if constexpr (sizeof(T) == 1 && std::is_integral_v<T>) s << static_cast<int>(v);
    else s << v;
    return s.str();
}

std::string json_number(double v, const std::string& text) {
    return std::isfinite(v) ? text : io::json_quote(text);  // JSON has no NaN or infinity
}

std::string_view gguf_type_label(io::gguf_type t) {
    switch (t) {
    case io::gguf_type::u8: return "u8";
    case io::gguf_type::i8: return "i8";
    case io::gguf_type::u16: return "u16";
    case io::gguf_type::i16: return "i16";
    case io::gguf_type::u32: return "u32";
    case io::gguf_type::i32: return "i32";
    case io::gguf_type::f32: return "f32";
    case io::gguf_type::boolean: return "bool";
    case io::gguf_type::string: return "string";
    case io::gguf_type::array: return "array";
    case io::gguf_type::u64: return "u64";
    case io::gguf_type::i64: return "i64";
    case io::gguf_type::f64: return "f64";
    }
    return "?";
}

// Renders the scalar elements of a value through `each(text, json)`; for arrays, at most `limit`.
template <class T>
void render_numbers(const io::gguf_value& v, std::size_t limit, std::vector<std::string>& text, std::vector<std::string>& json) {
    auto put = [&](T x) {
        if constexpr (std::is_same_v<T, bool>) {
            text.emplace_back(x ? "true" : "false");
            json.push_back(text.back());
        } else {
            text.push_back(number(x));
            json.push_back(std::is_floating_point_v<T> ? json_number(static_cast<double>(x), text.back()) : text.back());
        }
    };
    if (!v.is_array()) return put(v.as<T>());
    std::size_t i = 0;
    for (const T x : v.as_array<T>()) {
        if (i++ == limit) break;
        put(x);
    }
}

entry render(const io::gguf_value& v, std::size_t limit) {
    std::vector<std::string> text, json;
    switch (v.element_type()) {
    case io::gguf_type::u8: render_numbers<std::uint8_t>(v, limit, text, json); break;
    case io::gguf_type::i8: render_numbers<std::int8_t>(v, limit, text, json); break;
    case io::gguf_type::u16: render_numbers<std::uint16_t>(v, limit, text, json); break;
    case io::gguf_type::i16: render_numbers<std::int16_t>(v, limit, text, json); break;
    case io::gguf_type::u32: render_numbers<std::uint32_t>(v, limit, text, json); break;
    case io::gguf_type::i32: render_numbers<std::int32_t>(v, limit, text, json); break;
    case io::gguf_type::f32: render_numbers<float>(v, limit, text, json); break;
    case io::gguf_type::boolean: render_numbers<bool>(v, limit, text, json); break;
    case io::gguf_type::u64: render_numbers<std::uint64_t>(v, limit, text, json); break;
    case io::gguf_type::i64: render_numbers<std::int64_t>(v, limit, text, json); break;
    case io::gguf_type::f64: render_numbers<double>(v, limit, text, json); break;
    case io::gguf_type::string:
        if (!v.is_array()) {
            text.push_back(io::json_quote(v.as_string()));
        } else {
            std::size_t i = 0;
            for (const std::string_view s : v.as_strings()) {
                if (i++ == limit) break;
                text.push_back(io::json_quote(s));
            }
        }
        json = text;
        break;
    case io::gguf_type::array: break;  // nested arrays are rejected by the reader
    }
    entry e;
    e.key = std::string(v.key());
    if (!v.is_array()) {
        e.type = std::string(gguf_type_label(v.type()));
        e.text = text.empty() ? "" : text.front();
        e.json = json.empty() ? "null" : json.front();
        return e;
    }
    e.type = "array of " + std::to_string(v.size()) + " " + std::string(gguf_type_label(v.element_type()));
    std::string t = "[", j = "[";
    for (std::size_t i = 0; i < text.size(); ++i) {
        t += (i ? ", " : "") + text[i];
        j += (i ? "," : "") + json[i];
    }
    if (v.size() > text.size()) t += (text.empty() ? "... " : ", ... ") + std::to_string(v.size() - text.size()) + " more";
    e.text = t + "]";
    e.json = j + "]";
    return e;
}

description describe_gguf(const std::string& path, std::size_t limit) {
    const io::gguf_file f = io::gguf_file::open(path);
    description d;
    d.format = "GGUF v" + std::to_string(f.version());
    d.facts = {{"alignment", std::to_string(f.alignment())}, {"data_offset", std::to_string(f.data_offset())}};
    for (const io::gguf_kv& kv : f.metadata()) d.metadata.push_back(render(kv.value, limit));
    for (const io::gguf_tensor_info& t : f.tensors())
        d.tensors.push_back({std::string(t.name), std::string(io::ggml_traits(t.type).name), t.shape(), t.n_bytes, t.file_offset, t.n_elements, {}});
    return d;
}

// ---- safetensors ---------------------------------------------------------------------------

void add_safetensors(description& d, const io::safetensors_reader& r) {
    for (const auto& [key, value] : r.metadata()) d.metadata.push_back({key, "string", io::json_quote(value), io::json_quote(value)});
    for (std::size_t i = 0; i < r.size(); ++i) {
        const io::safetensors_tensor& t = r[i];
        row x{t.name, std::string(io::dtype_name(t.dtype)), {t.shape.begin(), t.shape.end()}, t.data.size(),
              r.data_offset(t.name), t.elements(), {}};
        d.tensors.push_back(std::move(x));
    }
}

description describe_safetensors(const std::string& path) {
    description d;
    if (path.ends_with(".index.json")) {
        const io::safetensors_checkpoint c(path);
        d.format = "safetensors (sharded)";
        d.facts = {{"shards", std::to_string(c.shard_count())}};
        add_safetensors(d, c);
        for (row& x : d.tensors) x.file = c.file_of(x.name);
        return d;
    }
    const io::safetensors_file f(path);
    d.format = "safetensors";
    d.facts = {{"header_bytes", std::to_string(f.header_size())}};
    add_safetensors(d, f);
    return d;
}

// ---- output --------------------------------------------------------------------------------

std::string shape_text(const std::vector<std::uint64_t>& s) {
    std::string t = "[";
    for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
    return t + "]";
}

std::string human_bytes(std::uint64_t b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
    return buf;
}

void print_text(const std::string& path, const description& d) {
    std::uint64_t bytes = 0, elements = 0;
    for (const row& t : d.tensors) {
        bytes += t.bytes;
        elements += t.elements;
    }
    std::printf("file: %s\nformat: %s\n", path.c_str(), d.format.c_str());
    for (const auto& [k, v] : d.facts) std::printf("%s: %s\n", k.c_str(), v.c_str());
    std::printf("\nmetadata (%zu keys)\n", d.metadata.size());
    for (const entry& e : d.metadata) std::printf("  %s (%s) = %s\n", e.key.c_str(), e.type.c_str(), e.text.c_str());
    std::size_t wn = 4, wt = 4, ws = 5;
    for (const row& t : d.tensors) {
        wn = std::max(wn, t.name.size());
        wt = std::max(wt, t.type.size());
        ws = std::max(ws, shape_text(t.shape).size());
    }
    std::printf("\ntensors (%zu)\n", d.tensors.size());
    std::printf("  %-*s  %-*s  %-*s  %15s  %15s\n", static_cast<int>(wn), "name", static_cast<int>(wt), "type", static_cast<int>(ws), "shape",
                "bytes", "offset");
    for (const row& t : d.tensors)
        std::printf("  %-*s  %-*s  %-*s  %15llu  %15llu%s%s\n", static_cast<int>(wn), t.name.c_str(), static_cast<int>(wt), t.type.c_str(),
                    static_cast<int>(ws), shape_text(t.shape).c_str(), static_cast<unsigned long long>(t.bytes),
                    static_cast<unsigned long long>(t.offset), t.file.empty() ? "" : "  ", t.file.c_str());
    std::printf("\ntotal: %zu tensors, %llu elements, %llu bytes (%s)\n", d.tensors.size(), static_cast<unsigned long long>(elements),
                static_cast<unsigned long long>(bytes), human_bytes(bytes).c_str());
}

void print_json(const std::string& path, const description& d) {
    std::uint64_t bytes = 0, elements = 0;
    std::string out;
    auto put = [&](std::initializer_list<std::string_view> parts) {
        for (const std::string_view p : parts) out.append(p);
    };
    put({"{\"file\":", io::json_quote(path), ",\"format\":", io::json_quote(d.format)});
    for (const auto& [k, v] : d.facts) put({",\"", k, "\":", v});
    put({",\"metadata\":["});
    for (std::size_t i = 0; i < d.metadata.size(); ++i) {
        const entry& e = d.metadata[i];
        put({i ? "," : "", "{\"key\":", io::json_quote(e.key), ",\"type\":", io::json_quote(e.type), ",\"value\":", e.json, "}"});
    }
    put({"],\"tensors\":["});
    for (std::size_t i = 0; i < d.tensors.size(); ++i) {
        const row& t = d.tensors[i];
        bytes += t.bytes;
        elements += t.elements;
        put({i ? "," : "", "{\"name\":", io::json_quote(t.name), ",\"type\":", io::json_quote(t.type), ",\"shape\":["});
        for (std::size_t k = 0; k < t.shape.size(); ++k) put({k ? "," : "", std::to_string(t.shape[k])});
        put({"],\"bytes\":", std::to_string(t.bytes), ",\"offset\":", std::to_string(t.offset)});
        if (!t.file.empty()) put({",\"file\":", io::json_quote(t.file)});
        put({"}"});
    }
    put({"],\"total\":{\"tensors\":", std::to_string(d.tensors.size()), ",\"elements\":", std::to_string(elements),
         ",\"bytes\":", std::to_string(bytes), "}}\n"});
    std::fwrite(out.data(), 1, out.size(), stdout);
}

int run(const options& o) {
    const bool gguf = !o.path.ends_with(".index.json") && io::read_file_prefix(o.path, 4, "inspect") == "GGUF";
    const description d = gguf ? describe_gguf(o.path, o.max_items) : describe_safetensors(o.path);
    if (o.json) print_json(o.path, d);
    else print_text(o.path, d);
    llm::check(std::fflush(stdout) == 0, "writing standard output failed");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("inspect", [&] { return run(parse(argc, argv)); });
}
