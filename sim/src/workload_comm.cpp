/// WorkloadComm (workload_comm.hpp): workload communication tasks as sim::Communicator calls, alone and
/// together.
#include "copro/sim/workload_comm.hpp"

#include <algorithm>
#include <sstream>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"

namespace copro::sim {

namespace {

using collectives::CollectiveKind;
using core::Error;
using core::ErrorCode;

bool isMoe(const CommTask& t) {
  return t.kind == TaskKind::kMoeDispatch || t.kind == TaskKind::kMoeCombine;
}

/// What determines a collective task's time alone.
std::string collectiveKey(const CommTask& t) {
  std::ostringstream key;
  key << t.collective << '|' << t.bytes << '|' << t.algorithm << '|' << t.groupSize << '|'
      << static_cast<int>(t.initiation);
  for (const std::int32_t r : t.placement) key << (&r == t.placement.data() ? "|on " : ",") << r;
  return key.str();
}

/// What determines a MoE shape (dispatch and combine come from one simulation; combine is always BF16).
std::string moeKey(const CommTask& t) {
  std::ostringstream shape;
  shape << t.groupSize << '|' << t.tokens << '|' << t.hidden << '|' << t.topk << '|' << t.experts << '|' << t.path
        << '|' << t.maxNodes << '|' << static_cast<int>(t.initiation) << '|'
        << (t.kind == TaskKind::kMoeDispatch && t.elementBytes == 2 ? 2 : 1);
  return shape.str();
}

CollectiveCall collectiveCallOf(const CommTask& t) {
  CollectiveCall call;
  call.kind = parseRunnableCollective(t.collective);
  call.algorithm = t.algorithm;
  call.size = t.bytes;
  call.scaleUpInitiation = t.initiation;
  call.scaleOutInitiation = t.initiation;
  return call;
}

/// Runs `fn`, prefixing the message of a core::Error with the task's name.
template <typename Fn>
auto namingTask(const CommTask& t, Fn&& fn) {
  try {
    return fn();
  } catch (const Error& e) {
    throw Error(e.code(), "task '" + t.name + "': " + e.message());
  }
}

}  // namespace

collectives::MoeConfig moeConfigOf(const CommTask& t) {
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
    throw Error(ErrorCode::kInvalidArgument, "task '" + t.name + "': path '" + t.path + "': use forward or direct");
  }
  const int elem = t.elementBytes == 0 ? 1 : t.elementBytes;
  if (t.kind == TaskKind::kMoeDispatch && elem != 1 && elem != 2) {
    throw Error(ErrorCode::kInvalidArgument,
                "task '" + t.name + "': element_bytes " + std::to_string(elem) + ": use 1 (FP8) or 2 (BF16)");
  }
  c.dispatchDtype = elem == 2 ? core::DataType::kBfloat16 : core::DataType::kFloat8E4M3;
  return c;
}

std::vector<std::string> runnableCollectives() {
  std::vector<std::string> names;
  for (int k = 0; k < collectives::kNumCollectiveKinds; ++k) {
    const auto kind = static_cast<CollectiveKind>(k);
    if (kind == CollectiveKind::kAllGatherV || kind == CollectiveKind::kReduceScatterV ||
        kind == CollectiveKind::kAllToAllV || kind == CollectiveKind::kSendRecv) {
      continue;
    }
    names.emplace_back(collectives::collectiveName(kind));
  }
  return names;
}

