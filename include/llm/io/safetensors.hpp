// SPDX-License-Identifier: Apache-2.0
// safetensors: zero-copy, fully validated reading (one file or a sharded checkpoint) and a writer
// whose bytes equal the Python `safetensors` package's.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/core/utf8.hpp>
#include <llm/io/atomic_file.hpp>
#include <llm/io/dtype.hpp>
#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::io {

/// The largest header a safetensors reader accepts (and the writer produces): 100,000,000
/// bytes, the limit of the reference implementation.
inline constexpr std::size_t safetensors_max_header = 100'000'000;

/// One tensor of a safetensors file, or one to write: its name, dtype, row-major shape and
/// little-endian bytes. Read from a file, `data` points into the mapped file (zero-copy) and
/// lives as long as the reader.
struct safetensors_tensor {
    std::string name;                 ///< The tensor's name (the header key).
    io::dtype dtype = io::dtype::F32;  ///< The element type.
    std::vector<std::size_t> shape;   ///< Extents, outermost first; empty for a 0-d tensor.
    std::span<const std::byte> data;  ///< The bytes: elements x dtype_bits / 8 of them.

    /// The number of elements (product of the shape, 1 for a 0-d tensor). Readers have checked
    /// that it does not overflow; for tensors to write, the writer checks it.
    std::size_t elements() const noexcept {
        std::size_t n = 1;
        for (const std::size_t e : shape) n *= e;
        return n;
    }

    /// A tensor to write from a contiguous view of plain memory (llm::direct_access; llm::error
    /// when it is not contiguous).
    /// The view's elements must outlive the write. Example:
    /// `auto t = llm::io::safetensors_tensor::from_view("w", w.view());`
    template <tensor_view_like V>
        requires has_dtype<typename V::value_type> && direct_access<V>
    static safetensors_tensor from_view(std::string name, const V& v) {
        using T = typename V::value_type;
        check(v.is_contiguous(), "safetensors_tensor::from_view: tensor '", name, "' is not contiguous (strides ",
              llm::detail::tensor_impl::strides_string(v), ")");
        safetensors_tensor t{std::move(name), dtype_of<T>, {}, {}};
        for (std::size_t r = 0; r < V::rank(); ++r) t.shape.push_back(v.extent(r));
        t.data = std::as_bytes(std::span<const T>(v.data(), v.size()));
        return t;
    }
};

namespace detail {

inline std::string safetensors_shape(const std::vector<std::size_t>& shape) {
    std::string s = "[";
    for (std::size_t r = 0; r < shape.size(); ++r) {
        if (r) s += ", ";
        s += std::to_string(shape[r]);
    }
    s += ']';
    return s;
}

// The element count of `shape`, or llm::error naming `where` when it overflows std::size_t.
template <class... Where>
std::size_t safetensors_elements(const std::vector<std::size_t>& shape, const Where&... where) {
    std::size_t n = 1;
    for (const std::size_t d : shape) {
        if (d != 0 && n > std::numeric_limits<std::size_t>::max() / d) [[unlikely]]
            fail(where..., ": the element count of shape ", detail::safetensors_shape(shape), " overflows std::size_t");
        n *= d;
    }
    return n;
}

// The byte count of `elements` elements of dtype t, or llm::error (overflow, or a packed type
// whose elements do not fill whole bytes), naming `where`.
template <class... Where>
std::size_t safetensors_nbytes(std::size_t elements, io::dtype t, const Where&... where) {
    check(elements <= std::numeric_limits<std::size_t>::max() / dtype_bits(t), where..., ": ", elements,
          " elements of ", dtype_name(t), " overflow std::size_t bits");
    const std::size_t bits = elements * dtype_bits(t);
    check(bits % 8 == 0, where..., ": ", elements, " elements of ", dtype_name(t), " (", dtype_bits(t),
          " bits each) do not fill whole bytes");
    return bits / 8;
}

}  // namespace detail

/// The read API shared by safetensors_file and safetensors_checkpoint: the tensors in data
/// order, found by name, as raw bytes or typed zero-copy views, and the `__metadata__` map.
/// Not constructed directly.
class safetensors_reader {
public:
    /// Number of tensors.
    std::size_t size() const noexcept { return entries_.size(); }
    /// True when there are no tensors.
    bool empty() const noexcept { return entries_.empty(); }

