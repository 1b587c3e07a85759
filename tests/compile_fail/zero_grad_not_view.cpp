// expect: writable_host_view
// A std::vector (no view() member) passed to llm::zero_grad: the call must fail at the call
// site, naming the concept the gradients must satisfy.
#include <llm/tensor/algorithm.hpp>

#include <vector>

int main() {
    std::vector<float> grad(8, 1.0f);
    llm::zero_grad(grad);
    return static_cast<int>(grad[0]);
}
