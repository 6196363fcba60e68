/// Hierarchical ("hier") algorithms for all-reduce, all-gather, reduce-scatter and all-to-all, composed
/// from stages over rank groups (compose.hpp): the ranks of one node, and the rails (the ranks with the
/// same local index on every node). docs/algorithms.md explains each with its cost formula.
#include <algorithm>
#include <cmath>
#include <map>

#include "algorithms_internal.hpp"
#include "compose.hpp"

namespace copro::collectives::detail {

namespace {

using core::Addr;
using core::BufferId;
using core::kSelf;
using core::Op;
using core::RankProgram;

/// Nodes ordered by id; the ranks of a node ordered by global rank (their local index). Built once per
/// Program; the stage groups are shared by every rank's generator.
struct NodeMap {
  using Group = std::shared_ptr<const std::vector<std::int32_t>>;
  std::vector<std::vector<std::int32_t>> members;  ///< [node index][local index] -> global rank
  std::vector<int> nodeIndex;                      ///< global rank -> node index
  std::vector<int> localIndex;                     ///< global rank -> local index
  int nodes = 0;
  int perNode = 0;
  std::vector<Group> nodeGroups;  ///< [node index]: members[node]
  std::vector<Group> railGroups;  ///< [local index]: the ranks with that local index, by node

