// SPDX-License-Identifier: Apache-2.0
// Data cache sizes the operating system reports for this CPU (what cache blocking is derived from).
#pragma once

#include <cstddef>
#include <fstream>
#include <string>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace llm {

/// Data cache sizes of one core, in bytes; 0 where unknown. l3 is the whole shared cache
/// and l3_sharing the number of logical CPUs that share it.
/// Example: `llm::cache_sizes c{32 << 10, 512 << 10, 16 << 20, 64, 8};`
struct cache_sizes {
    std::size_t l1d = 0;         ///< Level-1 data cache of one core.
    std::size_t l2 = 0;          ///< Level-2 cache of one core.
    std::size_t l3 = 0;          ///< Level-3 cache (shared by l3_sharing logical CPUs).
    std::size_t line = 0;        ///< Cache line size.
    std::size_t l3_sharing = 0;  ///< Logical CPUs sharing the L3 (0: unknown).
};

namespace detail {

/// Parses a sysfs cache size such as "32K", "16384K", "2M" into bytes (0 if malformed).
inline std::size_t parse_cache_size(const std::string& s) {
    std::size_t v = 0;
    std::size_t i = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
        v = v * 10 + static_cast<std::size_t>(s[i] - '0');
    }
    if (i == 0) {
        return 0;
    }
    if (i < s.size()) {
        if (s[i] == 'K' || s[i] == 'k') {
            v <<= 10;
        } else if (s[i] == 'M' || s[i] == 'm') {
            v <<= 20;
        } else if (s[i] == 'G' || s[i] == 'g') {
            v <<= 30;
        }
    }
    return v;
}

/// Counts the CPUs of a sysfs cpu list such as "0-7,16-23" (0 if malformed).
inline std::size_t count_cpu_list(const std::string& s) {
    std::size_t count = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        std::size_t a = 0, b = 0;
        const std::size_t start = i;
        for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
            a = a * 10 + static_cast<std::size_t>(s[i] - '0');
        }
        if (i == start) {
            return 0;
        }
        b = a;
        if (i < s.size() && s[i] == '-') {
            ++i;
            b = 0;
            for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
                b = b * 10 + static_cast<std::size_t>(s[i] - '0');
            }
        }
        count += b >= a ? b - a + 1 : 0;
        while (i < s.size() && (s[i] == ',' || s[i] == '\n' || s[i] == ' ')) {
            ++i;
        }
    }
    return count;
}

inline std::string read_first_line(const std::string& path) {
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
}

/// The caches of cpu0 from sysfs (Linux), then sysconf (glibc) for what sysfs lacks. sysfs
/// first: under some hypervisors glibc's CPUID-based sysconf reports a wrong L3 (256 MiB on
/// this project's build VMs, where sysfs says 16 MiB).
inline cache_sizes detect_cache_sizes() {
    cache_sizes c;
    for (int idx = 0; idx < 8; ++idx) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(idx) + "/";
        const std::string level = read_first_line(dir + "level");
        if (level.empty()) {
            break;
        }
        const std::string type = read_first_line(dir + "type");
        const std::size_t size = parse_cache_size(read_first_line(dir + "size"));
        if (type == "Instruction") {
            continue;
        }
        if (level == "1") {
            c.l1d = size;
            c.line = parse_cache_size(read_first_line(dir + "coherency_line_size"));
        } else if (level == "2") {
            c.l2 = size;
        } else if (level == "3") {
            c.l3 = size;
            c.l3_sharing = count_cpu_list(read_first_line(dir + "shared_cpu_list"));
        }
    }
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
    const auto conf = [](int name) {
        const long v = ::sysconf(name);
        return v > 0 ? static_cast<std::size_t>(v) : std::size_t{0};
    };
    c.l1d = c.l1d != 0 ? c.l1d : conf(_SC_LEVEL1_DCACHE_SIZE);
    c.l2 = c.l2 != 0 ? c.l2 : conf(_SC_LEVEL2_CACHE_SIZE);
    c.l3 = c.l3 != 0 ? c.l3 : conf(_SC_LEVEL3_CACHE_SIZE);
#if defined(_SC_LEVEL1_DCACHE_LINESIZE)
    c.line = c.line != 0 ? c.line : conf(_SC_LEVEL1_DCACHE_LINESIZE);
#endif
#endif
    if (c.l3 != 0 && c.l3_sharing == 0) {
        c.l3_sharing = std::thread::hardware_concurrency();
    }
    return c;
}

}  // namespace detail

/// This CPU's data caches, detected once (sysfs, then sysconf); fields the OS does not
/// report are 0.
/// Example: `std::size_t l2 = llm::cpu_cache_sizes().l2;`
inline const cache_sizes& cpu_cache_sizes() {
    static const cache_sizes c = detail::detect_cache_sizes();
    return c;
}

}  // namespace llm
