// expect: pair_loss_policy
// A paired loss type without evaluate() (and without config) passed to llm::align::pair_loss:
// the call must fail at the call site, naming the concept the type does not satisfy.
#include <llm/align/loss_by_name.hpp>
#include <llm/align/pair_loss.hpp>

#include <string_view>
#include <vector>

namespace user {
struct half_a_loss {
    static constexpr std::string_view name = "half_a_loss";
    static constexpr bool needs_tokens = false;
};
}  // namespace user

int main() {
    std::vector<double> c{-1.0}, r{-2.0}, l(1), cr(1), rr(1), dc(1), dr(1);
    const llm::align::pair_inputs<double> in{.chosen = {c.data(), 1}, .rejected = {r.data(), 1}};
    const llm::align::pair_outputs<double> out{{l.data(), 1}, {cr.data(), 1}, {rr.data(), 1}, {dc.data(), 1}, {dr.data(), 1}};
    return static_cast<int>(llm::align::pair_loss<user::half_a_loss>(out, in).loss);
}
