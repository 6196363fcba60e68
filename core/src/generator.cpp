/// OpStream (coroutine op generator) and StreamProgram (a ProgramSource of coroutines).
#include "copro/core/generator.hpp"

#include <algorithm>
#include <string>

#include "copro/core/status.hpp"

namespace copro::core {

// ---- OpStream --------------------------------------------------------------------------------------

void OpStream::reset() noexcept {
  // The root's promise owns the running sub-stream, which owns its own: one destroy frees the chain.
  if (handle_) handle_.destroy();
  handle_ = {};
  leaf_ = {};
}

bool OpStream::next(Op& op) {
  // A loop, not recursion: splicing and finishing sub-streams only moves `leaf_` down or up the chain.
  while (leaf_) {
    leaf_.resume();
    promise_type& pr = leaf_.promise();
    if (!leaf_.done()) {
      if (pr.pendingChild_) {
        Handle child = std::exchange(pr.pendingChild_, {});
        pr.child_ = child;
        child.promise().parent_ = leaf_;
        leaf_ = child;
        continue;
      }
      if (pr.movable_ != nullptr) {
        op = std::move(*pr.movable_);
        return true;
      }
      if (pr.copyable_ != nullptr) {
        op = *pr.copyable_;
        return true;
      }
      continue;  // an empty sub-stream was spliced: nothing to hand out, resume the leaf
    }
    // The leaf finished (or threw): detach it and resume its parent, or end the stream at the root.
    std::exception_ptr error = pr.error_;
    const Handle parent = pr.parent_;
    if (parent) {
      parent.promise().child_ = {};
      leaf_.destroy();
      leaf_ = parent;
    } else {
      leaf_ = {};
    }
    if (error) {
      leaf_ = {};  // the stream ends; the destructor frees the frames still held by the root
      std::rethrow_exception(error);
    }
  }
  return false;
}

void OpStream::drainInto(RankProgram& out, int lane) {
  if (lane < 0) {
    throw Error(ErrorCode::kInvalidArgument, "OpStream::drainInto: negative lane " + std::to_string(lane));
  }
  if (static_cast<std::size_t>(lane) >= out.lanes.size()) out.lanes.resize(static_cast<std::size_t>(lane) + 1);
  std::vector<Op>& ops = out.lanes[static_cast<std::size_t>(lane)].ops;
  Op op;
  while (next(op)) ops.push_back(std::move(op));
}

// ---- StreamProgram ---------------------------------------------------------------------------------

namespace {

/// A cursor over a live coroutine. Holds the program's functions, so it stays usable on its own.
class StreamLaneCursor final : public LaneCursor {
 public:
  StreamLaneCursor(std::shared_ptr<const void> keepAlive, const StreamProgram::StreamFn* fn, std::int32_t rank,
                   int lane)
      : keepAlive_(std::move(keepAlive)), fn_(fn), rank_(rank), lane_(lane), stream_((*fn)(rank, lane)) {}

  bool next(Op& op) override {
    if (!stream_.next(op)) return false;
    ++position_;
    return true;
  }

  /// A coroutine cannot be copied: the clone runs a fresh one up to the same position (O(position)).
  [[nodiscard]] std::unique_ptr<LaneCursor> clone() const override {
    auto copy = std::make_unique<StreamLaneCursor>(keepAlive_, fn_, rank_, lane_);
    Op op;
    for (std::uint64_t i = 0; i < position_; ++i) {
      if (!copy->next(op)) {
        throw Error(ErrorCode::kInternal, "stream of rank " + std::to_string(rank_) + " lane " + std::to_string(lane_) +
                                              " is shorter on replay: its generator is not deterministic");
      }
    }
    return copy;
  }

 private:
  std::shared_ptr<const void> keepAlive_;
  const StreamProgram::StreamFn* fn_;
  std::int32_t rank_;
  int lane_;
  OpStream stream_;
  std::uint64_t position_ = 0;
};

[[noreturn]] void throwRank(std::int32_t r, std::int32_t nranks) {
  throw Error(ErrorCode::kInvalidArgument,
              "rank " + std::to_string(r) + " out of range: the Program has " + std::to_string(nranks) + " ranks");
}

}  // namespace

StreamProgram::StreamProgram(ProgramHeader header, int lanesPerRank, StreamFn stream, Initiation init)
    : StreamProgram(
          std::move(header),
          [lanesPerRank, init](std::int32_t) {
            return std::vector<Initiation>(static_cast<std::size_t>(std::max(lanesPerRank, 0)), init);
          },
          std::move(stream)) {
  if (lanesPerRank < 0) {
    throw Error(ErrorCode::kInvalidArgument, "StreamProgram: negative lane count " + std::to_string(lanesPerRank));
  }
}

StreamProgram::StreamProgram(ProgramHeader header, LanesFn lanes, StreamFn stream) : header_(std::move(header)) {
  if (header_.nranks < 0) {
    throw Error(ErrorCode::kInvalidArgument, "StreamProgram: negative rank count " + std::to_string(header_.nranks));
  }
  if (!lanes || !stream) throw Error(ErrorCode::kInvalidArgument, "StreamProgram: empty lane or stream function");
  fns_ = std::make_shared<const Functions>(Functions{std::move(lanes), std::move(stream)});
  slots_ = std::make_unique<Slot[]>(static_cast<std::size_t>(header_.nranks));
}

int StreamProgram::numLanes(std::int32_t r) const {
  if (r < 0 || r >= header_.nranks) throwRank(r, header_.nranks);
  return static_cast<int>(fns_->lanes(r).size());
}

Initiation StreamProgram::laneInitiation(std::int32_t r, int lane) const {
  checkLane(r, lane);
  return fns_->lanes(r)[static_cast<std::size_t>(lane)];
}

void StreamProgram::checkLane(std::int32_t r, int lane) const {
  const int n = numLanes(r);
  if (lane < 0 || lane >= n) {
    throw Error(ErrorCode::kInvalidArgument, "rank " + std::to_string(r) + " has no lane " + std::to_string(lane) +
                                                 " (it has " + std::to_string(n) + ")");
  }
}

OpStream StreamProgram::stream(std::int32_t r, int lane) const {
  checkLane(r, lane);
  return fns_->stream(r, lane);
}

std::unique_ptr<LaneCursor> StreamProgram::openLane(std::int32_t r, int lane) const {
  checkLane(r, lane);
  return std::make_unique<StreamLaneCursor>(fns_, &fns_->stream, r, lane);
}

const RankProgram& StreamProgram::rank(std::int32_t r) const {
  if (r < 0 || r >= header_.nranks) throwRank(r, header_.nranks);
  Slot& slot = slots_[static_cast<std::size_t>(r)];
  // call_once publishes the program to every waiting thread; a throwing generator lets the next caller retry.
  std::call_once(slot.once, [&] {
    RankProgram out;
    const std::vector<Initiation> inits = fns_->lanes(r);
    for (Initiation init : inits) out.addLane(init);
    for (std::size_t lane = 0; lane < inits.size(); ++lane) {
      fns_->stream(r, static_cast<int>(lane)).drainInto(out, static_cast<int>(lane));
    }
    slot.program = std::move(out);
    materialized_.fetch_add(1);
  });
  return slot.program;
}

}  // namespace copro::core
