/// The shm port of the load/store lane engine (loadstore_lane_engine.hpp): how one process reaches the
/// buffers of the others. A peer's buffer is reached directly when it lives in shared memory (scratch,
/// layout, semaphores, allocate()d memory, staging shadows) and through Cross Memory Attach otherwise;
/// reductions over peers' user buffers read them into a per-lane staging block by block.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"
#include "copro/core/reduce.hpp"
#include "lane_util.hpp"
#include "loadstore_lane_engine.hpp"
#include "shm_internal.hpp"

namespace copro::transport::shm {

using core::BufferId;
using core::ErrorCode;
using core::Status;

std::string opLabel(const Call& call, int lane, std::uint32_t index) {
  return lanes::opLabelOf(call, lane, index);
}

namespace {

/// Block size of reductions that stage peers' data: large enough that the system calls cost little
/// against the copy, small enough that the staged blocks stay in cache for the reduction.
constexpr std::uint64_t kStageBlock = 256 * 1024;

using lanes::copyBytes;
using lanes::overlaps;

/// How shm ranks reach each other: their control blocks in the shared control segment, their data
/// segments mapped on first use, and Cross Memory Attach for user buffers.
class ShmPort final : public lanes::LoadStoreLane<ShmPort, Loc, Call, LaneState> {
 public:
  ShmPort(ShmComm& comm, Call& call, int lane, Status& error)
      : LoadStoreLane(call, lane, error, comm.rank()), comm_(comm) {}
  static constexpr const char* kBackend = "shm";

  [[nodiscard]] int size() const { return comm_.size(); }
  [[nodiscard]] RankCtl& ctl(std::int32_t r) const { return comm_.ctl(r); }
  [[nodiscard]] static bool dead(std::uint64_t state) { return state == kDeadState; }
  [[nodiscard]] std::string deadReason(std::int32_t r) const {
    // The first failure is the cause: name it, and the peer this lane met only as a consequence.
    const int first = comm_.poisonedRank();
    if (first >= 0 && first != r) {
      return "blocked while rank " + std::to_string(first) + " failed: " + comm_.poisonReason() + " (peer " +
             std::to_string(r) + ", which this lane needed, left after that failure)";
    }
    std::string why = "rank " + std::to_string(r) + " failed, was aborted or left and can no longer be reached";
    if (first >= 0) why += " (" + comm_.poisonReason() + ")";
    return why;
  }
  [[nodiscard]] const std::uint64_t* ownLayout() const { return comm_.ownLayout(); }
  [[nodiscard]] std::uint64_t semBase(std::int32_t sem) const { return comm_.semBase(sem); }
  void notify(std::int32_t r) { comm_.notifyRank(r); }
  [[nodiscard]] std::byte* llSlot(std::int32_t from, std::int32_t to, std::uint64_t seq) const {
    std::byte* base = comm_.llMailbox();
    return base == nullptr ? nullptr : lanes::llSlot(base, comm_.size(), from, to, seq);
  }

  /// put_reduce into one rank is serialized by a lock word in its control block; a taken lock blocks
  /// the lane, not the thread, so a holder that dies is found by the liveness check.
  bool lockTarget(std::int32_t r) {
    std::uint32_t expected = 0;
    return comm_.ctl(r).putReduceLock.compare_exchange_strong(expected, static_cast<std::uint32_t>(me_ + 1),
                                                              std::memory_order_acquire);
  }
  void unlockTarget(std::int32_t r) { comm_.ctl(r).putReduceLock.store(0, std::memory_order_release); }

  /// Overlap of two locations: both in this process, or both in the same peer process.
  static bool clash(const Loc& a, const Loc& b, std::uint64_t bytes, bool equalOk) {
    if (a.direct() && b.direct()) return !(equalOk && a.ptr == b.ptr) && overlaps(a.ptr, b.ptr, bytes);
    if (a.direct() || b.direct() || a.pid != b.pid || (equalOk && a.remote == b.remote)) return false;
    return overlaps(reinterpret_cast<std::byte*>(a.remote), reinterpret_cast<std::byte*>(b.remote), bytes);
  }

  void mapFailed(std::int32_t r, const std::string& why) {
    if (comm_.knownGone(r)) {
      fail("rank " + std::to_string(r) + " (pid " + std::to_string(comm_.ctl(r).pid) + ") exited or was killed",
           ErrorCode::kRemoteError);
    } else {
      fail("cannot map the shared memory of rank " + std::to_string(r) + ": " + why, ErrorCode::kRemoteError);
    }
  }