    /// The i-th tensor in file order (by data offset; shard by shard). i < size() (llm::error otherwise).
    const safetensors_tensor& operator[](std::size_t i) const {
        check(i < entries_.size(), "safetensors: tensor index ", i, " out of range (", entries_.size(), " tensors)");
        return entries_[i].tensor;
    }

    /// The tensor names in file order.
    std::vector<std::string_view> names() const {
        std::vector<std::string_view> out;
        out.reserve(entries_.size());
        for (const entry& e : entries_) out.push_back(e.tensor.name);
        return out;
    }

    /// The tensor called `name`, or nullptr.
    const safetensors_tensor* find(std::string_view name) const noexcept {
        const entry* e = lookup(name);
        return e ? &e->tensor : nullptr;
    }
    /// True when a tensor is called `name`.
    bool contains(std::string_view name) const noexcept { return lookup(name) != nullptr; }

    /// The tensor called `name` (dtype, shape, raw bytes); llm::error naming the file when missing.
    const safetensors_tensor& tensor(std::string_view name) const { return get(name, "safetensors::tensor").tensor; }

    /// The raw little-endian bytes of tensor `name`: always available, whatever the dtype or
    /// alignment.
    std::span<const std::byte> bytes(std::string_view name) const { return get(name, "safetensors::bytes").tensor.data; }

    /// A zero-copy typed view of tensor `name` with its shape, which must have `Rank`
    /// dimensions. llm::error (naming the tensor, its file and offset) when the stored dtype
    /// is not T's, the rank differs, the data is misaligned for T (possible in a hostile file;
    /// use bytes() then), or a BOOL tensor holds a byte other than 0 or 1.
    /// Example: `auto w = st.view<llm::bf16, 2>("lm_head.weight");  // tensor_view<const bf16, dims<2>>`
    template <has_dtype T, std::size_t Rank>
    tensor_view<const T, dims<Rank>> view(std::string_view name) const {
        const entry& e = checked_typed<T>(name, "safetensors::view");
        if (e.tensor.shape.size() != Rank) [[unlikely]]
            fail("safetensors::view: tensor '", e.tensor.name, "' in '", files_[e.file], "' has rank ", e.tensor.shape.size(),
                 " (shape ", detail::safetensors_shape(e.tensor.shape), "), requested rank ", Rank);
        std::array<std::size_t, Rank> ext{};
        if constexpr (Rank > 0)
            for (std::size_t r = 0; r < Rank; ++r) ext[r] = e.tensor.shape[r];
        return tensor_view<const T, dims<Rank>>(typed_pointer<T>(e), dims<Rank>(ext));
    }

    /// All elements of tensor `name` as a one-dimensional view (any rank; checks as view()).
    template <has_dtype T>
    tensor_view<const T, dims<1>> flat_view(std::string_view name) const {
        const entry& e = checked_typed<T>(name, "safetensors::flat_view");
        return tensor_view<const T, dims<1>>(typed_pointer<T>(e), e.tensor.elements());
    }

    /// The `__metadata__` map (string to string); empty when the file has none.
    const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

    /// The byte offset of tensor `name`'s data in its file.
    std::size_t data_offset(std::string_view name) const { return get(name, "safetensors::data_offset").data_offset; }

    /// The file holding tensor `name` (as it was opened).
    const std::string& file_of(std::string_view name) const { return files_[get(name, "safetensors::file_of").file]; }

protected:
    /// One tensor and where it came from (for error messages).
    struct entry {
        safetensors_tensor tensor;      ///< the tensor (data points into its mapped file)
        std::size_t data_offset = 0;    ///< of the data, in its file
        std::size_t header_offset = 0;  ///< of the tensor's JSON value, in its file
        std::size_t file = 0;           ///< index into files_
    };

