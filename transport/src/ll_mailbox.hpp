#pragma once
/// The LL mailboxes of the load/store backends (docs/program-ir.md "Protocols", docs/latency.md): one
/// slot per ordered pair of ranks and call parity, each a run of 64-byte lines of 56 data bytes and an
/// 8-byte flag, mapped once when the communicator is created (shm: in the control segment; inproc: in the
/// world). A writer stores a line's data and then its flag (the call's sequence number) with release
/// order; a reader that loads the flag with acquire order and finds the sequence number sees the data.
/// Flags only grow (sequence numbers), so slots are never reset. Two parities let a rank write call
/// seq while its peer may still read call seq-1; writing waits until the peer entered call seq-1, which
/// means it finished reading call seq-2 from the same parity.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "copro/core/program.hpp"

namespace copro::transport::lanes {

/// Communicators above this many ranks get no mailboxes (their LL ops run as simple ones): the
/// mailboxes grow with the square of the ranks.
inline constexpr int kLLMaxRanks = 16;
/// Bytes of one slot of one parity.
inline constexpr std::size_t kLLSlotSpan = core::llLines(core::kLLSlotBytes) * core::kLLLineBytes;

/// Bytes of all the mailboxes of a communicator of `nranks` (0 above kLLMaxRanks).
inline std::size_t llMailboxBytes(int nranks) {
  if (nranks < 2 || nranks > kLLMaxRanks) return 0;
  return static_cast<std::size_t>(nranks) * static_cast<std::size_t>(nranks) * 2 * kLLSlotSpan;
}

/// The slot that rank `from` writes for rank `to` in call `seq` (`base` 64-byte aligned).
inline std::byte* llSlot(std::byte* base, int nranks, int from, int to, std::uint64_t seq) {
  const std::size_t pair =
      static_cast<std::size_t>(to) * static_cast<std::size_t>(nranks) + static_cast<std::size_t>(from);
  return base + (pair * 2 + (seq & 1)) * kLLSlotSpan;
}

inline std::atomic_ref<std::uint64_t> llFlag(std::byte* line) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(line + core::kLLLineData));
}

/// Writes `bytes` from `src` into `slot` as lines flagged `seq`.
inline void llWrite(std::byte* slot, const std::byte* src, std::uint64_t bytes, std::uint64_t seq) {
  const std::uint64_t lines = core::llLines(bytes);
  for (std::uint64_t i = 0; i < lines; ++i) {
    std::byte* line = slot + i * core::kLLLineBytes;
    const std::uint64_t off = i * core::kLLLineData;
    const std::uint64_t n = bytes - off < core::kLLLineData ? bytes - off : core::kLLLineData;
    if (n > 0) std::memcpy(line, src + off, n);  // an empty payload may have no source at all
    llFlag(line).store(seq, std::memory_order_release);
  }
}

/// True when every line of a `bytes` payload in `slot` carries `seq`.
inline bool llArrived(std::byte* slot, std::uint64_t bytes, std::uint64_t seq) {
  const std::uint64_t lines = core::llLines(bytes);
  for (std::uint64_t i = lines; i-- > 0;) {
    if (llFlag(slot + i * core::kLLLineBytes).load(std::memory_order_acquire) != seq) return false;
  }
  return true;
}

/// Copies an arrived payload out of its lines into `dst`.
inline void llRead(std::byte* dst, const std::byte* slot, std::uint64_t bytes) {
  const std::uint64_t lines = core::llLines(bytes);
  for (std::uint64_t i = 0; i < lines; ++i) {
    const std::uint64_t off = i * core::kLLLineData;
    const std::uint64_t n = bytes - off < core::kLLLineData ? bytes - off : core::kLLLineData;
    if (n > 0) std::memcpy(dst + off, slot + i * core::kLLLineBytes, n);
  }
}

}  // namespace copro::transport::lanes
