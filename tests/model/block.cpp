// SPDX-License-Identifier: Apache-2.0
// The block contract: a tiny user block outside llm:: satisfies block_like, its cache lives in an
// arena, the zipped walk visits parameters, gradients and state together.
#include <llm/model/block.hpp>
#include <llm/model/norm.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace user {

// The example of block_like's doc comment, plus a norm-like cache (the row sums of x) to show
// an arena-backed cache: y = x * weight (per feature) + bias.
struct scale_block {
    std::size_t width;
    template <class T>
    struct params {
        llm::tensor<T, llm::dims<1>> weight;
        llm::tensor<T, llm::dims<1>> bias;
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("weight", p.weight...);
            f("bias", p.bias...);
        }
        template <class F>
        void for_each_param(F&& f) {
            walk(f, *this);
        }
        template <class F>
        void for_each_param(F&& f) const {
            walk(f, *this);
        }
    };
    struct cache {
        llm::tensor_view<float, llm::dims<1>> row_sum;
    };
    template <class T>
    params<T> make_params() const {
        return {llm::tensor<T, llm::dims<1>>(width), llm::tensor<T, llm::dims<1>>(width)};
    }
    cache make_cache(llm::model::arena& a, llm::model::batch_shape s) const { return {a.take<float>(s.tokens())}; }
    template <class T>
    void forward(llm::model::activations y, cache& c, llm::model::const_activations x, const params<T>& p,
                 llm::workspace&, llm::parallel::policy auto&&) const {
        for (std::size_t t = 0; t < x.extent(0); ++t) {
            c.row_sum(t) = 0;
            for (std::size_t i = 0; i < width; ++i) {
                y(t, i) = x(t, i) * float(p.weight(i)) + float(p.bias(i));
                c.row_sum(t) += x(t, i);
            }
        }
    }
    template <class T>
    void backward(llm::model::activations dx, params<float>& g, llm::model::const_activations dy, const cache&,
                  llm::model::const_activations x, const params<T>& p, llm::workspace&, llm::parallel::policy auto&&) const {
        for (std::size_t t = 0; t < x.extent(0); ++t) {
            for (std::size_t i = 0; i < width; ++i) {
                dx(t, i) += dy(t, i) * float(p.weight(i));
                g.weight(i) += dy(t, i) * x(t, i);
                g.bias(i) += dy(t, i);
            }
        }
    }
};

// Not a block: no cache type.
struct no_cache {
    template <class T>
    struct params {
        template <class F, class... P>
        static void walk(F&&, P&...) {}
        template <class F>
        void for_each_param(F&&) {}
        template <class F>
        void for_each_param(F&&) const {}
    };
};

}  // namespace user

static_assert(llm::model::block_like<user::scale_block>);
static_assert(llm::model::block_like<user::scale_block, llm::bf16>);
static_assert(!llm::model::steppable_block<user::scale_block>);
static_assert(!llm::model::block_like<user::no_cache>);
static_assert(!llm::model::block_like<int>);
static_assert(llm::model::param_struct<user::scale_block::params<float>>);
static_assert(!llm::model::param_struct<int>);
static_assert(std::same_as<llm::model::block_d_input_t<user::scale_block>, llm::model::activations>);

