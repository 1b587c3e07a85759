// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: the safetensors reader on hostile bytes must accept or raise llm::error, never
// crash or read out of bounds; what it accepts must survive a write and a re-read unchanged.
#include <llm/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace {

template <class T>
double as_double(T x) {
    if constexpr (std::is_arithmetic_v<T>) return static_cast<double>(x);
    else return static_cast<double>(static_cast<float>(x));
}

bool same(const llm::io::safetensors_reader& a, const llm::io::safetensors_reader& b) {
    if (a.size() != b.size() || a.metadata() != b.metadata()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto* t = b.find(a[i].name);
        if (!t || t->dtype != a[i].dtype || t->shape != a[i].shape || t->data.size() != a[i].data.size() ||
            (!t->data.empty() && std::memcmp(t->data.data(), a[i].data.data(), t->data.size()) != 0))
            return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span<const std::uint8_t>(data, size));
    std::optional<llm::io::safetensors_file> parsed;
    try {
        parsed.emplace(llm::io::safetensors_file::parse(bytes, "fuzz.safetensors"));
    } catch (const llm::error&) {
        return 0;
    }
    const llm::io::safetensors_file& f = *parsed;
    volatile double sum = 0;
    for (std::size_t i = 0; i < f.size(); ++i) {
        const llm::io::safetensors_tensor& t = f[i];
        for (const std::byte b : t.data) sum = sum + std::to_integer<int>(b);
        llm::io::visit_dtype(t.dtype, [&](auto tag) {
            using T = typename decltype(tag)::type;
            try {  // misaligned data and non-0/1 bools are refused; the rest reads in bounds
                const auto v = f.flat_view<T>(t.name);
                for (std::size_t k = 0; k < v.size(); ++k) sum = sum + as_double(v(k));
            } catch (const llm::error&) {
            }
        });
    }
    // What was accepted round-trips: written, it parses to the same tensors and writes the same
    // bytes. An llm::error escaping from here is a bug too (it ends the run).
    std::vector<llm::io::safetensors_tensor> ts;
    for (std::size_t i = 0; i < f.size(); ++i) ts.push_back(f[i]);
    const std::string out = llm::io::serialize_safetensors(ts, f.metadata());
    const auto g = llm::io::safetensors_file::parse(std::as_bytes(std::span<const char>(out)), "roundtrip");
    if (!same(f, g) || !same(g, f)) __builtin_trap();
    std::vector<llm::io::safetensors_tensor> us;
    for (std::size_t i = 0; i < g.size(); ++i) us.push_back(g[i]);
    if (llm::io::serialize_safetensors(us, g.metadata()) != out) __builtin_trap();
    return 0;
}
