// expect: decoder_structure
// A stack whose layer pattern holds a type that is not a block (a plain struct without params,
// cache, forward and backward): naming the decoder must fail at the use, naming the concept
// a structure must satisfy.
#include <llm/model/families.hpp>

namespace user {
struct not_a_layer {
    explicit not_a_layer(const llm::model::dims&) {}
};
using bad_structure = llm::model::stack<llm::model::token_embedding<>, llm::model::pattern<llm::model::llama_layer, not_a_layer>,
                                        llm::model::rms_norm, llm::model::llama_names>;
}  // namespace user

int main() {
    llm::model::decoder<user::bad_structure> m(llm::model::dims{.vocab = 8, .d_model = 8, .n_layers = 2, .n_heads = 2});
    (void)m;
}
