// expect: communicator
// A user's communicator without barrier() is not an llm::dist::communicator: all_reduce refuses it at the call.
#include <llm/dist/communicator.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace user {
struct half_comm {
    std::size_t rank() const { return 0; }
    std::size_t size() const { return 1; }
    template <class T>
    void all_reduce(std::span<T>, std::span<const T>, llm::dist::reduce_op) {}
};
}  // namespace user

int main() {
    std::vector<float> g(4);
    user::half_comm comm;
    llm::dist::all_reduce(g, llm::dist::reduce_op::sum, comm);
}
