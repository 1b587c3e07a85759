// SPDX-License-Identifier: Apache-2.0
// Tests of the shared kernel-argument concepts (<llm/tensor/concepts.hpp>) and llm::zero_grad.
#include <llm/core/bf16.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cstddef>

namespace {

// A view type of the user's own: the concepts are structural, so it qualifies.
struct my_rows {
    float* p;
    std::size_t n;
    static constexpr std::size_t rank() { return 2; }
    float* data() const { return p; }
    std::size_t extent(std::size_t r) const { return r == 0 ? n : 4; }
    std::size_t stride(std::size_t r) const { return r == 0 ? 4 : 1; }
};

using f2 = llm::tensor<float, llm::dims<2>>;
using cv2 = llm::tensor_view<const float, llm::dims<2>>;
using bv3 = llm::tensor_view<llm::bf16, llm::dims<3>>;

static_assert(llm::view_of_rank<f2&, 2> && llm::view_of_rank<cv2, 2> && llm::view_of_rank<my_rows, 2>);
static_assert(!llm::view_of_rank<f2&, 3> && !llm::view_of_rank<float*, 1> && !llm::view_of_rank<int, 0>);
static_assert(llm::dense_view<cv2, 2> && llm::dense_view<bv3, 3> && !llm::dense_view<llm::tensor<double, llm::dims<2>>&, 2>);
static_assert(llm::mutable_dense_view<f2&, 2> && llm::mutable_dense_view<bv3, 3> && llm::mutable_dense_view<my_rows, 2>);
static_assert(!llm::mutable_dense_view<cv2, 2> && !llm::mutable_dense_view<const f2&, 2>);
static_assert(llm::float_or_bf16<const llm::bf16> && llm::float_or_bf16<float> && !llm::float_or_bf16<double>);
static_assert(std::same_as<llm::view_element_t<const f2>, const float> && std::same_as<llm::view_element_t<bv3>, llm::bf16>);

TEST_CASE("zero_grad clears every gradient it is given, of any element type and layout") {
    f2 a(3, 5);
    llm::tensor<llm::bf16, llm::dims<1>> b(7);
    llm::fill(a, 2.5f);
    llm::fill(b, llm::bf16(1.0f));
    llm::zero_grad(a, llm::transpose(a.view(), 0, 1), b);
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a.data()[i] == 0.0f);
    }
    for (std::size_t i = 0; i < b.size(); ++i) {
        CHECK(static_cast<float>(b.data()[i]) == 0.0f);
    }
}

}  // namespace
