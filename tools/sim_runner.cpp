#include "sim_runner.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"
#include "copro/core/trace.hpp"
#include "copro/sim/collective_sizes.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::tools {

namespace {

using core::Error;
using core::ErrorCode;
using core::Time;

/// Link counters are buffered until the run ends (only then is it known which channels were busiest);
/// beyond this many records the least busy channels so far are dropped.
constexpr std::size_t kMaxBufferedRates = std::size_t{1} << 23;

/// Turns the simulator's timeline records into a Chrome trace: pid = rank, tid = lane (ops as complete
/// events), flows as async slices of the sending rank, link utilization as counters of a "links" process.
class TraceRecorder {
 public:
  TraceRecorder(const std::string& path, const topo::Fabric& fabric, const core::ProgramSource& program,
                std::int32_t nranks, std::int32_t maxLinks)
      : writer_(path), fabric_(fabric), program_(program), nranks_(nranks), maxLinks_(maxLinks) {
    seenRank_.assign(static_cast<std::size_t>(nranks), false);
  }

  void onEvent(const sim::TraceEvent& e) {
    switch (e.kind) {
      case sim::TraceEvent::Kind::kOp:
        onOp(e);
        break;
      case sim::TraceEvent::Kind::kFlow:
        onFlow(e);
        break;
      case sim::TraceEvent::Kind::kLinkRate:
        onRate(e);
        break;
    }
  }

  /// Writes the link counters of the busiest channels and closes the file.
  void finish(const sim::Result& result) {
    std::vector<const sim::ChannelStats*> busy;
    for (const auto& c : result.channels) {
      const std::int32_t ch = topo::channelOf(c.link, c.direction);
      if (rates_.count(ch) != 0U) busy.push_back(&c);
    }
    std::stable_sort(busy.begin(), busy.end(), [](const auto* a, const auto* b) { return a->bytes > b->bytes; });
    const std::size_t keep = maxLinks_ > 0 ? std::min(busy.size(), static_cast<std::size_t>(maxLinks_)) : busy.size();
    if (keep > 0) {
      const std::int64_t pid = nranks_;
      writer_.processName(pid, "links (utilization of the " + std::to_string(keep) + " busiest of " +
                                   std::to_string(result.channels.size()) + " busy channels" +
                                   (pruned_ ? ", chosen early in a long run" : "") + ")");
      writer_.processSortIndex(pid, pid);
      for (std::size_t i = 0; i < keep; ++i) {
        const std::int32_t ch = topo::channelOf(busy[i]->link, busy[i]->direction);
        const std::string name =
            channelName(fabric_, ch) + " (" + std::string(topo::linkKindName(fabric_.link(busy[i]->link).kind)) + ")";
        for (const auto& [t, v] : rates_[ch]) writer_.counter(pid, name, t, "util", v);
      }
    }
    writer_.finish();
  }

 private:
  void rankMeta(std::int32_t rank) {
    if (rank < 0 || rank >= nranks_ || seenRank_[static_cast<std::size_t>(rank)]) return;
    seenRank_[static_cast<std::size_t>(rank)] = true;
    const auto& gpu = fabric_.node(fabric_.gpus().at(static_cast<std::size_t>(rank)));
    writer_.processName(rank, "rank " + std::to_string(rank) + " (" + gpu.name + ")");
    writer_.processSortIndex(rank, rank);
  }