TEST_CASE("model block: a user block outside llm:: runs forward and backward through the contract; backward accumulates") {
    const user::scale_block blk{3};
    auto p = blk.make_params<float>();
    for (std::size_t i = 0; i < 3; ++i) {
        p.weight(i) = 1.0f + static_cast<float>(i);
        p.bias(i) = 0.5f;
    }
    llm::tensor<float, llm::dims<2>> x(2, 3), y(2, 3), dy(2, 3), dx(2, 3);
    for (std::size_t t = 0; t < 2; ++t) {
        for (std::size_t i = 0; i < 3; ++i) {
            x(t, i) = static_cast<float>(t * 3 + i);
            dy(t, i) = 1.0f;
        }
    }
    llm::model::arena a;
    auto c = llm::model::make_cache(blk, a, {.batch = 1, .seq = 2});
    CHECK(a.has_memory());
    CHECK(a.used() >= 2 * sizeof(float));
    llm::workspace ws;
    blk.forward(y.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    CHECK(y(1, 2) == doctest::Approx(5.0f * 3.0f + 0.5f));
    CHECK(c.row_sum(1) == doctest::Approx(3.0f + 4.0f + 5.0f));
    auto g = blk.make_params<float>();
    blk.backward(dx.view(), g, dy.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    const float w2 = g.weight(2);
    const float dx12 = dx(1, 2);
    CHECK(w2 == doctest::Approx(2.0f + 5.0f));
    CHECK(dx12 == doctest::Approx(3.0f));
    blk.backward(dx.view(), g, dy.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    CHECK(g.weight(2) == 2 * w2);
    CHECK(dx(1, 2) == 2 * dx12);
    CHECK(g.bias(0) == 4.0f);
    llm::model::zero_grad(g);
    CHECK(g.weight(2) == 0.0f);
    CHECK(g.bias(0) == 0.0f);
}

TEST_CASE("model block: for_each_param names, for_each_tensor zips params, grads and state, prefixed names") {
    const user::scale_block blk{4};
    auto p = blk.make_params<llm::bf16>();
    auto g = blk.make_params<float>();
    auto m = blk.make_params<float>();
    std::vector<std::string> names;
    p.for_each_param([&](std::string_view n, auto& t) {
        names.emplace_back(n);
        CHECK(t.size() == 4);
    });
    CHECK(names == std::vector<std::string>{"weight", "bias"});
    CHECK(llm::model::count_params(p) == 8);
    // one step of "m = 0.5 m + g" through the zipped walk, with bf16 params beside fp32 state
    llm::fill(g.weight, 2.0f);
    llm::fill(m.weight, 1.0f);
    std::size_t visited = 0;
    llm::model::for_each_tensor(
        [&](std::string_view, auto& w, auto& gr, auto& mo) {
            CHECK(w.size() == gr.size());
            for (std::size_t i = 0; i < mo.size(); ++i) {
                mo(i) = 0.5f * mo(i) + gr(i);
            }
            ++visited;
        },
        p, g, m);
    CHECK(visited == 2);
    CHECK(m.weight(3) == 2.5f);
    CHECK(m.bias(3) == 0.0f);
    std::vector<std::string> full;
    auto collect = [&](std::string_view n, auto&) { full.emplace_back(n); };
    user::scale_block::params<llm::bf16>::walk(llm::model::prefixed("model.layers.7.mlp.", collect), p);
    CHECK(full == std::vector<std::string>{"model.layers.7.mlp.weight", "model.layers.7.mlp.bias"});
}

TEST_CASE("model arena: the counting pass takes no memory; the second pass gets aligned views; a bigger request is an error") {
    llm::model::arena a;
    auto v0 = a.take<float>(3, 5);
    auto v1 = a.take<std::int32_t>(7);
    CHECK(v0.data() == nullptr);
    CHECK(v1.data() == nullptr);
    CHECK(v0.size() == 0);
    const std::size_t need = a.used();
    CHECK(need == 64 + 7 * sizeof(std::int32_t));
    a.reserve();
    a.rewind();
    auto w0 = a.take<float>(3, 5);
    auto w1 = a.take<std::int32_t>(7);
    REQUIRE(w0.data() != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(w1.data()) % 64 == 0);
    CHECK(reinterpret_cast<const std::byte*>(w1.data()) - reinterpret_cast<const std::byte*>(w0.data()) == 64);
    CHECK(w0(2, 4) == 0.0f);
    CHECK_THROWS_AS((void)a.take<float>(100), llm::error);
}

namespace user {

// A parameter struct written as param_list over a plain struct of tensors: the members are
// listed once, in walk; for_each_param comes from param_list.
template <class T>
struct pair_fields {
    llm::tensor<T, llm::dims<1>> weight;
    llm::tensor<T, llm::dims<2>> proj;
    template <class F, class... P>
    static void walk(F&& f, P&... p) {
        f("weight", p.weight...);
        f("proj.weight", p.proj...);
    }
};
template <class T>
using pair_params = llm::model::param_list<pair_fields<T>>;

// A block that reads token ids declares input_type; one that does not reads activations.
struct ids_block {
    using input_type = llm::model::token_ids;
};
struct plain_block {};

}  // namespace user

TEST_CASE("model block: param_list derives for_each_param from walk; brace initialisation and the zipped walk unchanged") {
    static_assert(llm::model::param_struct<user::pair_params<float>>);
    static_assert(llm::model::param_struct<llm::model::params_t<llm::model::rms_norm, llm::bf16>>);
    static_assert(std::same_as<llm::model::block_input_t<user::ids_block>, llm::model::token_ids>);
    static_assert(std::same_as<llm::model::block_input_t<user::plain_block>, llm::model::const_activations>);
    static_assert(std::same_as<llm::model::block_d_input_t<user::ids_block>, llm::model::no_grad>);
    // brace initialisation fills the members in declaration order, as for the plain struct
    user::pair_params<float> p{llm::tensor<float, llm::dims<1>>(3), llm::tensor<float, llm::dims<2>>(2, 5)};
    user::pair_params<float> g{llm::tensor<float, llm::dims<1>>(3), llm::tensor<float, llm::dims<2>>(2, 5)};
    std::vector<std::string> names;
    std::vector<std::size_t> sizes;
    const auto& cp = p;
    cp.for_each_param([&](std::string_view n, const auto& t) {
        names.emplace_back(n);
        sizes.push_back(t.size());
    });
    CHECK(names == std::vector<std::string>{"weight", "proj.weight"});
    CHECK(sizes == std::vector<std::size_t>{3, 10});
    p.for_each_param([](std::string_view, auto& t) { llm::fill(t, 1.5f); });
    llm::fill(g.proj, 2.0f);
    llm::model::zero_grad(g);
    CHECK(g.proj(1, 4) == 0.0f);
    CHECK(llm::model::count_params(p) == 13);
    std::vector<std::string> zipped;
    llm::model::for_each_tensor(
        [&](std::string_view n, auto& w, auto& gr) {
            CHECK(w.size() == gr.size());
            zipped.emplace_back(n);
        },
        p, g);
    CHECK(zipped == names);
}
