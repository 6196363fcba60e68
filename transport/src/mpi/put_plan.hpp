#pragma once
/// The puts of a call whose data the target receives into a receive it posted in advance (docs/mpi.md,
/// "Pre-posted receives"). Both ends derive the plan from the same Program with the same function: the
/// initiator to choose the data message's tag, the target to post its receives when it enters the call,
/// so that the data meets a posted receive instead of taking MPI's unexpected-message path. A put is
/// planned when the Program fixes its target, destination and size (no indirect fields), its data is a
/// message of its own (longer than the inline limit, at most one MPI message), and its lane has a tag.
/// A Program is planned only when every rank's ops are known to every rank (each rank's part is
/// non-empty: grouped send/recv, whose Programs know only the executing rank, is not) and the
/// communicator is small enough that generating every peer's ops stays cheap.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "copro/core/program.hpp"

namespace copro::transport::mpi {

/// One planned put, as the initiator's header describes it.
struct PlannedPut {
  std::uint32_t opIndex = 0;
  std::uint16_t buf = 0;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  [[nodiscard]] bool same(std::uint32_t op, std::uint16_t b, std::uint64_t off, std::uint64_t n) const {
    return opIndex == op && buf == b && offset == off && bytes == n;
  }
};

/// Planned puts between this rank and one peer, per lane in lane order.
using LanePuts = std::vector<std::vector<PlannedPut>>;

/// What qualifies a put for the plan.
struct PlanLimits {
  std::uint64_t minBytes = 0;  ///< planned puts are longer than this (the inline limit)
  std::uint64_t maxBytes = 0;  ///< and at most this (one MPI message)
  int maxLanes = 0;            ///< lanes from this index on have no tag
  int maxRanks = 64;           ///< larger communicators are not planned
};

/// The plan of one Program on one rank: `out[t]` the puts this rank makes to rank t, `in[s]` those rank
/// s makes to this rank. Empty vectors when the Program is not planned.
struct CallPlan {
  std::vector<LanePuts> out;
  std::vector<LanePuts> in;
  bool anyIn = false;  ///< some peer makes a planned put to this rank
  [[nodiscard]] bool active() const { return !out.empty(); }
};

/// The plan of `program` for rank `me` of `nranks`. Never throws: a Program whose ranks cannot be
/// generated is not planned.
CallPlan planCall(const core::ProgramSource& program, int me, int nranks, const PlanLimits& limits);

/// The plans of the most recently used Programs (a communicator runs few Programs many times).
class CallPlanCache {
 public:
  explicit CallPlanCache(std::size_t capacity) : capacity_(capacity) {}
  /// The plan of `program`, computed on first use.
  std::shared_ptr<const CallPlan> get(const std::shared_ptr<const core::ProgramSource>& program, int me, int nranks,
                                      const PlanLimits& limits);

 private:
  std::size_t capacity_;
  /// Most recent last; holding the Program keeps its address from being reused by another.
  std::vector<std::pair<std::shared_ptr<const core::ProgramSource>, std::shared_ptr<const CallPlan>>> entries_;
};

}  // namespace copro::transport::mpi
