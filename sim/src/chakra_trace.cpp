/// Chakra execution traces to copro Workloads (chakra_trace.hpp; docs/workloads.md, "Chakra execution
/// traces"): each rank's file is read into plain nodes (the protobuf part, compiled only with protobuf),
/// then the nodes of all ranks are matched into tasks: compute per rank, collectives per process group and
/// order, point-to-point transfers per (sender, receiver, tag) and order, dependencies as `after` edges.
#include "copro/sim/chakra_trace.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "copro/core/file_read.hpp"
#include "copro/core/limits.hpp"
#include "copro/core/status.hpp"

#ifndef COPRO_HAVE_CHAKRA
#define COPRO_HAVE_CHAKRA 0
#endif
#if COPRO_HAVE_CHAKRA
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/util/delimited_message_util.h>

#include "chakra_et.pb.h"
#endif

namespace copro::sim {

namespace {

using core::Error;
using core::ErrorCode;

/// The longest compute node accepted (10^12 us, about 11.6 days): durations stay exact in picoseconds.
constexpr std::uint64_t kMaxDurationUs = 1'000'000'000'000;

/// The largest trace file read (one rank's nodes; real traces of a training step are tens of MB).
constexpr std::uint64_t kMaxTraceFileBytes = std::uint64_t{2} << 30;

// Node types and collective types of the schema (sim/proto/chakra_et.proto).
enum NodeKind : int { kComp = 4, kSend = 5, kRecv = 6, kColl = 7 };

/// One node of a rank's file, as the matching needs it.
struct RawNode {
  std::uint64_t id = 0;
  std::string name;
  int type = 0;
  std::vector<std::uint64_t> deps;  ///< data and control dependencies
  std::uint64_t durationUs = 0;
  double flops = 0.0;          ///< `num_ops` (compute without a duration)
  std::int64_t commType = -1;  ///< `comm_type`
  std::uint64_t commSize = 0;  ///< `comm_size`, bytes
  std::int64_t src = -1;       ///< `comm_src`
  std::int64_t dst = -1;       ///< `comm_dst`
  std::int64_t tag = 0;        ///< `comm_tag`
  std::string group;           ///< `pg_name`; empty: every rank
  std::int32_t task = -1;      ///< the task it became
};

struct RankTrace {
  std::string file;
  std::vector<RawNode> nodes;
  std::map<std::uint64_t, std::size_t> byId;
};

std::string nodeWhere(const RankTrace& rt, const RawNode& n) {
  return "chakra trace '" + rt.file + "': node " + std::to_string(n.id) + (n.name.empty() ? "" : " ('" + n.name + "')");
}

[[noreturn]] void badNode(const RankTrace& rt, const RawNode& n, const std::string& why) {
  throw Error(ErrorCode::kParseError, nodeWhere(rt, n) + ": " + why);
}

#if COPRO_HAVE_CHAKRA

/// An attribute's value as an integer; false for a non-integer value.
bool attrInt(const ChakraProtoMsg::AttributeProto& a, std::int64_t& out) {
  using A = ChakraProtoMsg::AttributeProto;
  switch (a.value_case()) {
    case A::kInt32Val:
      out = a.int32_val();
      return true;
    case A::kInt64Val:
      out = a.int64_val();
      return true;
    case A::kUint32Val:
      out = a.uint32_val();
      return true;
    case A::kUint64Val:
      out = static_cast<std::int64_t>(a.uint64_val());
      return true;
    case A::kSint32Val:
      out = a.sint32_val();
      return true;
    case A::kSint64Val:
      out = a.sint64_val();
      return true;
    case A::kFixed32Val:
      out = a.fixed32_val();
      return true;
    case A::kFixed64Val:
      out = static_cast<std::int64_t>(a.fixed64_val());
      return true;
    case A::kSfixed32Val:
      out = a.sfixed32_val();
      return true;
    case A::kSfixed64Val:
      out = a.sfixed64_val();
      return true;
    default:
      return false;
  }
}

/// The attributes copro reads, checked for their types.
void readAttributes(const RankTrace& rt, const ChakraProtoMsg::Node& pn, RawNode& n) {
  for (const auto& a : pn.attr()) {
    std::int64_t v = 0;
    const std::string& key = a.name();
    const bool isInt = attrInt(a, v);
    if (key == "pg_name") {
      if (a.value_case() == ChakraProtoMsg::AttributeProto::kStringVal) {
        n.group = a.string_val();
      } else if (isInt) {
        n.group = std::to_string(v);
      } else {
        badNode(rt, n, "attribute pg_name is neither a string nor an integer");
      }
      continue;
    }
    const bool known = key == "comm_type" || key == "comm_size" || key == "comm_src" || key == "comm_dst" ||
                       key == "comm_tag" || key == "num_ops";
    if (!known) continue;
    if (!isInt) badNode(rt, n, "attribute " + key + " is not an integer");
    if (v < 0 && key != "comm_tag") badNode(rt, n, "attribute " + key + " is negative (" + std::to_string(v) + ")");
    if (key == "comm_type") n.commType = v;
    if (key == "comm_size") n.commSize = static_cast<std::uint64_t>(v);
    if (key == "comm_src") n.src = v;
    if (key == "comm_dst") n.dst = v;
    if (key == "comm_tag") n.tag = v;
    if (key == "num_ops") n.flops = static_cast<double>(v);
  }
}

RankTrace readRankFile(const std::string& file) {
  core::checkBoundedFile(file, "chakra trace '" + file + "'", kMaxTraceFileBytes);
  RankTrace rt;
  rt.file = file;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorCode::kSystemError, "chakra trace '" + file + "': cannot be opened");
  google::protobuf::io::IstreamInputStream zin(&in);
  ChakraProtoMsg::GlobalMetadata meta;
  bool eof = false;
  if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&meta, &zin, &eof)) {
    throw Error(ErrorCode::kParseError, "chakra trace '" + file + "': " +
                                            (eof ? "the file is empty (a trace starts with a GlobalMetadata record)"
                                                 : "the GlobalMetadata record is truncated or corrupt"));
  }
  for (;;) {
    ChakraProtoMsg::Node pn;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&pn, &zin, &eof)) {
      if (eof) break;
      const std::string after = rt.nodes.empty() ? "the metadata" : "node " + std::to_string(rt.nodes.back().id);
      throw Error(ErrorCode::kParseError, "chakra trace '" + file + "': the record after " + after +
                                              " is truncated or corrupt (record " +
                                              std::to_string(rt.nodes.size() + 1) + ")");
    }
    RawNode n;
    n.id = pn.id();
    n.name = pn.name();
    n.type = static_cast<int>(pn.type());
    n.durationUs = pn.duration_micros();
    n.deps.assign(pn.data_deps().begin(), pn.data_deps().end());
    n.deps.insert(n.deps.end(), pn.ctrl_deps().begin(), pn.ctrl_deps().end());
    readAttributes(rt, pn, n);
    if (!rt.byId.emplace(n.id, rt.nodes.size()).second) badNode(rt, n, "field id: the id is used twice");
    rt.nodes.push_back(std::move(n));
  }
  return rt;
}

