// expect: block_like
// A layer type with params, cache and forward but no backward is not a block: making its cache
// through llm::model::make_cache must fail at the call, naming the block contract.
#include <llm/model/block.hpp>

#include <cstddef>

namespace user {
struct forward_only {
    template <class T>
    struct params {
        template <class F, class... P>
        static void walk(F&&, P&...) {}
        template <class F>
        void for_each_param(F&&) {}
        template <class F>
        void for_each_param(F&&) const {}
    };
    struct cache {};
    template <class T>
    params<T> make_params() const { return {}; }
    cache make_cache(llm::model::arena&, llm::model::batch_shape) const { return {}; }
    template <class T>
    void forward(llm::model::activations, cache&, llm::model::const_activations, const params<T>&, llm::workspace&,
                 llm::parallel::sequential&) const {}
};
}  // namespace user

int main() {
    llm::model::arena a;
    auto c = llm::model::make_cache(user::forward_only{}, a, {.batch = 1, .seq = 4});
    (void)c;
}
