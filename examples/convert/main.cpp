// SPDX-License-Identifier: Apache-2.0
// convert: a Hugging Face checkpoint directory to a GGUF file llama.cpp loads, as its
// convert_hf_to_gguf.py writes it (llm::generate::convert_hf_to_gguf).
//
// Usage: convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_K..q6_K]
//                [--tokenizer tokenizer.json] [--name NAME]
// Llama and Mistral become architecture "llama" (Q/K rows permuted), Qwen2 "qwen2"; 2-D weights
// get TYPE (default f16), 1-D tensors stay f32; tokenizer.ggml.* from HF_DIR/tokenizer.json (or
// --tokenizer). One summary line at the end; errors: one line on stderr, exit status 2.
#include "common/args.hpp"

#include <llm/generate/convert.hpp>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace io = llm::io;

namespace {

constexpr const char* usage =
    "usage: convert HF_DIR OUT.gguf [--type TYPE] [--tokenizer tokenizer.json] [--name NAME]\n"
    "  --type TYPE        f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K (default f16)\n"
    "  --tokenizer PATH   tokenizer.json (default: HF_DIR/tokenizer.json when present)\n"
    "  --name NAME        general.name (default: the directory's name)\n"
    "Writes llama.cpp's layout (convert_hf_to_gguf.py): Llama/Mistral/Mixtral as 'llama', Qwen2 as 'qwen2', GPT-2 as 'gpt2'.\n";

io::ggml_type parse_type(std::string_view name) {
    static const io::ggml_type types[] = {io::ggml_type::f32,  io::ggml_type::f16,  io::ggml_type::bf16, io::ggml_type::q8_0,
                                          io::ggml_type::q4_0, io::ggml_type::q4_1, io::ggml_type::q5_0, io::ggml_type::q5_1,
                                          io::ggml_type::q2_k, io::ggml_type::q3_k, io::ggml_type::q4_k, io::ggml_type::q5_k,
                                          io::ggml_type::q6_k};
    auto lower = [](std::string_view s) {
        std::string r(s);
        for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return r;
    };
    std::string list;
    for (io::ggml_type t : types) {
        if (lower(io::ggml_type_name(t)) == lower(name)) return t;
        list += (list.empty() ? "" : ", ") + std::string(io::ggml_type_name(t));
    }
    llm::fail("--type: unknown type '", name, "' (one of ", list, ")");
}

int run(int argc, char** argv) {
    cli::args a(argc, argv, usage);
    std::vector<std::string> positional;
    llm::generate::convert_options o;
    while (a.next()) {
        if (a.is("--type")) {
            o.type = parse_type(a.value());
        } else if (a.is("--tokenizer")) {
            o.tokenizer = a.value();
        } else if (a.is("--name")) {
            o.name = a.value();
        } else if (!a.flag().starts_with("-") && positional.size() < 2) {
            positional.emplace_back(a.flag());
        } else {
            a.unknown();
        }
    }
    llm::check(positional.size() == 2, "expected HF_DIR OUT.gguf (see --help)");
    const auto t0 = std::chrono::steady_clock::now();
    const auto st = llm::generate::convert_hf_to_gguf(positional[0], positional[1], o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %zu tensors, architecture %s, %.2f MiB (fp32 %.2f MiB) as %s, %.2f s\n", positional[1].c_str(), st.tensors,
                st.architecture.c_str(), static_cast<double>(st.bytes) / 1048576.0, static_cast<double>(st.f32_bytes) / 1048576.0,
                std::string(io::ggml_type_name(o.type)).c_str(), s);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run_main("convert", [&] { return run(argc, argv); });
}
