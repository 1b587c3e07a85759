// SPDX-License-Identifier: Apache-2.0
// quantize: a GGUF model to one block type, as `llama-quantize --pure` does.
//
// Usage: quantize IN.gguf OUT.gguf TYPE [--type-of NAME=TYPE]... [--threads N]
//   TYPE: q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, f16, bf16 or f32 (any case).
// Every tensor with two or more dimensions whose name ends in "weight" (except MoE router
// weights, ffn_gate_inp.weight, which llama.cpp keeps unquantized) becomes TYPE; 1-D tensors
// (norms, biases) and the rest are copied unchanged. A row length that is not a multiple of the
// type's block falls back as llama.cpp does: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, q2_K and
// q3_K -> q4_0 (llama.cpp uses IQ4_NL, which this library does not write), and f16 when even 32
// does not divide it. --type-of NAME=TYPE sets one tensor's type. Metadata is copied in order;
// general.quantization_version (2) and general.file_type (llama.cpp's ftype of TYPE) are set.
// One progress line per tensor, totals at the end; the output is written atomically (a
// temporary file renamed into place), so an interrupted run leaves no partial OUT.gguf.
// Errors: a one-line message on stderr and exit status 2.
#include "common/args.hpp"

#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/io/gguf.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/quant.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace io = llm::io;
namespace q = llm::quant;