  explicit NodeMap(const CollectiveArgs& args) {
    std::map<int, std::vector<std::int32_t>> byNode;
    for (std::int32_t r = 0; r < args.nranks; ++r) byNode[args.nodeOfRank[static_cast<std::size_t>(r)]].push_back(r);
    nodeIndex.assign(static_cast<std::size_t>(args.nranks), 0);
    localIndex.assign(static_cast<std::size_t>(args.nranks), 0);
    for (auto& [id, ranks] : byNode) {
      for (std::size_t l = 0; l < ranks.size(); ++l) {
        nodeIndex[static_cast<std::size_t>(ranks[l])] = static_cast<int>(members.size());
        localIndex[static_cast<std::size_t>(ranks[l])] = static_cast<int>(l);
      }
      members.push_back(std::move(ranks));
    }
    nodes = static_cast<int>(members.size());
    perNode = nodes > 0 ? static_cast<int>(members[0].size()) : 0;
    for (const auto& m : members) nodeGroups.push_back(std::make_shared<const std::vector<std::int32_t>>(m));
    // hierProblem guarantees equal node sizes; with unequal ones (no algorithm runs then) the rails stop
    // at the smallest node.
    std::size_t rails = members.empty() ? 0 : members[0].size();
    for (const auto& m : members) rails = std::min(rails, m.size());
    for (std::size_t l = 0; l < rails; ++l) {
      std::vector<std::int32_t> g;
      for (const auto& m : members) g.push_back(m[l]);
      railGroups.push_back(std::make_shared<const std::vector<std::int32_t>>(std::move(g)));
    }
  }
  [[nodiscard]] std::int32_t rankAt(int node, int local) const {
    return members[static_cast<std::size_t>(node)][static_cast<std::size_t>(local)];
  }
  [[nodiscard]] const Group& rail(int local) const { return railGroups[static_cast<std::size_t>(local)]; }
  [[nodiscard]] const Group& nodeGroup(int node) const { return nodeGroups[static_cast<std::size_t>(node)]; }
};

std::string hierProblem(const CollectiveArgs& args) {
  if (args.nranks < 1) return "needs at least one rank";
  if (args.nodeOfRank.empty()) return "needs a node map (nodeOfRank) with ranks on at least 2 nodes";
  if (std::string why = nodeMapProblem(args); !why.empty()) return why;
  std::map<int, int> sizes;
  for (int n : args.nodeOfRank) ++sizes[n];
  if (sizes.size() < 2)
    return "needs ranks on at least 2 nodes (all ranks are on node " + std::to_string(args.nodeOfRank[0]) + ")";
  const auto& first = *sizes.begin();
  for (const auto& [node, n] : sizes) {
    if (n != first.second) {
      return "needs the same number of ranks on every node (node " + std::to_string(first.first) + " has " +
             std::to_string(first.second) + ", node " + std::to_string(node) + " has " + std::to_string(n) + ")";
    }
  }
  return {};
}

StageContext stage(const CollectiveArgs& args, NodeMap::Group group, std::int32_t self, std::int32_t semBase,
                   std::uint64_t scratchBase) {
  StageContext ctx;
  ctx.group = std::move(group);
  ctx.self = self;
  ctx.semBase = semBase;
  ctx.scratchBase = scratchBase;
  ctx.dtype = args.dtype;
  ctx.op = args.op;
  ctx.chunkElems = chunkElemsOf(args);
  return ctx;
}

Region inputRegion(const CollectiveArgs& args) {
  return args.inPlace ? Region{BufferId::kOutput, 0} : Region{BufferId::kInput, 0};
}

/// The shape of a hierarchical estimate: nodes N, ranks per node L, intra and inter link costs.
struct HierShape {
  double nodes = 2, perNode = 1;
  LinkCost intra, inter;
  double gamma = 0;
};
HierShape shapeOf(const CollectiveArgs& args, const CostModel& cm) {
  HierShape s;
  s.nodes = std::max(2, numNodes(args));
  s.perNode = std::max(1.0, static_cast<double>(args.nranks) / s.nodes);
  s.intra = intraLinkCost(cm);
  s.inter = interLinkCost(cm);
  s.gamma = gammaUsPerByte(cm);
  return s;
}

// ---- all-reduce ------------------------------------------------------------------------------------

/// The rail stage all-reduces one 1/L piece: Rabenseifner when the node count is a power of two (same
/// bandwidth as the ring, log latency) or the piece fits one chunk (latency-bound), the ring otherwise.
bool railUsesRhd(const CollectiveArgs& args, int nodes, int perNode) {
  const bool pow2 = (nodes & (nodes - 1)) == 0;
  const std::uint64_t pieceBytes = partSize(args.count, static_cast<std::uint64_t>(perNode), 0) * elemBytes(args);
  return pow2 || pieceBytes <= chunkElemsOf(args) * elemBytes(args);
}

double allreduceEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const HierShape s = shapeOf(args, cm);
  const double n = static_cast<double>(args.count * elemBytes(args));
  const double L = s.perNode, N = s.nodes;
  const double piece = n / L;
  double t = 2 * (L - 1) * s.intra.alpha + 2 * (L - 1) / L * n * s.intra.beta + (L - 1) / L * n * s.gamma;
  const int nodes = static_cast<int>(N);
  if (railUsesRhd(args, nodes, static_cast<int>(L))) {
    const double pp = floorPow2(nodes);
    t += 2 * log2Floor(static_cast<std::uint64_t>(pp)) * s.inter.alpha + 2 * (pp - 1) / pp * piece * s.inter.beta +
         (pp - 1) / pp * piece * s.gamma;
    if (pp != N) t += 2 * s.inter.alpha + 2 * piece * s.inter.beta + piece * s.gamma;
  } else {
    t += 2 * (N - 1) * s.inter.alpha + 2 * (N - 1) / N * piece * s.inter.beta + (N - 1) / N * piece * s.gamma;
  }
  return t;
}

/// What every rank's hierarchical all-reduce generator shares.
struct AllReducePlan {
  CollectiveArgs args;
  std::shared_ptr<const NodeMap> map;
  bool rhd = false;
  std::uint64_t s1Scratch = 0;
  std::int32_t s1Sems = 0;
  std::int32_t s2Sems = 0;
};

core::OpStream allreduceStream(std::shared_ptr<const AllReducePlan> plan, std::int32_t rank) {
  const CollectiveArgs& args = plan->args;
  const NodeMap& map = *plan->map;
  const std::uint64_t es = elemBytes(args);
  const int node = map.nodeIndex[static_cast<std::size_t>(rank)];
  const int local = map.localIndex[static_cast<std::size_t>(rank)];
  const BlockList blocks = BlockList::even(args.count, static_cast<std::uint64_t>(map.perNode));
  const Region output{BufferId::kOutput, 0};

  // 1. Intra-node ring reduce-scatter: local rank l ends with its node's sum of piece l (in its output).
  RingReduceScatter::Spec rs;
  rs.blocks = blocks;
  rs.src = inputRegion(args);
  rs.partialsInRegion = true;
  rs.partials = output;
  rs.result = output;
  rs.divisor = 0;
  RingReduceScatter intraRs(stage(args, map.nodeGroup(node), rank, 0, 0), std::move(rs));
  co_yield intraRs.all();

  // 2. Rail all-reduce of piece l across nodes, in place in the output; it applies the kAvg division.
  const Segment piece = blocks.segment(static_cast<std::size_t>(local), 0);
  const Region pieceRegion{BufferId::kOutput, piece.offset * es};
  const StageContext railCtx = stage(args, map.rail(local), rank, plan->s1Sems, plan->s1Scratch);
  const std::uint32_t divisor = finalDivisor(args.op, args.nranks);
  if (plan->rhd) {
    const RhdAllReduce::Spec railSpec{piece.count, pieceRegion, pieceRegion, divisor};
    co_yield RhdAllReduce::stream(railCtx, railSpec);
  } else {
    const RingAllReduce::Spec railSpec{piece.count, pieceRegion, pieceRegion, divisor};
    co_yield RingAllReduce::stream(railCtx, railSpec);
  }

  // 3. Intra-node ring all-gather of the finished pieces.
  RingAllGather::Spec ag;
  ag.blocks = blocks;
  ag.buf = output;
  ag.ownSrc = output;
  RingAllGather intraAg(stage(args, map.nodeGroup(node), rank, plan->s1Sems + plan->s2Sems, 0), std::move(ag));
  co_yield intraAg.all();
}

std::shared_ptr<const core::ProgramSource> allreduceBuild(const CollectiveArgs& args) {
  auto plan = std::make_shared<AllReducePlan>();
  plan->args = args;
  plan->map = std::make_shared<const NodeMap>(args);
  const int L = plan->map->perNode;
  const int N = plan->map->nodes;
  const std::uint64_t es = elemBytes(args);
  const std::uint64_t ch = chunkElemsOf(args);
  plan->rhd = railUsesRhd(args, N, L);
  const std::uint64_t maxPiece = partSize(args.count, static_cast<std::uint64_t>(L), 0);

  RingReduceScatter::Spec rsShape;
  rsShape.blocks = BlockList::even(args.count, static_cast<std::uint64_t>(L));
  rsShape.partialsInRegion = true;
  plan->s1Scratch = RingReduceScatter::scratchBytes(rsShape, ch, es);
  const std::uint64_t s2Scratch =
      plan->rhd ? RhdAllReduce::scratchBytes(maxPiece, N, es) : RingAllReduce::scratchBytes(maxPiece, N, ch, es);
  plan->s2Sems = plan->rhd ? RhdAllReduce::numSemaphores(N) : RingAllReduce::kSemaphores;
  plan->s1Sems = RingReduceScatter::kSemaphores;

  core::ProgramHeader h = baseHeader(args, "hier");
  h.numSemaphores = plan->s1Sems + plan->s2Sems + RingAllGather::kSemaphores;
  h.scratchBytes = plan->s1Scratch + s2Scratch;
  std::shared_ptr<const AllReducePlan> shared = std::move(plan);
  return std::make_shared<core::StreamProgram>(
      std::move(h), 1, [shared](std::int32_t rank, int) { return allreduceStream(shared, rank); });
}

// ---- all-gather: rail stage first, then intra-node -------------------------------------------------

double allgatherEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const HierShape s = shapeOf(args, cm);
  const double m = static_cast<double>(args.count * elemBytes(args));
  const double L = s.perNode, N = s.nodes;
  return (N - 1) * (s.inter.alpha + m * s.inter.beta) + (L - 1) * (s.intra.alpha + N * m * s.intra.beta);
}

