/// Workload files (docs/workloads.md, "Format"): YAML -> Workload, with errors naming the file, the line and
/// the key.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "copro/core/config.hpp"
#include "copro/core/file_read.hpp"
#include "copro/core/limits.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/sim/workload.hpp"
#include "copro/topologies/detail/strict_yaml.hpp"

#include "scaled_number.hpp"

namespace copro::sim {

namespace {

using core::Error;
using core::ErrorCode;

const std::vector<std::string> kTopKeys = {"name", "description", "topology", "ranks",
                                           "sim",  "set",         "defaults", "tasks"};
const std::vector<std::string> kCommon = {"name", "type", "after", "ranks"};
const std::vector<std::string> kComputeKeys = {"duration", "flops", "efficiency"};
const std::vector<std::string> kCollectiveKeys = {"collective", "bytes", "algorithm", "group", "initiation", "sms"};
const std::vector<std::string> kMoeKeys = {"tokens", "hidden",     "topk", "experts",       "path",
                                           "group",  "initiation", "sms",  "element_bytes", "max_nodes"};
const std::vector<std::string> kTypes = {"compute", "collective", "moe_dispatch", "moe_combine"};

std::vector<std::string> keysOf(TaskKind k) {
  std::vector<std::string> keys = kCommon;
  const std::vector<std::string>& extra =
      k == TaskKind::kCompute ? kComputeKeys : (k == TaskKind::kCollective ? kCollectiveKeys : kMoeKeys);
  keys.insert(keys.end(), extra.begin(), extra.end());
  return keys;
}

/// "workload 'path' line N" for a node.
class Where {
 public:
  explicit Where(std::string origin) : origin_(std::move(origin)) {}
  [[nodiscard]] std::string at(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return "workload '" + origin_ + "'" + (m.line < 0 ? std::string() : " line " + std::to_string(m.line + 1));
  }
  [[nodiscard]] std::string fileLine(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return origin_ + ":" + (m.line < 0 ? std::string("?") : std::to_string(m.line + 1));
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& why) const {
    throw Error(ErrorCode::kInvalidArgument, at(n) + ": " + why);
  }

