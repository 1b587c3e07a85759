// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: the GGUF reader on hostile bytes; every value, string and tensor it accepts is read.
#include <llm/io/gguf.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

template <class T>
std::uint64_t sum(const llm::io::gguf_value& v) {
    std::uint64_t s = 0;
    if (v.is_array()) {
        for (const T x : v.as_array<T>()) s += static_cast<std::uint64_t>(x != T{});
    } else {
        s += static_cast<std::uint64_t>(v.as<T>() != T{});
    }
    return s;
}

template <class T, std::size_t Rank>
std::uint64_t touch(const llm::io::gguf_file& f, const llm::io::gguf_tensor_info& t) {
    if (t.n_dims != Rank) return 0;
    const auto v = f.view<T, Rank>(t.name);
    const T* p = v.data();
    return v.size() ? static_cast<std::uint64_t>(static_cast<float>(p[0]) == static_cast<float>(p[v.size() - 1])) : 0;
}

template <class T>
std::uint64_t touch_any_rank(const llm::io::gguf_file& f, const llm::io::gguf_tensor_info& t) {
    return touch<T, 1>(f, t) + touch<T, 2>(f, t) + touch<T, 3>(f, t) + touch<T, 4>(f, t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using llm::io::gguf_type;
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    try {
        const auto f = llm::io::gguf_file::parse(bytes, "fuzz.gguf");
        volatile std::uint64_t sink = 0;
        for (const auto& kv : f.metadata()) {
            const auto& v = kv.value;
            switch (v.element_type()) {
            case gguf_type::u8: sink = sink + sum<std::uint8_t>(v); break;
            case gguf_type::i8: sink = sink + sum<std::int8_t>(v); break;
            case gguf_type::u16: sink = sink + sum<std::uint16_t>(v); break;
            case gguf_type::i16: sink = sink + sum<std::int16_t>(v); break;
            case gguf_type::u32: sink = sink + sum<std::uint32_t>(v); break;
            case gguf_type::i32: sink = sink + sum<std::int32_t>(v); break;
            case gguf_type::f32: sink = sink + sum<float>(v); break;
            case gguf_type::boolean: sink = sink + sum<bool>(v); break;
            case gguf_type::u64: sink = sink + sum<std::uint64_t>(v); break;
            case gguf_type::i64: sink = sink + sum<std::int64_t>(v); break;
            case gguf_type::f64: sink = sink + sum<double>(v); break;
            case gguf_type::string:
                if (v.is_array()) {
                    for (const std::string_view s : v.as_strings()) sink = sink + s.size();
                } else {
                    sink = sink + v.as_string().size();
                }
                break;
            default: __builtin_trap();  // the reader refuses nested arrays and unknown types
            }
            if (f.find(kv.key) != &v) __builtin_trap();
        }
        for (const auto& t : f.tensors()) {
            const auto b = f.tensor_bytes(t);
            if (b.size() != t.n_bytes || t.file_offset % f.alignment() != 0) __builtin_trap();
            if (!b.empty()) sink = sink + static_cast<std::uint64_t>(b.front()) + static_cast<std::uint64_t>(b.back());
            try {
                if (t.type == llm::io::ggml_type::f32) sink = sink + touch_any_rank<float>(f, t);
                if (t.type == llm::io::ggml_type::f16) sink = sink + touch_any_rank<llm::f16>(f, t);
                if (t.type == llm::io::ggml_type::bf16) sink = sink + touch_any_rank<llm::bf16>(f, t);
            } catch (const llm::error&) {  // data not aligned for the element type
            }
        }
        (void)sink;
    } catch (const llm::error&) {
    }
    return 0;
}
