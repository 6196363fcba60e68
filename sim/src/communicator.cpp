/// sim::Communicator (communicator.hpp): the fabric -> CollectiveArgs -> plan -> Program -> run path that
/// every tool shares.
#include "copro/sim/communicator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "copro/collectives/planner.hpp"
#include "copro/collectives/transform.hpp"
#include "copro/core/config.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/collective_sizes.hpp"

namespace copro::sim {

namespace {

using collectives::CollectiveKind;
using core::Error;
using core::ErrorCode;

bool hasNvLink(const topo::Fabric& f, std::int32_t node) {
  for (std::int32_t l : f.linksOf(node)) {
    if (f.link(l).kind == topo::LinkKind::kNvLink) return true;
  }
  return false;
}

/// The scale-up domain of every GPU node, by node id: GPUs joined by NVLink (directly or through NVLink
/// switches, across trays as in a GB200 NVL72 rack) share one, labelled by the lowest host id among them;
/// a GPU without NVLink is its host's. docs/simulator.md, "The simulated communicator".
std::map<std::int32_t, std::int32_t> scaleUpDomains(const topo::Fabric& f) {
  std::vector<std::int32_t> parent(f.nodes().size());
  for (std::size_t i = 0; i < parent.size(); ++i) parent[i] = static_cast<std::int32_t>(i);
  const auto root = [&](std::int32_t x) {
    while (parent[static_cast<std::size_t>(x)] != x) {
      parent[static_cast<std::size_t>(x)] = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(x)])];
      x = parent[static_cast<std::size_t>(x)];
    }
    return x;
  };
  for (const topo::Link& l : f.links()) {
    if (l.kind == topo::LinkKind::kNvLink) parent[static_cast<std::size_t>(root(l.a))] = root(l.b);
  }
  std::map<std::int32_t, std::int32_t> lowestHost;  // component root -> lowest host of its GPUs
  for (const std::int32_t g : f.gpus()) {
    if (!hasNvLink(f, g)) continue;
    const auto [it, fresh] = lowestHost.emplace(root(g), f.node(g).host);
    if (!fresh) it->second = std::min(it->second, f.node(g).host);
  }
  std::map<std::int32_t, std::int32_t> domain;
  for (const std::int32_t g : f.gpus()) domain[g] = hasNvLink(f, g) ? lowestHost[root(g)] : f.node(g).host;
  return domain;
}

std::string fabricName(const topo::Fabric& f) {
  return f.name.empty() ? std::string("the fabric") : "'" + f.name + "'";
}

std::vector<std::int32_t> resolvePlacement(const topo::Fabric& fabric, const CommunicatorOptions& o) {
  const auto gpus = static_cast<std::int32_t>(fabric.gpus().size());
  std::vector<std::int32_t> placement = o.placement;
  const std::int32_t p =
      o.ranks > 0 ? o.ranks : (placement.empty() ? gpus : static_cast<std::int32_t>(placement.size()));
  if (p < 1 || p > gpus) {
    throw Error(ErrorCode::kInvalidArgument, "a simulated communicator of " + std::to_string(p) + " ranks but " +
                                                 fabricName(fabric) + " has " + std::to_string(gpus) + " GPUs");
  }
  if (placement.empty()) {
    for (std::int32_t r = 0; r < p; ++r) placement.push_back(r);
  }
  if (static_cast<std::int32_t>(placement.size()) != p) {
    throw Error(ErrorCode::kInvalidArgument, "a simulated communicator places " + std::to_string(placement.size()) +
                                                 " ranks but has " + std::to_string(p) + " (one GPU per rank)");
  }
  for (std::int32_t r = 0; r < p; ++r) {
    const std::int32_t g = placement[static_cast<std::size_t>(r)];
    if (g < 0 || g >= gpus) {
      throw Error(ErrorCode::kInvalidArgument, "rank " + std::to_string(r) + " is placed on GPU " + std::to_string(g) +
                                                   ", outside 0.." + std::to_string(gpus - 1));
    }
  }
  return placement;
}