    /// Builds the name index; two tensors with one name are an error naming both places.
    void build_index(const char* function) {
        by_name_.resize(entries_.size());
        for (std::size_t i = 0; i < by_name_.size(); ++i) by_name_[i] = i;
        std::sort(by_name_.begin(), by_name_.end(),
                  [&](std::size_t a, std::size_t b) { return entries_[a].tensor.name < entries_[b].tensor.name; });
        for (std::size_t k = 1; k < by_name_.size(); ++k) {
            const entry& a = entries_[by_name_[k - 1]];
            const entry& b = entries_[by_name_[k]];
            check(a.tensor.name != b.tensor.name, function, ": tensor '", b.tensor.name, "' appears twice: in '",
                  files_[a.file], "' at byte ", a.header_offset, " and in '", files_[b.file], "' at byte ",
                  b.header_offset);
        }
    }

    /// The entry named `name`, or null.
    const entry* lookup(std::string_view name) const noexcept {
        const auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                                         [&](std::size_t i, std::string_view n) { return entries_[i].tensor.name < n; });
        return it != by_name_.end() && entries_[*it].tensor.name == name ? &entries_[*it] : nullptr;
    }

    /// The entry named `name`; llm::error naming `function` when there is none.
    const entry& get(std::string_view name, const char* function) const {
        const entry* e = lookup(name);
        if (!e) [[unlikely]] {
            fail(function, ": no tensor '", name, "' in '", files_.empty() ? std::string() : files_.front(), "'",
                 files_.size() > 1 ? " or the other " + std::to_string(files_.size() - 1) + " shards" : std::string());
        }
        return *e;
    }

    /// The entry named `name`, checked readable as T (dtype, endianness, alignment, bool bytes).
    template <class T>
    const entry& checked_typed(std::string_view name, const char* function) const {
        const entry& e = get(name, function);
        const safetensors_tensor& t = e.tensor;
        check(t.dtype == dtype_of<T>, function, ": tensor '", t.name, "' in '", files_[e.file], "' (entry at byte ",
              e.header_offset, ") stores ", dtype_name(t.dtype), " but ", dtype_cpp_name(dtype_of<T>), " (",
              dtype_name(dtype_of<T>), ") was requested");
        check(sizeof(T) == 1 || std::endian::native == std::endian::little, function, ": tensor '", t.name,
              "': typed views of multi-byte elements need a little-endian machine; use bytes()");
        check(t.data.empty() || reinterpret_cast<std::uintptr_t>(t.data.data()) % alignof(T) == 0, function,
              ": tensor '", t.name, "' in '", files_[e.file], "': data at file byte ", e.data_offset,
              " is not aligned to ", alignof(T), " bytes for ", dtype_cpp_name(dtype_of<T>), "; read it with bytes()");
        if constexpr (std::is_same_v<std::remove_cv_t<T>, bool>) {
            // Any byte but 0 and 1 is not a bool value: reading it as bool would be undefined.
            for (std::size_t i = 0; i < t.data.size(); ++i)
                check(std::to_integer<unsigned>(t.data[i]) <= 1, function, ": BOOL tensor '", t.name, "' in '",
                      files_[e.file], "' holds byte ", std::to_integer<unsigned>(t.data[i]), " at file byte ",
                      e.data_offset + i, "; a bool must be 0 or 1");
        }
        return e;
    }

    /// The entry's elements as T (after checked_typed).
    template <class T>
    static const T* typed_pointer(const entry& e) noexcept {
        // Elements live in the mapped file; the checks above made the address valid for T.
        return reinterpret_cast<const T*>(e.tensor.data.data());
    }

    std::vector<entry> entries_;                   ///< tensors in data order (shard by shard)
    std::vector<std::size_t> by_name_;             ///< indices into entries_, sorted by name
    std::vector<std::string> files_;               ///< the files, as opened
    std::map<std::string, std::string> metadata_;  ///< `__metadata__`

    safetensors_reader() = default;
};

