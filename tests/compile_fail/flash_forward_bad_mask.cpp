// expect: mask_policy
// A mask type without the mask_policy members passed to llm::attention::flash_forward (new
// argument order: o, lse, q, k, v, mask): the call must fail at the call site, naming the concept.
#include <llm/attention/attention.hpp>
#include <llm/tensor/tensor.hpp>

namespace user {
struct upper_left_only {  // a mask in spirit, but none of allowed / cols / rows / full
    bool sees(long i, long j) const { return j <= i; }
};
}  // namespace user

int main() {
    llm::tensor<float, llm::dims<4>> q(1, 4, 2, 8), k(1, 4, 2, 8), v(1, 4, 2, 8), o(1, 4, 2, 8);
    llm::tensor<float, llm::dims<3>> lse(1, 2, 4);
    llm::attention::flash_forward(o, lse, q, k, v, user::upper_left_only{});
    return 0;
}