bool isIdentity(const std::vector<std::int32_t>& placement) {
  for (std::size_t r = 0; r < placement.size(); ++r) {
    if (placement[r] != static_cast<std::int32_t>(r)) return false;
  }
  return true;
}

/// Latency (link latencies plus the forwarding delays of the nodes in between) and bottleneck bandwidth
/// of the route from GPU `src` to GPU `dst`.
struct PathCost {
  double alphaUs = 0;
  double bandwidthGBps = 0;
};

PathCost pathCost(const topo::Fabric& f, Simulator& s, std::int32_t src, std::int32_t dst) {
  PathCost c;
  const auto channels = s.route(src, dst);
  double bw = std::numeric_limits<double>::infinity();
  core::Time alpha{};
  for (std::size_t i = 0; i < channels.size(); ++i) {
    const auto& l = f.link(channels[i] / 2);
    alpha += l.latency;
    bw = std::min(bw, l.bandwidth.gigabytesPerSecond());
    if (i + 1 < channels.size()) alpha += f.node((channels[i] % 2 == 0) ? l.b : l.a).delay;
  }
  c.alphaUs = alpha.microseconds();
  c.bandwidthGBps = std::isfinite(bw) ? bw : 0.0;
  return c;
}

const collectives::Algorithm& forcedAlgorithm(const CollectiveCall& call, const collectives::CollectiveArgs& args,
                                              const topo::Fabric& fabric) {
  const collectives::Algorithm* algo = collectives::findAlgorithm(call.kind, call.algorithm);
  if (algo == nullptr) {
    std::vector<std::string> names;
    for (const auto* a : collectives::algorithmsFor(call.kind)) names.push_back(a->name);
    const std::string hint = core::nearestName(call.algorithm, names);
    std::string known;
    for (const auto& n : names) known += " " + n;
    throw Error(ErrorCode::kInvalidArgument,
                "unknown " + std::string(collectives::collectiveName(call.kind)) + " algorithm '" + call.algorithm +
                    "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") + "; known:" + known);
  }
  const std::string why = algo->unsupportedReason(args);
  if (!why.empty()) {
    throw Error(ErrorCode::kUnsupported, std::string(collectives::collectiveName(call.kind)) + " algorithm '" +
                                             algo->name + "' cannot run " + std::to_string(args.nranks) + " ranks on " +
                                             fabricName(fabric) + ": " + why);
  }
  return *algo;
}

}  // namespace