/// What every rank's hierarchical all-gather generator shares: the block lists of both stages.
struct AllGatherPlan {
  std::shared_ptr<const CollectiveArgs> args;
  std::shared_ptr<const NodeMap> map;
  std::vector<BlockList> railBlocks;  ///< [local index]: the blocks of that rail's members, by node
  BlockList intraBlocks;              ///< local rank l' contributes the N blocks of rail l'
};

core::OpStream allgatherStream(std::shared_ptr<const AllGatherPlan> plan, std::int32_t rank) {
  const CollectiveArgs& args = *plan->args;
  const NodeMap& map = *plan->map;
  const std::uint64_t es = elemBytes(args);
  const std::uint64_t count = args.count;
  const int node = map.nodeIndex[static_cast<std::size_t>(rank)];
  const int local = map.localIndex[static_cast<std::size_t>(rank)];
  const Region output{BufferId::kOutput, 0};
  if (!args.inPlace && count > 0) {  // the intra stage reads our own block from the output
    co_yield Op::copy(Addr{kSelf, BufferId::kOutput, static_cast<std::uint64_t>(rank) * count * es},
                      Addr{kSelf, BufferId::kInput, 0}, count * es);
  }
  // 1. Rail all-gather: each block crosses the network once per node (to the rank with the same local
  //    index), the minimum inter-node traffic.
  RingAllGather::Spec rail;
  rail.blocks = plan->railBlocks[static_cast<std::size_t>(local)];
  rail.buf = output;
  rail.ownSrc = output;
  RingAllGather railAg(stage(args, map.rail(local), rank, 0, 0), std::move(rail));
  co_yield railAg.all();
  // 2. Intra-node all-gather: local rank l' contributes the N blocks of rail l', scattered over the output.
  RingAllGather::Spec intra;
  intra.blocks = plan->intraBlocks;
  intra.buf = output;
  intra.ownSrc = output;
  RingAllGather intraAg(stage(args, map.nodeGroup(node), rank, RingAllGather::kSemaphores, 0), std::move(intra));
  co_yield intraAg.all();
}

