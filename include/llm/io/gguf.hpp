// SPDX-License-Identifier: Apache-2.0
// GGUF (versions 2 and 3) read and write: a validating zero-copy reader over a memory map or a
// byte span, and a writer whose output matches gguf-py's GGUFWriter byte for byte.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/io/atomic_file.hpp>
#include <llm/io/file.hpp>
#include <llm/io/ggml_type.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace llm::io {

/// The type tag of a GGUF metadata value (the numbers are the file's).
enum class gguf_type : std::uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
    u64 = 10, i64 = 11, f64 = 12,
};

/// Alignment of tensor data when a file has no `general.alignment` key.
inline constexpr std::uint32_t gguf_default_alignment = 32;
/// Limits the reader enforces, the same as ggml's own reader: a string's length, an array's
/// element count, the alignment, a tensor name's length and a tensor's dimensions.
inline constexpr std::uint64_t gguf_max_string_length = std::uint64_t{64} << 20;
inline constexpr std::uint64_t gguf_max_array_length = std::uint64_t{64} << 20;  ///< see gguf_max_string_length
inline constexpr std::uint32_t gguf_max_alignment = std::uint32_t{1} << 20;     ///< see gguf_max_string_length
inline constexpr std::size_t gguf_max_name_length = 63;                         ///< see gguf_max_string_length
inline constexpr std::uint32_t gguf_max_dims = 4;                               ///< see gguf_max_string_length

namespace detail {

// Bytes of a fixed-size value type; 0 for string, array and unknown tags.
constexpr std::uint32_t gguf_scalar_size(gguf_type t) noexcept {
    constexpr std::uint32_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    const auto i = static_cast<std::uint32_t>(t);
    return i < 13 ? sizes[i] : 0;
}

constexpr bool gguf_type_known(std::uint32_t t) noexcept { return t <= 12; }

constexpr std::string_view gguf_type_name(gguf_type t) noexcept {
    constexpr std::string_view names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    const auto i = static_cast<std::uint32_t>(t);
    return i < 13 ? names[i] : std::string_view("unknown");
}

// The GGUF tag of a C++ scalar type.
template <class T> struct gguf_tag;
template <> struct gguf_tag<std::uint8_t> { static constexpr gguf_type value = gguf_type::u8; };
template <> struct gguf_tag<std::int8_t> { static constexpr gguf_type value = gguf_type::i8; };
template <> struct gguf_tag<std::uint16_t> { static constexpr gguf_type value = gguf_type::u16; };
template <> struct gguf_tag<std::int16_t> { static constexpr gguf_type value = gguf_type::i16; };
template <> struct gguf_tag<std::uint32_t> { static constexpr gguf_type value = gguf_type::u32; };
template <> struct gguf_tag<std::int32_t> { static constexpr gguf_type value = gguf_type::i32; };
template <> struct gguf_tag<float> { static constexpr gguf_type value = gguf_type::f32; };
template <> struct gguf_tag<bool> { static constexpr gguf_type value = gguf_type::boolean; };
template <> struct gguf_tag<std::uint64_t> { static constexpr gguf_type value = gguf_type::u64; };
template <> struct gguf_tag<std::int64_t> { static constexpr gguf_type value = gguf_type::i64; };
template <> struct gguf_tag<double> { static constexpr gguf_type value = gguf_type::f64; };

template <class T>
concept gguf_scalar = requires { gguf_tag<T>::value; };

// Reads a little-endian value from possibly unaligned bytes (GGUF data is little-endian, as
// every host this library builds for). bool is a byte, nonzero meaning true (as ggml reads it).
template <class T>
T gguf_load(const std::byte* p) noexcept {
    if constexpr (std::is_same_v<T, bool>) {
        return *p != std::byte{0};
    } else {
        T v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
}

constexpr std::uint64_t gguf_pad(std::uint64_t x, std::uint64_t alignment) noexcept {
    return (x + alignment - 1) / alignment * alignment;  // callers keep x + alignment from overflowing
}

// The tensor element type a ggml type holds, when it is one a view can have.
template <class T> inline constexpr ggml_type ggml_type_of = ggml_type::i8;  // unused
template <> inline constexpr ggml_type ggml_type_of<float> = ggml_type::f32;
template <> inline constexpr ggml_type ggml_type_of<f16> = ggml_type::f16;
template <> inline constexpr ggml_type ggml_type_of<bf16> = ggml_type::bf16;

template <class T>
concept gguf_view_element = std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>;

}  // namespace detail

/// A read-only view of a GGUF numeric array, read element by element from the file's bytes
/// (which need not be aligned for T). Valid while the gguf_file lives.
/// Example: `for (float s : f.get_array<float>("tokenizer.ggml.scores")) ...`
template <detail::gguf_scalar T>
class gguf_array {
public:
    /// Input iterator yielding elements by value.
    class iterator {
    public:
        using value_type = T;                       ///< element type
        using difference_type = std::ptrdiff_t;     ///< distance type
        using iterator_concept = std::forward_iterator_tag;  ///< multi-pass
        iterator() = default;                              ///< a singular iterator
        explicit iterator(const std::byte* p) : p_(p) {}   ///< at the element whose bytes start at p
        T operator*() const noexcept { return detail::gguf_load<T>(p_); }  ///< the element
        iterator& operator++() noexcept { p_ += sizeof(T); return *this; }  ///< next
        iterator operator++(int) noexcept { auto t = *this; ++*this; return t; }  ///< next
        bool operator==(const iterator&) const = default;  ///< same position
    private:
        const std::byte* p_ = nullptr;
    };

