#pragma once
/// Internal helpers shared by the interpreter, the validator and the JSON reader: how an op's addresses,
/// sizes and indirect fields resolve for the rank that executes it. Keeping one definition here is what
/// makes the interpreter (the oracle) and the validator agree on what an op touches.
#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/program.hpp"

namespace copro::core::detail {

/// "rank R lane L op I (name)": the prefix of every message about one op.
inline std::string opLabel(std::int32_t rank, int lane, std::int64_t index, const Op& op) {
  return "rank " + std::to_string(rank) + " lane " + std::to_string(lane) + " op " + std::to_string(index) + " (" +
         std::string(opCodeName(op.code)) + ")";
}

/// The rank an address names when `self` executes the op.
inline std::int32_t addrRank(const Addr& a, std::int32_t self) {
  return a.rank == kSelf ? self : a.rank;
}

/// "scratch[16, 48)".
inline std::string rangeText(BufferId buf, std::uint64_t offset, std::uint64_t bytes) {
  return bufferName(buf) + "[" + std::to_string(offset) + ", " + std::to_string(offset + bytes) + ")";
}

/// Rank -> load/store domain index (all ranks in domain 0 when the header lists none).
class DomainMap {
 public:
  explicit DomainMap(const ProgramHeader& h) : domain_(static_cast<std::size_t>(h.nranks > 0 ? h.nranks : 0), -1) {
    if (h.loadStoreDomains.empty()) {
      for (auto& d : domain_) d = 0;
      return;
    }
    for (std::size_t g = 0; g < h.loadStoreDomains.size(); ++g) {
      for (std::int32_t r : h.loadStoreDomains[g]) {
        if (r >= 0 && static_cast<std::size_t>(r) < domain_.size())
          domain_[static_cast<std::size_t>(r)] = static_cast<int>(g);
      }
    }
  }
  /// True when `a` may address `b`'s buffers directly (a rank listed in no group is alone).
  [[nodiscard]] bool same(std::int32_t a, std::int32_t b) const {
    if (a == b) return true;
    if (a < 0 || b < 0 || static_cast<std::size_t>(a) >= domain_.size() ||
        static_cast<std::size_t>(b) >= domain_.size()) {
      return false;
    }
    return domain_[static_cast<std::size_t>(a)] >= 0 &&
           domain_[static_cast<std::size_t>(a)] == domain_[static_cast<std::size_t>(b)];
  }

 private:
  std::vector<int> domain_;
};

/// Sizes and offsets of an op after its indirect fields are applied.
struct Geometry {
  std::uint64_t bytes = 0;
  std::uint64_t srcShift = 0;  ///< added to src.offset (and to every srcs[i].offset of a reduce)
  std::uint64_t dstShift = 0;  ///< added to dst.offset
};

/// Applies `op.indirect` with the executing rank's layout words. Returns an empty string or what is wrong
/// (a slot beyond the layout, an overflowing product).
inline std::string resolveGeometry(const Op& op, const std::uint64_t* layout, std::size_t words, Geometry& g) {
  g = Geometry{op.bytes, 0, 0};
  const Indirect& ind = op.indirect;
  if (!ind.active()) return {};
  auto read = [&](std::int32_t slot, const char* what, std::uint64_t& out) -> std::string {
    if (slot == kNoSlot) return {};
    if (slot < 0 || static_cast<std::size_t>(slot) >= words) {
      return std::string("indirect ") + what + " slot " + std::to_string(slot) + " is outside the layout (" +
             std::to_string(words) + " words)";
    }
    const std::uint64_t w = layout[slot];
    const std::uint64_t scale = ind.bytesScale;
    if (scale != 0 && w > UINT64_MAX / scale) {
      return std::string("indirect ") + what + ": layout[" + std::to_string(slot) + "] = " + std::to_string(w) +
             " times scale " + std::to_string(scale) + " overflows";
    }
    out = w * scale;
    return {};
  };
  std::string err = read(ind.bytesSlot, "bytes", g.bytes);
  if (err.empty()) err = read(ind.srcOffsetSlot, "src offset", g.srcShift);
  if (err.empty()) err = read(ind.dstOffsetSlot, "dst offset", g.dstShift);
  return err;
}

/// True for ops whose data moves asynchronously (complete at a later flush or signal).
inline bool isAsyncData(OpCode c) {
  return c == OpCode::kPut || c == OpCode::kGet || c == OpCode::kPutReduce || c == OpCode::kMulticast;
}

/// True for ops that add to a semaphore on `peer` (or on each of `ranks`).
inline bool carriesSignal(const Op& op) {
  if (op.code == OpCode::kSignal) return true;
  return (op.code == OpCode::kPut || op.code == OpCode::kPutReduce || op.code == OpCode::kMulticast) && op.sem >= 0;
}

}  // namespace copro::core::detail
