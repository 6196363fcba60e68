#pragma once
/// MoE dispatch + combine on the simulator, reusable by copro-sim and studies (docs/moe.md, "Simulator").
#include <cstdint>
#include <string>
#include <vector>

#include "copro/collectives/moe.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/sim/workload.hpp"
#include "copro/topologies/fabric.hpp"

namespace copro::tools {

/// What one simulated MoE layer step (one dispatch, one combine) gives.
struct MoeSimResult {
  core::Time dispatch{};
  core::Time combine{};
  bool stopped = false;  ///< MoeSimOptions::maxWallSeconds stopped the dispatch or the combine: figures partial
  /// DeepEP's figures: mean received rows per rank (own tokens included) x bytes per token / time, with bytes
  /// per token = hidden x element size (+ hidden / 128 x 4 B of FP8 scales) for dispatch, hidden x 2 for combine.
  double dispatchGBps = 0;
  double combineGBps = 0;
  double recvRowsPerRank = 0;
  /// DeepEP's internode and low-latency figures (its test_internode.py / test_low_latency.py): rows each rank
  /// sends per time. Forward: (token, node) pairs, the own node included ("RDMA bottleneck bandwidth", a
  /// logical figure); direct: (token, expert) selections, local ones included ("RDMA bandwidth"). Bytes per
  /// row as above, plus 16 B for the direct path's FP8 dispatch (DeepEP's low-latency message header).
  double sentRowsPerRank = 0;
  double dispatchSendGBps = 0;
  double combineSendGBps = 0;
  /// Payload bytes of puts between ranks, dispatch + combine: across nodes (scale-out) and inside a node.
  std::uint64_t scaleOutBytes = 0;
  std::uint64_t scaleUpBytes = 0;
  std::uint64_t dispatchScaleOutBytes = 0;
  std::uint64_t dispatchScaleUpBytes = 0;
  std::uint64_t dispatchOps = 0;  ///< ops of the dispatch Program over all ranks
  std::uint64_t combineOps = 0;
  sim::Result dispatchResult;
  sim::Result combineResult;
};

/// Rank -> server of ranks 0..ranks-1 placed on the fabric's GPUs 0..ranks-1 (sim::Communicator's node map;
/// throws when ranks > GPUs).
std::vector<int> moeNodeOfRank(const topo::Fabric& fabric, int ranks);

/// The Program transformations a real run applies from COPRO_PXN / COPRO_INITIATION_* (docs/pxn.md,
/// docs/initiation.md).
struct MoeSimOptions {
  int pxnLevel = 0;
  core::Initiation scaleUp = core::Initiation::kDevice;
  core::Initiation scaleOut = core::Initiation::kDevice;
  /// > 0: wall-time budget of the dispatch and combine runs together (sim::RunOptions::maxWallSeconds); a
  /// stopped run sets MoeSimResult::stopped.
  double maxWallSeconds = 0;
};

/// Plans, builds and simulates a dispatch and a combine of `routing` (one routing row per rank; ranks on
/// GPUs 0..n-1). `params` as SimParams::fromFabric(fabric), possibly changed by the caller.
MoeSimResult simulateMoe(const topo::Fabric& fabric, const collectives::MoeConfig& config,
                         const collectives::MoeRouting& routing, const std::vector<int>& nodeOfRank,
                         const sim::SimParams& params, const MoeSimOptions& options = {});

/// One MoE dispatch + combine of a workload task's shape (docs/workloads.md) on ranks 0..group-1, with uniform
/// node-limited routing (seed 1); every lane pays the initiation costs of the task's mode. Used by
/// `copro-sim workload` and study b. Throws core::Error naming the task for a bad path or element size.
MoeSimResult simulateMoeTask(const topo::Fabric& fabric, const sim::CommTask& task);

}  // namespace copro::tools