    gguf_array() = default;
    /// Views `n` elements stored at `p` (unchecked: for the reader).
    gguf_array(const std::byte* p, std::size_t n) noexcept : p_(p), n_(n) {}
    std::size_t size() const noexcept { return n_; }        ///< number of elements
    bool empty() const noexcept { return n_ == 0; }         ///< true when size() == 0
    T operator[](std::size_t i) const noexcept { return detail::gguf_load<T>(p_ + i * sizeof(T)); }  ///< element i, unchecked
    iterator begin() const noexcept { return iterator(p_); }                   ///< first element
    iterator end() const noexcept { return iterator(p_ + n_ * sizeof(T)); }    ///< past the last
    /// The elements copied into a vector.
    std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

private:
    const std::byte* p_ = nullptr;
    std::size_t n_ = 0;
};

/// A read-only view of a GGUF array of strings (each a u64 length and its bytes), iterated in
/// order. Valid while the gguf_file lives.
/// Example: `auto tokens = f.get_strings("tokenizer.ggml.tokens").to_vector();`
class gguf_string_array {
public:
    /// Forward iterator yielding std::string_view.
    class iterator {
    public:
        using value_type = std::string_view;                  ///< element type
        using difference_type = std::ptrdiff_t;               ///< distance type
        using iterator_concept = std::forward_iterator_tag;   ///< multi-pass
        iterator() = default;                              ///< a singular iterator
        explicit iterator(const std::byte* p) : p_(p) {}   ///< at the element whose bytes start at p
        /// The string at this position.
        std::string_view operator*() const noexcept {
            return {reinterpret_cast<const char*>(p_ + 8), static_cast<std::size_t>(detail::gguf_load<std::uint64_t>(p_))};
        }
        /// Next string.
        iterator& operator++() noexcept {
            p_ += 8 + detail::gguf_load<std::uint64_t>(p_);
            return *this;
        }
        iterator operator++(int) noexcept { auto t = *this; ++*this; return t; }  ///< next
        bool operator==(const iterator&) const = default;  ///< same position
    private:
        const std::byte* p_ = nullptr;
    };

    gguf_string_array() = default;
    /// Views `n` strings starting at `p` and ending at `end` (unchecked: for the reader).
    gguf_string_array(const std::byte* p, const std::byte* end, std::size_t n) noexcept : p_(p), end_(end), n_(n) {}
    std::size_t size() const noexcept { return n_; }           ///< number of strings
    bool empty() const noexcept { return n_ == 0; }            ///< true when size() == 0
    iterator begin() const noexcept { return iterator(p_); }   ///< first string
    iterator end() const noexcept { return iterator(end_); }   ///< past the last
    /// The strings as views into the file, for random access.
    std::vector<std::string_view> to_vector() const {
        std::vector<std::string_view> out;
        out.reserve(n_);
        for (std::string_view s : *this) out.push_back(s);
        return out;
    }

private:
    const std::byte* p_ = nullptr;
    const std::byte* end_ = nullptr;
    std::size_t n_ = 0;
};

/// One metadata value of a GGUF file: its type and where its bytes are. The typed accessors
/// check the type and raise llm::error naming the file, the key and the byte offset.
class gguf_value {
public:
    gguf_value() = default;
    /// For the reader: a value of `type` (element type `element` and `count` elements for arrays)
    /// whose bytes start at `data`, file offset `offset`.
    gguf_value(const std::string* source, std::string_view key, gguf_type type, gguf_type element, std::uint64_t count,
               const std::byte* data, const std::byte* end, std::uint64_t offset) noexcept
        : source_(source), key_(key), data_(data), end_(end), count_(count), offset_(offset), type_(type), element_(element) {}

    gguf_type type() const noexcept { return type_; }  ///< gguf_type::array for arrays
    /// An array's element type; for a scalar, its own type.
    gguf_type element_type() const noexcept { return element_; }
    bool is_array() const noexcept { return type_ == gguf_type::array; }  ///< true for arrays
    std::uint64_t size() const noexcept { return count_; }                ///< array length (1 for scalars)
    /// Byte offset in the file of the value (after its type tag; for arrays, of the first element).
    std::uint64_t offset() const noexcept { return offset_; }
    std::string_view key() const noexcept { return key_; }  ///< the key

