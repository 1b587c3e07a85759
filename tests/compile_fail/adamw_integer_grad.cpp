// expect: any_dense_view
// An integer tensor as the gradient of llm::train::adamw: the call must fail at the call site,
// naming the concept gradients satisfy (fp32 or bf16 views of any rank).
#include <llm/tensor/tensor.hpp>
#include <llm/train/optimizer.hpp>

#include <cstdint>

int main() {
    llm::tensor<float, llm::dims<1>> p(4), m(4), v(4);
    llm::tensor<std::int32_t, llm::dims<1>> g(4);
    llm::train::adamw(p, m, v, g, {}, 1, true);
    return static_cast<int>(p(0));
}
