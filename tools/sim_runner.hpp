#pragma once
/// What copro-sim runs: one collective call on one fabric (docs/copro-sim.md), through sim::Communicator
/// (the node map, load/store domains, cost model, plan, Program and run), reported as nccl-tests figures.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/sim/workload_comm.hpp"
#include "copro/topologies/fabric.hpp"

namespace copro::tools {

/// One simulated call.
struct SimCase {
  std::string topology;                ///< file path or bundled name
  std::vector<std::string> overrides;  ///< "key=value" for topo::loadTopology (builder or "sim.*" keys)
  collectives::CollectiveKind kind = collectives::CollectiveKind::kAllReduce;
  std::string algorithm;             ///< empty: the planner chooses with a cost model of the fabric
  std::uint64_t size = 64ULL << 20;  ///< nccl-tests size S in bytes (collective_sizes.hpp)
  std::int32_t ranks = 0;            ///< 0: every GPU of the fabric
  core::DataType dtype = core::DataType::kFloat32;
  core::ReduceOp op = core::ReduceOp::kSum;
  std::int32_t root = 0;
  /// Initiation of lanes that stay inside a server / reach another server (docs/initiation.md).
  core::Initiation scaleUpInitiation = core::Initiation::kDevice;
  core::Initiation scaleOutInitiation = core::Initiation::kDevice;
  std::int32_t pxn = 0;  ///< PXN level (CollectiveArgs::pxnLevel, docs/pxn.md): 0 off, 1 relay, 2 aggregate
};

/// What came out of it.
struct SimOutcome {
  std::string topologyName;  ///< the fabric's name (or the file's stem)
  std::int32_t gpus = 0;     ///< GPUs of the fabric
  std::int32_t ranks = 0;
  std::int32_t nodes = 0;  ///< servers the ranks span
  std::string algorithm;
  std::string choice;            ///< "forced" or "planner"
  double estimateUs = 0;         ///< the planner's alpha-beta-gamma estimate of the chosen algorithm
  std::uint64_t count = 0;       ///< CollectiveArgs::count
  std::uint64_t bytes = 0;       ///< the size S this count moves
  std::uint64_t chunkBytes = 0;  ///< sim.chunk_size; 0 = unchunked
  collectives::CostModel model;  ///< what the planner saw
  sim::Result result;
  double timeUs = 0;
  double algbwGBps = 0;
  double busbwGBps = 0;
  std::uint64_t spineBytes = 0;  ///< payload bytes that entered spine-tier (tier 1) switches
};

/// Fabrics loaded once per (topology, overrides): a sweep over sizes or algorithms reuses them.
class FabricCache {
 public:
  const topo::Fabric& get(const std::string& topology, const std::vector<std::string>& overrides);

 private:
  std::map<std::string, std::unique_ptr<topo::Fabric>> fabrics_;
};

/// Extras of a run: a progress callback (sim::RunOptions::progress) and a Chrome trace.
struct SimRunExtras {
  std::function<void(core::Time, std::uint64_t)> progress;
  /// Called once the Program is chosen, before the simulation starts, with the outcome filled except
  /// for the results (algorithm, estimate, count, bytes): a progress bar sizes itself from the estimate.
  std::function<void(const SimOutcome&)> onStart;
  std::string tracePath;         ///< empty: no trace
  std::int32_t traceLinks = 64;  ///< link counters for at most this many of the busiest channels (0: all)
  double maxWallSeconds = 0;     ///< > 0: sim::RunOptions::maxWallSeconds (the run stops, Result::stopped)
  bool symmetry = true;          ///< sim::RunOptions::symmetry
};

/// Runs one case. Throws core::Error with an actionable message for bad input (unknown or inapplicable
/// algorithm, more ranks than GPUs, a root outside the ranks, collectives that need per-rank counts).
SimOutcome runCase(FabricCache& fabrics, const SimCase& c, const SimRunExtras& extras = {});

/// Name of a directed channel: "<from node>-><to node>".
std::string channelName(const topo::Fabric& fabric, std::int32_t channel);

/// Collectives copro-sim can run (those without per-rank vectors), by name; parses one of them.
using sim::parseRunnableCollective;
using sim::runnableCollectives;

}  // namespace copro::tools