    /// The scalar, which must have exactly T's GGUF type (`get<std::uint32_t>` of a u32).
    template <detail::gguf_scalar T>
    T as() const {
        expect(detail::gguf_tag<T>::value, false);
        return detail::gguf_load<T>(data_);
    }
    /// Any integer scalar (u8 ... i64), converted to T; llm::error when out of T's range.
    template <std::integral T>
    T as_integer() const {
        auto in_range = [&](auto v) {
            check(std::in_range<T>(v), where(), "value ", v, " does not fit the requested integer type");
            return static_cast<T>(v);
        };
        switch (type_) {
        case gguf_type::u8: return in_range(detail::gguf_load<std::uint8_t>(data_));
        case gguf_type::i8: return in_range(detail::gguf_load<std::int8_t>(data_));
        case gguf_type::u16: return in_range(detail::gguf_load<std::uint16_t>(data_));
        case gguf_type::i16: return in_range(detail::gguf_load<std::int16_t>(data_));
        case gguf_type::u32: return in_range(detail::gguf_load<std::uint32_t>(data_));
        case gguf_type::i32: return in_range(detail::gguf_load<std::int32_t>(data_));
        case gguf_type::u64: return in_range(detail::gguf_load<std::uint64_t>(data_));
        case gguf_type::i64: return in_range(detail::gguf_load<std::int64_t>(data_));
        default: fail(where(), "is ", describe(), ", not an integer");
        }
    }
    /// The string (bytes as stored; GGUF strings are meant to be UTF-8, not checked here).
    std::string_view as_string() const {
        expect(gguf_type::string, false);
        return {reinterpret_cast<const char*>(data_ + 8), static_cast<std::size_t>(detail::gguf_load<std::uint64_t>(data_))};
    }
    /// The array, whose elements must have exactly T's GGUF type.
    template <detail::gguf_scalar T>
    gguf_array<T> as_array() const {
        expect(detail::gguf_tag<T>::value, true);
        return gguf_array<T>(data_, static_cast<std::size_t>(count_));
    }
    /// The array of strings.
    gguf_string_array as_strings() const {
        expect(gguf_type::string, true);
        return gguf_string_array(data_, end_, static_cast<std::size_t>(count_));
    }

private:
    std::string where() const { return llm::detail::concat(source_ ? *source_ : std::string(), ": offset ", offset_, ": key '", key_, "' "); }
    std::string describe() const {
        return is_array() ? llm::detail::concat("an array of ", detail::gguf_type_name(element_)) : std::string(detail::gguf_type_name(type_));
    }
    void expect(gguf_type t, bool array) const {
        if (is_array() != array || element_ != t) [[unlikely]]
            fail(where(), "is ", describe(), ", not ", array ? "an array of " : "", detail::gguf_type_name(t));
    }

    const std::string* source_ = nullptr;
    std::string_view key_;
    const std::byte* data_ = nullptr;
    const std::byte* end_ = nullptr;
    std::uint64_t count_ = 0;
    std::uint64_t offset_ = 0;
    gguf_type type_ = gguf_type::u8;
    gguf_type element_ = gguf_type::u8;
};

/// A metadata key and its value, as stored.
struct gguf_kv {
    std::string_view key;  ///< the key (bytes in the file)
    gguf_value value;      ///< its value
};

/// One tensor's description. Shapes: GGUF stores ggml's `ne`, whose ne[0] is the
/// fastest-moving (innermost) dimension. `extent(r)` / `shape()` give the row-major shape
/// instead (the order numpy and llm::tensor_view use): extent(0) = ne[n_dims - 1], ...,
/// extent(n_dims - 1) = ne[0]. A [rows, cols] weight matrix is stored with ne = {cols, rows}.
struct gguf_tensor_info {
    std::string_view name;                ///< tensor name (at most 63 bytes)
    ggml_type type = ggml_type::f32;      ///< element or block type
    std::uint32_t n_dims = 0;             ///< number of dimensions, 0..4
    std::array<std::uint64_t, 4> ne{1, 1, 1, 1};  ///< ggml order (ne[0] innermost); unused dims are 1
    std::uint64_t offset = 0;       ///< offset of the data from the start of the data section
    std::uint64_t file_offset = 0;  ///< offset of the data from the start of the file
    std::uint64_t n_elements = 0;   ///< product of ne
    std::uint64_t n_bytes = 0;      ///< bytes of data (without padding)
    std::uint64_t info_offset = 0;  ///< where this tensor info starts in the file

    /// Row-major extent r (see the struct's comment); r < n_dims.
    std::uint64_t extent(std::size_t r) const noexcept { return ne[n_dims - 1 - r]; }
    /// The row-major shape, n_dims entries.
    std::vector<std::uint64_t> shape() const {
        std::vector<std::uint64_t> s(n_dims);
        for (std::size_t r = 0; r < n_dims; ++r) s[r] = extent(r);
        return s;
    }
};

/// A parsed GGUF file (version 2 or 3): its metadata in file order with typed getters, and its
/// tensor infos with zero-copy access to their data. Open a file with `gguf_file::open` (a
/// read-only memory map: only the pages read are loaded, so the header of a 10 GB model costs
/// a few pages) or parse bytes already in memory with `gguf_file::parse`.
///
/// Validation is as strict as ggml's reader: magic and version; every count and length checked
/// against the bytes left before use; no empty, duplicate or nested-array keys; `general.alignment`
/// a u32 power of two up to 1 MiB; tensor names at most 63 bytes and unique; n_dims <= 4; ne >= 0;
/// ne[0] a multiple of the type's block size; element and byte counts without overflow; data
/// offsets equal to the running sum of padded sizes in file order; every tensor's data inside the
/// file. Every error is an llm::error naming the file, the field and the byte offset.
/// Example:
/// ```
/// auto f = llm::io::gguf_file::open("model.gguf");
/// auto arch = f.get_string("general.architecture");
/// auto w = f.view<float, 2>("token_embd.weight");  // [n_vocab, d_model]
/// ```
class gguf_file {
public:
    gguf_file() = default;                                   ///< an empty file (no tensors, no metadata)
    gguf_file(gguf_file&&) noexcept = default;               ///< moves (views into the mapping stay valid)
    gguf_file& operator=(gguf_file&&) noexcept = default;    ///< moves

