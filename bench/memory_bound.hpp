#pragma once
// The memory-traffic bound of an all-reduce on one memory system (see docs/perf.md).
#include <cstdint>

namespace copro::bench {

/// Bytes read + bytes written per second by a large copy running one thread per core (the best of a
/// few repetitions). `bytesPerThread` is the size each thread copies.
double measureCopyBandwidth(std::uint64_t bytesPerThread = 64ULL << 20, int threads = 0);

/// Lower bound on an out-of-place all-reduce of `bytesPerRank` on `ranks` ranks sharing one memory system:
/// every input read once and every output written once, 2 * p * S bytes at `copyBandwidth`.
inline double allReduceMemoryBoundSec(std::uint64_t bytesPerRank, int ranks, double copyBandwidth) {
  return 2.0 * static_cast<double>(ranks) * static_cast<double>(bytesPerRank) / copyBandwidth;
}

}  // namespace copro::bench