  void onOp(const sim::TraceEvent& e) {
    rankMeta(e.rank);
    // Ops of one lane normally follow each other; an op that overlaps the previous one (an asynchronous
    // put still in flight) goes to an extra row, so every row holds properly ordered slices.
    auto& rows = rows_[{e.rank, e.lane}];
    std::size_t row = 0;
    while (row < rows.size() && rows[row] > e.begin) ++row;
    const std::int64_t tid = (static_cast<std::int64_t>(row) << 16) | e.lane;
    if (row == rows.size()) {
      rows.push_back(e.end);
      std::string name = "lane " + std::to_string(e.lane);
      if (e.rank >= 0 && e.rank < nranks_ && e.lane >= 0 && e.lane < program_.numLanes(e.rank)) {
        const auto init = program_.rank(e.rank).lanes[static_cast<std::size_t>(e.lane)].initiation;
        name += " (" + std::string(core::initiationName(init)) + ")";
      }
      if (row > 0) name += " overlap " + std::to_string(row);
      writer_.threadName(e.rank, tid, name);
      writer_.threadSortIndex(e.rank, tid, tid);
    } else {
      rows[row] = e.end;
    }
    core::TraceArgs args;
    if (e.peer >= 0) args.emplace_back("peer", e.peer);
    if (e.bytes > 0) args.emplace_back("bytes", e.bytes);
    writer_.complete(e.rank, tid, core::opCodeName(e.op), "op", e.begin, e.end - e.begin, args);
  }

  void onFlow(const sim::TraceEvent& e) {
    const std::int64_t pid = e.rank >= 0 ? e.rank : nranks_;
    rankMeta(e.rank);
    core::TraceArgs args;
    if (e.peer >= 0) args.emplace_back("dst", e.peer);
    args.emplace_back("bytes", e.bytes);
    writer_.asyncSlice(pid, std::max<std::int32_t>(e.lane, 0), nextFlowId_++, "flow", "flow", e.begin, e.end, args);
  }

  void onRate(const sim::TraceEvent& e) {
    if (dropped_.count(e.channel) != 0U) return;
    auto& v = rates_[e.channel];
    if (!v.empty()) busyTime_[e.channel] += v.back().second * (e.begin - v.back().first).seconds();
    v.emplace_back(e.begin, e.value);
    if (++buffered_ > kMaxBufferedRates) prune();
  }

  /// Keeps the channels busiest so far (utilization x time) when the buffer is full.
  void prune() {
    pruned_ = true;
    std::vector<std::pair<double, std::int32_t>> order;
    for (const auto& [ch, v] : rates_) order.emplace_back(-busyTime_[ch], ch);
    std::sort(order.begin(), order.end());
    const std::size_t keep = std::max<std::size_t>(2 * static_cast<std::size_t>(std::max(maxLinks_, 32)), 1);
    buffered_ = 0;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const std::int32_t ch = order[i].second;
      if (i >= keep) {
        dropped_[ch] = true;
        rates_.erase(ch);
      } else {
        buffered_ += rates_[ch].size();
      }
    }
  }

  core::TraceWriter writer_;
  const topo::Fabric& fabric_;
  const core::ProgramSource& program_;
  std::int32_t nranks_;
  std::int32_t maxLinks_;
  std::vector<bool> seenRank_;
  std::map<std::pair<std::int32_t, std::int32_t>, std::vector<Time>> rows_;
  std::uint64_t nextFlowId_ = 1;
  std::map<std::int32_t, std::vector<std::pair<Time, double>>> rates_;
  std::map<std::int32_t, double> busyTime_;
  std::map<std::int32_t, bool> dropped_;
  std::size_t buffered_ = 0;
  bool pruned_ = false;
};

}  // namespace

const topo::Fabric& FabricCache::get(const std::string& topology, const std::vector<std::string>& overrides) {
  std::string key = topology;
  for (const auto& o : overrides) key += '\n' + o;
  auto it = fabrics_.find(key);
  if (it == fabrics_.end()) {
    it = fabrics_.emplace(key, std::make_unique<topo::Fabric>(topo::loadTopology(topology, overrides))).first;
    for (const std::string& w : topo::fabricWarnings(*it->second)) {
      std::fprintf(stderr, "copro-sim: warning: %s: %s\n", it->second->name.c_str(), w.c_str());
    }
  }
  return *it->second;
}