    /// Maps `path` read-only and parses it; the mapping lives as long as the object.
    static gguf_file open(const std::string& path) {
        gguf_file g;
        g.file_ = mapped_file(path, "read_gguf");
        g.init(g.file_.bytes(), path);
        return g;
    }
    /// Reads every page of the file into memory and maps it now (llm::io::prefault), so the
    /// first pass over weights read in place takes no page faults.
    /// Example: `auto f = llm::io::gguf_file::open("m.gguf"); f.prefault();`
    void prefault() const noexcept { io::prefault(bytes_); }
    /// Parses bytes already in memory, which must outlive the result (nothing is copied);
    /// `source` names them in error messages.
    static gguf_file parse(std::span<const std::byte> bytes, std::string source) {
        gguf_file g;
        g.init(bytes, std::move(source));
        return g;
    }
    /// Parses characters already in memory (see the span overload).
    static gguf_file parse(std::string_view bytes, std::string source) {
        return parse(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), std::move(source));
    }

    std::uint32_t version() const noexcept { return version_; }            ///< 2 or 3
    std::uint32_t alignment() const noexcept { return alignment_; }        ///< tensor data alignment
    std::uint64_t data_offset() const noexcept { return data_offset_; }    ///< start of the data section
    const std::string& source() const noexcept { return *source_; }       ///< path or name given
    std::span<const std::byte> bytes() const noexcept { return bytes_; }   ///< the whole file

    /// Every key-value, in file order.
    std::span<const gguf_kv> metadata() const noexcept { return kv_; }
    /// The value of `key`, or null when absent.
    const gguf_value* find(std::string_view key) const noexcept {
        const auto it = kv_index_.find(key);
        return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
    }
    /// The value of `key`; llm::error when absent.
    const gguf_value& at(std::string_view key) const {
        const gguf_value* v = find(key);
        if (!v) [[unlikely]] fail(*source_, ": no metadata key '", key, "'");
        return *v;
    }
    /// The scalar of `key`, which must have exactly T's GGUF type.
    template <detail::gguf_scalar T>
    T get(std::string_view key) const { return at(key).as<T>(); }
    /// The string of `key`.
    std::string_view get_string(std::string_view key) const { return at(key).as_string(); }
    /// The numeric array of `key`, elements of exactly T's GGUF type.
    template <detail::gguf_scalar T>
    gguf_array<T> get_array(std::string_view key) const { return at(key).as_array<T>(); }
    /// The string array of `key`.
    gguf_string_array get_strings(std::string_view key) const { return at(key).as_strings(); }

    /// Every tensor info, in file order.
    std::span<const gguf_tensor_info> tensors() const noexcept { return tensors_; }
    /// The tensor named `name`, or null.
    const gguf_tensor_info* find_tensor(std::string_view name) const noexcept {
        const auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }
    /// The tensor named `name`; llm::error when absent.
    const gguf_tensor_info& tensor(std::string_view name) const {
        const gguf_tensor_info* t = find_tensor(name);
        if (!t) [[unlikely]] fail(*source_, ": no tensor '", name, "'");
        return *t;
    }
    /// A tensor's data bytes (raw blocks for quantized types), without padding.
    std::span<const std::byte> tensor_bytes(const gguf_tensor_info& t) const noexcept {
        return bytes_.subspan(static_cast<std::size_t>(t.file_offset), static_cast<std::size_t>(t.n_bytes));
    }
    /// A tensor's data bytes by name.
    std::span<const std::byte> tensor_bytes(std::string_view name) const { return tensor_bytes(tensor(name)); }

    /// A zero-copy view of an f32 (float), f16 (llm::f16) or bf16 (llm::bf16) tensor with its
    /// row-major shape (see gguf_tensor_info). The tensor's type must be T's and its n_dims must
    /// be Rank; its data must be aligned for T (it is with the usual alignments >= 4).
    template <detail::gguf_view_element T, std::size_t Rank>
    tensor_view<const T, dims<Rank>> view(std::string_view name) const {
        const gguf_tensor_info& t = tensor(name);
        check(t.type == detail::ggml_type_of<T>, *source_, ": tensor '", name, "' is ", ggml_type_name(t.type), ", not ",
              ggml_type_name(detail::ggml_type_of<T>));
        check(t.n_dims == Rank, *source_, ": tensor '", name, "' has ", t.n_dims, " dimensions, not ", Rank);
        const std::byte* p = bytes_.data() + t.file_offset;
        check(reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0, *source_, ": offset ", t.file_offset, ": tensor '", name,
              "' data is not aligned for its element type");
        std::array<std::size_t, Rank> e{};
        for (std::size_t r = 0; r < Rank; ++r) e[r] = static_cast<std::size_t>(t.extent(r));
        return tensor_view<const T, dims<Rank>>(reinterpret_cast<const T*>(p), dims<Rank>(e));
    }

private:
    // A bounds-checked cursor over the file; every read names the field and the offset.
    struct cursor {
        std::span<const std::byte> b;
        const std::string& src;
        std::uint64_t p = 0;

