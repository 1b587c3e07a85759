// SPDX-License-Identifier: Apache-2.0
// Shape checks of the ssm kernels, shared by the reference and the CPU path: each mismatch is an llm::error naming call, argument and sizes.
#pragma once

#include <llm/core/error.hpp>
#include <llm/ssm/options.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <array>
#include <cstddef>
#include <string>

namespace llm::ssm::detail {

inline std::string dims_string(const std::size_t* e, std::size_t r) {
    std::string s = "[";
    for (std::size_t i = 0; i < r; ++i) {
        s += (i ? ", " : "") + std::to_string(e[i]);
    }
    return s + "]";
}

/// Checks that `v` (a view of rank R) has exactly the extents `want`; `what` explains them.
template <std::size_t R, class V>
void check_extents(const char* fn, const char* arg, const V& v, const std::array<std::size_t, R>& want,
                   const char* what) {
    std::array<std::size_t, R> got{};
    bool ok = true;
    for (std::size_t r = 0; r < R; ++r) {
        got[r] = static_cast<std::size_t>(v.extent(r));
        ok = ok && got[r] == want[r];
    }
    if (!ok) {  // the strings only when failing: decode steps check every call
        llm::fail(fn, ": ", arg, " has shape ", dims_string(got.data(), R), " but must be ", dims_string(want.data(), R),
                  " (", what, ")");
    }
}

/// The sizes of a selective scan: batch, D channels, L positions, N states, G groups of B / C.
struct scan_shape {
    std::size_t batch = 0, dim = 0, len = 0, n = 0;
    std::size_t groups_b = 1, groups_c = 1;  // groups of a variable B / C (1 when fixed)
    bool var_b = false, var_c = false;       // B / C input-dependent (batch, G, N, L)
};

/// Checks u, delta, A, B, C (and the optional z, D, delta_bias) of a selective scan; the
/// arguments are views (any rank-correct type), the optional ones may be none_t.
template <class U, class Dl, class Bv, class Cv, class Z, class A, class Dv, class DB>
scan_shape check_scan(const char* fn, const U& u, const Dl& delta, const Bv& b, const Cv& c, const Z& z, const A& a,
                      const Dv& dskip, const DB& dbias) {
    scan_shape s;
    s.batch = u.extent(0);
    s.dim = u.extent(1);
    s.len = u.extent(2);
    s.n = a.extent(1);
    check_extents<3>(fn, "delta", delta, {s.batch, s.dim, s.len}, "u's shape (batch, D, L)");
    llm::check(a.extent(0) == s.dim, fn, ": A has ", a.extent(0), " rows but u has D = ", s.dim,
               " channels (A is (D, N))");
    auto bc = [&](const char* name, const auto& v, std::size_t& groups, bool& var) {
        using V = std::remove_cvref_t<decltype(v)>;
        if constexpr (V::rank() == 2) {
            check_extents<2>(fn, name, v, {s.dim, s.n}, "(D, N) with D from u and N from A");
        } else {
            groups = v.extent(1);
            var = true;
            llm::check(groups >= 1 && s.dim % groups == 0, fn, ": ", name, " has ", groups,
                       " groups, which must divide D = ", s.dim, " (", name, " is (batch, groups, N, L))");
            check_extents<4>(fn, name, v, {s.batch, groups, s.n, s.len},
                             "(batch, groups, N, L) with batch and L from u, N from A");
        }
    };
    bc("B", b, s.groups_b, s.var_b);
    bc("C", c, s.groups_c, s.var_c);
    if constexpr (!is_none<Z>) {
        check_extents<3>(fn, "z", z, {s.batch, s.dim, s.len}, "u's shape (batch, D, L)");
    }
    if constexpr (!is_none<Dv>) {
        check_extents<1>(fn, "D", dskip, {s.dim}, "one skip weight per channel");
    }
    if constexpr (!is_none<DB>) {
        check_extents<1>(fn, "delta_bias", dbias, {s.dim}, "one bias per channel");
    }
    return s;
}

/// The sizes of a Mamba-2 SSD scan: batch, L, H heads of P channels, G groups of N states.
struct ssd_shape {
    std::size_t batch = 0, len = 0, heads = 0, p = 0, groups = 0, n = 0;
};

/// Checks x (batch, L, H, P), dt (batch, L, H), A (H), B and C (batch, L, G, N).
template <class X, class Dt, class Bv, class Cv, class A>
ssd_shape check_ssd(const char* fn, const X& x, const Dt& dt, const Bv& b, const Cv& c, const A& a) {
    ssd_shape s;
    s.batch = x.extent(0);
    s.len = x.extent(1);
    s.heads = x.extent(2);
    s.p = x.extent(3);
    s.groups = b.extent(2);
    s.n = b.extent(3);
    check_extents<3>(fn, "dt", dt, {s.batch, s.len, s.heads}, "(batch, L, heads) from x");
    check_extents<1>(fn, "A", a, {s.heads}, "one decay per head");
    llm::check(s.groups >= 1 && s.heads % s.groups == 0, fn, ": B has ", s.groups,
               " groups, which must divide the ", s.heads, " heads of x");
    check_extents<4>(fn, "B", b, {s.batch, s.len, s.groups, s.n}, "(batch, L, groups, N) with batch and L from x");
    check_extents<4>(fn, "C", c, {s.batch, s.len, s.groups, s.n}, "B's shape (batch, L, groups, N)");
    return s;
}

}  // namespace llm::ssm::detail
