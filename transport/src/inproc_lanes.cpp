/// The inproc port of the load/store lane engine (loadstore_lane_engine.hpp): ranks are threads of one
/// process, so every rank's published buffers and semaphores are reached by plain loads and stores.
/// Ops that reach a peer wait (without blocking the thread: the lane reports kBlocked) until that peer
/// has entered the same call.
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"
#include "copro/core/reduce.hpp"
#include "copro/transport/inproc.hpp"
#include "inproc_world.hpp"
#include "lane_util.hpp"
#include "loadstore_lane_engine.hpp"

namespace copro::transport {

namespace {
/// Reduces executed fused with their followers (for the tests, which check that fusion happens).
std::atomic<std::uint64_t> gFusedReduces{0};

}  // namespace

void setInprocOpObserver(std::function<void(const InprocOpTiming&)> observer) {
  if (!observer) {
    setLaneOpObserver(nullptr);
    return;
  }
  setLaneOpObserver([f = std::move(observer)](const LaneOpTiming& t) {
    if (std::string_view(t.backend) == "inproc") f(t);
  });
}

namespace detail {
/// Not part of the public API (the tests declare it): how many reduce+multicast/put groups ran fused.
std::uint64_t inprocFusedReducesForTesting() noexcept {
  return gFusedReduces.load(std::memory_order_relaxed);
}
}  // namespace detail

namespace inproc {

using core::BufferId;
using core::Status;

std::string opLabel(const Call& call, int lane, std::uint32_t index) {
  return lanes::opLabelOf(call, lane, index);
}

namespace {

/// How inproc ranks reach each other: their RankState in the shared World.
class InprocPort final : public lanes::LoadStoreLane<InprocPort, lanes::DirectLoc, Call, LaneState> {
 public:
  InprocPort(World& world, RankState& self, Call& call, int lane, Status& error)
      : LoadStoreLane(call, lane, error, self.rank()), world_(world), self_(self) {}
  static constexpr const char* kBackend = "inproc";

  [[nodiscard]] int size() const { return world_.size(); }
  [[nodiscard]] RankState& ctl(std::int32_t r) const { return world_.rank(r); }
  [[nodiscard]] static bool dead(std::uint64_t state) { return state == RankState::kDead; }
  [[nodiscard]] static std::string deadReason(std::int32_t r) {
    return "rank " + std::to_string(r) + " failed or was aborted and can no longer be reached";
  }
  [[nodiscard]] const std::uint64_t* ownLayout() const { return self_.layout; }
  [[nodiscard]] std::uint64_t semBase(std::int32_t sem) const { return self_.semBase[static_cast<std::size_t>(sem)]; }

  /// Resolves [offset, offset+bytes) of buffer `buf` of rank `r` (self or an acquired peer).
  bool locate(const char* role, std::int32_t r, BufferId buf, std::uint64_t offset, std::uint64_t bytes, bool write,
              lanes::DirectLoc& out, bool report) {
    const std::vector<Region>& regs = world_.rank(r).regions;
    const auto b = static_cast<std::size_t>(buf);
    if (b >= regs.size()) return noSuchBuffer(role, r, buf, regs.size(), report);
    const Region& reg = regs[b];
    if (!boundsOk(role, r, buf, offset, bytes, reg.limit, reg.writable, write, report)) return false;
    out.ptr = reg.base + offset;
    return true;
  }

  bool semaphore(std::int32_t r, std::int32_t sem, std::atomic<std::uint64_t>*& out, bool report) {
    const RankState& rs = world_.rank(r);
    if (sem >= 0 && sem < rs.numSems) {
      out = rs.sems + sem;
      return true;
    }
    if (report) {
      fail("semaphore " + std::to_string(sem) + " of rank " + std::to_string(r) + " is out of range (numSemaphores " +
           std::to_string(rs.numSems) + ")");
    }
    return false;
  }

  static bool move(const lanes::DirectLoc& dst, const lanes::DirectLoc& src, std::uint64_t bytes) {
    lanes::copyBytes(dst.ptr, src.ptr, bytes);
    return true;
  }

  bool reduceLocs(const std::vector<lanes::DirectLoc>& dsts, const std::vector<lanes::DirectLoc>& srcs,
                  std::uint64_t bytes, const core::FlatOp& op) {
    const std::size_t count = bytes / core::dataTypeSize(op.dtype);
    s_.kernelSrcs.clear();
    for (const lanes::DirectLoc& s : srcs) s_.kernelSrcs.push_back(s.ptr);
    const int nsrcs = static_cast<int>(s_.kernelSrcs.size());
    if (dsts.size() > 1) {
      gFusedReduces.fetch_add(1, std::memory_order_relaxed);
      s_.kernelDsts.clear();
      for (const lanes::DirectLoc& d : dsts) s_.kernelDsts.push_back(d.ptr);
      core::reduceToMany(s_.kernelDsts.data(), static_cast<int>(dsts.size()), s_.kernelSrcs.data(), nsrcs, count,
                         op.dtype, op.redop, op.divisor);
    } else if (count > 0) {
      core::reduceInto(dsts[0].ptr, s_.kernelSrcs.data(), nsrcs, count, op.dtype, op.redop, op.divisor);
    }
    return true;
  }

  /// put_reduce into one rank is serialized by its mutex (held only for the reduction).
  bool lockTarget(std::int32_t r) {
    world_.rank(r).putReduceMutex.lock();
    return true;
  }
  void unlockTarget(std::int32_t r) { world_.rank(r).putReduceMutex.unlock(); }
  void notify(std::int32_t r) { world_.notifyRank(world_.rank(r)); }
  [[nodiscard]] std::byte* llSlot(std::int32_t from, std::int32_t to, std::uint64_t seq) const {
    std::byte* base = world_.llMailbox();
    return base == nullptr ? nullptr : lanes::llSlot(base, world_.size(), from, to, seq);
  }

  static bool clash(const lanes::DirectLoc& a, const lanes::DirectLoc& b, std::uint64_t bytes, bool equalOk) {
    return !(equalOk && a.ptr == b.ptr) && lanes::overlaps(a.ptr, b.ptr, bytes);
  }

 private:
  World& world_;
  RankState& self_;
};

}  // namespace

LaneRun runLane(World& world, RankState& rs, Call& call, int lane, Status& error) {
  return InprocPort(world, rs, call, lane, error).runLane();
}

}  // namespace inproc
}  // namespace copro::transport