        std::uint64_t left() const noexcept { return b.size() - p; }
        void need(std::uint64_t n, std::string_view what) const {
            if (n > left()) [[unlikely]]
                fail(src, ": offset ", p, ": truncated ", what, " (needs ", n, " bytes, ", left(), " left)");
        }
        template <class T>
        T read(std::string_view what) {
            need(sizeof(T), what);
            const T v = detail::gguf_load<T>(b.data() + p);
            p += sizeof(T);
            return v;
        }
        std::string_view string(std::string_view what) {
            const std::uint64_t at = p;
            const auto n = read<std::uint64_t>(what);
            if (n > gguf_max_string_length) [[unlikely]]
                fail(src, ": offset ", at, ": ", what, " length ", n, " exceeds the limit of ", gguf_max_string_length, " bytes");
            if (n > left()) [[unlikely]]
                fail(src, ": offset ", at, ": ", what, " length ", n, " runs past the end of the file (", left(), " bytes left)");
            const std::string_view s(reinterpret_cast<const char*>(b.data() + p), static_cast<std::size_t>(n));
            p += n;
            return s;
        }
    };

    void init(std::span<const std::byte> bytes, std::string source) {
        static_assert(sizeof(std::size_t) == 8, "GGUF offsets are 64-bit");
        bytes_ = bytes;
        source_ = std::make_unique<std::string>(std::move(source));
        const std::string& src = *source_;
        cursor c{bytes_, src};

        c.need(4, "magic");
        check(std::memcmp(bytes_.data(), "GGUF", 4) == 0, src, ": offset 0: not a GGUF file (magic is not 'GGUF')");
        c.p = 4;
        version_ = c.read<std::uint32_t>("version");
        check(version_ == 0 || (version_ & 0xFFFF) != 0, src, ": offset 4: version ", version_,
              " looks byte-swapped: big-endian GGUF files are not supported");
        check(version_ == 2 || version_ == 3, src, ": offset 4: GGUF version ", version_, " is not supported (2 or 3)");
        const auto n_tensors = c.read<std::uint64_t>("tensor count");
        const auto n_kv = c.read<std::uint64_t>("key-value count");
        // A key-value takes at least 13 bytes (key length, type, 1-byte value), a tensor info 24
        // (name length, n_dims, type, offset): larger counts are lies, refused before any allocation.
        check(n_kv <= c.left() / 13, src, ": offset 16: key-value count ", n_kv, " is more than the ", c.left(), " bytes left can hold");
        check(n_tensors <= c.left() / 24, src, ": offset 8: tensor count ", n_tensors, " is more than the ", c.left(), " bytes left can hold");

        read_metadata(c, n_kv);
        read_tensor_infos(c, n_tensors);
        layout_data(c);
    }

    void read_metadata(cursor& c, std::uint64_t n_kv) {
        const std::string& src = *source_;
        kv_.reserve(static_cast<std::size_t>(n_kv));
        kv_index_.reserve(static_cast<std::size_t>(n_kv));
        for (std::uint64_t k = 0; k < n_kv; ++k) {
            const std::uint64_t key_at = c.p;
            const std::string_view key = c.string("key");
            check(!key.empty(), src, ": offset ", key_at, ": key ", k, " is empty");
            check(kv_index_.emplace(key, kv_.size()).second, src, ": offset ", key_at, ": duplicate key '", key, "'");
            const std::uint64_t type_at = c.p;
            const auto type = c.read<std::uint32_t>("value type");
            check(detail::gguf_type_known(type), src, ": offset ", type_at, ": key '", key, "' has unknown value type ", type);
            gguf_type element = static_cast<gguf_type>(type);
            std::uint64_t count = 1;
            if (element == gguf_type::array) {
                const std::uint64_t et_at = c.p;
                const auto et = c.read<std::uint32_t>("array element type");
                check(detail::gguf_type_known(et), src, ": offset ", et_at, ": array '", key, "' has unknown element type ", et);
                check(static_cast<gguf_type>(et) != gguf_type::array, src, ": offset ", et_at, ": array '", key,
                      "' holds arrays; nested arrays are not supported");
                element = static_cast<gguf_type>(et);
                const std::uint64_t n_at = c.p;
                count = c.read<std::uint64_t>("array length");
                // Smallest element: its scalar size, or 8 bytes (the length) for a string.
                const std::uint64_t min_size = element == gguf_type::string ? 8 : detail::gguf_scalar_size(element);
                check(count <= gguf_max_array_length, src, ": offset ", n_at, ": array '", key, "' length ", count,
                      " exceeds the limit of ", gguf_max_array_length);
                check(count <= c.left() / min_size, src, ": offset ", n_at, ": array '", key, "' length ", count,
                      " runs past the end of the file (", c.left(), " bytes left)");
            }
            const std::uint64_t value_at = c.p;
            if (element == gguf_type::string) {
                for (std::uint64_t e = 0; e < count; ++e) (void)c.string(count == 1 && type != 9 ? "string" : "array string");
            } else {
                const std::uint64_t n = count * detail::gguf_scalar_size(element);  // count <= left / size: no overflow
                c.need(n, "value");
                c.p += n;
            }
            kv_.push_back({key, gguf_value(source_.get(), key, static_cast<gguf_type>(type), element, count, bytes_.data() + value_at,
                                           bytes_.data() + c.p, value_at)});
        }
        if (const gguf_value* a = find("general.alignment")) {
            check(a->type() == gguf_type::u32, src, ": offset ", a->offset(), ": 'general.alignment' must be u32, not ",
                  detail::gguf_type_name(a->type()));
            alignment_ = a->as<std::uint32_t>();
            check(alignment_ != 0 && (alignment_ & (alignment_ - 1)) == 0 && alignment_ <= gguf_max_alignment, src, ": offset ",
                  a->offset(), ": general.alignment ", alignment_, " is not a power of two up to ", gguf_max_alignment);
        }
    }

