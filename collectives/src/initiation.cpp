/// Per-lane initiation (docs/initiation.md): a lane that issues any op to a rank on another node gets the
/// scale-out mode, every other lane the scale-up mode. The wrapper is lazy: it scans a rank's lanes only
/// when asked about that rank, through cursors (no materialization), and materializes a rank only for
/// rank().
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "copro/collectives/transform.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {

namespace {

using core::Initiation;

/// Whether `op`, executed by rank `self`, touches a rank on another node than `self`'s.
bool reachesOtherNode(const core::Op& op, std::int32_t self, const std::vector<int>& nodeOfRank) {
  const auto nodeOf = [&](std::int32_t r) {
    if (r == core::kSelf) r = self;
    // Out-of-range ranks are the validator's business; count them as local here.
    if (r < 0 || static_cast<std::size_t>(r) >= nodeOfRank.size()) return nodeOfRank[static_cast<std::size_t>(self)];
    return nodeOfRank[static_cast<std::size_t>(r)];
  };
  const int mine = nodeOf(self);
  const auto remote = [&](std::int32_t r) { return nodeOf(r) != mine; };
  switch (op.code) {
    case core::OpCode::kWait:
    case core::OpCode::kFlush:
      return false;
    case core::OpCode::kSignal:
      return remote(op.peer);
    case core::OpCode::kPut:
    case core::OpCode::kPutReduce:
      return remote(op.peer) || remote(op.dst.rank) || remote(op.src.rank);
    case core::OpCode::kGet:
      return remote(op.peer) || remote(op.src.rank) || remote(op.dst.rank);
    case core::OpCode::kMulticast:
      for (std::int32_t t : op.ranks) {
        if (remote(t)) return true;
      }
      return remote(op.src.rank);
    case core::OpCode::kReduce:
      for (const core::Addr& a : op.srcs) {
        if (remote(a.rank)) return true;
      }
      return remote(op.dst.rank);
    case core::OpCode::kCopy:
      return remote(op.dst.rank) || remote(op.src.rank);
  }
  return false;
}

/// Wraps a source and answers every lane's initiation from the rule above (or one mode for all lanes
/// when `uniform` is set).
class AssignedInitiation final : public core::ProgramSource {
 public:
  AssignedInitiation(std::shared_ptr<const core::ProgramSource> inner, std::vector<int> nodeOfRank, Initiation scaleUp,
                     Initiation scaleOut, bool uniform)
      : inner_(std::move(inner)),
        nodeOfRank_(std::move(nodeOfRank)),
        scaleUp_(scaleUp),
        scaleOut_(scaleOut),
        uniform_(uniform),
        modes_(std::make_unique<ModeSlot[]>(static_cast<std::size_t>(inner_->header().nranks))),
        ranks_(std::make_unique<RankSlot[]>(static_cast<std::size_t>(inner_->header().nranks))) {}

  [[nodiscard]] const core::ProgramHeader& header() const override { return inner_->header(); }

  [[nodiscard]] const core::RankProgram& rank(std::int32_t r) const override {
    checkRank(r);
    RankSlot& slot = ranks_[static_cast<std::size_t>(r)];
    std::call_once(slot.once, [&] {
      slot.program = inner_->rank(r);
      for (core::RankProgram::Lane& lane : slot.program.lanes) {
        lane.initiation = modeOfOps(r, lane.ops);
      }
    });
    return slot.program;
  }

  [[nodiscard]] int numLanes(std::int32_t r) const override { return inner_->numLanes(r); }

  [[nodiscard]] std::unique_ptr<core::LaneCursor> openLane(std::int32_t r, int lane) const override {
    return inner_->openLane(r, lane);
  }

  /// One mode for every lane keeps the inner source's symmetry; modes chosen per rank may break it.
  [[nodiscard]] std::int32_t rotationPeriod() const override { return uniform_ ? inner_->rotationPeriod() : 0; }

  [[nodiscard]] Initiation laneInitiation(std::int32_t r, int lane) const override {
    checkRank(r);
    if (uniform_) {
      (void)inner_->laneInitiation(r, lane);  // range check of the lane
      return scaleUp_;
    }
    ModeSlot& slot = modes_[static_cast<std::size_t>(r)];
    std::call_once(slot.once, [&] {
      const int lanes = inner_->numLanes(r);
      slot.modes.reserve(static_cast<std::size_t>(lanes));
      for (int l = 0; l < lanes; ++l) {
        std::unique_ptr<core::LaneCursor> cursor = inner_->openLane(r, l);
        Initiation m = scaleUp_;
        core::Op op;
        while (cursor->next(op)) {
          if (reachesOtherNode(op, r, nodeOfRank_)) {
            m = scaleOut_;
            break;
          }
        }
        slot.modes.push_back(m);
      }
    });
    if (lane < 0 || static_cast<std::size_t>(lane) >= slot.modes.size()) {
      throw core::Error(
          core::ErrorCode::kInvalidArgument,
          "program '" + header().name + "': rank " + std::to_string(r) + " has no lane " + std::to_string(lane));
    }
    return slot.modes[static_cast<std::size_t>(lane)];
  }

 private:
  struct ModeSlot {
    std::once_flag once;
    std::vector<Initiation> modes;
  };
  struct RankSlot {
    std::once_flag once;
    core::RankProgram program;
  };

  void checkRank(std::int32_t r) const {
    if (r < 0 || r >= header().nranks) {
      throw core::Error(core::ErrorCode::kInvalidArgument, "program '" + header().name + "': rank " +
                                                               std::to_string(r) + " is out of range (" +
                                                               std::to_string(header().nranks) + " ranks)");
    }
  }

  [[nodiscard]] Initiation modeOfOps(std::int32_t r, const std::vector<core::Op>& ops) const {
    if (uniform_) return scaleUp_;
    for (const core::Op& op : ops) {
      if (reachesOtherNode(op, r, nodeOfRank_)) return scaleOut_;
    }
    return scaleUp_;
  }

  std::shared_ptr<const core::ProgramSource> inner_;
  std::vector<int> nodeOfRank_;
  Initiation scaleUp_;
  Initiation scaleOut_;
  bool uniform_;
  std::unique_ptr<ModeSlot[]> modes_;
  std::unique_ptr<RankSlot[]> ranks_;
};

}  // namespace

std::shared_ptr<const core::ProgramSource> assignInitiation(std::shared_ptr<const core::ProgramSource> source,
                                                            const std::vector<int>& nodeOfRank,
                                                            core::Initiation scaleUp, core::Initiation scaleOut) {
  if (!source) return source;
  const std::int32_t n = source->header().nranks;
  bool oneNode = true;
  if (nodeOfRank.size() >= static_cast<std::size_t>(n)) {
    for (std::int32_t r = 1; r < n; ++r) {
      if (nodeOfRank[static_cast<std::size_t>(r)] != nodeOfRank[0]) {
        oneNode = false;
        break;
      }
    }
  }
  // A node map that does not cover every rank cannot say what is remote: treat it as one node.
  const bool uniform = oneNode || scaleUp == scaleOut;
  // Algorithms emit device lanes: nothing to change.
  if (uniform && scaleUp == core::Initiation::kDevice) return source;
  return std::make_shared<AssignedInitiation>(std::move(source), uniform ? std::vector<int>{} : nodeOfRank, scaleUp,
                                              scaleOut, uniform);
}

}  // namespace copro::collectives
