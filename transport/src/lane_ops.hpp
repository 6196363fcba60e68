#pragma once
/// One copy of what the op runners of the load/store backends (inproc, shm) share: error reporting,
/// rank, element and bounds checks, indirect geometry, and the acquisition of peers (a peer is usable once
/// it entered this very call; its accessor count holds it there until the op ends). The backends differ
/// only in how they reach a peer's control block, which `Peers` supplies:
///
///   int size() const;                              ranks of the communicator
///   Ctl& ctl(std::int32_t r) const;                a peer's control block: std::atomic<std::uint64_t> state,
///                                                  std::atomic<std::int64_t-ish> accessors
///   bool dead(std::uint64_t state) const;          the state of a failed, aborted or departed rank
///   std::string deadReason(std::int32_t r) const;  why such a rank cannot be reached
///   const std::uint64_t* ownLayout() const;        the executing rank's layout words
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"
#include "copro/core/reduce.hpp"
#include "copro/core/status.hpp"
#include "lane_util.hpp"

namespace copro::transport::lanes {

enum class OpResult { kDone, kBlocked, kFailed };
enum class Access { kReady, kNotYet, kFailed };

/// "<label> lane L op I (code)" for messages.
template <typename CallT>
std::string opLabelOf(const CallT& call, int lane, std::uint32_t index) {
  std::string out = call.label + " lane " + std::to_string(lane) + " op " + std::to_string(index);
  const auto& ops = call.rankProgram->lanes[static_cast<std::size_t>(lane)].ops;
  if (index < ops.size()) out += " (" + std::string(core::opCodeName(ops[index].code)) + ")";
  return out;
}

/// The shared part of an op runner. `CallT` has `seq`, `label`, `header` and `rankProgram`; `LaneT` has
/// `ops`, `peers` (acquired ranks) and `blockedOnRank`.
template <typename Peers, typename CallT, typename LaneT>
class LaneOpCore {
 protected:
  LaneOpCore(Peers peers, CallT& call, int lane, core::Status& error, std::int32_t me)
      : peers_(peers),
        call_(call),
        lane_(lane),
        l_(call.lanes[static_cast<std::size_t>(lane)]),
        ops_(*l_.ops),
        error_(error),
        me_(me) {}

  // ---- errors ----
  OpResult fail(const std::string& what, core::ErrorCode code = core::ErrorCode::kInvalidProgram) {
    error_ = core::Status(code, opLabelOf(call_, lane_, pc_) + ": " + what);
    return OpResult::kFailed;
  }

  bool checkRank(std::int32_t r, const char* role) {
    if (r >= 0 && r < peers_.size()) return true;
    fail(std::string(role) + " rank " + std::to_string(r) + " is out of range (the communicator has " +
         std::to_string(peers_.size()) + " ranks)");
    return false;
  }

  bool checkElements(const core::Op& op, std::uint64_t bytes) {
    const std::size_t size = core::dataTypeSize(op.dtype);
    if (size == 0) {
      fail("unknown data type " + std::to_string(static_cast<int>(op.dtype)));
      return false;
    }
    if (bytes % size != 0) {
      fail(std::to_string(bytes) + " bytes is not a whole number of " + std::string(core::dataTypeName(op.dtype)) +
           " elements");
      return false;
    }
    if (!core::reduceSupported(op.dtype, op.redop)) {
      fail(std::string(core::reduceOpName(op.redop)) + " is not supported on " +
               std::string(core::dataTypeName(op.dtype)),
           core::ErrorCode::kUnsupported);
      return false;
    }
    return true;
  }

  // ---- peers ----
  /// Makes `target`'s published state usable for this op: it must be in this very call.
  Access acquire(std::int32_t target, bool report = true) {
    if (target == me_) return Access::kReady;
    for (std::int32_t p : l_.peers) {
      if (p == target) return Access::kReady;
    }
    auto& t = peers_.ctl(target);
    const std::uint64_t want = 2 * call_.seq;
    std::uint64_t s = t.state.load(std::memory_order_acquire);
    if (s == want) {
      // Announce the access, then re-check: the owner stores its state before it waits for accessors
      // to drain, so either it sees us or we see its new state.
      t.accessors.fetch_add(1, std::memory_order_seq_cst);
      s = t.state.load(std::memory_order_seq_cst);
      if (s == want) {
        l_.peers.push_back(target);
        return Access::kReady;
      }
      t.accessors.fetch_sub(1, std::memory_order_release);
    }
    if (s < want) {
      l_.blockedOnRank.store(target, std::memory_order_relaxed);
      return Access::kNotYet;
    }
    if (!report) return Access::kFailed;
    if (peers_.dead(s)) {
      fail(peers_.deadReason(target), core::ErrorCode::kRemoteError);
    } else {
      fail("rank " + std::to_string(target) + " already finished call " + std::to_string(call_.seq) +
           ": the Program lets it complete before this access (a missing signal/wait pair)");
    }
    return Access::kFailed;
  }

