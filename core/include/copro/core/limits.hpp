#pragma once
/// Documented maximums of what an input may size (docs/config.md, "Limits"): parsers and builders check
/// a number against these before they allocate from it, so a typo such as `ranks: 1e9` is an error that
/// names the field and the limit, not an allocation of gigabytes. Each is far above any real use.
#include <cstdint>

namespace copro::core {

/// Ranks of a communicator, a Program, a workload or a simulated job (16,384-GPU clusters fit 64 times).
inline constexpr std::int64_t kMaxRanks = std::int64_t{1} << 20;
/// Semaphores of one rank's Program.
inline constexpr std::int64_t kMaxSemaphores = std::int64_t{1} << 20;
/// Threads one process may be asked to start (COPRO_THREADS).
inline constexpr std::int64_t kMaxThreads = 4096;

}  // namespace copro::core
