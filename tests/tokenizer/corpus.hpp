// SPDX-License-Identifier: Apache-2.0
// Test helpers: the shared tokenizer corpus split into documents, and golden id files.
#pragma once

#include <llm/io/file.hpp>
#include <llm/tokenizer/tiktoken.hpp>

#include <map>
#include <memory>

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace llm_test {

inline std::string tokenizer_data(const std::string& name) {
    return std::string(LLM_SHARED_DATA_DIR) + "/tokenizers/" + name;
}

// Documents are separated by the three bytes "\n\f\n" (../shared/data/tokenizers/README.md).
inline std::vector<std::string> split_documents(std::string_view all) {
    std::vector<std::string> docs;
    std::size_t pos = 0;
    for (;;) {
        const std::size_t sep = all.find("\n\f\n", pos);
        if (sep == std::string_view::npos) {
            docs.emplace_back(all.substr(pos));
            return docs;
        }
        docs.emplace_back(all.substr(pos, sep - pos));
        pos = sep + 3;
    }
}

inline std::vector<std::string> corpus_documents() {
    return split_documents(llm::io::read_file(tokenizer_data("corpus_public.txt"), llm::io::default_read_limit, "test"));
}

// One line of space-separated ids per document.
inline std::vector<std::vector<std::uint32_t>> read_ids(const std::string& path) {
    const std::string text = llm::io::read_file(path, llm::io::default_read_limit, "test");
    std::vector<std::vector<std::uint32_t>> rows;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        std::istringstream line(text.substr(pos, eol - pos));
        std::vector<std::uint32_t> ids;
        std::uint32_t id;
        while (line >> id) ids.push_back(id);
        rows.push_back(std::move(ids));
        pos = eol + 1;
    }
    return rows;
}

// A tiktoken encoding from the shared data, loaded once per test binary.
inline const llm::tokenizer::byte_bpe& encoding(const std::string& name) {
    static std::map<std::string, std::unique_ptr<llm::tokenizer::byte_bpe>> cache;
    auto& slot = cache[name];
    if (!slot) slot = std::make_unique<llm::tokenizer::byte_bpe>(llm::tokenizer::load_tiktoken(tokenizer_data(name + ".tiktoken"), name));
    return *slot;
}

}  // namespace llm_test
