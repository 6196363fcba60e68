#include "copro/collectives/planner.hpp"

#include <cctype>
#include <cstdio>
#include <limits>
#include <sstream>

#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/core/units.hpp"

namespace copro::collectives {

namespace {

using core::splitList;
using core::trimmed;

std::vector<std::string> algorithmNames(CollectiveKind kind) {
  std::vector<std::string> names;
  for (const auto* a : algorithmsFor(kind)) names.push_back(a->name);
  return names;
}

}  // namespace

CostModel costModelFrom(const core::Config& c) {
  CostModel m;
  m.alphaUs = c.planAlphaUs;
  m.bandwidthGBps = c.planBandwidthGBps;
  m.interAlphaUs = c.planInterAlphaUs;
  m.interBandwidthGBps = c.planInterBandwidthGBps;
  m.reduceGBps = c.planReduceGBps;
  m.memoryGBps = c.planMemoryGBps;
  return m;
}

std::string forcedAlgorithm(std::string_view algoSetting, CollectiveKind kind) {
  std::string setting = trimmed(algoSetting);
  if (setting.empty()) return {};
  if (setting.find('=') == std::string::npos) {
    // One name for every collective that has it; it must exist for at least one collective.
    bool existsAnywhere = false;
    for (const auto& a : algorithms()) existsAnywhere = existsAnywhere || a.name == setting;
    if (!existsAnywhere) {
      std::vector<std::string> all;
      for (const auto& a : algorithms()) all.push_back(a.name);
      std::string hint = core::nearestName(setting, all);
      throw core::Error(core::ErrorCode::kInvalidArgument, "COPRO_ALGO='" + setting +
                                                               "': no collective has an algorithm of that name" +
                                                               (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                                                               "; copro-info --algorithms lists them");
    }
    return findAlgorithm(kind, setting) != nullptr ? setting : std::string();
  }
  std::string result;
  for (const auto& item : splitList(setting, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      throw core::Error(core::ErrorCode::kInvalidArgument, std::string("COPRO_ALGO='")
                                                               .append(setting)
                                                               .append("': item '")
                                                               .append(item)
                                                               .append("' is not collective=algorithm"));
    }
    CollectiveKind k{};
    std::string coll = trimmed(item.substr(0, eq));
    std::string algo = trimmed(item.substr(eq + 1));
    if (!parseCollectiveKind(coll, k)) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        "COPRO_ALGO: unknown collective '" + coll + "' (allreduce, allgather, reducescatter, ...)");
    }
    if (findAlgorithm(k, algo) == nullptr) {
      std::string hint = core::nearestName(algo, algorithmNames(k));
      std::string msg = "COPRO_ALGO: ";
      msg.append(coll).append(" has no algorithm '").append(algo).append("'");
      if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
      throw core::Error(core::ErrorCode::kInvalidArgument, msg);
    }
    if (k == kind) result = algo;
  }
  return result;
}

Plan plan(const CollectiveArgs& args, const CostModel& model, std::string_view forced, std::string_view algoSetting) {
  Plan p;
  for (const auto* a : algorithmsFor(args.kind)) {
    Candidate c;
    c.algorithm = a;
    c.unsupportedReason = a->unsupportedReason(args);
    c.estimateUs = c.unsupportedReason.empty() ? a->estimateUs(args, model) : 0.0;
    p.candidates.push_back(c);
  }
  auto pickForced = [&](const std::string& name, const char* source) {
    for (const auto& c : p.candidates) {
      if (c.algorithm->name != name) continue;
      if (!c.unsupportedReason.empty()) {
        throw core::Error(core::ErrorCode::kUnsupported, std::string(collectiveName(args.kind)) + " algorithm '" +
                                                             name + "' (" + source +
                                                             ") cannot run this call: " + c.unsupportedReason);
      }
      p.chosen = c.algorithm;
      p.why = std::string("forced by ") + source;
      return true;
    }
    std::ostringstream os;
    os << "unknown " << collectiveName(args.kind) << " algorithm '" << name << "' (" << source << "); known:";
    for (const auto& n : algorithmNames(args.kind)) os << ' ' << n;
    throw core::Error(core::ErrorCode::kInvalidArgument, os.str());
  };
  if (!forced.empty()) {
    pickForced(std::string(forced), "the call");
    return p;
  }
  std::string fromEnv = forcedAlgorithm(algoSetting, args.kind);
  if (!fromEnv.empty()) {
    pickForced(fromEnv, "COPRO_ALGO");
    return p;
  }
  double best = std::numeric_limits<double>::infinity();
  for (const auto& c : p.candidates) {
    if (c.unsupportedReason.empty() && c.estimateUs < best) {
      best = c.estimateUs;
      p.chosen = c.algorithm;
    }
  }
  if (p.chosen == nullptr) {
    std::ostringstream os;
    os << "no " << collectiveName(args.kind) << " algorithm can run this call:";
    for (const auto& c : p.candidates) os << ' ' << c.algorithm->name << " (" << c.unsupportedReason << ')';
    throw core::Error(core::ErrorCode::kUnsupported, os.str());
  }
  p.why = "lowest estimate";
  return p;
}

