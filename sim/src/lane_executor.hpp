#pragma once
/// The executor of Simulator::run and runConcurrently (lane_executor.cpp): the lane state machine over the
/// initiation model (initiation_model.hpp) and the network model chosen by `sim.network`
/// (network_model.hpp).
#include <vector>

#include "copro/sim/simulator.hpp"
#include "copro/topologies/fabric.hpp"
#include "router.hpp"

namespace copro::sim::detail {

/// Runs `jobs` (each a Program on its GPUs from its start time) in one event loop over `fabric`.
Result execute(const topo::Fabric& fabric, const SimParams& params, Router& router, const std::vector<Job>& jobs,
               const RunOptions& options);

}  // namespace copro::sim::detail