std::shared_ptr<const core::ProgramSource> allgatherBuild(const CollectiveArgs& args) {
  auto plan = std::make_shared<AllGatherPlan>();
  plan->args = std::make_shared<const CollectiveArgs>(args);
  plan->map = std::make_shared<const NodeMap>(args);
  const NodeMap& map = *plan->map;
  const std::uint64_t count = args.count;
  const auto blockOf = [count](std::int32_t r) { return Segment{static_cast<std::uint64_t>(r) * count, count}; };
  std::vector<Block> intra;
  for (int l = 0; l < map.perNode; ++l) {
    std::vector<Block> rail;
    Block b;
    for (int k = 0; k < map.nodes; ++k) {
      rail.push_back(Block{blockOf(map.rankAt(k, l))});
      b.push_back(blockOf(map.rankAt(k, l)));
    }
    plan->railBlocks.push_back(BlockList::fromBlocks(std::move(rail)));
    intra.push_back(std::move(b));
  }
  plan->intraBlocks = BlockList::fromBlocks(std::move(intra));
  core::ProgramHeader h = baseHeader(args, "hier");
  h.numSemaphores = 2 * RingAllGather::kSemaphores;
  std::shared_ptr<const AllGatherPlan> shared = std::move(plan);
  return std::make_shared<core::StreamProgram>(
      std::move(h), 1, [shared](std::int32_t rank, int) { return allgatherStream(shared, rank); });
}

// ---- reduce-scatter: intra-node first, then rail ---------------------------------------------------

double reducescatterEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const HierShape s = shapeOf(args, cm);
  const double m = static_cast<double>(args.count * elemBytes(args));
  const double L = s.perNode, N = s.nodes;
  return (L - 1) * (s.intra.alpha + N * m * (s.intra.beta + s.gamma)) +
         (N - 1) * (s.inter.alpha + m * (s.inter.beta + s.gamma));
}

/// What every rank's hierarchical reduce-scatter generator shares.
struct ReduceScatterPlan {
  std::shared_ptr<const CollectiveArgs> args;
  std::shared_ptr<const NodeMap> map;
  BlockList intraBlocks;  ///< local rank l ends with the N blocks destined to rail l (one per node)
  std::uint64_t partialsOff = 0;
  std::uint64_t s2Base = 0;
};

core::OpStream reducescatterStream(std::shared_ptr<const ReduceScatterPlan> plan, std::int32_t rank) {
  const CollectiveArgs& args = *plan->args;
  const NodeMap& map = *plan->map;
  const std::uint64_t count = args.count;
  const int node = map.nodeIndex[static_cast<std::size_t>(rank)];
  const int local = map.localIndex[static_cast<std::size_t>(rank)];
  // 1. Intra-node ring reduce-scatter: local rank l ends with its node's sums of the N blocks destined
  //    to rail l (one per node), compact in scratch.
  RingReduceScatter::Spec intra;
  intra.blocks = plan->intraBlocks;
  intra.src = Region{BufferId::kInput, 0};
  if (args.inPlace) {  // output == input + our block (NCCL's convention): read that block through the output
    intra.hasSrcAlias = true;
    intra.srcAlias = Segment{static_cast<std::uint64_t>(rank) * count, count};
    intra.srcAliasRegion = Region{BufferId::kOutput, 0};
  }
  intra.partialsInRegion = false;
  intra.result = Region{BufferId::kScratch, plan->partialsOff};
  intra.resultCompact = true;
  intra.divisor = 0;
  RingReduceScatter intraRs(stage(args, map.nodeGroup(node), rank, 0, 0), std::move(intra));
  co_yield intraRs.all();
  // 2. Rail ring reduce-scatter of those N blocks: each rank ends with its own block.
  RingReduceScatter::Spec rail;
  rail.blocks = BlockList::strided(count, static_cast<std::uint64_t>(map.nodes));
  rail.src = Region{BufferId::kScratch, plan->partialsOff};
  rail.partialsInRegion = false;
  rail.result = Region{BufferId::kOutput, 0};
  rail.resultCompact = true;
  rail.divisor = finalDivisor(args.op, args.nranks);
  RingReduceScatter railRs(stage(args, map.rail(local), rank, RingReduceScatter::kSemaphores, plan->s2Base),
                           std::move(rail));
  co_yield railRs.all();
}

