// simulateMoe: plan, Programs and two simulator runs (docs/moe.md).
#include "moe_sim.hpp"

#include <string>

#include "copro/collectives/transform.hpp"
#include "copro/core/status.hpp"

namespace copro::tools {

std::vector<int> moeNodeOfRank(const topo::Fabric& fabric, int ranks) {
  const auto& gpus = fabric.gpus();
  if (ranks < 1 || ranks > static_cast<int>(gpus.size())) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "--ep " + std::to_string(ranks) + " needs 1.." + std::to_string(gpus.size()) +
                          " ranks: topology '" + fabric.name + "' has " + std::to_string(gpus.size()) + " GPUs");
  }
  std::vector<int> nodes(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r)
    nodes[static_cast<std::size_t>(r)] = fabric.node(gpus[static_cast<std::size_t>(r)]).host;
  return nodes;
}

namespace {

void countPutBytes(const core::ProgramSource& program, const std::vector<int>& nodes, std::uint64_t& out,
                   std::uint64_t& up, std::uint64_t& ops) {
  for (std::int32_t r = 0; r < program.header().nranks; ++r) {
    const core::RankProgram& rp = program.rank(r);
    ops += rp.numOps();
    for (const auto& lane : rp.lanes) {
      for (const auto& op : lane.ops) {
        if (op.code != core::OpCode::kPut || op.peer == r || op.peer == core::kSelf) continue;
        const bool cross = nodes[static_cast<std::size_t>(op.peer)] != nodes[static_cast<std::size_t>(r)];
        (cross ? out : up) += op.bytes;
      }
    }
  }
}

}  // namespace

MoeSimResult simulateMoe(const topo::Fabric& fabric, const collectives::MoeConfig& config,
                         const collectives::MoeRouting& routing, const std::vector<int>& nodeOfRank,
                         const sim::SimParams& params, const MoeSimOptions& options) {
  const collectives::MoePlan plan = collectives::planMoe(config, routing, nodeOfRank);
  collectives::CollectiveArgs transforms;
  transforms.kind = collectives::CollectiveKind::kAllToAllV;
  transforms.nranks = static_cast<std::int32_t>(plan.nodeOfRank.size());
  transforms.nodeOfRank = plan.nodeOfRank;
  transforms.pxnLevel = options.pxnLevel;
  transforms.scaleUpInitiation = options.scaleUp;
  transforms.scaleOutInitiation = options.scaleOut;
  const auto dispatch = collectives::applyTransforms(collectives::buildMoeDispatch(config, plan), transforms);
  const auto combine = collectives::applyTransforms(collectives::buildMoeCombine(config, plan), transforms);
  MoeSimResult res;
  sim::Simulator sim(fabric, params);
  res.dispatchResult = sim.run(*dispatch);
  res.combineResult = sim.run(*combine);
  res.dispatch = res.dispatchResult.time;
  res.combine = res.combineResult.time;
  std::uint64_t cOut = 0;
  std::uint64_t cUp = 0;
  countPutBytes(*dispatch, plan.nodeOfRank, res.dispatchScaleOutBytes, res.dispatchScaleUpBytes, res.dispatchOps);
  countPutBytes(*combine, plan.nodeOfRank, cOut, cUp, res.combineOps);
  res.scaleOutBytes = res.dispatchScaleOutBytes + cOut;
  res.scaleUpBytes = res.dispatchScaleUpBytes + cUp;
  double rows = 0;
  for (int r = 0; r < plan.nranks; ++r) rows += static_cast<double>(plan.landingRows(r));
  res.recvRowsPerRank = rows / plan.nranks;
  const double dispatchBytes =
      static_cast<double>(config.hidden) * static_cast<double>(core::dataTypeSize(config.dispatchDtype)) +
      4.0 * collectives::moeScaleGroups(config);
  const double combineBytes = static_cast<double>(config.hidden) * 2.0;
  if (res.dispatch.picoseconds() > 0)
    res.dispatchGBps = res.recvRowsPerRank * dispatchBytes / (res.dispatch.microseconds() * 1e3);
  if (res.combine.picoseconds() > 0)
    res.combineGBps = res.recvRowsPerRank * combineBytes / (res.combine.microseconds() * 1e3);
  return res;
}

MoeSimResult simulateMoeTask(const topo::Fabric& fabric, const sim::CommTask& t) {
  collectives::MoeConfig c;
  c.hidden = static_cast<int>(t.hidden);
  c.topk = t.topk;
  c.numExperts = t.experts;
  c.maxNodesPerToken = t.maxNodes;
  if (t.path.empty() || t.path == "forward") {
    c.path = collectives::MoePath::kForward;
  } else if (t.path == "direct") {
    c.path = collectives::MoePath::kDirect;
  } else {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "task '" + t.name + "': path '" + t.path + "': use forward or direct");
  }
  const int elem = t.elementBytes == 0 ? 1 : t.elementBytes;
  if (t.kind == sim::TaskKind::kMoeDispatch && elem != 1 && elem != 2) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "task '" + t.name + "': element_bytes " + std::to_string(elem) + ": use 1 (FP8) or 2 (BF16)");
  }
  c.dispatchDtype = elem == 2 ? core::DataType::kBfloat16 : core::DataType::kFloat8E4M3;
  const std::vector<int> nodes = moeNodeOfRank(fabric, t.groupSize);
  collectives::checkMoeConfig(c, t.groupSize);
  const auto routing = collectives::MoeRouting::uniform(t.groupSize, static_cast<int>(t.tokens), t.topk, t.experts,
                                                        t.maxNodes, nodes, 1);
  // The MoE Programs choose their own lanes' modes: every lane pays the costs of the task's mode instead.
  sim::SimParams params = sim::SimParams::fromFabric(fabric);
  const sim::InitiationCost cost = params.initiation[static_cast<int>(t.initiation)];
  for (sim::InitiationCost& m : params.initiation) m = cost;
  return simulateMoe(fabric, c, routing, nodes, params);
}

}  // namespace copro::tools
