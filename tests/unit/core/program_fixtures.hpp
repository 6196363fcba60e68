#pragma once
// Small hand-written Programs shared by the core tests (interpreter, validator, JSON).
#include <cstdint>
#include <utility>
#include <vector>

#include "copro/core/program.hpp"

namespace copro::core::fixtures {

inline Addr self(BufferId b, std::uint64_t off = 0) {
  return Addr{kSelf, b, off};
}
inline Addr on(std::int32_t rank, BufferId b, std::uint64_t off = 0) {
  return Addr{rank, b, off};
}

/// Ring all-gather of `chunk` bytes per rank: copy the own chunk into the output, then n-1 steps of
/// put-with-signal to the next rank, each forwarding the chunk that arrived in the step before.
inline Program ringAllGather(std::int32_t n, std::uint64_t chunk) {
  ProgramHeader h;
  h.name = "allgather.ring";
  h.nranks = n;
  h.numSemaphores = 1;
  h.inputBytes.assign(static_cast<std::size_t>(n), chunk);
  h.outputBytes.assign(static_cast<std::size_t>(n), chunk * static_cast<std::uint64_t>(n));
  std::vector<RankProgram> ranks(static_cast<std::size_t>(n));
  for (std::int32_t r = 0; r < n; ++r) {
    RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    const std::int32_t next = (r + 1) % n;
    const auto off = [&](std::int32_t c) { return static_cast<std::uint64_t>((c % n + n) % n) * chunk; };
    rp.emit(0, Op::copy(self(BufferId::kOutput, off(r)), self(BufferId::kInput), chunk));
    for (std::int32_t s = 0; s < n - 1; ++s) {
      if (s > 0) rp.emit(0, Op::wait(0, static_cast<std::uint64_t>(s)));
      rp.emit(0, Op::put(next, on(next, BufferId::kOutput, off(r - s)), self(BufferId::kOutput, off(r - s)), chunk, 0));
    }
    rp.emit(0, Op::wait(0, static_cast<std::uint64_t>(n - 1)));
  }
  return Program(h, std::move(ranks));
}

/// Ring all-reduce of n chunks of `elems` float32 per rank, NCCL style: every step goes through two
/// scratch slots of the next rank (double buffering), the receiver reduces (reduce-scatter half) or
/// copies (all-gather half) into its own output and returns a credit on semaphore 1 when the slot will
/// be reused. `credits` false drops the credits: a fast sender may then overwrite a slot the receiver
/// has not consumed yet.
inline Program ringAllReduce(std::int32_t n, std::uint64_t elems, bool credits = true) {
  const std::uint64_t chunk = elems * 4;
  ProgramHeader h;
  h.name = "allreduce.ring";
  h.nranks = n;
  h.numSemaphores = 2;
  h.scratchBytes = 2 * chunk;
  h.inputBytes.assign(static_cast<std::size_t>(n), chunk * static_cast<std::uint64_t>(n));
  h.outputBytes = h.inputBytes;
  std::vector<RankProgram> ranks(static_cast<std::size_t>(n));
  const std::int32_t steps = 2 * (n - 1);
  for (std::int32_t r = 0; r < n; ++r) {
    RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    const std::int32_t next = (r + 1) % n;
    const std::int32_t prev = (r + n - 1) % n;
    const auto off = [&](std::int32_t c) { return static_cast<std::uint64_t>((c % n + n) % n) * chunk; };
    rp.emit(0, Op::copy(self(BufferId::kOutput), self(BufferId::kInput), chunk * static_cast<std::uint64_t>(n)));
    for (std::int32_t s = 0; s < steps; ++s) {
      const bool rs = s < n - 1;
      const std::int32_t a = s - (n - 1);  // all-gather step
      const std::int32_t sendChunk = rs ? r - s : r + 1 - a;
      const std::int32_t recvChunk = rs ? r - 1 - s : r - a;
      const std::uint64_t slot = static_cast<std::uint64_t>(s % 2) * chunk;
      if (credits && s >= 2) rp.emit(0, Op::wait(1, static_cast<std::uint64_t>(s - 1)));
      rp.emit(0, Op::put(next, on(next, BufferId::kScratch, slot), self(BufferId::kOutput, off(sendChunk)), chunk, 0));
      rp.emit(0, Op::wait(0, static_cast<std::uint64_t>(s) + 1));
      if (rs) {
        rp.emit(0, Op::reduce(self(BufferId::kOutput, off(recvChunk)),
                              {self(BufferId::kOutput, off(recvChunk)), self(BufferId::kScratch, slot)}, elems,
                              DataType::kFloat32, ReduceOp::kSum));
      } else {
        rp.emit(0, Op::copy(self(BufferId::kOutput, off(recvChunk)), self(BufferId::kScratch, slot), chunk));
      }
      // The slot is reused two steps later; the last two steps' slots are not, so no credit for them
      // (a credit nobody waits for would be a leftover signal).
      if (credits && s + 2 < steps) rp.emit(0, Op::signal(prev, 1));
    }
  }
  return Program(h, std::move(ranks));
}

}  // namespace copro::core::fixtures