 private:
  std::string origin_;
};

std::string scalar(const Where& w, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) w.fail(n, "key '" + key + "' must be a single value");
  return n.Scalar();
}

double number(const Where& w, const YAML::Node& n, const std::string& key) {
  const std::string t = core::trimmed(scalar(w, n, key));
  double v = 0;
  if (!detail::parseScaledNumber(t, /*perSecond=*/false, v)) {
    w.fail(n, "key '" + key + "': '" + t + "' is not a non-negative number (e.g. 4096, 1.5e12 or 1.5T)");
  }
  return v;
}

std::int64_t integer(const Where& w, const YAML::Node& n, const std::string& key) {
  const double v = number(w, n, key);
  if (v != std::floor(v) || v > 9e15) w.fail(n, "key '" + key + "': '" + n.Scalar() + "' is not a whole number");
  return static_cast<std::int64_t>(v);
}

/// A whole number in [lo, hi] (docs/config.md, "Limits"), checked before it is narrowed.
std::int32_t boundedInt(const Where& w, const YAML::Node& n, const std::string& key, std::int64_t lo, std::int64_t hi) {
  const std::int64_t v = integer(w, n, key);
  if (v < lo || v > hi) {
    w.fail(n,
           "key '" + key + "': " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return static_cast<std::int32_t>(v);
}

/// The task's fields: its own, then `defaults` for the keys it lacks that apply to its type.
void readTask(const Where& w, const YAML::Node& item, const YAML::Node& defaults, Task& t) {
  if (!item.IsMap()) w.fail(item, "each entry of `tasks` must be a map with `name` and `type`");
  const YAML::Node nameNode = item["name"];
  if (!nameNode) w.fail(item, "a task needs a `name`");
  t.name = scalar(w, nameNode, "name");
  const std::string task = "task '" + t.name + "': ";
  const YAML::Node typeNode = item["type"];
  if (!typeNode) w.fail(item, task + "it needs a `type`: compute, collective, moe_dispatch or moe_combine");
  const std::string type = scalar(w, typeNode, "type");
  bool known = false;
  for (std::size_t i = 0; i < kTypes.size(); ++i) {
    if (type == kTypes[i]) {
      t.kind = static_cast<TaskKind>(i);
      known = true;
    }
  }
  if (!known) {
    const std::string hint = core::nearestName(type, kTypes);
    w.fail(typeNode, task + "unknown type '" + type + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                         "; use compute, collective, moe_dispatch or moe_combine");
  }
  t.origin = w.fileLine(item);
  const std::vector<std::string> allowed = keysOf(t.kind);
  std::vector<std::pair<std::string, YAML::Node>> fields;
  std::set<std::string> seen;
  for (const auto& kv : item) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::vector<std::string> everything = kCommon;
      for (const auto* v : {&kComputeKeys, &kCollectiveKeys, &kMoeKeys})
        everything.insert(everything.end(), v->begin(), v->end());
      const bool otherType = std::find(everything.begin(), everything.end(), key) != everything.end();
      const std::string hint = core::nearestName(key, allowed);
      w.fail(kv.first, task + "unknown key '" + key + "' for a " + type + " task" +
                           (otherType ? " (it belongs to another task type)"
                                      : (hint.empty() ? "" : " (did you mean '" + hint + "'?)")));
    }
    seen.insert(key);
    fields.emplace_back(key, kv.second);
  }
  if (defaults) {
    for (const auto& kv : defaults) {
      const std::string key = kv.first.as<std::string>();
      if (seen.count(key) == 0 && std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
        fields.emplace_back(key, kv.second);
      }
    }
  }
  bool hasDuration = false;
  bool hasFlops = false;
  for (const auto& [key, v] : fields) {
    if (key == "name" || key == "type") continue;
    try {
      if (key == "after") {
        if (v.IsSequence()) {
          for (const auto& d : v) t.after.push_back(scalar(w, d, key));
        } else {
          t.after.push_back(scalar(w, v, key));
        }
      } else if (key == "ranks") {
        const std::string s = core::trimmed(scalar(w, v, key));
        if (s == "all") continue;
        const auto dash = s.find('-');
        char* e1 = nullptr;
        char* e2 = nullptr;
        const std::string a = dash == std::string::npos ? s : s.substr(0, dash);
        const std::string b = dash == std::string::npos ? s : s.substr(dash + 1);
        const long lo = std::strtol(a.c_str(), &e1, 10);
        const long hi = std::strtol(b.c_str(), &e2, 10);
        if (a.empty() || b.empty() || *e1 != '\0' || *e2 != '\0' || lo < 0 || hi < lo) {
          w.fail(v, task + "key 'ranks': '" + s + "' is not a rank range: use all, 5 or 0-63");
        }
        if (hi >= core::kMaxRanks) {
          w.fail(v, task + "key 'ranks': '" + s + "' goes past rank " + std::to_string(core::kMaxRanks - 1) +
                        ", the most a workload may have");
        }
        t.firstRank = static_cast<std::int32_t>(lo);
        t.numRanks = static_cast<std::int32_t>(hi - lo + 1);
      } else if (key == "duration") {
        t.duration = core::parseTime(scalar(w, v, key));
        hasDuration = true;
      } else if (key == "flops") {
        t.flops = number(w, v, key);
        hasFlops = true;
      } else if (key == "efficiency") {
        t.efficiency = number(w, v, key);
        if (!(t.efficiency > 0.0) || t.efficiency > 1.0) {
          w.fail(v, task + "key 'efficiency': use a fraction of peak in (0, 1], e.g. 0.6");
        }
      } else if (key == "collective") {
        t.comm.collective = scalar(w, v, key);
      } else if (key == "bytes") {
        t.comm.bytes = core::parseBytes(scalar(w, v, key));
      } else if (key == "algorithm") {
        t.comm.algorithm = scalar(w, v, key);
      } else if (key == "group") {
        const std::string s = core::trimmed(scalar(w, v, key));
        if (s == "all") {
          t.comm.groupSize = 0;
        } else {
          t.comm.groupSize = boundedInt(w, v, key, 1, core::kMaxRanks);
        }
      } else if (key == "initiation") {
        const std::string s = scalar(w, v, key);
        if (!core::parseInitiation(s, t.comm.initiation)) {
          const std::string hint = core::nearestName(s, {"proxy", "device", "offload"});
          w.fail(v, task + "key 'initiation': unknown mode '" + s + "'" +
                        (hint.empty() ? "" : " (did you mean '" + hint + "'?)") + "; use proxy, device or offload");
        }
      } else if (key == "sms") {
        t.comm.sms = boundedInt(w, v, key, 0, core::kMaxSms);
      } else if (key == "tokens") {
        t.comm.tokens = boundedInt(w, v, key, 0, core::kMaxMoeTokens);
      } else if (key == "hidden") {
        t.comm.hidden = boundedInt(w, v, key, 1, core::kMaxMoeHidden);
      } else if (key == "topk") {
        t.comm.topk = boundedInt(w, v, key, 1, core::kMaxMoeExperts);
      } else if (key == "experts") {
        t.comm.experts = boundedInt(w, v, key, 1, core::kMaxMoeExperts);
      } else if (key == "path") {
        t.comm.path = scalar(w, v, key);
      } else if (key == "max_nodes") {
        t.comm.maxNodes = boundedInt(w, v, key, 0, core::kMaxRanks);
      } else if (key == "element_bytes") {
        t.comm.elementBytes = boundedInt(w, v, key, 1, 16);
      }
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kInvalidArgument) throw;
      w.fail(v, task + "key '" + key + "': " + e.message());
    }
  }
  t.comm.name = t.name;
  t.comm.kind = t.kind;
  if (t.kind == TaskKind::kCompute) {
    if (hasDuration == hasFlops) w.fail(item, task + "a compute task needs exactly one of `duration` and `flops`");
  } else if (t.kind == TaskKind::kCollective) {
    if (t.comm.collective.empty()) w.fail(item, task + "a collective task needs `collective` (e.g. allreduce)");
    if (t.comm.bytes == 0) w.fail(item, task + "a collective task needs `bytes` (the nccl-tests size, e.g. 64M)");
  } else {
    if (t.comm.tokens <= 0 || t.comm.hidden <= 0 || t.comm.topk <= 0 || t.comm.experts <= 0) {
      w.fail(item, task + "a " + type + " task needs `tokens`, `hidden`, `topk` and `experts` (all > 0)");
    }
  }
}

