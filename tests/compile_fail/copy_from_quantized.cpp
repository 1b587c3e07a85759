// expect: direct_access
// A view of Q8_0 blocks (floats decoded by llm::quant::q8_0_accessor) as the source of llm::copy, which
// copies data() as elements: the call must fail at the call site, naming the concept that keeps views
// through other accessors away from code reading data() directly.
#include <llm/quant/accessor.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/tensor.hpp>

#include <vector>

int main() {
    const std::vector<llm::quant::block_q8_0> blocks(2);
    const auto w = llm::quant::matrix_view<llm::quant::q8_0_accessor>(blocks, 1, 64);
    llm::tensor<float, llm::dims<2>> out(1, 64);
    llm::copy(w, out);
    return static_cast<int>(out(0, 0));
}