namespace {

constexpr const char* usage =
    "usage: quantize IN.gguf OUT.gguf TYPE [--type-of NAME=TYPE]... [--threads N]\n"
    "  TYPE               q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K f16 bf16 f32 (any case)\n"
    "  --type-of NAME=T   quantize tensor NAME to T instead (repeatable)\n"
    "  --threads N        threads (default: all)\n"
    "Tensors of 2+ dimensions named *weight become TYPE (as llama-quantize --pure), the rest are\n"
    "copied; metadata is copied and general.quantization_version set.\n";

const io::ggml_type writable[] = {io::ggml_type::q4_0, io::ggml_type::q4_1, io::ggml_type::q5_0, io::ggml_type::q5_1,
                                  io::ggml_type::q8_0, io::ggml_type::q2_k, io::ggml_type::q3_k, io::ggml_type::q4_k,
                                  io::ggml_type::q5_k, io::ggml_type::q6_k, io::ggml_type::f16,  io::ggml_type::bf16,
                                  io::ggml_type::f32};

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

io::ggml_type parse_type(std::string_view name) {
    std::string list;
    for (io::ggml_type t : writable) {
        if (lower(io::ggml_type_name(t)) == lower(name)) return t;
        list += (list.empty() ? "" : ", ") + std::string(io::ggml_type_name(t));
    }
    llm::fail("unknown TYPE '", name, "' (one of ", list, ")");
}

struct options {
    std::string in, out;
    io::ggml_type type = io::ggml_type::f32;
    std::map<std::string, io::ggml_type, std::less<>> type_of;
    std::size_t threads = 0;
};

options parse(int argc, char** argv) {
    options o;
    cli::args a(argc, argv, usage);
    std::vector<std::string> positional;
    while (a.next()) {
        if (a.is("--type-of")) {
            const std::string v = a.value();
            const auto eq = v.find('=');
            llm::check(eq != std::string::npos && eq > 0, "--type-of '", v, "' is not NAME=TYPE");
            o.type_of[v.substr(0, eq)] = parse_type(std::string_view(v).substr(eq + 1));
        } else if (a.is("--threads")) {
            o.threads = a.integer<std::size_t>(1, 1024);
        } else if (!a.flag().starts_with("-") && positional.size() < 3) {
            positional.emplace_back(a.flag());
        } else {
            a.unknown();
        }
    }
    llm::check(positional.size() == 3, "expected IN.gguf OUT.gguf TYPE (see --help)");
    o.in = positional[0];
    o.out = positional[1];
    o.type = parse_type(positional[2]);
    return o;
}

bool quantizable(const io::gguf_tensor_info& t) {
    const std::string_view n = t.name;
    return t.n_dims >= 2 && n.ends_with("weight") && !n.ends_with("ffn_gate_inp.weight");
}

// The tensor's values as floats (f32, f16 or bf16 sources).
std::vector<float> to_floats(const io::gguf_file& g, const io::gguf_tensor_info& t) {
    const auto bytes = g.tensor_bytes(t);
    std::vector<float> v(static_cast<std::size_t>(t.n_elements));
    if (t.type == io::ggml_type::f32) {
        std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
    } else if (t.type == io::ggml_type::f16 || t.type == io::ggml_type::bf16) {
        for (std::size_t i = 0; i < v.size(); ++i) {
            std::uint16_t b = 0;
            std::memcpy(&b, bytes.data() + 2 * i, 2);
            v[i] = t.type == io::ggml_type::f16 ? static_cast<float>(llm::f16::from_bits(b))
                                                : static_cast<float>(llm::bf16::from_bits(b));
        }
    } else {
        llm::fail(g.source(), ": tensor '", t.name, "' is ", io::ggml_type_name(t.type),
                  "; only f32, f16 and bf16 tensors are quantized (requantizing loses accuracy)");
    }
    return v;
}

template <class F>
std::vector<std::byte> encode_blocks(const std::vector<float>& x, llm::parallel::thread_pool& pool) {
    const std::size_t nb = x.size() / F::block_size;
    std::vector<std::byte> out(nb * sizeof(typename F::block));
    auto* blocks = reinterpret_cast<typename F::block*>(out.data());
    for (std::size_t i = 0; i < x.size(); ++i) {
        llm::check(std::isfinite(x[i]), "value ", i, " is ", x[i], " (not finite)");
    }
    llm::parallel::parallel_for(pool, nb, 64, [&](std::size_t b0, std::size_t b1) {
        for (std::size_t b = b0; b < b1; ++b) F::quantize_block(x.data() + b * F::block_size, blocks[b]);
    });
    return out;
}

std::vector<std::byte> encode(io::ggml_type t, const std::vector<float>& x, llm::parallel::thread_pool& pool) {
    switch (t) {
    case io::ggml_type::q4_0: return encode_blocks<q::q4_0>(x, pool);
    case io::ggml_type::q4_1: return encode_blocks<q::q4_1>(x, pool);
    case io::ggml_type::q5_0: return encode_blocks<q::q5_0>(x, pool);
    case io::ggml_type::q5_1: return encode_blocks<q::q5_1>(x, pool);
    case io::ggml_type::q8_0: return encode_blocks<q::q8_0>(x, pool);
    case io::ggml_type::q2_k: return encode_blocks<q::q2_k>(x, pool);
    case io::ggml_type::q3_k: return encode_blocks<q::q3_k>(x, pool);
    case io::ggml_type::q4_k: return encode_blocks<q::q4_k>(x, pool);
    case io::ggml_type::q5_k: return encode_blocks<q::q5_k>(x, pool);
    case io::ggml_type::q6_k: return encode_blocks<q::q6_k>(x, pool);
    default: break;
    }
    std::vector<std::byte> out(x.size() * io::ggml_traits(t).type_size);
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (t == io::ggml_type::f32) {
            std::memcpy(out.data() + 4 * i, &x[i], 4);
        } else {
            const std::uint16_t b = t == io::ggml_type::f16 ? llm::f16(x[i]).bits() : llm::bf16(x[i]).bits();
            std::memcpy(out.data() + 2 * i, &b, 2);
        }
    }
    return out;
}

// Copies one metadata value into the writer.
void copy_kv(io::gguf_writer& w, std::string_view key, const io::gguf_value& v) {
    using io::gguf_type;
    auto scalar = [&](auto tag) {
        using T = decltype(tag);
        w.add<T>(key, v.as<T>());
    };
    auto array = [&](auto tag) {
        using T = decltype(tag);
        // Not std::vector<T>: vector<bool> has no contiguous storage for a span.
        const auto values = std::make_unique<T[]>(static_cast<std::size_t>(v.size()));
        std::size_t i = 0;
        for (T x : v.as_array<T>()) values[i++] = x;
        w.add_array(key, std::span<const T>(values.get(), i));
    };
    const gguf_type t = v.type() == gguf_type::array ? v.element_type() : v.type();
    const bool is_array = v.type() == gguf_type::array;
    switch (t) {
    case gguf_type::u8: is_array ? array(std::uint8_t{}) : scalar(std::uint8_t{}); return;
    case gguf_type::i8: is_array ? array(std::int8_t{}) : scalar(std::int8_t{}); return;
    case gguf_type::u16: is_array ? array(std::uint16_t{}) : scalar(std::uint16_t{}); return;
    case gguf_type::i16: is_array ? array(std::int16_t{}) : scalar(std::int16_t{}); return;
    case gguf_type::u32: is_array ? array(std::uint32_t{}) : scalar(std::uint32_t{}); return;
    case gguf_type::i32: is_array ? array(std::int32_t{}) : scalar(std::int32_t{}); return;
    case gguf_type::u64: is_array ? array(std::uint64_t{}) : scalar(std::uint64_t{}); return;
    case gguf_type::i64: is_array ? array(std::int64_t{}) : scalar(std::int64_t{}); return;
    case gguf_type::f32: is_array ? array(float{}) : scalar(float{}); return;
    case gguf_type::f64: is_array ? array(double{}) : scalar(double{}); return;
    case gguf_type::boolean: is_array ? array(bool{}) : scalar(bool{}); return;
    case gguf_type::string:
        if (is_array) {
            std::vector<std::string_view> values;
            for (std::string_view s : v.as_strings()) values.push_back(s);
            w.add_array(key, values);
        } else {
            w.add(key, v.as_string());
        }
        return;
    default: llm::fail("metadata key '", key, "' holds an array of arrays, which is not copied");
    }
}

