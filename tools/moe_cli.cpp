// copro-sim moe: one MoE layer's dispatch + combine on the simulator (docs/moe.md).
#include "moe_cli.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

#include "copro/core/status.hpp"
#include "copro/topologies/topology.hpp"
#include "moe_sim.hpp"
#include "sim_runner.hpp"

namespace copro::tools {

using core::Error;
using core::ErrorCode;

CLI::App* addMoeCommand(CLI::App& app, MoeCliArgs& a) {
  CLI::App* c = app.add_subcommand("moe", "MoE dispatch + combine (expert parallelism, DeepEP's two paths)");
  c->add_option("--topology,-t", a.topology, "topology file or bundled name (copro-sim topologies)")->required();
  c->add_option("--ep", a.ep, "expert-parallel ranks on GPUs 0..N-1 (default: every GPU)");
  c->add_option("--tokens", a.tokens, "tokens per rank (default 4096)");
  c->add_option("--hidden", a.hidden, "channels per token (default 7168)");
  c->add_option("--topk", a.topk, "experts per token (default 8)");
  c->add_option("--experts", a.experts, "routed experts over all ranks (default 256)");
  c->add_option("--path", a.path, "forward (relay through the rail-aligned rank, NVLink fan-out) or direct");
  c->add_option("--dtype", a.dtype, "dispatch type: fp8 (with a scale per 128 channels) or bf16 (default fp8)");
  c->add_option("--routing", a.routing, "uniform, zipf:S (popularity 1/(i+1)^S) or file:PATH (default uniform)");
  c->add_option("--max-nodes", a.maxNodes, "node-limited routing: nodes per token at most (0: no limit)");
  c->add_option("--seed", a.seed, "routing seed (default 1)");
  c->add_option("--relay", a.relay,
                "forward path: relays forward pieces of N tokens as they land (cut-through, default 32); "
                "0 = store-and-forward (whole node chunks)");
  c->add_option("--direct-lanes", a.directLanes,
                "direct path: lanes issuing puts at once (the low-latency kernel's warp budget, default 32)");
  c->add_option("--top", a.top, "list the N busiest links of each phase (by utilization; default 0)");
  c->add_flag("--payload-only", a.payloadOnly, "rows carry the payload only (no scales, no metadata)");
  c->add_option("--set", a.sets, "topology override key=value (builder parameter or sim.key)");
  c->add_flag("--csv", a.csv, "print one CSV row instead of the table");
  c->add_option("--max-wall", a.maxWall,
                "stop the simulation cleanly after S seconds of wall time (dispatch and combine together), with "
                "partial figures and a note on stderr (default 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--pxn", a.pxn, "PXN level 0, 1 or 2 applied to both Programs (docs/pxn.md)")->check(CLI::Range(0, 2));
  c->add_option("--initiation", a.initiation, "device, proxy or offload for every lane");
  c->add_option("--initiation-scaleup", a.initiationScaleUp, "device, proxy or offload for intra-node lanes");
  c->add_option("--initiation-scaleout", a.initiationScaleOut,
                "device, proxy or offload for lanes reaching other nodes");
  return c;
}

namespace {

/// --routing file:PATH, its ranks, tokens and expert ids checked against --ep, --tokens and --experts.
collectives::MoeRouting readRoutingFile(const MoeCliArgs& a, int ep) {
  collectives::MoeRoutingLimits limits;
  limits.ranks = ep;
  limits.tokens = std::max(0, a.tokens);
  limits.experts = a.experts;
  collectives::MoeRouting routing = collectives::MoeRouting::fromFile(a.routing.substr(5), limits);
  if (static_cast<int>(routing.topkIdx.size()) != ep) {
    throw Error(ErrorCode::kInvalidArgument, "--routing " + a.routing + " has " +
                                                 std::to_string(routing.topkIdx.size()) + " ranks but --ep is " +
                                                 std::to_string(ep) + "; give every rank 0.." + std::to_string(ep - 1) +
                                                 " its tokens or change --ep");
  }
  return routing;
}

/// The `top` directed links with the highest utilization in one phase.
void printBusiest(const topo::Fabric& fabric, const char* phase, const sim::Result& r, int top) {
  std::vector<const sim::ChannelStats*> busy;
  for (const auto& ch : r.channels) busy.push_back(&ch);
  std::stable_sort(busy.begin(), busy.end(), [](const auto* x, const auto* y) {
    if (x->utilization != y->utilization) return x->utilization > y->utilization;
    return std::make_pair(x->link, x->direction) < std::make_pair(y->link, y->direction);
  });
  const std::size_t n = std::min(busy.size(), static_cast<std::size_t>(std::max(0, top)));
  std::printf("# busiest links, %s:\n", phase);
  for (std::size_t i = 0; i < n; ++i) {
    const auto* c = busy[i];
    std::printf("#   %-40s %-8s %15llu B %6.1f%% busy %.1f us\n",
                channelName(fabric, topo::channelOf(c->link, c->direction)).c_str(),
                std::string(topo::linkKindName(fabric.link(c->link).kind)).c_str(),
                static_cast<unsigned long long>(c->bytes), 100.0 * c->utilization, c->busy.microseconds());
  }
}

}  // namespace

int runMoeCommand(const MoeCliArgs& a) {
  const topo::Fabric fabric = topo::loadTopology(a.topology, a.sets);
  const int ep = a.ep == 0 ? static_cast<int>(fabric.gpus().size()) : a.ep;
  const std::vector<int> nodes = moeNodeOfRank(fabric, ep);
  collectives::MoeConfig c;
  c.hidden = a.hidden;
  c.topk = a.topk;
  c.numExperts = a.experts;
  c.maxNodesPerToken = a.maxNodes;
  c.payloadOnly = a.payloadOnly;
  c.relayChunkTokens = a.relay;
  c.directLanes = a.directLanes;
  if (a.path == "forward") {
    c.path = collectives::MoePath::kForward;
  } else if (a.path == "direct") {
    c.path = collectives::MoePath::kDirect;
  } else {
    throw Error(ErrorCode::kInvalidArgument, "--path '" + a.path + "': use forward or direct");
  }
  if (a.dtype == "fp8") {
    c.dispatchDtype = core::DataType::kFloat8E4M3;
  } else if (a.dtype == "bf16") {
    c.dispatchDtype = core::DataType::kBfloat16;
  } else {
    throw Error(ErrorCode::kInvalidArgument, "--dtype '" + a.dtype + "': use fp8 or bf16");
  }
  const bool fromFile = a.routing.rfind("file:", 0) == 0;
  if (fromFile) c.topk = 1;  // the file's topk replaces --topk; it is checked once the file is read
  collectives::checkMoeConfig(c, ep);
  collectives::MoeRouting routing;
  if (fromFile) {
    routing = readRoutingFile(a, ep);
    c.topk = routing.topk;
    collectives::checkMoeConfig(c, ep);
  } else if (a.routing == "uniform") {
    routing = collectives::MoeRouting::uniform(ep, a.tokens, a.topk, a.experts, a.maxNodes, nodes, a.seed);
  } else if (a.routing.rfind("zipf:", 0) == 0) {
    double s = 0;
    try {
      s = std::stod(a.routing.substr(5));
    } catch (const std::logic_error&) {
      throw Error(ErrorCode::kInvalidArgument, "--routing '" + a.routing + "': zipf:S needs a number S, e.g. zipf:1.2");
    }
    routing = collectives::MoeRouting::zipf(ep, a.tokens, a.topk, a.experts, a.maxNodes, nodes, s, a.seed);
  } else {
    throw Error(ErrorCode::kInvalidArgument, "--routing '" + a.routing + "': use uniform, zipf:S or file:PATH");
  }
  MoeSimOptions options;
  options.pxnLevel = a.pxn;
  auto mode = [](const std::string& text, const char* flag, core::Initiation fallback) {
    if (text.empty()) return fallback;
    core::Initiation m{};
    if (!core::parseInitiation(text, m)) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        std::string(flag) + " '" + text + "': expected device, proxy or offload");
    }
    return m;
  };
  const core::Initiation base = mode(a.initiation, "--initiation", core::Initiation::kDevice);
  options.scaleUp = mode(a.initiationScaleUp, "--initiation-scaleup", base);
  options.scaleOut = mode(a.initiationScaleOut, "--initiation-scaleout", base);
  options.maxWallSeconds = a.maxWall;
  const MoeSimResult r = simulateMoe(fabric, c, routing, nodes, sim::SimParams::fromFabric(fabric), options);
  if (r.stopped) {
    std::fprintf(stderr,
                 "copro-sim moe: stopped by --max-wall %g s (dispatch %s, combine %s): the times and bandwidths are "
                 "partial\n",
                 a.maxWall, r.dispatchResult.stopped ? "stopped" : "complete",
                 r.combineResult.stopped ? "stopped" : "complete");
  }
  int numNodes = 0;
  for (int n : nodes) numNodes = std::max(numNodes, n + 1);
  if (a.csv) {
    std::printf(
        "topology,ep,nodes,path,dtype,tokens,hidden,topk,experts,dispatch_us,combine_us,dispatch_GBps,"
        "combine_GBps,recv_rows_per_rank,scaleout_bytes,scaleup_bytes,sent_rows_per_rank,dispatch_send_GBps,"
        "combine_send_GBps\n");
    std::printf("%s,%d,%d,%s,%s,%d,%d,%d,%d,%.3f,%.3f,%.2f,%.2f,%.1f,%llu,%llu,%.1f,%.2f,%.2f\n", fabric.name.c_str(),
                ep, numNodes, a.path.c_str(), a.dtype.c_str(), a.tokens, c.hidden, c.topk, c.numExperts,
                r.dispatch.microseconds(), r.combine.microseconds(), r.dispatchGBps, r.combineGBps, r.recvRowsPerRank,
                static_cast<unsigned long long>(r.scaleOutBytes), static_cast<unsigned long long>(r.scaleUpBytes),
                r.sentRowsPerRank, r.dispatchSendGBps, r.combineSendGBps);
    return 0;
  }
  std::printf(
      "# copro-sim moe: %s on %s, EP%d over %d node%s, %d tokens x hidden %d, top-%d of %d experts, %s "
      "dispatch / bf16 combine, routing %s (seed %llu)\n",
      a.path.c_str(), fabric.name.c_str(), ep, numNodes, numNodes == 1 ? "" : "s", a.tokens, c.hidden, c.topk,
      c.numExperts, a.dtype.c_str(), a.routing.c_str(), static_cast<unsigned long long>(a.seed));
  std::printf("%-9s %12s %14s %16s %16s %10s\n", "phase", "time(us)", "DeepEP GB/s", "scale-out bytes",
              "scale-up bytes", "ops");
  std::printf("%-9s %12.2f %14.1f %16llu %16llu %10llu\n", "dispatch", r.dispatch.microseconds(), r.dispatchGBps,
              static_cast<unsigned long long>(r.dispatchScaleOutBytes),
              static_cast<unsigned long long>(r.dispatchScaleUpBytes), static_cast<unsigned long long>(r.dispatchOps));
  std::printf("%-9s %12.2f %14.1f %16llu %16llu %10llu\n", "combine", r.combine.microseconds(), r.combineGBps,
              static_cast<unsigned long long>(r.scaleOutBytes - r.dispatchScaleOutBytes),
              static_cast<unsigned long long>(r.scaleUpBytes - r.dispatchScaleUpBytes),
              static_cast<unsigned long long>(r.combineOps));
  std::printf("# received rows per rank (own included): %.1f; DeepEP GB/s = rows x bytes per token / time\n",
              r.recvRowsPerRank);
  std::printf("# sent rows per rank: %.1f (%s); DeepEP %s: dispatch %.1f GB/s, combine %.1f GB/s\n", r.sentRowsPerRank,
              c.path == collectives::MoePath::kForward ? "(token, node) pairs" : "selections",
              c.path == collectives::MoePath::kForward ? "RDMA bottleneck bandwidth" : "RDMA bandwidth",
              r.dispatchSendGBps, r.combineSendGBps);
  if (a.top > 0) {
    printBusiest(fabric, "dispatch", r.dispatchResult, a.top);
    printBusiest(fabric, "combine", r.combineResult, a.top);
  }
  return 0;
}

}  // namespace copro::tools