  /// Resolves [offset, offset+bytes) of buffer `buf` of rank `r` (self or an acquired peer).
  bool locate(const char* role, std::int32_t r, BufferId buf, std::uint64_t offset, std::uint64_t bytes, bool write,
              Loc& out, bool report) {
    out = Loc{};
    const auto b = static_cast<std::size_t>(buf);
    if (r == me_) {
      const std::vector<Region>& regs = comm_.ownRegions();
      if (b >= regs.size()) return noSuchBuffer(role, r, buf, regs.size(), report);
      const Region& reg = regs[b];
      if (!boundsOk(role, r, buf, offset, bytes, reg.limit, reg.writable, write, report)) return false;
      out.ptr = reg.base == nullptr ? nullptr : reg.base + offset;
      return true;
    }
    std::string why;
    const DataHeader* h = comm_.peerData(r, why);
    if (h == nullptr) {
      if (report) mapFailed(r, why);
      return false;
    }
    const auto* base = reinterpret_cast<const std::byte*>(h);
    const auto* regs = reinterpret_cast<const SharedRegion*>(base + h->regionsOff);
    if (h->numRegions == 0) {
      if (report) {
        fail("rank " + std::to_string(r) +
                 " published no buffers for this call: it runs only LL and local ops (do all ranks run the same "
                 "collective with the same algorithm?)",
             ErrorCode::kInvalidUsage);
      }
      return false;
    }
    if (b >= h->numRegions) return noSuchBuffer(role, r, buf, h->numRegions, report);
    const SharedRegion& reg = regs[b];
    if (!boundsOk(role, r, buf, offset, bytes, reg.limit, reg.writable != 0, write, report)) return false;
    switch (reg.kind) {
      case RegionKind::kData:
        out.ptr = const_cast<std::byte*>(base) + reg.offset + offset;
        return true;
      case RegionKind::kAlloc: {
        std::byte* a = comm_.mapAllocation(reg.allocName, reg.offset + reg.limit, why);
        if (a == nullptr) {
          if (report) {
            fail("cannot map buffer " + core::bufferName(buf) + " of rank " + std::to_string(r) + ": " + why,
                 ErrorCode::kRemoteError);
          }
          return false;
        }
        out.ptr = a + reg.offset + offset;
        return true;
      }
      case RegionKind::kUser:
        out.remote = reg.ownerAddr + offset;
        out.pid = comm_.ctl(r).pid;
        out.rank = r;
        return true;
      case RegionKind::kNone:
        return true;  // a null buffer with limit 0: only empty accesses pass the bounds check
    }
    return false;
  }

  bool semaphore(std::int32_t r, std::int32_t sem, std::atomic<std::uint64_t>*& out, bool report) {
    std::int32_t n = 0;
    if (r == me_) {
      n = comm_.ownNumSems();
      if (sem >= 0 && sem < n) {
        out = comm_.ownSems() + sem;
        return true;
      }
    } else {
      std::string why;
      const DataHeader* h = comm_.peerData(r, why);
      if (h == nullptr) {
        if (report) mapFailed(r, why);
        return false;
      }
      n = h->numSems;
      if (sem >= 0 && sem < n) {
        auto* base = reinterpret_cast<std::byte*>(const_cast<DataHeader*>(h));
        out = reinterpret_cast<std::atomic<std::uint64_t>*>(base + h->semsOff) + sem;
        return true;
      }
    }
    if (report) {
      fail("semaphore " + std::to_string(sem) + " of rank " + std::to_string(r) + " is out of range (numSemaphores " +
           std::to_string(n) + ")");
    }
    return false;
  }

  // ---- data movement ----
  bool cmaFailed(int err, const Loc& peer, const char* what) {
    const std::string who = "rank " + std::to_string(peer.rank) + " (pid " + std::to_string(peer.pid) + ")";
    if (err == ESRCH) {
      comm_.peerGone(peer.rank);
      fail(who + " exited or was killed (Cross Memory Attach: " + std::strerror(err) + ")", ErrorCode::kRemoteError);
    } else {
      fail(std::string("Cross Memory Attach ") + what + " " + who + " failed: " + std::strerror(err),
           ErrorCode::kRemoteError);
    }
    return false;
  }