    void read_tensor_infos(cursor& c, std::uint64_t n_tensors) {
        const std::string& src = *source_;
        check(n_tensors <= c.left() / 24, src, ": offset 8: tensor count ", n_tensors, " is more than the ", c.left(),
              " bytes left after the metadata can hold");
        tensors_.reserve(static_cast<std::size_t>(n_tensors));
        tensor_index_.reserve(static_cast<std::size_t>(n_tensors));
        constexpr std::uint64_t max_i64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        for (std::uint64_t i = 0; i < n_tensors; ++i) {
            gguf_tensor_info t;
            t.info_offset = c.p;
            t.name = c.string("tensor name");
            check(t.name.size() <= gguf_max_name_length, src, ": offset ", t.info_offset, ": tensor name '", t.name, "' has ", t.name.size(),
                  " bytes, more than ", gguf_max_name_length);
            check(tensor_index_.emplace(t.name, tensors_.size()).second, src, ": offset ", t.info_offset, ": duplicate tensor name '",
                  t.name, "'");
            const std::uint64_t dims_at = c.p;
            t.n_dims = c.read<std::uint32_t>("n_dims");
            check(t.n_dims <= gguf_max_dims, src, ": offset ", dims_at, ": tensor '", t.name, "' has ", t.n_dims, " dimensions, more than ",
                  gguf_max_dims);
            t.n_elements = 1;
            bool overflow = false;
            for (std::uint32_t d = 0; d < t.n_dims; ++d) {
                const std::uint64_t ne_at = c.p;
                t.ne[d] = c.read<std::uint64_t>("ne");
                check(t.ne[d] <= max_i64, src, ": offset ", ne_at, ": tensor '", t.name, "' ne[", d, "] = ",
                      static_cast<std::int64_t>(t.ne[d]), " is negative");
                overflow = overflow || __builtin_mul_overflow(t.n_elements, t.ne[d], &t.n_elements);
            }
            check(!overflow && t.n_elements <= max_i64, src, ": offset ", dims_at, ": tensor '", t.name, "' has more than 2^63 - 1 elements");
            const std::uint64_t type_at = c.p;
            const auto type = c.read<std::uint32_t>("ggml type");
            check(ggml_type_valid(type), src, ": offset ", type_at, ": tensor '", t.name, "' has invalid ggml type ", type);
            t.type = static_cast<ggml_type>(type);
            const ggml_type_traits tr = ggml_traits(t.type);
            check(t.ne[0] % tr.block_size == 0, src, ": offset ", dims_at, ": tensor '", t.name, "' of type ", tr.name, " has ne[0] = ", t.ne[0],
                  ", not a multiple of the block size ", tr.block_size);
            // n_elements / block_size blocks; ne[0] is a multiple of block_size, so this is exact.
            const bool too_big = __builtin_mul_overflow(t.n_elements / tr.block_size, std::uint64_t{tr.type_size}, &t.n_bytes);
            check(!too_big && t.n_bytes <= max_i64, src, ": offset ", dims_at, ": tensor '", t.name, "' byte size overflows");
            t.offset = c.read<std::uint64_t>("tensor data offset");
            tensors_.push_back(t);
        }
    }