namespace detail {

// Parses an unsigned integer JSON value exactly from its text (a double would round above
// 2^53): digits only, no sign, fraction or exponent, at most 2^64 - 1 and SIZE_MAX.
inline std::size_t safetensors_uint(const json_value& v, std::string_view text, std::size_t base, const char* function,
                                    const std::string& file, const std::string& tensor, const char* field) {
    check(v.is_number(), function, ": '", file, "', tensor '", tensor, "': ", field, " at byte ", base + v.offset(),
          " is not a number");
    std::size_t p = v.offset();
    std::uint64_t x = 0;
    bool overflow = false;
    for (; p < text.size() && text[p] >= '0' && text[p] <= '9'; ++p) {
        const auto d = static_cast<std::uint64_t>(text[p] - '0');
        overflow = overflow || x > (std::numeric_limits<std::uint64_t>::max() - d) / 10;
        x = x * 10 + d;
    }
    const bool integral = p > v.offset() && (p == text.size() || (text[p] != '.' && text[p] != 'e' && text[p] != 'E'));
    check(integral, function, ": '", file, "', tensor '", tensor, "': ", field, " at byte ", base + v.offset(),
          " is not a non-negative integer");
    check(!overflow && x <= std::numeric_limits<std::size_t>::max(), function, ": '", file, "', tensor '", tensor,
          "': ", field, " at byte ", base + v.offset(), " does not fit in 64 bits");
    return static_cast<std::size_t>(x);
}

}  // namespace detail

/// One safetensors file, memory-mapped and validated on open; tensors are zero-copy views
/// into the map. Validation follows the reference implementation: header length at most
/// 100,000,000 and inside the file, header valid UTF-8 JSON object, no duplicate names,
/// known dtypes, `data_offsets` [begin, end] with begin <= end that tile the data buffer in
/// order (the first at 0, each where the previous ends, no gap or overlap), end - begin =
/// elements x dtype size, shapes whose element count does not overflow, and the buffer ending
/// exactly at the end of the file. Every error is an llm::error naming the file, the tensor
/// and the byte offset. Movable, not copyable.
/// Example:
/// ```
/// llm::io::safetensors_file f("model.safetensors");
/// auto w = f.view<llm::bf16, 2>("lm_head.weight");
/// auto raw = f.bytes("lm_head.weight");
/// ```
class safetensors_file : public safetensors_reader {
public:
    /// An empty reader (no tensors).
    safetensors_file() = default;

    /// Maps and validates the file at `path`.
    explicit safetensors_file(const std::string& path) : map_(path, "safetensors_file") { parse_bytes(map_.bytes(), path); }

    /// Maps and validates the file at `path` (the constructor, named as gguf_file::open is).
    static safetensors_file open(const std::string& path) { return safetensors_file(path); }

    /// Validates a safetensors file held in memory; the result borrows `bytes` (zero-copy),
    /// which must outlive it. `name` names the source in errors.
    /// Example: `auto f = llm::io::safetensors_file::parse(std::as_bytes(std::span(buf)), "buffer");`
    static safetensors_file parse(std::span<const std::byte> bytes, std::string name) {
        safetensors_file f;
        f.parse_bytes(bytes, std::move(name));
        return f;
    }

    /// The path or name it was opened with.
    const std::string& path() const noexcept {
        static const std::string none;
        return files_.empty() ? none : files_.front();
    }
    /// The header length N (the JSON and its padding, after the 8-byte length).
    std::size_t header_size() const noexcept { return header_size_; }

private:
    friend class safetensors_checkpoint;