#else

RankTrace readRankFile(const std::string& file) {
  throw Error(ErrorCode::kUnsupported, "chakra trace '" + file +
                                           "': this copro was built without protobuf; install libprotobuf-dev and "
                                           "protobuf-compiler (scripts/install-deps.sh) and configure again");
}

#endif

/// copro's name of a Chakra CollectiveCommType.
std::string collectiveOf(const RankTrace& rt, const RawNode& n) {
  static const char* const kNames[] = {"allreduce", "reduce",   "allgather",     "gather",        "scatter",
                                       "broadcast", "alltoall", "reducescatter", "reducescatter", "barrier"};
  if (n.commType < 0) badNode(rt, n, "field attr: a COMM_COLL_NODE needs a comm_type attribute");
  if (n.commType >= static_cast<std::int64_t>(std::size(kNames))) {
    badNode(rt, n,
            "attribute comm_type " + std::to_string(n.commType) +
                " is no collective (0 ALL_REDUCE .. 9 BARRIER of CollectiveCommType)");
  }
  return kNames[n.commType];
}

std::string nodeTypeName(int type) {
  static const char* const kNames[] = {"INVALID_NODE", "METADATA_NODE",  "MEM_LOAD_NODE",  "MEM_STORE_NODE",
                                       "COMP_NODE",    "COMM_SEND_NODE", "COMM_RECV_NODE", "COMM_COLL_NODE",
                                       "STORAGE_NODE", "BATCH_NODE",     "CHECKPOINT_NODE"};
  if (type >= 0 && type < static_cast<int>(std::size(kNames))) return kNames[type];
  return std::to_string(type);
}