  void releaseFrom(std::size_t mark) {
    for (std::size_t i = mark; i < l_.peers.size(); ++i) {
      peers_.ctl(l_.peers[i]).accessors.fetch_sub(1, std::memory_order_release);
    }
    l_.peers.resize(mark);
  }
  void releaseAll() { releaseFrom(0); }

  // ---- addresses ----
  /// Sizes and offset shifts of `op` after its indirect fields.
  bool geometry(const core::Op& op, Geometry& g, bool report = true) {
    g = Geometry{op.bytes, 0, 0};
    const core::Indirect& ind = op.indirect;
    if (!ind.active()) return true;
    const std::uint64_t words = call_.header->layoutWords;
    const std::uint64_t* layout = peers_.ownLayout();
    auto read = [&](std::int32_t slot, const char* what, std::uint64_t& out) -> bool {
      if (slot == core::kNoSlot) return true;
      if (slot < 0 || static_cast<std::uint64_t>(slot) >= words) {
        if (report) {
          fail(std::string("indirect ") + what + " slot " + std::to_string(slot) + " is outside the layout (" +
               std::to_string(words) + " words)");
        }
        return false;
      }
      const std::uint64_t w = layout[slot];
      const std::uint64_t scale = ind.bytesScale;
      if (scale != 0 && w > UINT64_MAX / scale) {
        if (report) {
          fail(std::string("indirect ") + what + ": layout[" + std::to_string(slot) + "] = " + std::to_string(w) +
               " times scale " + std::to_string(scale) + " overflows");
        }
        return false;
      }
      out = w * scale;
      return true;
    };
    return read(ind.bytesSlot, "bytes", g.bytes) && read(ind.srcOffsetSlot, "src offset", g.srcShift) &&
           read(ind.dstOffsetSlot, "dst offset", g.dstShift);
  }

  bool shifted(std::uint64_t offset, std::uint64_t shift, std::uint64_t& out, bool report = true) {
    out = offset + shift;
    if (out >= offset) return true;
    if (report) fail("indirect offset overflows");
    return false;
  }

  /// [offset, offset+bytes) inside a buffer of `limit` bytes, and writable when written.
  bool boundsOk(const char* role, std::int32_t r, core::BufferId buf, std::uint64_t offset, std::uint64_t bytes,
                std::uint64_t limit, bool writable, bool write, bool report) {
    // An empty access touches nothing, wherever it points (all-to-all-v displacements of empty blocks).
    if (bytes > 0 && (offset > limit || bytes > limit - offset)) {
      if (report) {
        fail(std::string(role) + " " + core::bufferName(buf) + "[" + std::to_string(offset) + ", " +
             std::to_string(offset + bytes) + ") of rank " + std::to_string(r) + " is out of bounds (" +
             core::bufferName(buf) + " has " + std::to_string(limit) + " bytes in this call)");
      }
      return false;
    }
    if (write && !writable && bytes > 0) {
      if (report) {
        fail(std::string(role) + " " + core::bufferName(buf) + " of rank " + std::to_string(r) +
             " is read-only (the input of an out-of-place call)");
      }
      return false;
    }
    return true;
  }

  bool noSuchBuffer(const char* role, std::int32_t r, core::BufferId buf, std::size_t have, bool report) {
    if (report) {
      fail(std::string(role) + " buffer " + core::bufferName(buf) + " of rank " + std::to_string(r) +
           " does not exist (the call has " + std::to_string(have - core::kNumBuffers) + " extra buffers)");
    }
    return false;
  }

  Peers peers_;
  CallT& call_;
  int lane_;
  LaneT& l_;
  const std::vector<core::Op>& ops_;
  core::Status& error_;
  std::int32_t me_;
  std::uint32_t pc_ = 0;
};

}  // namespace copro::transport::lanes