collectives::CostModel fabricCostModel(const topo::Fabric& fabric, Simulator& simulator,
                                       const std::vector<std::int32_t>& placement) {
  collectives::CostModel m;
  const auto& gpus = fabric.gpus();
  const auto gpuOf = [&](std::size_t r) { return placement[r]; };
  const std::int32_t first = gpus.at(static_cast<std::size_t>(gpuOf(0)));
  const auto& g0 = fabric.node(first);
  const std::map<std::int32_t, std::int32_t> scaleUp = scaleUpDomains(fabric);
  std::int32_t intraPeer = -1;
  std::int32_t interPeer = -1;
  bool interIsRailPeer = false;
  for (std::size_t r = 1; r < placement.size(); ++r) {
    const std::int32_t id = gpus[static_cast<std::size_t>(gpuOf(r))];
    const auto& g = fabric.node(id);
    if (scaleUp.at(id) == scaleUp.at(first)) {
      if (intraPeer < 0 && hasNvLink(fabric, first)) intraPeer = static_cast<std::int32_t>(r);
      continue;
    }
    // Prefer the rail peer (same local index) on another server: the path hierarchical algorithms use.
    const bool railPeer = g.local == g0.local;
    if (interPeer < 0 || (railPeer && !interIsRailPeer)) {
      interPeer = static_cast<std::int32_t>(r);
      interIsRailPeer = railPeer;
    }
  }
  // Per-op costs the simulator charges to every transfer of a device-initiated lane.
  const auto& init = simulator.params().initiation[static_cast<int>(core::Initiation::kDevice)];
  const double opUs = (init.issue + init.extraLatency).microseconds();
  PathCost intra;
  PathCost inter;
  if (intraPeer >= 0) intra = pathCost(fabric, simulator, gpuOf(0), gpuOf(static_cast<std::size_t>(intraPeer)));
  if (interPeer >= 0) inter = pathCost(fabric, simulator, gpuOf(0), gpuOf(static_cast<std::size_t>(interPeer)));
  if (intraPeer < 0) intra = inter;
  if (interPeer < 0) inter = intra;
  if (intraPeer >= 0 || interPeer >= 0) {
    m.alphaUs = intra.alphaUs + opUs;
    m.bandwidthGBps = intra.bandwidthGBps;
    m.interAlphaUs = inter.alphaUs + opUs;
    m.interBandwidthGBps = inter.bandwidthGBps;
  }
  // A free reduction (reduce_bw 0) still needs a finite figure for the planner's arithmetic.
  const auto& params = simulator.params();
  m.reduceGBps = params.reduceBandwidth.bytesPerSecond() > 0 ? params.reduceBandwidth.gigabytesPerSecond() : 1e6;
  if (g0.memoryBandwidth.bytesPerSecond() > 0) m.memoryGBps = g0.memoryBandwidth.gigabytesPerSecond();
  return m;
}

Communicator::Communicator(const topo::Fabric& fabric, CommunicatorOptions options)
    : fabric_(fabric), placement_(resolvePlacement(fabric, options)) {
  simulator_ = std::make_unique<Simulator>(fabric, options.params ? *options.params : SimParams::fromFabric(fabric));
  // Rank -> scale-up domain (the server, or the NVLink domain spanning several trays), so hierarchical
  // algorithms and the planner see the real nodes; GPUs of one domain joined by NVLink form a load/store
  // domain.
  const std::map<std::int32_t, std::int32_t> scaleUp = scaleUpDomains(fabric);
  std::map<std::int32_t, std::vector<std::int32_t>> domains;
  std::vector<std::int32_t> singles;
  std::map<int, bool> hosts;
  for (std::int32_t r = 0; r < size(); ++r) {
    const std::int32_t id = fabric.gpus()[static_cast<std::size_t>(placement_[static_cast<std::size_t>(r)])];
    const std::int32_t node = scaleUp.at(id);
    nodeOfRank_.push_back(node);
    hosts[node] = true;
    if (hasNvLink(fabric, id)) {
      domains[node].push_back(r);
    } else {
      singles.push_back(r);
    }
  }
  nodes_ = static_cast<std::int32_t>(hosts.size());
  if (!(domains.size() == 1 && singles.empty())) {
    // Ordered by first rank, so the Program (and its cache key) does not depend on host numbering.
    for (auto& [h, ranks] : domains) domains_.push_back(ranks);
    for (std::int32_t r : singles) domains_.push_back({r});
    std::sort(domains_.begin(), domains_.end());
  }
  costModel_ = fabricCostModel(fabric, *simulator_, placement_);
  identity_ = isIdentity(placement_);  // run() then passes no placement, as a plain Simulator::run
}

Communicator::~Communicator() = default;

const SimParams& Communicator::params() const {
  return simulator_->params();
}

Simulator& Communicator::simulator() {
  return *simulator_;
}