  /// Copies n bytes between two resolved locations (at most one copy; two through staging when both are
  /// peers' user buffers).
  bool move(const Loc& dst, const Loc& src, std::uint64_t n) {
    if (n == 0) return true;
    if (dst.direct() && src.direct()) {
      copyBytes(dst.ptr, src.ptr, n);
      return true;
    }
    if (dst.direct()) {
      const int e = cmaRead(src.pid, dst.ptr, src.remote, n);
      return e == 0 || cmaFailed(e, src, "read from");
    }
    if (src.direct()) {
      const int e = cmaWrite(dst.pid, dst.remote, src.ptr, n);
      return e == 0 || cmaFailed(e, dst, "write to");
    }
    stage(std::min(n, kStageBlock));
    for (std::uint64_t off = 0; off < n; off += kStageBlock) {
      const std::uint64_t k = std::min(kStageBlock, n - off);
      int e = cmaRead(src.pid, s_.staging.data(), src.remote + off, k);
      if (e != 0) return cmaFailed(e, src, "read from");
      e = cmaWrite(dst.pid, dst.remote + off, s_.staging.data(), k);
      if (e != 0) return cmaFailed(e, dst, "write to");
    }
    return true;
  }

  void stage(std::uint64_t bytes) {
    if (s_.staging.size() < bytes) s_.staging.resize(bytes);
  }

  /// dsts[j] = op(srcs...) over `bytes`. Direct locations are used in place; peers' user buffers are read
  /// into staging and written back from the first direct destination (or a staging block), block by block.
  bool reduceLocs(const std::vector<Loc>& dsts, const std::vector<Loc>& srcs, std::uint64_t bytes,
                  const core::FlatOp& op) {
    const std::size_t esize = core::dataTypeSize(op.dtype);
    if (bytes == 0) return true;
    bool allDirect = true;
    for (const Loc& d : dsts) allDirect = allDirect && d.direct();
    for (const Loc& s : srcs) allDirect = allDirect && s.direct();
    s_.kernelDsts.clear();
    s_.kernelSrcs.clear();
    if (allDirect) {
      for (const Loc& d : dsts) s_.kernelDsts.push_back(d.ptr);
      for (const Loc& s : srcs) s_.kernelSrcs.push_back(s.ptr);
      runKernel(bytes / esize, op);
      return true;
    }
    std::size_t remoteSrcs = 0;
    int firstDirect = -1;
    for (std::size_t j = 0; j < dsts.size(); ++j) {
      if (dsts[j].direct() && firstDirect < 0) firstDirect = static_cast<int>(j);
    }
    for (const Loc& s : srcs) remoteSrcs += s.direct() ? 0 : 1;
    const std::uint64_t block = kStageBlock / esize * esize;
    stage(block * (remoteSrcs + (firstDirect < 0 ? 1 : 0)));
    std::byte* stageOut = s_.staging.data() + block * remoteSrcs;
    for (std::uint64_t off = 0; off < bytes; off += block) {
      const std::uint64_t k = std::min(block, bytes - off);
      s_.kernelSrcs.clear();
      std::size_t slot = 0;
      for (const Loc& s : srcs) {
        if (s.direct()) {
          s_.kernelSrcs.push_back(s.ptr + off);
          continue;
        }
        std::byte* st = s_.staging.data() + block * slot++;
        const int e = cmaRead(s.pid, st, s.remote + off, k);
        if (e != 0) return cmaFailed(e, s, "read from");
        s_.kernelSrcs.push_back(st);
      }
      s_.kernelDsts.clear();
      for (const Loc& d : dsts) {
        if (d.direct()) s_.kernelDsts.push_back(d.ptr + off);
      }
      if (firstDirect < 0) s_.kernelDsts.push_back(stageOut);
      runKernel(k / esize, op);
      const auto* from = static_cast<const std::byte*>(s_.kernelDsts.front());
      for (const Loc& d : dsts) {
        if (d.direct()) continue;
        const int e = cmaWrite(d.pid, d.remote + off, from, k);
        if (e != 0) return cmaFailed(e, d, "write to");
      }
    }
    return true;
  }

  void runKernel(std::size_t count, const core::FlatOp& op) {
    if (count == 0) return;
    const int nsrcs = static_cast<int>(s_.kernelSrcs.size());
    if (s_.kernelDsts.size() == 1) {
      core::reduceInto(s_.kernelDsts[0], s_.kernelSrcs.data(), nsrcs, count, op.dtype, op.redop, op.divisor);
    } else {
      core::reduceToMany(s_.kernelDsts.data(), static_cast<int>(s_.kernelDsts.size()), s_.kernelSrcs.data(), nsrcs,
                         count, op.dtype, op.redop, op.divisor);
    }
  }

 private:
  ShmComm& comm_;
};

}  // namespace

LaneRun runLane(ShmComm& comm, Call& call, int lane, Status& error) {
  return ShmPort(comm, call, lane, error).runLane();
}

}  // namespace copro::transport::shm