    void parse_bytes(std::span<const std::byte> b, std::string name) {
        static constexpr const char* fn = "safetensors_file";
        files_.assign(1, std::move(name));
        const std::string& file = files_.front();
        check(b.size() >= 8, fn, ": '", file, "' has ", b.size(), " bytes, too few for the 8-byte header length at byte 0");
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(b[static_cast<std::size_t>(i)]);
        check(n <= safetensors_max_header, fn, ": '", file, "': header length ", n, " at byte 0 exceeds the limit of ",
              safetensors_max_header, " bytes");
        check(n <= b.size() - 8, fn, ": '", file, "': header length ", n, " at byte 0 runs past the end of the file (",
              b.size(), " bytes)");
        header_size_ = static_cast<std::size_t>(n);
        const std::string_view text(reinterpret_cast<const char*>(b.data()) + 8, header_size_);
        for (std::size_t i = 0; i < text.size();) {
            if (static_cast<unsigned char>(text[i]) < 0x80) {  // ASCII, nearly all of a header
                ++i;
                continue;
            }
            const utf8_char c = decode_utf8(text.data() + i, text.data() + text.size());
            check(c.cp != utf8_char::invalid, fn, ": '", file, "': header is not valid UTF-8 at byte ", 8 + i);
            i += c.len;
        }
        const json_value doc = parse_json(text, std::string(fn) + ": '" + file + "' header (offsets from file byte 8)");
        check(doc.is_object(), fn, ": '", file, "': the header at byte 8 is not a JSON object");

        const std::size_t base = 8;  // JSON offset k is file byte 8 + k
        bool have_metadata = false;
        struct span_info {
            std::size_t begin, end;
        };
        std::vector<span_info> offsets;
        for (const auto& [key, v] : doc.as_object(fn)) {
            const std::size_t at = base + v.offset();
            if (key == "__metadata__") {
                check(!have_metadata, fn, ": '", file, "': __metadata__ appears twice (again at byte ", at, ")");
                have_metadata = true;
                if (v.is_null()) continue;
                check(v.is_object(), fn, ": '", file, "': __metadata__ at byte ", at, " is not an object of strings");
                for (const auto& [k, s] : v.as_object(fn)) {
                    check(s.is_string(), fn, ": '", file, "': __metadata__ value of '", k, "' at byte ", base + s.offset(),
                          " is not a string");
                    check(metadata_.emplace(k, s.as_string(fn)).second, fn, ": '", file, "': __metadata__ key '", k,
                          "' appears twice (again at byte ", base + s.offset(), ")");
                }
                continue;
            }
            check(v.is_object(), fn, ": '", file, "', tensor '", key, "' at byte ", at, " is not an object");
            const json_value* dt = nullptr;
            const json_value* shape = nullptr;
            const json_value* offs = nullptr;
            for (const auto& [field, fv] : v.as_object(fn)) {
                const json_value** slot = field == "dtype" ? &dt : field == "shape" ? &shape : field == "data_offsets" ? &offs : nullptr;
                if (!slot) continue;  // unknown fields are ignored, as the reference reader does
                check(*slot == nullptr, fn, ": '", file, "', tensor '", key, "': field '", field,
                      "' appears twice (again at byte ", base + fv.offset(), ")");
                *slot = &fv;
            }
            check(dt && shape && offs, fn, ": '", file, "', tensor '", key, "' at byte ", at, " lacks the field '",
                  !dt ? "dtype" : !shape ? "shape" : "data_offsets", "'");
            check(dt->is_string(), fn, ": '", file, "', tensor '", key, "': dtype at byte ", base + dt->offset(),
                  " is not a string");
            const auto type = parse_dtype(dt->as_string(fn));
            check(type.has_value(), fn, ": '", file, "', tensor '", key, "': unknown dtype '", dt->as_string(fn),
                  "' at byte ", base + dt->offset());
            check(shape->is_array(), fn, ": '", file, "', tensor '", key, "': shape at byte ", base + shape->offset(),
                  " is not an array");
            check(offs->is_array() && offs->as_array(fn).size() == 2, fn, ": '", file, "', tensor '", key,
                  "': data_offsets at byte ", base + offs->offset(), " is not an array of two integers");
            entry e;
            e.tensor.name = key;
            e.tensor.dtype = *type;
            for (const json_value& d : shape->as_array(fn))
                e.tensor.shape.push_back(detail::safetensors_uint(d, text, base, fn, file, key, "a shape extent"));
            const auto& o = offs->as_array(fn);
            offsets.push_back({detail::safetensors_uint(o[0], text, base, fn, file, key, "data_offsets[0]"),
                               detail::safetensors_uint(o[1], text, base, fn, file, key, "data_offsets[1]")});
            e.header_offset = at;
            entries_.push_back(std::move(e));
        }

        // Data order: sort by (begin, end) as the reference reader does, then check the tiling.
        std::vector<std::size_t> order(entries_.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t c) {
            return std::pair(offsets[a].begin, offsets[a].end) < std::pair(offsets[c].begin, offsets[c].end);
        });
        const std::size_t data_start = base + header_size_;
        std::vector<entry> sorted;
        sorted.reserve(entries_.size());
        std::size_t expected = 0;
        for (const std::size_t i : order) {
            entry& e = entries_[i];
            const auto [begin, end] = offsets[i];
            const std::string& key = e.tensor.name;
            check(begin <= end, fn, ": '", file, "', tensor '", key, "' (entry at byte ", e.header_offset,
                  "): data_offsets [", begin, ", ", end, "] end before they begin");
            check(begin == expected, fn, ": '", file, "', tensor '", key, "' (entry at byte ", e.header_offset,
                  "): data_offsets [", begin, ", ", end, "] begin at ", begin, " but the previous tensor ends at ", expected,
                  begin < expected ? " (tensors overlap)" : " (a gap)");
            expected = end;
            const std::size_t elements = detail::safetensors_elements(e.tensor.shape, fn, ": '", file, "', tensor '", key,
                                                                      "' (entry at byte ", e.header_offset, ")");
            const std::size_t nbytes = detail::safetensors_nbytes(elements, e.tensor.dtype, fn, ": '", file, "', tensor '", key, "'");
            if (end - begin != nbytes) [[unlikely]]  // the shape string is built only for the message
                fail(fn, ": '", file, "', tensor '", key, "' (entry at byte ", e.header_offset, "): data_offsets [", begin,
                     ", ", end, "] hold ", end - begin, " bytes but shape ", detail::safetensors_shape(e.tensor.shape), " of ",
                     dtype_name(e.tensor.dtype), " needs ", nbytes);
            check(end <= b.size() - data_start, fn, ": '", file, "', tensor '", key, "' (entry at byte ", e.header_offset,
                  "): data_offsets [", begin, ", ", end, "] run past the end of the file (data starts at byte ", data_start,
                  ", file has ", b.size(), " bytes)");
            e.data_offset = data_start + begin;
            e.tensor.data = b.subspan(e.data_offset, nbytes);
            sorted.push_back(std::move(e));
        }
        check(expected == b.size() - data_start, fn, ": '", file, "': the tensors' data ends at byte ", data_start + expected,
              " but the file has ", b.size(), " bytes");
        entries_ = std::move(sorted);
        build_index(fn);
    }

    mapped_file map_;
    std::size_t header_size_ = 0;
};