CollectiveKind parseRunnableCollective(const std::string& name) {
  CollectiveKind kind{};
  const auto names = runnableCollectives();
  if (!collectives::parseCollectiveKind(name, kind)) {
    const std::string hint = core::nearestName(name, names);
    std::string known;
    for (const auto& n : names) known += " " + n;
    throw Error(ErrorCode::kInvalidArgument, "unknown collective '" + name + "'" +
                                                 (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                                                 "; copro-sim runs:" + known);
  }
  const std::string canonical(collectives::collectiveName(kind));
  if (std::find(names.begin(), names.end(), canonical) == names.end()) {
    throw Error(ErrorCode::kUnsupported, "copro-sim runs collectives with equal per-rank sizes; '" + canonical +
                                             "' needs per-rank counts or peers (not supported yet)");
  }
  return kind;
}

PreparedMoe WorkloadComm::prepareMoe(const CommTask& task, const Communicator& comm) const {
  const collectives::MoeConfig config = moeConfigOf(task);
  collectives::checkMoeConfig(config, comm.size());
  const auto routing = collectives::MoeRouting::uniform(comm.size(), static_cast<int>(task.tokens), task.topk,
                                                        task.experts, task.maxNodes, comm.nodeOfRank(), 1);
  // The MoE Programs choose their own lanes' modes: every lane takes the task's mode instead.
  return comm.prepareMoe(config, routing, {0, task.initiation, task.initiation});
}

WorkloadComm::Prepared WorkloadComm::prepare(const CommTask& task, std::int32_t firstRank) const {
  Prepared p;
  CommunicatorOptions where;
  where.ranks = task.groupSize;
  where.placement = task.placement;
  if (task.placement.empty()) {
    for (std::int32_t r = 0; r < task.groupSize; ++r) where.placement.push_back(firstRank + r);
  } else {
    where.ranks = static_cast<std::int32_t>(task.placement.size());
  }
  p.communicator = std::make_unique<Communicator>(fabric_, where);
  if (isMoe(task)) {
    const PreparedMoe moe = prepareMoe(task, *p.communicator);
    p.program = task.kind == TaskKind::kMoeDispatch ? moe.dispatch : moe.combine;
  } else {
    const PreparedCall call = p.communicator->prepare(collectiveCallOf(task));
    p.program = call.program;
    p.algorithm = call.algorithm->name;
  }
  return p;
}

core::Time WorkloadComm::alone(const CommTask& task) {
  return namingTask(task, [&] {
    if (!isMoe(task)) {
      const std::string key = collectiveKey(task);
      const auto it = aloneTimes_.find(key);
      if (it != aloneTimes_.end()) return it->second;
      Prepared p = prepare(task, 0);
      const core::Time t = p.communicator->run(*p.program).time;
      algorithms_[key] = p.algorithm;
      return aloneTimes_[key] = t;
    }
    const std::string key = moeKey(task);
    const bool dispatch = task.kind == TaskKind::kMoeDispatch;
    const auto it = aloneTimes_.find(key + (dispatch ? "|dispatch" : "|combine"));
    if (it != aloneTimes_.end()) return it->second;
    CommunicatorOptions where;
    where.ranks = task.groupSize;
    Communicator comm(fabric_, where);
    const PreparedMoe moe = prepareMoe(task, comm);
    aloneTimes_[key + "|dispatch"] = comm.run(*moe.dispatch).time;
    aloneTimes_[key + "|combine"] = comm.run(*moe.combine).time;
    return aloneTimes_[key + (dispatch ? "|dispatch" : "|combine")];
  });
}

std::vector<core::Time> WorkloadComm::concurrent(const std::vector<CommLaunch>& launches) {
  // The contention fixed point asks for the same group again in its confirming pass.
  std::ostringstream key;
  for (const CommLaunch& l : launches) {
    key << (isMoe(l.task) ? moeKey(l.task) + "|" + std::string(taskKindName(l.task.kind)) : collectiveKey(l.task))
        << '@' << l.firstRank << '+' << l.start.picoseconds() << ';';
  }
  const auto known = concurrentTimes_.find(key.str());
  if (known != concurrentTimes_.end()) return known->second;
  std::vector<Prepared> prepared;
  std::vector<Launch> jobs;
  prepared.reserve(launches.size());
  for (const CommLaunch& l : launches) {
    prepared.push_back(namingTask(l.task, [&] { return prepare(l.task, l.firstRank); }));
    jobs.push_back({prepared.back().communicator.get(), prepared.back().program.get(), l.start});
  }
  const Result r = runConcurrently(jobs);
  std::vector<core::Time> out;
  for (std::size_t i = 0; i < launches.size(); ++i) out.push_back(r.jobFinish[i] - launches[i].start);
  concurrentTimes_[key.str()] = out;
  return out;
}

std::string WorkloadComm::describe(const CommTask& task) const {
  std::string how;
  if (isMoe(task)) {
    how = std::string(task.path.empty() ? "forward" : task.path);
  } else {
    const auto it = algorithms_.find(collectiveKey(task));
    how = it != algorithms_.end() ? it->second : "?";
  }
  return how + ", " + std::to_string(task.groupSize) + " ranks, " + std::string(core::initiationName(task.initiation));
}

void WorkloadComm::bind(WorkloadOptions& options) {
  options.commTime = [this](const CommTask& t) { return alone(t); };
  options.concurrentCommTime = [this](const std::vector<CommLaunch>& l) { return concurrent(l); };
}

}  // namespace copro::sim