void flatten(const YAML::Node& n, const std::string& prefix, std::vector<std::string>& out, const Where& w) {
  if (n.IsMap()) {
    for (const auto& kv : n) flatten(kv.second, prefix + "." + kv.first.as<std::string>(), out, w);
  } else if (n.IsScalar()) {
    out.push_back(prefix + "=" + n.Scalar());
  } else {
    w.fail(n, "key '" + prefix + "' must be a value or a map");
  }
}

}  // namespace

Workload parseWorkload(const std::string& yamlText, const std::string& origin) {
  const Where w(origin);
  YAML::Node root = topo::detail::loadStrictYaml(yamlText, "workload '" + origin + "'");
  if (!root.IsMap()) {
    throw Error(ErrorCode::kParseError, "workload '" + origin + "': the file must be a map with `tasks`");
  }
  Workload wl;
  wl.path = origin;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(kTopKeys.begin(), kTopKeys.end(), key) == kTopKeys.end()) {
      const std::string hint = core::nearestName(key, kTopKeys);
      w.fail(kv.first, "unknown key '" + key + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                           "; docs/workloads.md lists the keys");
    }
  }
  if (root["name"]) wl.name = scalar(w, root["name"], "name");
  if (root["topology"]) wl.topology = scalar(w, root["topology"], "topology");
  if (root["ranks"]) {
    const std::int64_t ranks = integer(w, root["ranks"], "ranks");
    if (ranks < 1 || ranks > core::kMaxRanks) {
      w.fail(root["ranks"], "key 'ranks': " + std::to_string(ranks) + " is outside 1.." +
                                std::to_string(core::kMaxRanks) + " (leave it out to use every GPU of the topology)");
    }
    wl.ranks = static_cast<std::int32_t>(ranks);
  }
  if (const YAML::Node sim = root["sim"]) {
    if (!sim.IsMap()) w.fail(sim, "key 'sim' must be a map of simulator keys (docs/simulator.md)");
    flatten(sim, "sim", wl.overrides, w);
  }
  if (const YAML::Node set = root["set"]) {
    if (!set.IsSequence()) w.fail(set, "key 'set' must be a list of key=value overrides");
    for (const auto& s : set) {
      const std::string kv = scalar(w, s, "set");
      if (kv.find('=') == std::string::npos) w.fail(s, "key 'set': '" + kv + "' is not key=value");
      wl.overrides.push_back(kv);
    }
  }
  const YAML::Node defaults = root["defaults"];
  if (defaults) {
    if (!defaults.IsMap()) w.fail(defaults, "key 'defaults' must be a map of task keys");
    std::vector<std::string> everything;
    for (const auto* v : {&kComputeKeys, &kCollectiveKeys, &kMoeKeys})
      everything.insert(everything.end(), v->begin(), v->end());
    everything.emplace_back("ranks");
    for (const auto& kv : defaults) {
      const std::string key = kv.first.as<std::string>();
      if (std::find(everything.begin(), everything.end(), key) == everything.end()) {
        const std::string hint = core::nearestName(key, everything);
        w.fail(kv.first,
               "defaults: unknown task key '" + key + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
      }
    }
  }
  const YAML::Node tasks = root["tasks"];
  if (!tasks || !tasks.IsSequence() || tasks.size() == 0) {
    throw Error(ErrorCode::kInvalidArgument, "workload '" + origin + "': it needs `tasks`, a non-empty list");
  }
  std::set<std::string> names;
  for (const auto& item : tasks) {
    Task t;
    readTask(w, item, defaults, t);
    if (!names.insert(t.name).second) w.fail(item, "task name '" + t.name + "' is used twice");
    wl.tasks.push_back(std::move(t));
  }
  if (wl.name.empty()) wl.name = origin;
  return wl;
}

Workload loadWorkload(const std::string& path) {
  return parseWorkload(core::readBoundedFile(path, "workload file '" + path + "'"), path);
}

}  // namespace copro::sim