/// Builds the tasks of every rank's nodes (the matching of the file's header comment).
class TraceMatcher {
 public:
  TraceMatcher(std::vector<RankTrace>& ranks, const ChakraGroups& groups) : ranks_(ranks), groups_(groups) {}

  Workload run() {
    for (std::size_t r = 0; r < ranks_.size(); ++r) {
      for (RawNode& n : ranks_[r].nodes) place(static_cast<std::int32_t>(r), n);
    }
    checkComplete();
    addDependencies();
    Workload wl;
    wl.ranks = static_cast<std::int32_t>(ranks_.size());
    wl.tasks = std::move(tasks_);
    return wl;
  }

 private:
  /// A communication task being assembled: its members so far.
  struct Pending {
    std::int32_t task = -1;
    std::vector<std::int32_t> expected;  ///< ranks that must contribute a node
    std::set<std::int32_t> joined;
    std::int32_t firstRank = 0;  ///< where the first member came from (for messages)
    const RawNode* first = nullptr;
  };

  void place(std::int32_t rank, RawNode& n) {
    const RankTrace& rt = ranks_[static_cast<std::size_t>(rank)];
    switch (n.type) {
      case kComp:
        return placeCompute(rank, n);
      case kColl:
        return placeCollective(rank, n);
      case kSend:
      case kRecv:
        return placeTransfer(rank, n);
      default:
        badNode(rt, n,
                "field type: node type " + nodeTypeName(n.type) +
                    " is not simulated (copro reads COMP_NODE, COMM_SEND_NODE, COMM_RECV_NODE and COMM_COLL_NODE)");
    }
  }

  std::int32_t addTask(Task t) {
    tasks_.push_back(std::move(t));
    return static_cast<std::int32_t>(tasks_.size() - 1);
  }

  void placeCompute(std::int32_t rank, RawNode& n) {
    if (n.durationUs > kMaxDurationUs) {
      badNode(ranks_[static_cast<std::size_t>(rank)], n,
              "field duration_micros: " + std::to_string(n.durationUs) + " us is more than 10^12 us");
    }
    Task t;
    t.name = "r" + std::to_string(rank) + "." + std::to_string(n.id);
    t.kind = TaskKind::kCompute;
    t.firstRank = rank;
    t.numRanks = 1;
    t.duration = core::Time::us(static_cast<double>(n.durationUs));
    t.flops = n.durationUs == 0 ? n.flops : 0.0;
    t.origin = nodeWhere(ranks_[static_cast<std::size_t>(rank)], n);
    n.task = addTask(std::move(t));
  }

  /// The ranks of a node's process group.
  std::vector<std::int32_t> groupOf(std::int32_t rank, const RawNode& n) const {
    const RankTrace& rt = ranks_[static_cast<std::size_t>(rank)];
    std::vector<std::int32_t> g;
    if (n.group.empty()) {
      for (std::int32_t r = 0; r < static_cast<std::int32_t>(ranks_.size()); ++r) g.push_back(r);
      return g;
    }
    const auto it = groups_.find(n.group);
    if (it == groups_.end()) {
      badNode(rt, n,
              "attribute pg_name names process group '" + n.group +
                  "', which the group file does not define (copro-sim workload --chakra-groups FILE)");
    }
    g = it->second;
    for (const std::int32_t r : g) {
      if (r < 0 || r >= static_cast<std::int32_t>(ranks_.size())) {
        badNode(rt, n,
                "process group '" + n.group + "' has rank " + std::to_string(r) + " but the trace has " +
                    std::to_string(ranks_.size()) + " ranks");
      }
    }
    if (std::find(g.begin(), g.end(), rank) == g.end()) {
      badNode(rt, n, "process group '" + n.group + "' does not contain this file's rank " + std::to_string(rank));
    }
    return g;
  }