    void layout_data(cursor& c) {
        const std::string& src = *source_;
        // The data section starts at the next multiple of the alignment (ggml pads only when there
        // are tensors; GGUFWriter pads always, which the rule accepts).
        data_offset_ = tensors_.empty() ? c.p : detail::gguf_pad(c.p, alignment_);
        const std::uint64_t size = bytes_.size();
        check(tensors_.empty() || data_offset_ <= size, src, ": offset ", c.p, ": the data section would start at ", data_offset_,
              ", past the end of the file (", size, " bytes)");
        std::uint64_t expected = 0;
        for (gguf_tensor_info& t : tensors_) {
            check(t.offset == expected, src, ": offset ", t.info_offset, ": tensor '", t.name, "' data offset is ", t.offset, ", expected ",
                  expected, " (offsets follow the tensors in file order, each padded to the alignment ", alignment_, ")");
            check(t.n_bytes <= size - data_offset_ && t.offset <= size - data_offset_ - t.n_bytes, src, ": offset ", t.info_offset,
                  ": tensor '", t.name, "' data (", t.n_bytes, " bytes at file offset ", data_offset_ + t.offset, ") runs past the end of the file (",
                  size, " bytes)");
            t.file_offset = data_offset_ + t.offset;
            // Within the file, so far below 2^64 - alignment: the padding cannot overflow.
            expected = detail::gguf_pad(t.offset + t.n_bytes, alignment_);
        }
    }

    mapped_file file_;
    std::span<const std::byte> bytes_;
    std::unique_ptr<std::string> source_ = std::make_unique<std::string>();  // stable address for gguf_value
    std::uint32_t version_ = 3;
    std::uint32_t alignment_ = gguf_default_alignment;
    std::uint64_t data_offset_ = 0;
    std::vector<gguf_kv> kv_;
    std::unordered_map<std::string_view, std::size_t> kv_index_;
    std::vector<gguf_tensor_info> tensors_;
    std::unordered_map<std::string_view, std::size_t> tensor_index_;
};

/// Builds a GGUF version 3 file: metadata in insertion order, then tensors in insertion order,
/// each padded to the alignment. The output is byte-identical to gguf-py's GGUFWriter given the
/// same key-values and tensors in the same order (GGUFWriter adds `general.architecture` first
/// on its own: add it first here to match; it also drops empty strings and arrays, which this
/// writer keeps). Tensor data is not copied: the spans and views given must stay valid until
/// write() or to_bytes().
/// Example:
/// ```
/// llm::io::gguf_writer w;
/// w.add("general.architecture", "llama");
/// w.add<std::uint32_t>("llama.block_count", 2);
/// w.add_tensor("output_norm.weight", norm_view);  // tensor_view<const float, dims<1>>
/// w.write("tiny.gguf");
/// ```
class gguf_writer {
public:
    /// Adds a scalar key-value (T: std::uint8_t ... std::int64_t, float, double, bool).
    template <detail::gguf_scalar T>
    void add(std::string_view key, T value) {
        begin_kv(key, detail::gguf_tag<T>::value);
        put(value);
    }
    /// Adds a string key-value.
    void add(std::string_view key, std::string_view value) {
        begin_kv(key, gguf_type::string);
        put_string(value);
    }
    /// Adds a string key-value (a literal would otherwise convert to bool).
    void add(std::string_view key, const char* value) { add(key, std::string_view(value)); }
    /// Adds an array of numbers or bools.
    template <detail::gguf_scalar T>
    void add_array(std::string_view key, std::span<const T> values) {
        begin_kv(key, gguf_type::array);
        put(static_cast<std::uint32_t>(detail::gguf_tag<T>::value));
        put(static_cast<std::uint64_t>(values.size()));
        for (const T& v : values) put(v);
    }
    /// Adds an array of strings (anything convertible to std::string_view).
    template <class S>
        requires std::is_convertible_v<const S&, std::string_view>
    void add_array(std::string_view key, std::span<const S> values) {
        begin_kv(key, gguf_type::array);
        put(static_cast<std::uint32_t>(gguf_type::string));
        put(static_cast<std::uint64_t>(values.size()));
        for (const S& v : values) put_string(std::string_view(v));
    }
    /// Adds an array from a vector (numbers, bools or strings).
    template <class T>
    void add_array(std::string_view key, const std::vector<T>& values) { add_array(key, std::span<const T>(values)); }

    /// Sets the tensor data alignment (a power of two up to 1 MiB) and records it as the u32
    /// key `general.alignment` at this point of the metadata, as GGUFWriter's add_custom_alignment.
    void set_alignment(std::uint32_t alignment) {
        check(alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= gguf_max_alignment,
              "gguf_writer::set_alignment: alignment ", alignment, " is not a power of two up to ", gguf_max_alignment);
        add<std::uint32_t>("general.alignment", alignment);
        alignment_ = alignment;
    }

    /// Adds an f32, f16 or bf16 tensor from a dense row-major view (rank 1 to 4); the file gets
    /// ggml's reversed ne order (see gguf_tensor_info).
    template <class T, class Extents>
        requires detail::gguf_view_element<std::remove_const_t<T>>
    void add_tensor(std::string_view name, const tensor_view<T, Extents>& v) {
        constexpr std::size_t rank = Extents::rank();
        static_assert(rank >= 1 && rank <= gguf_max_dims, "gguf_writer::add_tensor: GGUF tensors have 1 to 4 dimensions");
        check(v.data() != nullptr || v.size() == 0, "gguf_writer::add_tensor: tensor '", name, "' has no data");
        std::array<std::uint64_t, rank> shape{};
        for (std::size_t r = 0; r < rank; ++r) shape[r] = v.extent(r);
        add_tensor(name, detail::ggml_type_of<std::remove_const_t<T>>, shape,
                   std::as_bytes(std::span<const std::remove_const_t<T>>(v.data(), v.size())));
    }

