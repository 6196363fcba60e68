#pragma once
/// Reduction and copy kernels. The loops are written so GCC vectorizes them at -O2/-O3 on the baseline
/// ISA (see docs/kernels.md for how that was checked); 16- and 8-bit floats are widened to float32,
/// combined there, and rounded to nearest even on store.
#include <cstddef>
#include <cstdint>

#include "copro/core/dtype.hpp"
#include "copro/core/status.hpp"

namespace copro::core {

/// True when `op` is defined on `type` (every op is defined on every type today; kept for the API).
bool reduceSupported(DataType type, ReduceOp op) noexcept;

/// dst[i] = op(srcs[0][i], ..., srcs[nsrcs-1][i]) for i < count; then, when divisor > 0, dst[i] /= divisor
/// (how kAvg finishes: callers pass kAvg or kSum with the rank count as divisor on the final step, and
/// kAvg with divisor 0 for intermediate steps, where kAvg combines like kSum).
/// `dst` may alias any source exactly (in place); partial overlap is not allowed. nsrcs >= 1.
void reduceInto(void* dst, const void* const* srcs, int nsrcs, std::size_t count, DataType type, ReduceOp op,
                std::uint32_t divisor = 0) noexcept;

/// Copies with non-temporal stores from streamCopyThreshold() bytes up (bypasses the cache so a copy to
/// memory nobody reads soon does not pay for a read-for-ownership), with memcpy below.
void streamCopy(void* dst, const void* src, std::size_t bytes) noexcept;

/// An eighth of one last-level cache (sysfs cpu0/cache/index3, else sysconf(_SC_LEVEL3_CACHE_SIZE)), within
/// [256 KiB, 16 MiB]; 256 KiB where the cache size is unknown. Below it a copy, its source and the peer's reads of it
/// fit in the cache, where plain stores are faster than a trip to memory (docs/kernels.md: 2-rank all-to-all of 1-4
/// MiB, 1.5-2.2x faster than with the old fixed 256 KiB on a 32 MiB L3).
std::size_t streamCopyThreshold() noexcept;

/// Reduces and writes the result to several destinations at once, cache block by cache block:
/// each dsts[j][i] = op(srcs[0][i], ...) (then / divisor). Reads every source once and writes every
/// destination once, so a load/store-domain all-reduce reaches the memory-traffic bound.
/// Destinations may not overlap sources except dsts[j] == srcs[k] exactly.
void reduceToMany(void* const* dsts, int ndsts, const void* const* srcs, int nsrcs, std::size_t count, DataType type,
                  ReduceOp op, std::uint32_t divisor = 0) noexcept;

}  // namespace copro::core