std::shared_ptr<const core::ProgramSource> reducescatterBuild(const CollectiveArgs& args) {
  auto plan = std::make_shared<ReduceScatterPlan>();
  plan->args = std::make_shared<const CollectiveArgs>(args);
  plan->map = std::make_shared<const NodeMap>(args);
  const NodeMap& map = *plan->map;
  const std::uint64_t es = elemBytes(args);
  const std::uint64_t ch = chunkElemsOf(args);
  const std::uint64_t count = args.count;
  const auto N = static_cast<std::uint64_t>(map.nodes);
  std::vector<Block> intra;
  for (int l = 0; l < map.perNode; ++l) {
    Block b;
    for (int k = 0; k < map.nodes; ++k)
      b.push_back(Segment{static_cast<std::uint64_t>(map.rankAt(k, l)) * count, count});
    intra.push_back(std::move(b));
  }
  plan->intraBlocks = BlockList::fromBlocks(std::move(intra));
  // Scratch: [intra ring slots][node partials: N blocks][rail ring slots].
  RingReduceScatter::Spec intraShape;
  intraShape.blocks = plan->intraBlocks;
  const std::uint64_t s1 = RingReduceScatter::scratchBytes(intraShape, ch, es);
  RingReduceScatter::Spec railShape;
  railShape.blocks = BlockList::strided(count, N);
  plan->partialsOff = s1;
  plan->s2Base = s1 + N * count * es;
  core::ProgramHeader h = baseHeader(args, "hier");
  h.numSemaphores = 2 * RingReduceScatter::kSemaphores;
  h.scratchBytes = plan->s2Base + RingReduceScatter::scratchBytes(railShape, ch, es);
  std::shared_ptr<const ReduceScatterPlan> shared = std::move(plan);
  return std::make_shared<core::StreamProgram>(
      std::move(h), 1, [shared](std::int32_t rank, int) { return reducescatterStream(shared, rank); });
}

// ---- all-to-all: intra-node gather by destination rail, then rail exchange -------------------------

double alltoallEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const HierShape s = shapeOf(args, cm);
  const double m = static_cast<double>(args.count * elemBytes(args));
  const double L = s.perNode, N = s.nodes;
  return (L - 1) * (s.intra.alpha + N * m * s.intra.beta) + (N - 1) * (s.inter.alpha + L * m * s.inter.beta);
}

