#pragma once
/// Small pieces every executor's lane runner uses (inproc, shm, the remote engine of mpi/ucx).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "copro/core/reduce.hpp"

namespace copro::transport::lanes {

/// Whether [a, a+n) and [b, b+n) intersect.
inline bool overlaps(const std::byte* a, const std::byte* b, std::uint64_t n) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a);
  const auto pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + n && pb < pa + n;
}

/// Copy that tolerates aliasing (Programs may copy a buffer onto itself in place); streaming stores
/// for large disjoint copies.
inline void copyBytes(std::byte* dst, const std::byte* src, std::uint64_t n) {
  if (n == 0 || dst == src) return;
  if (overlaps(dst, src, n)) {
    std::memmove(dst, src, n);
  } else {
    core::streamCopy(dst, src, n);
  }
}

/// Sizes and offset shifts of an op after its indirect fields (layout words of the executing rank).
struct Geometry {
  std::uint64_t bytes = 0;
  std::uint64_t srcShift = 0;
  std::uint64_t dstShift = 0;
};

}  // namespace copro::transport::lanes
