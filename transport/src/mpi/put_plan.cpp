/// The pre-posted receive plan of a call (see put_plan.hpp): a scan of every rank's ops for the puts
/// whose target, destination and size the Program fixes.
#include "put_plan.hpp"

#include <algorithm>
#include <utility>

namespace copro::transport::mpi {

namespace {

using core::Op;
using core::OpCode;

/// Whether `op`'s put to `target` from rank `from` qualifies (the engine would send it as written).
bool qualifies(const Op& op, std::int32_t from, std::int32_t target, int nranks, const PlanLimits& limits) {
  if (target < 0 || target >= nranks || target == from) return false;
  return !op.indirect.active() && op.bytes > limits.minBytes && op.bytes <= limits.maxBytes;
}

/// Calls `visit(target, lane, put)` for every planned put of `rp` (the ops of rank `from`), in lane order.
template <typename Visit>
void scanPuts(const core::RankProgram& rp, std::int32_t from, int nranks, const PlanLimits& limits, Visit visit) {
  const int lanes = std::min(static_cast<int>(rp.lanes.size()), limits.maxLanes);
  for (int lane = 0; lane < lanes; ++lane) {
    const std::vector<Op>& ops = rp.lanes[static_cast<std::size_t>(lane)].ops;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const Op& op = ops[i];
      const PlannedPut put{static_cast<std::uint32_t>(i), static_cast<std::uint16_t>(op.dst.buf), op.dst.offset,
                           op.bytes};
      if (op.code == OpCode::kPut || op.code == OpCode::kPutReduce) {
        if (op.dst.rank != core::kSelf && op.dst.rank != op.peer) continue;  // the engine refuses it
        if (qualifies(op, from, op.peer, nranks, limits)) visit(op.peer, lane, put);
      } else if (op.code == OpCode::kMulticast && op.dst.rank == core::kSelf) {
        for (const std::int32_t t : op.ranks) {
          if (qualifies(op, from, t, nranks, limits)) visit(t, lane, put);
        }
      }
    }
  }
}

void add(LanePuts& lanes, int lane, const PlannedPut& put) {
  if (lanes.size() <= static_cast<std::size_t>(lane)) lanes.resize(static_cast<std::size_t>(lane) + 1);
  lanes[static_cast<std::size_t>(lane)].push_back(put);
}

}  // namespace

CallPlan planCall(const core::ProgramSource& program, int me, int nranks, const PlanLimits& limits) {
  CallPlan plan;
  if (nranks < 2 || nranks > limits.maxRanks || program.header().nranks != nranks) return plan;
  std::vector<const core::RankProgram*> ranks(static_cast<std::size_t>(nranks));
  try {
    for (int r = 0; r < nranks; ++r) {
      ranks[static_cast<std::size_t>(r)] = &program.rank(r);
      if (ranks[static_cast<std::size_t>(r)]->numOps() == 0) return plan;  // not every rank's ops are known
    }
  } catch (...) {
    return plan;  // the engine reports a generation failure of this rank's own ops
  }
  plan.out.resize(static_cast<std::size_t>(nranks));
  plan.in.resize(static_cast<std::size_t>(nranks));
  scanPuts(*ranks[static_cast<std::size_t>(me)], me, nranks, limits,
           [&plan](std::int32_t t, int lane, const PlannedPut& put) {
             add(plan.out[static_cast<std::size_t>(t)], lane, put);
           });
  for (int s = 0; s < nranks; ++s) {
    if (s == me) continue;
    scanPuts(*ranks[static_cast<std::size_t>(s)], s, nranks, limits,
             [&plan, s, me](std::int32_t t, int lane, const PlannedPut& put) {
               if (t != me) return;
               add(plan.in[static_cast<std::size_t>(s)], lane, put);
               plan.anyIn = true;
             });
  }
  return plan;
}

std::shared_ptr<const CallPlan> CallPlanCache::get(const std::shared_ptr<const core::ProgramSource>& program, int me,
                                                   int nranks, const PlanLimits& limits) {
  const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == program; });
  if (it != entries_.end()) {
    std::rotate(it, it + 1, entries_.end());
    return entries_.back().second;
  }
  if (entries_.size() >= capacity_ && !entries_.empty()) entries_.erase(entries_.begin());
  entries_.emplace_back(program, std::make_shared<const CallPlan>(planCall(*program, me, nranks, limits)));
  return entries_.back().second;
}

}  // namespace copro::transport::mpi