std::shared_ptr<const core::ProgramSource> alltoallBuild(const CollectiveArgs& args) {
  auto map = std::make_shared<const NodeMap>(args);
  const std::uint64_t es = elemBytes(args);
  const std::uint64_t blockBytes = args.count * es;
  // Scratch: S1[dest node k][source local l'] (what this rank forwards to rail peer k; for k = its own node,
  // what its node peers send it) and S2[source node k][source local l'] (what rail peers forward to it).
  // Everything lands in scratch and is placed by local copies: a peer may be in place while we are not
  // (the flag is per rank), and an in-place rank's output is still its unread input, so no peer may write
  // it; the protocol and the header therefore do not depend on the flag.
  const std::uint64_t s1Bytes =
      static_cast<std::uint64_t>(map->nodes) * static_cast<std::uint64_t>(map->perNode) * blockBytes;
  core::ProgramHeader h = baseHeader(args, "hier");
  h.numSemaphores = 2;
  h.scratchBytes = 2 * s1Bytes;
  return std::make_shared<core::LazyProgram>(std::move(h), [args, map, blockBytes, s1Bytes](std::int32_t rank,
                                                                                            RankProgram& out) {
    out.addLane();
    if (blockBytes == 0) return;
    const int N = map->nodes;
    const int L = map->perNode;
    const int node = map->nodeIndex[static_cast<std::size_t>(rank)];
    const int local = map->localIndex[static_cast<std::size_t>(rank)];
    const BufferId inBuf = args.inPlace ? BufferId::kOutput : BufferId::kInput;
    const auto blockAt = [&](BufferId buf, std::int32_t r) {
      return Addr{kSelf, buf, static_cast<std::uint64_t>(r) * blockBytes};
    };
    const auto s1 = [&](int k, int l) {
      return (static_cast<std::uint64_t>(k) * static_cast<std::uint64_t>(L) + static_cast<std::uint64_t>(l)) *
             blockBytes;
    };
    const auto s2 = [&](int k, int l) { return s1Bytes + s1(k, l); };
    const std::int32_t semIntra = 0;
    const std::int32_t semRail = 1;

    // 1. Intra-node: to each local rank l, the blocks this rank has for rail l of every node, into its
    //    S1[k][our local index] (one signal per peer, on the last put).
    for (int l = 0; l < L; ++l) {
      const std::int32_t peer = map->rankAt(node, l);
      for (int k = 0; k < N; ++k) {
        const std::int32_t dest = map->rankAt(k, l);
        if (peer == rank) {
          if (k != node) {
            out.emit(0, Op::copy(Addr{kSelf, BufferId::kScratch, s1(k, local)}, blockAt(inBuf, dest), blockBytes));
          }
          continue;
        }
        out.emit(0, Op::put(peer, Addr{peer, BufferId::kScratch, s1(k, local)}, blockAt(inBuf, dest), blockBytes,
                            k == N - 1 ? semIntra : -1));
      }
    }
    if (L > 1) out.emit(0, Op::wait(semIntra, static_cast<std::uint64_t>(L - 1)));

    // 2. Rail exchange: to rail peer k, the L blocks our node sends it (contiguous in S1), into its S2.
    for (int k = 0; k < N; ++k) {
      if (k == node) continue;
      const std::int32_t peer = map->rankAt(k, local);
      out.emit(0, Op::put(peer, Addr{peer, BufferId::kScratch, s2(node, 0)}, Addr{kSelf, BufferId::kScratch, s1(k, 0)},
                          static_cast<std::uint64_t>(L) * blockBytes, semRail));
    }
    out.emit(0, Op::wait(semRail, static_cast<std::uint64_t>(N - 1)));

    // 3. Placement. In place our output is our input, which our puts above read: flush them first.
    if (args.inPlace) {
      out.emit(0, Op::flush());
    } else {
      out.emit(0, Op::copy(blockAt(BufferId::kOutput, rank), blockAt(BufferId::kInput, rank), blockBytes));
    }
    for (int k = 0; k < N; ++k) {
      // Runs of consecutive source ranks are one copy (S1/S2 hold a node's sources in local order).
      for (int l = 0; l < L;) {
        int e = l + 1;
        while (e < L && map->rankAt(k, e) == map->rankAt(k, e - 1) + 1 && map->rankAt(k, e) != rank &&
               map->rankAt(k, l) != rank) {
          ++e;
        }
        if (map->rankAt(k, l) != rank) {
          const std::uint64_t from = k == node ? s1(node, l) : s2(k, l);
          out.emit(0, Op::copy(blockAt(BufferId::kOutput, map->rankAt(k, l)), Addr{kSelf, BufferId::kScratch, from},
                               static_cast<std::uint64_t>(e - l) * blockBytes));
        }
        l = e;
      }
    }
  });
}

}  // namespace

void addHierarchicalAlgorithms(std::vector<Algorithm>& out) {
  out.push_back(Algorithm{"hier", CollectiveKind::kAllReduce,
                          "intra-node ring reduce-scatter, per-rail inter-node all-reduce of the 1/L piece (rhd or "
                          "ring), intra-node ring all-gather",
                          hierProblem, allreduceEstimate, allreduceBuild});
  out.push_back(Algorithm{"hier", CollectiveKind::kAllGather,
                          "per-rail inter-node ring all-gather, then intra-node ring all-gather of the N gathered "
                          "blocks",
                          hierProblem, allgatherEstimate, allgatherBuild});
  out.push_back(Algorithm{"hier", CollectiveKind::kReduceScatter,
                          "intra-node ring reduce-scatter of the per-rail blocks, then per-rail inter-node ring "
                          "reduce-scatter",
                          hierProblem, reducescatterEstimate, reducescatterBuild});
  out.push_back(Algorithm{"hier", CollectiveKind::kAllToAll,
                          "rail-aligned all-to-all (DeepEP/PXN style): intra-node gather of what each rail sends, one "
                          "rail exchange per node pair, local placement",
                          hierProblem, alltoallEstimate, alltoallBuild});
}

}  // namespace copro::collectives::detail