std::string channelName(const topo::Fabric& fabric, std::int32_t channel) {
  const auto& l = fabric.link(channel / 2);
  const bool forward = channel % 2 == 0;
  return fabric.node(forward ? l.a : l.b).name + "->" + fabric.node(forward ? l.b : l.a).name;
}

SimOutcome runCase(FabricCache& fabrics, const SimCase& c, const SimRunExtras& extras) {
  const topo::Fabric& fabric = fabrics.get(c.topology, c.overrides);
  SimOutcome out;
  out.topologyName = fabric.name.empty() ? c.topology : fabric.name;
  out.gpus = static_cast<std::int32_t>(fabric.gpus().size());
  const std::int32_t p = c.ranks == 0 ? out.gpus : c.ranks;
  if (p < 1) throw Error(ErrorCode::kInvalidArgument, "--ranks must be at least 1 (got " + std::to_string(p) + ")");
  if (p > out.gpus) {
    throw Error(ErrorCode::kInvalidArgument, "--ranks " + std::to_string(p) + " is more than the " +
                                                 std::to_string(out.gpus) + " GPUs of topology '" + out.topologyName +
                                                 "' (raise its size with --set, e.g. --set nodes=...)");
  }
  if (c.root < 0 || c.root >= p) {
    throw Error(ErrorCode::kInvalidArgument,
                "--root " + std::to_string(c.root) + " is outside ranks 0.." + std::to_string(p - 1));
  }
  out.ranks = p;

  sim::CommunicatorOptions where;
  where.ranks = p;
  sim::Communicator comm(fabric, where);
  sim::CollectiveCall call;
  call.kind = c.kind;
  call.size = c.size;
  call.dtype = c.dtype;
  call.op = c.op;
  call.root = c.root;
  call.algorithm = c.algorithm;
  call.scaleUpInitiation = c.scaleUpInitiation;
  call.scaleOutInitiation = c.scaleOutInitiation;
  call.pxn = c.pxn;
  const sim::PreparedCall prepared = comm.prepare(call);
  out.nodes = comm.nodes();
  out.count = prepared.args.count;
  out.bytes = prepared.bytes;
  out.chunkBytes = comm.params().chunkBytes;
  out.model = comm.costModel();
  out.algorithm = prepared.algorithm->name;
  out.choice = prepared.planned ? "planner" : "forced";
  out.estimateUs = prepared.estimateUs;
  const auto& program = prepared.program;

  if (extras.onStart) extras.onStart(out);
  sim::RunOptions opts;
  opts.progress = extras.progress;
  opts.maxWallSeconds = extras.maxWallSeconds;
  opts.symmetry = extras.symmetry;
  std::unique_ptr<TraceRecorder> recorder;
  if (!extras.tracePath.empty()) {
    recorder = std::make_unique<TraceRecorder>(extras.tracePath, fabric, *program, p, extras.traceLinks);
    opts.trace = [&recorder](const sim::TraceEvent& e) { recorder->onEvent(e); };
  }
  out.result = comm.run(*program, opts);
  if (recorder) recorder->finish(out.result);

  out.timeUs = out.result.time.microseconds();
  const double seconds = out.result.time.seconds();
  out.algbwGBps = seconds > 0 ? static_cast<double>(out.bytes) / seconds / 1e9 : 0.0;
  out.busbwGBps = out.algbwGBps * sim::busBandwidthFactor(c.kind, p);
  // Bytes into spine-tier switches: what PXN (docs/pxn.md) keeps off the spine of a rail-optimized fabric.
  for (const auto& ch : out.result.channels) {
    const auto& link = fabric.links()[static_cast<std::size_t>(ch.link)];
    const auto& to = fabric.node(ch.direction == 0 ? link.b : link.a);
    if (to.kind == topo::NodeKind::kSwitch && to.tier == 1) out.spineBytes += ch.bytes;
  }
  return out;
}

}  // namespace copro::tools