  void placeCollective(std::int32_t rank, RawNode& n) {
    const RankTrace& rt = ranks_[static_cast<std::size_t>(rank)];
    const std::string collective = collectiveOf(rt, n);
    const std::vector<std::int32_t> g = groupOf(rank, n);
    const std::string groupKey = n.group.empty() ? "world" : n.group;
    const std::int64_t k = collCount_[{groupKey, rank}]++;
    Pending& p = pending_[{"coll", groupKey, k, 0}];
    if (p.task < 0) {
      Task t;
      t.name = groupKey + ".coll" + std::to_string(k);
      t.kind = TaskKind::kCollective;
      t.comm.name = t.name;
      t.comm.collective = collective;
      t.comm.bytes = n.commSize;
      setRanks(t, g);
      t.origin = nodeWhere(rt, n);
      p.task = addTask(std::move(t));
      p.expected = g;
      p.firstRank = rank;
      p.first = &n;
    } else {
      const Task& t = tasks_[static_cast<std::size_t>(p.task)];
      if (t.comm.collective != collective || t.comm.bytes != n.commSize) {
        badNode(rt, n,
                "collective " + std::to_string(k) + " of group '" + groupKey + "' is " + collective + " of " +
                    std::to_string(n.commSize) + " bytes here but " + t.comm.collective + " of " +
                    std::to_string(t.comm.bytes) + " bytes at " + t.origin);
      }
    }
    p.joined.insert(rank);
    n.task = p.task;
  }

  /// A group of consecutive ranks in order is a range; any other a placement.
  static void setRanks(Task& t, const std::vector<std::int32_t>& g) {
    bool consecutive = true;
    for (std::size_t i = 1; i < g.size(); ++i) consecutive = consecutive && g[i] == g[i - 1] + 1;
    t.comm.groupSize = static_cast<std::int32_t>(g.size());
    if (consecutive) {
      t.firstRank = g.front();
      t.numRanks = static_cast<std::int32_t>(g.size());
    } else {
      t.comm.placement = g;
    }
  }

  void placeTransfer(std::int32_t rank, RawNode& n) {
    const RankTrace& rt = ranks_[static_cast<std::size_t>(rank)];
    const bool send = n.type == kSend;
    const std::int64_t peer = send ? n.dst : n.src;
    const char* const field = send ? "comm_dst" : "comm_src";
    const auto nranks = static_cast<std::int64_t>(ranks_.size());
    if (peer < 0)
      badNode(rt, n, std::string("field attr: a ") + nodeTypeName(n.type) + " needs a " + field + " attribute");
    if (peer >= nranks || peer == rank) {
      badNode(rt, n,
              std::string("attribute ") + field + " " + std::to_string(peer) +
                  (peer == rank ? " is the node's own rank"
                                : " is outside the trace's ranks 0-" + std::to_string(nranks - 1)));
    }
    const auto from = send ? rank : static_cast<std::int32_t>(peer);
    const auto to = send ? static_cast<std::int32_t>(peer) : rank;
    const std::string key = std::to_string(from) + ">" + std::to_string(to) + "#" + std::to_string(n.tag);
    const std::int64_t k = p2pCount_[{key, rank}]++;
    Pending& p = pending_[{"p2p", key, k, 0}];
    if (p.task < 0) {
      Task t;
      t.name = "p2p" + std::to_string(from) + "-" + std::to_string(to) + "." + std::to_string(k);
      t.kind = TaskKind::kCollective;
      t.comm.name = t.name;
      t.comm.collective = "broadcast";  // two ranks, root = the sender: one transfer
      t.comm.placement = {from, to};
      t.comm.groupSize = 2;
      t.origin = nodeWhere(rt, n);
      p.task = addTask(std::move(t));
      p.expected = {from, to};
      p.firstRank = rank;
      p.first = &n;
    }
    Task& t = tasks_[static_cast<std::size_t>(p.task)];
    if (n.commSize != 0 && t.comm.bytes != 0 && n.commSize != t.comm.bytes) {
      badNode(rt, n,
              "attribute comm_size " + std::to_string(n.commSize) + " differs from the " +
                  (send ? "receive's " : "send's ") + std::to_string(t.comm.bytes) + " at " + t.origin);
    }
    if (t.comm.bytes == 0) t.comm.bytes = n.commSize;
    p.joined.insert(rank);
    n.task = p.task;
  }

  /// Every collective joined by all of its group, every send received.
  void checkComplete() const {
    for (const auto& [key, p] : pending_) {
      for (const std::int32_t r : p.expected) {
        if (p.joined.count(r) != 0) continue;
        const RankTrace& rt = ranks_[static_cast<std::size_t>(p.firstRank)];
        const Task& t = tasks_[static_cast<std::size_t>(p.task)];
        const std::string what =
            std::get<0>(key) == "coll"
                ? "its collective (" + t.name + ") is never called on rank " + std::to_string(r)
                : "its transfer (" + t.name + ", tag " + std::to_string(p.first->tag) + ") has no matching " +
                      (r == t.comm.placement.front() ? "send on rank " : "receive on rank ") + std::to_string(r);
        badNode(rt, *p.first, what);
      }
    }
  }

