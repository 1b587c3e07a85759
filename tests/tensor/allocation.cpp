// SPDX-License-Identifier: Apache-2.0
// Owning tensors and aligned_buffer with absurd sizes: llm::error naming the sizes, never a wrapped size or std::bad_alloc.
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cstddef>

namespace {
constexpr std::size_t two_40 = std::size_t{1} << 40;

// Sizes the optimiser cannot see: with a constant 2^62, GCC warns about the (unreachable)
// store loop into the wrapped 0-byte size that the check throws on.
std::size_t opaque(std::size_t n) {
    volatile std::size_t v = n;
    return v;
}
}  // namespace

TEST_CASE("tensor: an element count that overflows std::size_t is llm::error, not a tiny allocation") {
    // 2^40 * 2^40 wraps to 0 in plain std::size_t arithmetic.
    CHECK_THROWS_WITH_AS((llm::tensor<float, llm::dims<2>>(two_40, two_40)),
                         "tensor: the element count (product of the extents) = 1099511627776 * 1099511627776 overflows "
                         "std::size_t",
                         llm::error);
    CHECK_THROWS_WITH_AS((llm::tensor<float, llm::dims<3>>(llm::uninitialized, 1 << 22, 1 << 22, 1 << 22)),
                         doctest::Contains("tensor: the element count"), llm::error);
    // A zero extent makes the tensor empty however large the others are.
    llm::tensor<float, llm::dims<3>> empty(two_40, two_40, 0);
    CHECK(empty.size() == 0);
    CHECK(empty.data() == nullptr);
}

TEST_CASE("tensor: a huge but representable size is refused before allocating, naming the bytes") {
    // 2^40 x 2^10 floats = 2^52 bytes: representable, beyond llm::max_allocation_bytes.
    CHECK_THROWS_WITH_AS((llm::tensor<float, llm::dims<2>>(two_40, 1024)),
                         "tensor: the elements need 4503599627370496 bytes (1125899906842624 elements of 4 bytes), more "
                         "than the allocation limit of 140737488355328 bytes",
                         llm::error);
}

TEST_CASE("tensor: layout_strided spans are overflow-checked") {
    using map = llm::layout_strided::mapping<llm::dims<2>>;
    const map wraps(llm::dims<2>(3, 2), {std::size_t{1} << 63, 1});  // (3 - 1) * 2^63 wraps
    CHECK_THROWS_WITH_AS((llm::tensor<float, llm::dims<2>, llm::layout_strided>(wraps)),
                         doctest::Contains("tensor: (extent - 1) * stride = 2 * 9223372036854775808 overflows"),
                         llm::error);
    const map gaps(llm::dims<2>(2, 3), {std::size_t{1} << 50, 1});  // span 2^50 + 3: over the limit
    CHECK_THROWS_WITH_AS((llm::tensor<float, llm::dims<2>, llm::layout_strided>(gaps)),
                         doctest::Contains("tensor: the elements need"), llm::error);
    const map fine(llm::dims<2>(2, 3), {4, 1});
    llm::tensor<float, llm::dims<2>, llm::layout_strided> t(fine);
    CHECK(t.required_span_size() == 7);
}

TEST_CASE("aligned_buffer: overflowing and over-limit sizes are llm::error") {
    CHECK_THROWS_WITH_AS(llm::aligned_buffer<float>(opaque(std::size_t{1} << 62)),
                         doctest::Contains("aligned_buffer: the elements = 4611686018427387904 * 4 overflows"),
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::aligned_buffer<double>(llm::uninitialized, std::size_t{1} << 45),
                         doctest::Contains("more than the allocation limit"), llm::error);
}