PreparedCall Communicator::prepare(const CollectiveCall& call) const {
  const std::int32_t p = size();
  if (call.root < 0 || call.root >= p) {
    throw Error(ErrorCode::kInvalidArgument,
                "root " + std::to_string(call.root) + " is outside ranks 0.." + std::to_string(p - 1));
  }
  PreparedCall out;
  collectives::CollectiveArgs& args = out.args;
  args.kind = call.kind;
  args.nranks = p;
  args.dtype = call.dtype;
  args.op = call.op;
  args.root = call.root;
  args.scaleUpInitiation = call.scaleUpInitiation;
  args.scaleOutInitiation = call.scaleOutInitiation;
  args.pxnLevel = call.pxn;
  const std::uint64_t es = core::dataTypeSize(call.dtype);
  args.count = call.kind == CollectiveKind::kBarrier ? 0 : countForSize(call.kind, call.size, es, p);
  out.bytes = sizeForCount(call.kind, args.count, es, p);
  args.nodeOfRank = nodeOfRank_;
  args.loadStoreDomains = domains_;
  // sim.chunk_size 0 means unchunked: one chunk as large as the largest buffer.
  const std::uint64_t chunk = call.chunkBytes ? *call.chunkBytes : params().chunkBytes;
  args.chunkBytes = chunk > 0 ? chunk : std::max<std::uint64_t>(es, out.bytes);
  if (!call.algorithm.empty()) {
    out.algorithm = &forcedAlgorithm(call, args, fabric_);
  } else {
    // The fabric's cost model, no COPRO_ALGO: the environment describes the machine this runs on, not the
    // simulated one.
    out.algorithm = collectives::plan(args, costModel_).chosen;
    out.planned = true;
  }
  out.estimateUs = out.algorithm->estimateUs(args, costModel_);
  out.program = collectives::buildProgram(args, out.algorithm->name);
  return out;
}

PreparedCall Communicator::prepare(const collectives::CollectiveArgs& args, const std::string& algorithm) const {
  PreparedCall out;
  out.args = args;
  out.program = collectives::buildProgram(args, algorithm);
  out.algorithm = collectives::findAlgorithm(args.kind, algorithm);
  out.estimateUs = out.algorithm->estimateUs(args, costModel_);
  out.bytes = args.count * core::dataTypeSize(args.dtype);
  return out;
}

PreparedMoe Communicator::prepareMoe(const collectives::MoeConfig& config, const collectives::MoeRouting& routing,
                                     const MoeTransforms& transforms, const std::vector<int>& nodeOfRank) const {
  PreparedMoe out;
  out.plan = collectives::planMoe(config, routing, nodeOfRank.empty() ? nodeOfRank_ : nodeOfRank);
  collectives::CollectiveArgs args;
  args.kind = CollectiveKind::kAllToAllV;
  args.nranks = static_cast<std::int32_t>(out.plan.nodeOfRank.size());
  args.nodeOfRank = out.plan.nodeOfRank;
  args.pxnLevel = transforms.pxnLevel;
  args.scaleUpInitiation = transforms.scaleUp;
  args.scaleOutInitiation = transforms.scaleOut;
  out.dispatch = collectives::applyTransforms(collectives::buildMoeDispatch(config, out.plan), args);
  out.combine = collectives::applyTransforms(collectives::buildMoeCombine(config, out.plan), args);
  return out;
}

Result Communicator::run(const core::ProgramSource& program, const RunOptions& options) {
  if (identity_) return simulator_->run(program, options);
  RunOptions placed = options;
  placed.placement = placement_;
  return simulator_->run(program, placed);
}

Result runConcurrently(const std::vector<Launch>& launches, const RunOptions& options) {
  if (launches.empty()) throw Error(ErrorCode::kInvalidArgument, "runConcurrently needs at least one launch");
  std::vector<Job> jobs;
  Communicator* first = launches[0].communicator;
  for (const Launch& l : launches) {
    if (l.communicator == nullptr || l.program == nullptr) {
      throw Error(ErrorCode::kInvalidArgument, "a concurrent launch needs a communicator and a Program");
    }
    if (&l.communicator->fabric() != &first->fabric()) {
      throw Error(ErrorCode::kInvalidArgument, "concurrent launches must run on one fabric");
    }
    jobs.push_back(Job{l.program, l.communicator->placement(), l.start});
  }
  return first->simulator().runConcurrently(jobs, options);
}

}  // namespace copro::sim
