// SPDX-License-Identifier: Apache-2.0
// Run-time selection of a DPO-family loss from TRL's loss_type string.
#pragma once

#include <llm/align/dpo.hpp>
#include <llm/align/pair_loss.hpp>
#include <llm/core/error.hpp>

#include <array>
#include <string>
#include <string_view>
#include <variant>

namespace llm::align {

/// One of the DPO-family policies, chosen at run time.
using dpo_loss = std::variant<dpo_sigmoid, dpo_hinge, dpo_ipo, dpo_exo_pair, dpo_nca_pair, dpo_robust, dpo_bco_pair,
                              dpo_sppo_hard, dpo_aot, dpo_aot_unpaired, dpo_apo_zero, dpo_apo_down, dpo_discopop,
                              dpo_sft, dpo_sigmoid_norm>;

namespace detail {

template <std::size_t... I>
constexpr auto dpo_loss_name_table(std::index_sequence<I...>) {
    return std::array<std::string_view, sizeof...(I)>{std::variant_alternative_t<I, dpo_loss>::name...};
}

template <std::size_t I = 0>
dpo_loss dpo_loss_at(std::size_t index) {
    if constexpr (I + 1 < std::variant_size_v<dpo_loss>) {
        if (index != I) {
            return dpo_loss_at<I + 1>(index);
        }
    }
    return dpo_loss{std::in_place_index<I>};
}

}  // namespace detail

/// TRL DPOConfig.loss_type names this library implements, in TRL's order.
inline constexpr auto dpo_loss_names =
    detail::dpo_loss_name_table(std::make_index_sequence<std::variant_size_v<dpo_loss>>{});

/// The policy for a TRL loss_type string ("sigmoid", "ipo", ...; "aot_pair", TRL 0.x's name of
/// "aot_unpaired", is accepted too). Throws llm::error naming the valid choices otherwise.
/// Example: `auto loss = llm::align::dpo_loss_from_name("robust");`
inline dpo_loss dpo_loss_from_name(std::string_view name) {
    if (name == "aot_pair") {
        name = "aot_unpaired";
    }
    for (std::size_t i = 0; i < dpo_loss_names.size(); ++i) {
        if (dpo_loss_names[i] == name) {
            return detail::dpo_loss_at(i);
        }
    }
    std::string valid;
    for (std::string_view n : dpo_loss_names) {
        valid += (valid.empty() ? "" : ", ") + std::string(n);
    }
    fail("dpo_loss_from_name: unknown loss_type '", name, "'; expected one of ", valid);
}

/// pair_loss with the policy picked at run time from a TRL loss_type string.
/// Arguments: out, in as pair_loss; then the options: loss_type ("sigmoid", "ipo", ...) and
/// cfg (default: dpo_config's defaults).
/// Shapes and errors: as pair_loss, plus llm::error for an unknown name.
/// Template parameters:
///   T — float or double (deduced).
/// Example: `auto s = llm::align::pair_loss(out, in, "ipo", llm::align::dpo_config{.beta = 0.5});`
template <float_or_double T>
pair_stats pair_loss(const pair_outputs<T>& out, const pair_inputs<T>& in, std::string_view loss_type,
                     const dpo_config& cfg = {}) {
    return std::visit([&](auto policy) { return pair_loss<decltype(policy)>(out, in, cfg); },
                      dpo_loss_from_name(loss_type));
}

}  // namespace llm::align