std::string formatPlan(const CollectiveArgs& args, const Plan& p) {
  std::ostringstream os;
  std::uint64_t bytes = args.count * elemBytes(args);
  os << collectiveName(args.kind) << " of " << core::formatBytes(bytes) << " (" << args.count << " x "
     << core::dataTypeName(args.dtype) << ") on " << args.nranks << " ranks";
  if (!args.nodeOfRank.empty()) {
    int nodes = 0;
    for (int n : args.nodeOfRank) nodes = std::max(nodes, n + 1);
    os << " in " << nodes << " nodes";
  }
  os << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-12s %14s  %s\n", "algorithm", "estimate(us)", "note");
  os << line;
  for (const auto& c : p.candidates) {
    std::string note;
    if (!c.unsupportedReason.empty()) {
      note = "n/a: " + c.unsupportedReason;
    } else if (c.algorithm == p.chosen) {
      note = "<- chosen (" + p.why + ")";
    }
    if (c.unsupportedReason.empty()) {
      std::snprintf(line, sizeof line, "  %-12s %14.2f  %s\n", c.algorithm->name.c_str(), c.estimateUs, note.c_str());
    } else {
      std::snprintf(line, sizeof line, "  %-12s %14s  %s\n", c.algorithm->name.c_str(), "-", note.c_str());
    }
    os << line;
  }
  return os.str();
}

std::vector<int> parseNodeMap(std::string_view text, int nranks) {
  std::string t = trimmed(text);
  if (t.empty()) return {};
  std::vector<std::string> items = splitList(t, ',');
  auto parseInt = [&](const std::string& s) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (end != s.c_str() + s.size() || v < 0 || v > (1 << 24)) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        "COPRO_NODE_MAP='" + t + "': '" + s + "' is not a node id (a non-negative integer)");
    }
    return static_cast<int>(v);
  };
  std::vector<int> map;
  if (items.size() == 1) {
    int perNode = parseInt(items[0]);
    if (perNode <= 0) {
      throw core::Error(core::ErrorCode::kInvalidArgument, "COPRO_NODE_MAP='" + t + "': ranks per node must be > 0");
    }
    for (int r = 0; r < nranks; ++r) map.push_back(r / perNode);
  } else {
    if (static_cast<int>(items.size()) != nranks) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        "COPRO_NODE_MAP='" + t + "' lists " + std::to_string(items.size()) +
                            " ranks but the communicator has " + std::to_string(nranks) +
                            "; give one node id per rank or a single ranks-per-node number");
    }
    for (const auto& s : items) map.push_back(parseInt(s));
  }
  // Renumber nodes densely in order of first appearance so ids need not be contiguous.
  std::vector<int> dense;
  std::vector<int> seen;
  for (int n : map) {
    int id = -1;
    for (std::size_t i = 0; i < seen.size(); ++i) {
      if (seen[i] == n) id = static_cast<int>(i);
    }
    if (id < 0) {
      id = static_cast<int>(seen.size());
      seen.push_back(n);
    }
    dense.push_back(id);
  }
  return dense;
}

}  // namespace copro::collectives