double mib(std::uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

int run(const options& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const io::gguf_file in = io::gguf_file::open(o.in);
    for (const auto& [name, t] : o.type_of) {
        llm::check(in.find_tensor(name) != nullptr, "--type-of: ", o.in, " has no tensor '", name, "'");
    }
    io::gguf_writer w;
    bool have_version = false, have_file_type = false;
    for (const io::gguf_kv& kv : in.metadata()) {
        if (kv.key == "general.quantization_version") {
            w.add<std::uint32_t>(kv.key, 2);
            have_version = true;
        } else if (kv.key == "general.file_type") {
            w.add<std::uint32_t>(kv.key, *llm::quant::llama_file_type(o.type));
            have_file_type = true;
        } else if (kv.key == "general.alignment") {
            w.set_alignment(kv.value.as<std::uint32_t>());
        } else {
            copy_kv(w, kv.key, kv.value);
        }
    }
    if (!have_version) w.add<std::uint32_t>("general.quantization_version", 2);
    if (!have_file_type) w.add<std::uint32_t>("general.file_type", *llm::quant::llama_file_type(o.type));

    llm::parallel::thread_pool pool(o.threads != 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::vector<std::byte>> kept;  // the writer keeps spans: the data lives until write()
    kept.reserve(in.tensors().size());
    std::uint64_t bytes_in = 0, bytes_out = 0;
    const std::size_t n = in.tensors().size();
    for (std::size_t i = 0; i < n; ++i) {
        const io::gguf_tensor_info& t = in.tensors()[i];
        const auto t1 = std::chrono::steady_clock::now();
        const auto override_it = o.type_of.find(t.name);
        io::ggml_type target = t.type;
        if (override_it != o.type_of.end()) {
            target = llm::quant::fitting_type(override_it->second, t.ne[0]);
        } else if (quantizable(t)) {
            target = llm::quant::fitting_type(o.type, t.ne[0]);
        }
        const auto shape = t.shape();
        std::span<const std::byte> data = in.tensor_bytes(t);
        if (target != t.type) {
            try {
                kept.push_back(encode(target, to_floats(in, t), pool));
            } catch (const llm::error& e) {
                llm::fail("tensor '", t.name, "': ", e.what());
            }
            data = kept.back();
        }
        w.add_tensor(t.name, target, shape, data);
        bytes_in += t.n_bytes;
        bytes_out += data.size();
        std::string dims;
        for (std::uint64_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        std::printf("[%4zu/%4zu] %-40s %-5s [%s] -> %-5s %9.2f MiB -> %9.2f MiB %7.2f s\n", i + 1, n,
                    std::string(t.name).c_str(), std::string(io::ggml_type_name(t.type)).c_str(), dims.c_str(),
                    std::string(io::ggml_type_name(target)).c_str(), mib(t.n_bytes), mib(data.size()), s);
        std::fflush(stdout);
    }
    w.write(o.out);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("total: %zu tensors, %.2f MiB -> %.2f MiB (%.3f of the input), %.2f s\n", n, mib(bytes_in), mib(bytes_out),
                bytes_in != 0 ? static_cast<double>(bytes_out) / static_cast<double>(bytes_in) : 0.0, total);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("quantize", [&] { return run(parse(argc, argv)); });
}
