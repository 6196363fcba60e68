// simulateMoe: two runs of sim::Communicator's MoE Programs and DeepEP's figures (docs/moe.md).
#include "moe_sim.hpp"

#include <algorithm>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/sim/workload_comm.hpp"

namespace copro::tools {

std::vector<int> moeNodeOfRank(const topo::Fabric& fabric, int ranks) {
  const auto& gpus = fabric.gpus();
  if (ranks < 1 || ranks > static_cast<int>(gpus.size())) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "--ep " + std::to_string(ranks) + " needs 1.." + std::to_string(gpus.size()) +
                          " ranks: topology '" + fabric.name + "' has " + std::to_string(gpus.size()) + " GPUs");
  }
  sim::CommunicatorOptions where;
  where.ranks = ranks;
  return sim::Communicator(fabric, where).nodeOfRank();
}

namespace {

/// The fabric with every scale-up (NVLink) link at `efficiency` of its rate: what a forward-path MoE kernel
/// reaches with its fixed SM budget (sim.moe.forward_scaleup_efficiency). Nodes keep their ids and ranks.
topo::Fabric withScaleUpEfficiency(const topo::Fabric& fabric, double efficiency) {
  topo::Fabric out;
  out.name = fabric.name;
  out.builder = fabric.builder;
  out.bisectionBandwidth = fabric.bisectionBandwidth;
  out.simParams = fabric.simParams;
  out.simParamOrigin = fabric.simParamOrigin;
  for (const topo::Node& n : fabric.nodes()) out.addNode(n);
  for (const topo::Link& l : fabric.links()) {
    const bool scaleUp = l.kind == topo::LinkKind::kNvLink;
    const double bytesPerSecond = l.bandwidth.bytesPerSecond() * (scaleUp ? efficiency : 1.0);
    out.addLink(l.a, l.b, l.kind, core::Bandwidth::bytesPerSec(bytesPerSecond), l.latency);
  }
  out.finalize();
  return out;
}

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

/// Mean rows a rank sends: (token, node) pairs (forward) or (token, expert) selections (direct).
double sentRowsPerRank(const collectives::MoePlan& plan) {
  double rows = 0;
  for (const auto& gs : plan.groups) {
    for (const auto& g : gs) rows += static_cast<double>(g.count);
  }
  for (const auto& counts : plan.expertCounts) {
    for (const std::uint64_t c : counts) rows += static_cast<double>(c);
  }
  return rows / plan.nranks;
}

/// Direct path: the receiving GPU's per-row work after the last row lands (sim.moe.recv_row_cost), for the
/// rank receiving the most rows: the dispatch unpacks its landed rows, the combine sums the rows returned.
core::Time receiveCost(const collectives::MoePlan& plan, const sim::SimParams& params, bool dispatch) {
  if (plan.config.path != collectives::MoePath::kDirect || params.moeRecvRowCost.picoseconds() == 0) return {};
  std::uint64_t most = 0;
  for (int r = 0; r < plan.nranks; ++r) {
    std::uint64_t rows = 0;
    if (dispatch) {
      rows = plan.landingRows(r);
    } else {
      for (const std::uint64_t c : plan.expertCounts[static_cast<std::size_t>(r)]) rows += c;
    }
    most = std::max(most, rows);
  }
  return core::Time::ps(params.moeRecvRowCost.picoseconds() * static_cast<std::int64_t>(most));
}

}  // namespace

MoeSimResult simulateMoe(const topo::Fabric& fabric, const collectives::MoeConfig& config,
                         const collectives::MoeRouting& routing, const std::vector<int>& nodeOfRank,
                         const sim::SimParams& params, const MoeSimOptions& options) {
  sim::CommunicatorOptions where;
  where.ranks = static_cast<std::int32_t>(nodeOfRank.size());
  where.params = params;
  const bool derate = config.path == collectives::MoePath::kForward && params.moeForwardScaleUpEfficiency < 1.0;
  const topo::Fabric derated =
      derate ? withScaleUpEfficiency(fabric, params.moeForwardScaleUpEfficiency) : topo::Fabric();
  sim::Communicator comm(derate ? derated : fabric, where);
  const sim::PreparedMoe moe =
      comm.prepareMoe(config, routing, {options.pxnLevel, options.scaleUp, options.scaleOut}, nodeOfRank);
  const collectives::MoePlan& plan = moe.plan;
  const auto& dispatch = moe.dispatch;
  const auto& combine = moe.combine;
  MoeSimResult res;
  sim::RunOptions runOptions;
  runOptions.maxWallSeconds = options.maxWallSeconds;
  res.dispatchResult = comm.run(*dispatch, runOptions);
  if (options.maxWallSeconds > 0) {
    // The combine gets what the dispatch left (at least a millisecond, so that it stops at once).
    runOptions.maxWallSeconds = std::max(1e-3, options.maxWallSeconds - res.dispatchResult.wallSeconds);
  }
  res.combineResult = comm.run(*combine, runOptions);
  res.stopped = res.dispatchResult.stopped || res.combineResult.stopped;
  res.dispatch = res.dispatchResult.time + receiveCost(plan, params, true);
  res.combine = res.combineResult.time + receiveCost(plan, params, false);
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
  res.sentRowsPerRank = sentRowsPerRank(plan);
  const double sendBytes =
      dispatchBytes +
      (config.path == collectives::MoePath::kDirect && config.dispatchDtype == core::DataType::kFloat8E4M3 ? 16.0
                                                                                                           : 0.0);
  if (res.dispatch.picoseconds() > 0) {
    res.dispatchGBps = res.recvRowsPerRank * dispatchBytes / (res.dispatch.microseconds() * 1e3);
    res.dispatchSendGBps = res.sentRowsPerRank * sendBytes / (res.dispatch.microseconds() * 1e3);
  }
  if (res.combine.picoseconds() > 0) {
    res.combineGBps = res.recvRowsPerRank * combineBytes / (res.combine.microseconds() * 1e3);
    res.combineSendGBps = res.sentRowsPerRank * combineBytes / (res.combine.microseconds() * 1e3);
  }
  return res;
}

MoeSimResult simulateMoeTask(const topo::Fabric& fabric, const sim::CommTask& t) {
  const collectives::MoeConfig c = sim::moeConfigOf(t);
  const std::vector<int> nodes = moeNodeOfRank(fabric, t.groupSize);
  collectives::checkMoeConfig(c, t.groupSize);
  const auto routing = collectives::MoeRouting::uniform(t.groupSize, static_cast<int>(t.tokens), t.topk, t.experts,
                                                        t.maxNodes, nodes, 1);
  // The MoE Programs choose their own lanes' modes: every lane takes the task's mode instead.
  MoeSimOptions options;
  options.scaleUp = t.initiation;
  options.scaleOut = t.initiation;
  return simulateMoe(fabric, c, routing, nodes, sim::SimParams::fromFabric(fabric), options);
}

}  // namespace copro::tools