/// A model checkpoint: one safetensors file, or a sharded one opened through its
/// `model.safetensors.index.json` (`weight_map`: tensor name -> shard file, relative to the
/// index's directory). Same read API as safetensors_file, tensors found across shards; each
/// shard is mapped once. The index and the shards must agree: a tensor listed but missing from
/// its shard, found in a shard the index does not name for it, or in two shards is an error.
/// metadata() merges the shards' `__metadata__` (a key's first value, in shard-name order, wins).
/// Example:
/// ```
/// llm::io::safetensors_checkpoint ckpt("Llama-3-8B/model.safetensors.index.json");
/// auto embed = ckpt.view<llm::bf16, 2>("model.embed_tokens.weight");
/// ```
class safetensors_checkpoint : public safetensors_reader {
public:
    /// Opens `path`: an index when the name ends in ".json", otherwise one safetensors file.
    explicit safetensors_checkpoint(const std::string& path) {
        if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
            open_index(path);
        } else {
            shards_.emplace_back(path);
            merge({});
        }
    }

    /// Number of files (1 unless sharded).
    std::size_t shard_count() const noexcept { return shards_.size(); }
    /// The i-th shard, in shard-name order.
    const safetensors_file& shard(std::size_t i) const {
        check(i < shards_.size(), "safetensors_checkpoint::shard: index ", i, " out of range (", shards_.size(), " shards)");
        return shards_[i];
    }

