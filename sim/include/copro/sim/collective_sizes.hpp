#pragma once
/// nccl-tests' size conventions, shared by sim::Communicator and copro-sim (and meant for copro-perf): what the "size"
/// column means per collective, the element count it gives, and the bus-bandwidth factor.
///
///   size S = bytes of the larger per-rank buffer: the all-reduce/broadcast/reduce buffer, the all-gather
///            and gather output, the reduce-scatter and scatter input, the all-to-all send buffer.
///   algbw  = S / time (GB = 1e9 bytes)
///   busbw  = algbw x 2(p-1)/p (all-reduce), x (p-1)/p (all-gather, reduce-scatter, all-to-all, gather,
///            scatter), x 1 (broadcast, reduce)
#include <cstdint>

#include "copro/collectives/collective.hpp"

namespace copro::sim {

/// True for collectives whose count is per rank block (S = count * elemSize * p).
inline bool countIsPerBlock(collectives::CollectiveKind k) {
  using collectives::CollectiveKind;
  return k == CollectiveKind::kAllGather || k == CollectiveKind::kReduceScatter || k == CollectiveKind::kAllToAll ||
         k == CollectiveKind::kGather || k == CollectiveKind::kScatter;
}

/// nccl-tests' bus bandwidth factor for `p` ranks.
inline double busBandwidthFactor(collectives::CollectiveKind k, int p) {
  using collectives::CollectiveKind;
  if (p <= 0) return 1.0;
  if (k == CollectiveKind::kAllReduce) return 2.0 * (p - 1) / p;
  if (countIsPerBlock(k)) return static_cast<double>(p - 1) / p;
  return 1.0;
}

/// The collective's `count` (elements, CollectiveArgs::count) for an nccl-tests size of `bytes`; rounds
/// down to whole elements (and whole blocks).
inline std::uint64_t countForSize(collectives::CollectiveKind k, std::uint64_t bytes, std::uint64_t elemSize, int p) {
  const std::uint64_t elems = bytes / elemSize;
  return countIsPerBlock(k) ? elems / static_cast<std::uint64_t>(p) : elems;
}

/// The size S (bytes) a count really moves: countForSize's inverse after rounding.
inline std::uint64_t sizeForCount(collectives::CollectiveKind k, std::uint64_t count, std::uint64_t elemSize, int p) {
  return countIsPerBlock(k) ? count * elemSize * static_cast<std::uint64_t>(p) : count * elemSize;
}

}  // namespace copro::sim
