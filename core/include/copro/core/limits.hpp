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

/// Tokens per rank of a MoE dispatch/combine (routing generators, workload tasks, copro-sim moe).
inline constexpr std::int64_t kMaxMoeTokens = std::int64_t{1} << 20;
/// Routed experts of a MoE layer (and so the largest topk).
inline constexpr std::int64_t kMaxMoeExperts = std::int64_t{1} << 16;
/// Hidden size (elements per token) of a MoE layer.
inline constexpr std::int64_t kMaxMoeHidden = std::int64_t{1} << 20;
/// Token-expert slots one generated routing may hold in all (ranks x tokens x topk; an id and a weight
/// each): 2^26 x 8 B = 512 MiB (2048 ranks x 4096 tokens x top-8 fit).
inline constexpr std::int64_t kMaxMoeRoutingSlots = std::int64_t{1} << 26;
/// Bytes per rank of one simulated collective (copro-sim --size): 1 TiB.
inline constexpr std::uint64_t kMaxSimBytes = std::uint64_t{1} << 40;
/// SMs of one GPU (simulator settings and workload tasks).
inline constexpr std::int64_t kMaxSms = 65536;
/// Ports of one switch in a topology.
inline constexpr std::int64_t kMaxSwitchRadix = 65536;
/// Nodes (GPUs, NICs, hosts, switches) and directed links of one fabric.
#ifndef COPRO_FUZZ_LIMITS
inline constexpr std::int64_t kMaxFabricNodes = std::int64_t{1} << 22;
inline constexpr std::int64_t kMaxFabricLinks = std::int64_t{1} << 23;
#else
// The fuzz build (fuzz/CMakeLists.txt) refuses fabrics past 4,096 nodes or links through these same
// checks, so that mutated topology files do not spend the fuzzer's time building large networks (the
// seeds have at most 336 links; docs/fuzzing.md).
inline constexpr std::int64_t kMaxFabricNodes = 4096;
inline constexpr std::int64_t kMaxFabricLinks = 4096;
#endif

}  // namespace copro::core