private:
    void open_index(const std::string& index) {
        static constexpr const char* fn = "safetensors_checkpoint";
        const std::string text = read_file(index, safetensors_max_header, fn);
        const json_value doc = parse_json(text, std::string(fn) + ": '" + index + "'");
        check(doc.is_object(), fn, ": '", index, "' is not a JSON object");
        const json_value* map = doc.find("weight_map");
        check(map && map->is_object(), fn, ": '", index, "' has no weight_map object");
        // (tensor name, shard name) pairs sorted by tensor name.
        std::vector<std::pair<std::string, std::string>> wanted;
        for (const auto& [name, shard] : map->as_object(fn)) {
            check(shard.is_string(), fn, ": '", index, "': weight_map entry '", name, "' at byte ", shard.offset(),
                  " is not a string");
            const std::string& s = shard.as_string(fn);
            const std::filesystem::path p(s);
            bool plain = !s.empty() && p.is_relative();
            for (const auto& part : p) plain = plain && part != "..";
            check(plain, fn, ": '", index, "': weight_map entry '", name, "' at byte ", shard.offset(), " names shard '", s,
                  "', not a relative path inside the checkpoint directory");
            wanted.emplace_back(name, s);
        }
        std::sort(wanted.begin(), wanted.end());
        for (std::size_t k = 1; k < wanted.size(); ++k)
            check(wanted[k - 1].first != wanted[k].first, fn, ": '", index, "': weight_map lists tensor '",
                  wanted[k].first, "' twice");
        std::vector<std::string> names;
        for (const auto& w : wanted) names.push_back(w.second);
        std::sort(names.begin(), names.end());
        names.erase(std::unique(names.begin(), names.end()), names.end());
        const std::filesystem::path dir = std::filesystem::path(index).parent_path();
        for (const std::string& s : names) shards_.emplace_back((dir / s).string());

        std::vector<std::string> shard_of(shards_.size());
        for (std::size_t i = 0; i < shards_.size(); ++i) {
            for (const std::string_view t : shards_[i].names()) {
                const auto it = std::lower_bound(wanted.begin(), wanted.end(), t,
                                                 [](const auto& w, std::string_view n) { return w.first < n; });
                check(it != wanted.end() && it->first == t, fn, ": tensor '", t, "' in shard '", shards_[i].path(),
                      "' (data at byte ", shards_[i].data_offset(t), ") is not listed in '", index, "'");
                check(it->second == names[i], fn, ": tensor '", t, "' is in shard '", shards_[i].path(), "' (data at byte ",
                      shards_[i].data_offset(t), ") but '", index, "' maps it to '", it->second, "'");
            }
        }
        for (const auto& [t, s] : wanted) {
            const std::size_t i = static_cast<std::size_t>(std::lower_bound(names.begin(), names.end(), s) - names.begin());
            check(shards_[i].contains(t), fn, ": '", index, "' maps tensor '", t, "' to '", s,
                  "' but that shard has no such tensor");
        }
        merge(index);
    }

    // The table of every shard's tensors, in shard order.
    void merge(const std::string& index) {
        for (std::size_t i = 0; i < shards_.size(); ++i) {
            const safetensors_file& s = shards_[i];
            files_.push_back(s.path());
            for (entry e : s.entries_) {
                e.file = i;
                entries_.push_back(std::move(e));
            }
            for (const auto& [k, v] : s.metadata()) metadata_.emplace(k, v);
        }
        build_index(index.empty() ? "safetensors_checkpoint" : "safetensors_checkpoint (index)");
    }

    std::vector<safetensors_file> shards_;
};