  void addDependencies() {
    for (RankTrace& rt : ranks_) {
      for (const RawNode& n : rt.nodes) {
        Task& t = tasks_[static_cast<std::size_t>(n.task)];
        for (const std::uint64_t d : n.deps) {
          const auto it = rt.byId.find(d);
          if (it == rt.byId.end()) {
            badNode(rt, n, "field data_deps/ctrl_deps: node " + std::to_string(d) + " is not in the file");
          }
          const std::int32_t dep = rt.nodes[it->second].task;
          if (dep == n.task) badNode(rt, n, "field data_deps/ctrl_deps: the node depends on itself");
          const std::string& name = tasks_[static_cast<std::size_t>(dep)].name;
          if (std::find(t.after.begin(), t.after.end(), name) == t.after.end()) t.after.push_back(name);
        }
      }
    }
  }

  std::vector<RankTrace>& ranks_;
  const ChakraGroups& groups_;
  std::vector<Task> tasks_;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> collCount_;  ///< (group, rank) -> collectives seen
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> p2pCount_;   ///< (from>to#tag, rank) -> seen
  std::map<std::tuple<std::string, std::string, std::int64_t, int>, Pending> pending_;
};

}  // namespace

bool chakraTracesSupported() noexcept {
  return COPRO_HAVE_CHAKRA != 0;
}

std::string chakraTraceFile(const std::string& prefix, std::int32_t rank) {
  return prefix + "." + std::to_string(rank) + ".et";
}

Workload loadChakraTrace(const std::string& prefix, const ChakraOptions& options) {
  if (options.ranks < 0 || options.ranks > core::kMaxRanks) {
    throw Error(ErrorCode::kInvalidArgument, "chakra trace '" + prefix + "': ranks " + std::to_string(options.ranks) +
                                                 " is outside 1-" + std::to_string(core::kMaxRanks));
  }
  std::int32_t nranks = options.ranks;
  if (nranks == 0) {
    while (nranks < core::kMaxRanks && std::filesystem::exists(chakraTraceFile(prefix, nranks))) ++nranks;
    if (nranks == 0) {
      throw Error(ErrorCode::kInvalidArgument, "chakra trace '" + prefix + "': there is no file " +
                                                   chakraTraceFile(prefix, 0) +
                                                   " (the trace of rank r is PREFIX.r.et; give the PREFIX)");
    }
  }
  std::vector<RankTrace> ranks;
  ranks.reserve(static_cast<std::size_t>(nranks));
  for (std::int32_t r = 0; r < nranks; ++r) ranks.push_back(readRankFile(chakraTraceFile(prefix, r)));
  Workload wl = TraceMatcher(ranks, options.groups).run();
  wl.name = std::filesystem::path(prefix).filename().string();
  wl.path = prefix;
  return wl;
}

ChakraGroups parseChakraGroups(const std::string& text, const std::string& origin) {
  ChakraGroups groups;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kParseError, "process groups '" + origin + "': " + e.what());
  }
  if (!root.IsMap()) {
    throw Error(ErrorCode::kParseError, "process groups '" + origin + "': expected {\"name\": [rank, ...], ...}");
  }
  for (const auto& kv : root) {
    const std::string name = kv.first.as<std::string>();
    const std::string where = "process groups '" + origin + "': group '" + name + "'";
    if (!kv.second.IsSequence() || kv.second.size() == 0)
      throw Error(ErrorCode::kParseError, where + ": expected a list of ranks");
    std::vector<std::int32_t> ranks;
    std::set<std::int32_t> seen;
    for (const auto& v : kv.second) {
      std::int64_t r = -1;
      try {
        r = v.as<std::int64_t>();
      } catch (const YAML::Exception&) {
        throw Error(ErrorCode::kParseError, where + ": '" + v.Scalar() + "' is not a rank");
      }
      if (r < 0 || r >= core::kMaxRanks)
        throw Error(ErrorCode::kParseError, where + ": rank " + std::to_string(r) + " is out of range");
      if (!seen.insert(static_cast<std::int32_t>(r)).second) {
        throw Error(ErrorCode::kParseError, where + ": rank " + std::to_string(r) + " is listed twice");
      }
      ranks.push_back(static_cast<std::int32_t>(r));
    }
    groups[name] = std::move(ranks);
  }
  return groups;
}

}  // namespace copro::sim