    /// Adds a tensor of any ggml type from its raw bytes (quantized blocks as stored) and its
    /// row-major shape (1 to 4 extents, in elements; the last a multiple of the block size).
    void add_tensor(std::string_view name, ggml_type type, std::span<const std::uint64_t> shape, std::span<const std::byte> data) {
        const char* fn = "gguf_writer::add_tensor";
        check(name.size() <= gguf_max_name_length, fn, ": tensor name '", name, "' has ", name.size(), " bytes, more than ", gguf_max_name_length);
        check(ggml_type_valid(static_cast<std::uint32_t>(type)), fn, ": tensor '", name, "' has invalid ggml type ", static_cast<std::uint32_t>(type));
        check(!shape.empty() && shape.size() <= gguf_max_dims, fn, ": tensor '", name, "' has ", shape.size(), " dimensions (1 to 4)");
        const ggml_type_traits tr = ggml_traits(type);
        entry e{std::string(name), type, static_cast<std::uint32_t>(shape.size()), {1, 1, 1, 1}, data};
        std::uint64_t n = 1;
        bool overflow = false;
        for (std::size_t r = 0; r < shape.size(); ++r) {
            e.ne[r] = shape[shape.size() - 1 - r];
            overflow = overflow || __builtin_mul_overflow(n, e.ne[r], &n);
        }
        check(e.ne[0] % tr.block_size == 0, fn, ": tensor '", name, "' of type ", tr.name, " has a last extent of ", e.ne[0],
              ", not a multiple of the block size ", tr.block_size);
        std::uint64_t bytes = 0;
        overflow = overflow || __builtin_mul_overflow(n / tr.block_size, std::uint64_t{tr.type_size}, &bytes);
        check(!overflow && bytes == data.size(), fn, ": tensor '", name, "' of type ", tr.name, " needs ", overflow ? 0 : bytes,
              " bytes for its shape, got ", data.size());
        check(names_.insert(e.name).second, fn, ": duplicate tensor name '", name, "'");
        tensors_.push_back(std::move(e));
    }

    /// The whole file in memory.
    std::string to_bytes() const {
        std::string out = header();
        for (const entry& t : tensors_) {
            out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
            out.append(padding(t.data.size()), '\0');
        }
        return out;
    }

    /// Writes the file atomically (temporary, fsync, rename: see atomic_file).
    void write(const std::string& path) const {
        atomic_file f(path, "gguf_writer::write");
        f.write(header());
        const std::string zeros(alignment_, '\0');
        for (const entry& t : tensors_) {
            f.write(t.data);
            f.write(std::string_view(zeros).substr(0, padding(t.data.size())));
        }
        f.commit();
    }

private:
    struct entry {
        std::string name;
        ggml_type type;
        std::uint32_t n_dims;
        std::array<std::uint64_t, 4> ne;
        std::span<const std::byte> data;
    };

    std::size_t padding(std::uint64_t n) const noexcept { return static_cast<std::size_t>(detail::gguf_pad(n, alignment_) - n); }

    template <class T>
    static void put_to(std::string& out, T v) {
        if constexpr (std::is_same_v<T, bool>) {
            out.push_back(v ? '\1' : '\0');
        } else {
            char b[sizeof(T)];
            std::memcpy(b, &v, sizeof v);
            out.append(b, sizeof b);
        }
    }
    template <class T>
    void put(T v) { put_to(kv_bytes_, v); }
    static void put_string_to(std::string& out, std::string_view s) {
        put_to(out, static_cast<std::uint64_t>(s.size()));
        out.append(s);
    }
    void put_string(std::string_view s) { put_string_to(kv_bytes_, s); }

    void begin_kv(std::string_view key, gguf_type t) {
        check(!key.empty(), "gguf_writer::add: key is empty");
        check(keys_.insert(std::string(key)).second, "gguf_writer::add: duplicate key '", key, "'");
        put_string(key);
        put(static_cast<std::uint32_t>(t));
        ++n_kv_;
    }

    // Magic, version 3, counts, metadata, tensor infos and the padding up to the data section.
    std::string header() const {
        std::string out("GGUF");
        put_to(out, std::uint32_t{3});
        put_to(out, static_cast<std::uint64_t>(tensors_.size()));
        put_to(out, n_kv_);
        out += kv_bytes_;
        std::uint64_t offset = 0;
        for (const entry& t : tensors_) {
            put_string_to(out, t.name);
            put_to(out, t.n_dims);
            for (std::uint32_t d = 0; d < t.n_dims; ++d) put_to(out, t.ne[d]);
            put_to(out, static_cast<std::uint32_t>(t.type));
            put_to(out, offset);
            offset += detail::gguf_pad(t.data.size(), alignment_);
        }
        out.append(padding(out.size()), '\0');
        return out;
    }

    std::string kv_bytes_;
    std::uint64_t n_kv_ = 0;
    std::unordered_set<std::string> keys_;
    std::unordered_set<std::string> names_;
    std::vector<entry> tensors_;
    std::uint32_t alignment_ = gguf_default_alignment;
};

}  // namespace llm::io
