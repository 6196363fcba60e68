#pragma once
/// The planner: picks an algorithm for a call from the alpha-beta-gamma cost model, unless COPRO_ALGO
/// or a per-call option forces one. The cost model is a value (collective.hpp's CostModel): the
/// Communicator makes it from its Config (costModelFrom), the simulator from the fabric
/// (sim::Communicator, topology-aware).
#include <string>
#include <string_view>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/config.hpp"

namespace copro::collectives {

/// The cost model constants from a Config (COPRO_PLAN_*).
CostModel costModelFrom(const core::Config& config);

/// The algorithm COPRO_ALGO forces for `kind` ("" when it forces nothing for this collective). Accepts
/// "ring" (every collective that has a 'ring') or "allreduce=rhd,allgather=bruck". Throws Error naming an
/// unknown collective or algorithm.
std::string forcedAlgorithm(std::string_view algoSetting, CollectiveKind kind);

struct Candidate {
  const Algorithm* algorithm = nullptr;
  double estimateUs = 0;
  std::string unsupportedReason;  ///< empty when the algorithm applies
};

struct Plan {
  const Algorithm* chosen = nullptr;
  std::string why;                    ///< "cheapest estimate", "forced by COPRO_ALGO", "forced by the call"
  std::vector<Candidate> candidates;  ///< every algorithm of the collective, in registry order
};

/// Chooses the algorithm. `forced` (per-call option) wins over `algoSetting` (COPRO_ALGO's syntax, see
/// forcedAlgorithm), which wins over the cost model's cheapest estimate. A forced algorithm that does not
/// apply throws Error(kUnsupported) with the reason.
Plan plan(const CollectiveArgs& args, const CostModel& model, std::string_view forced = {},
          std::string_view algoSetting = {});

/// Human-readable table of a plan (used by `copro-info --plan`).
std::string formatPlan(const CollectiveArgs& args, const Plan& p);

/// Parses COPRO_NODE_MAP for `nranks` ranks: "0,0,1,1" or "4" (ranks per node). Empty: one node (empty
/// vector). Throws Error naming the problem.
std::vector<int> parseNodeMap(std::string_view text, int nranks);

}  // namespace copro::collectives
