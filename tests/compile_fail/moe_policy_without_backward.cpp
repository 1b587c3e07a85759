// expect: router
// A routing policy with slots and forward but no backward is not an llm::moe::router: the MoE
// layer refuses it at the call, naming the concept.
#include <llm/moe/moe.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/tensor.hpp>

namespace user {
struct forward_only {
    [[nodiscard]] std::size_t slots(std::size_t) const { return 1; }
    void forward(const llm::moe::routing&, llm::row_view<const float, 2>, llm::parallel::policy auto&&) const {}
};
}  // namespace user

int main() {
    llm::tensor<float, llm::dims<2>> x(2, 4), y(2, 4), gate(2, 4);
    llm::tensor<float, llm::dims<3>> w1(2, 3, 4), w3(2, 3, 4), w2(2, 4, 3);
    llm::moe::moe_cache cache;
    llm::moe::moe_forward(y, cache, x, llm::moe::make_moe_weights(gate, w1, w3, w2), user::forward_only{}, {},
                          llm::parallel::sequential{});
}