namespace detail {

// The header (JSON, space-padded to a multiple of 8) and the write order of `tensors`, exactly
// as the reference writer makes them: tensors sorted by dtype (descending, in the spec's
// order) then name, `__metadata__` first.
inline std::string safetensors_header(std::span<const safetensors_tensor> tensors,
                                      const std::map<std::string, std::string>& metadata, std::vector<std::size_t>& order,
                                      const char* fn) {
    order.resize(tensors.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const safetensors_tensor &x = tensors[a], &y = tensors[b];
        return x.dtype != y.dtype ? x.dtype > y.dtype : x.name < y.name;
    });
    std::string h = "{";
    if (!metadata.empty()) {
        h += "\"__metadata__\":{";
        for (const auto& [k, v] : metadata) {
            if (h.back() != '{') h += ',';
            h += json_quote(k);
            h += ':';
            h += json_quote(v);
        }
        h += "}";
    }
    std::size_t offset = 0;
    std::vector<std::string_view> names;
    for (const safetensors_tensor& t : tensors) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    for (std::size_t k = 1; k < names.size(); ++k) check(names[k - 1] != names[k], fn, ": tensor '", names[k], "' appears twice");
    for (const std::size_t i : order) {
        const safetensors_tensor& t = tensors[i];
        check(t.name != "__metadata__", fn, ": a tensor may not be called __metadata__");
        check(static_cast<std::size_t>(t.dtype) < dtype_count, fn, ": tensor '", t.name, "' has no valid dtype (",
              static_cast<unsigned>(t.dtype), ")");
        const std::size_t elements = safetensors_elements(t.shape, fn, ": tensor '", t.name, "'");
        const std::size_t nbytes = safetensors_nbytes(elements, t.dtype, fn, ": tensor '", t.name, "'");
        if (t.data.size() != nbytes) [[unlikely]]
            fail(fn, ": tensor '", t.name, "' has ", t.data.size(), " bytes but shape ", detail::safetensors_shape(t.shape),
                 " of ", dtype_name(t.dtype), " needs ", nbytes);
        if (h.back() != '{') h += ',';
        h += json_quote(t.name);
        h += ":{\"dtype\":\"";
        h += dtype_name(t.dtype);
        h += "\",\"shape\":[";
        for (std::size_t r = 0; r < t.shape.size(); ++r) {
            if (r) h += ',';
            h += std::to_string(t.shape[r]);
        }
        h += "],\"data_offsets\":[";
        h += std::to_string(offset);
        h += ',';
        offset = checked_add(offset, nbytes, fn, "the data size");
        h += std::to_string(offset);
        h += "]}";
    }
    h += "}";
    h.resize((h.size() + 7) / 8 * 8, ' ');
    check(h.size() <= safetensors_max_header, fn, ": the header would have ", h.size(), " bytes, more than the limit of ",
          safetensors_max_header, " readers accept");
    return h;
}

// Writes the file through `put(const void*, size_t)`.
template <class Put>
void write_safetensors(std::span<const safetensors_tensor> tensors, const std::map<std::string, std::string>& metadata,
                       const char* fn, Put&& put) {
    std::vector<std::size_t> order;
    const std::string header = safetensors_header(tensors, metadata, order, fn);
    std::array<unsigned char, 8> n{};
    for (std::size_t i = 0; i < 8; ++i) n[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(header.size()) >> (8 * i));
    put(n.data(), n.size());
    put(header.data(), header.size());
    for (const std::size_t i : order) put(tensors[i].data.data(), tensors[i].data.size());
}

}  // namespace detail

/// Writes `tensors` and `metadata` as a safetensors file at `path`, atomically (a temporary
/// renamed into place). The bytes equal those of Python's `safetensors.numpy.save_file` /
/// `safetensors.torch.save_file` for the same tensors and metadata: header JSON without
/// spaces, `__metadata__` first, padded with spaces to a multiple of 8, tensors ordered by
/// dtype (descending alignment) then name. Metadata keys are written sorted (Python's order
/// is random when there are several); an empty map writes no `__metadata__` (Python's None).
/// llm::error for duplicate names, a byte count that does not match shape and dtype, or the
/// name `__metadata__`.
/// Example:
/// ```
/// std::vector<llm::io::safetensors_tensor> ts = {llm::io::safetensors_tensor::from_view("w", w.view())};
/// llm::io::save_safetensors("model.safetensors", ts, {{"format", "pt"}});
/// ```
inline void save_safetensors(const std::string& path, std::span<const safetensors_tensor> tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
    atomic_file out(path, "save_safetensors");
    detail::write_safetensors(tensors, metadata, "save_safetensors", [&](const void* p, std::size_t n) { out.write(p, n); });
    out.commit();
}

/// The bytes save_safetensors would write, in memory.
inline std::string serialize_safetensors(std::span<const safetensors_tensor> tensors,
                                         const std::map<std::string, std::string>& metadata = {}) {
    std::string out;
    detail::write_safetensors(tensors, metadata, "serialize_safetensors",
                              [&](const void* p, std::size_t n) { out.append(static_cast<const char*>(p), n); });
    return out;
}

}  // namespace llm::io
