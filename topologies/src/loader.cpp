// Topology files: YAML -> builder parameters (with file:line origins) -> Fabric; the explicit `graph` form;
// overrides; the search path of bundled files.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "builders.hpp"
#include "copro/core/config.hpp"
#include "copro/core/data_dir.hpp"
#include "copro/core/file_read.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/topologies/detail/strict_yaml.hpp"
#include "copro/topologies/topology.hpp"
#include "params.hpp"

namespace copro::topo {

using core::Error;
using core::ErrorCode;
using detail::Params;
using detail::ParamValue;

namespace {

namespace fs = std::filesystem;

const std::vector<std::string>& topLevelKeys() {
  static const std::vector<std::string> keys = {"name", "description", "builder", "params", "sim", "nodes", "links"};
  return keys;
}

std::string didYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string hint = core::nearestName(word, candidates);
  return hint.empty() ? std::string() : " (did you mean '" + hint + "'?)";
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// Where things in one file are: "topology 'path' line N" and "path:N".
class FileContext {
 public:
  explicit FileContext(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string whole() const { return "topology '" + path_ + "'"; }
  [[nodiscard]] std::string at(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    if (m.line < 0) return whole();
    return whole() + " line " + std::to_string(m.line + 1);
  }
  [[nodiscard]] std::string origin(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return path_ + ":" + (m.line < 0 ? std::string("?") : std::to_string(m.line + 1));
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& message) const {
    throw Error(ErrorCode::kParseError, at(n) + ": " + message);
  }

 private:
  std::string path_;
};

std::string scalarText(const FileContext& ctx, const YAML::Node& key, const YAML::Node& value,
                       const std::string& what) {
  if (value.IsNull()) ctx.fail(key, what + " has no value");
  if (!value.IsScalar()) ctx.fail(value, what + " must be a single value, not a list or a mapping");
  return value.Scalar();
}

/// `sim:` flattened with dots; lists are kept as flow-style text.
void flattenSim(const FileContext& ctx, const YAML::Node& node, const std::string& prefix, Fabric& f) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix + it->first.as<std::string>();
    const YAML::Node v = it->second;
    if (v.IsMap()) {
      flattenSim(ctx, v, key + ".", f);
      continue;
    }
    std::string text;
    if (v.IsScalar()) {
      text = v.Scalar();
    } else if (v.IsSequence()) {
      YAML::Emitter e;
      e << YAML::Flow << v;
      text = e.c_str();
    }
    f.simParams[key] = text;
    f.simParamOrigin[key] = ctx.origin(it->first);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The explicit graph form.

const std::vector<std::string>& nodeKeys() {
  static const std::vector<std::string> keys = {"name",     "kind", "host",      "local", "rail",  "plane",
                                                "tier",     "sms",  "memory_bw", "delay", "radix", "in_switch_reduce",
                                                "multicast"};
  return keys;
}
const std::vector<std::string>& linkKeys() {
  static const std::vector<std::string> keys = {"a", "b", "kind", "bw", "latency"};
  return keys;
}

template <typename Enum>
Enum parseKind(const FileContext& ctx, const YAML::Node& keyNode, const std::string& text,
               const std::vector<std::pair<std::string, Enum>>& kinds, const std::string& what) {
  std::vector<std::string> names;
  for (const auto& [name, kind] : kinds) {
    if (name == text) return kind;
    names.push_back(name);
  }
  ctx.fail(keyNode, what + " '" + text + "' is not one of " + joined(names) + didYouMean(text, names));
}

std::int32_t parseInt(const FileContext& ctx, const YAML::Node& keyNode, const std::string& text,
                      const std::string& what) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < -1 || v > (1LL << 30)) ctx.fail(keyNode, what + ": expected a whole number");
  return static_cast<std::int32_t>(v);
}

bool parseBool(const FileContext& ctx, const YAML::Node& keyNode, const std::string& text, const std::string& what) {
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  ctx.fail(keyNode, what + ": expected true or false");
}

template <typename F>
auto withOrigin(const FileContext& ctx, const YAML::Node& keyNode, const std::string& what, F&& parse) {
  try {
    return parse();
  } catch (const Error& e) {
    ctx.fail(keyNode, what + ": " + e.message());
  }
}

void buildGraph(const FileContext& ctx, const YAML::Node& root, Fabric& f) {
  const YAML::Node nodes = root["nodes"];
  const YAML::Node links = root["links"];
  if (!nodes) throw Error(ErrorCode::kParseError, ctx.whole() + ": builder 'graph' needs the key 'nodes' (a list)");
  if (!links) throw Error(ErrorCode::kParseError, ctx.whole() + ": builder 'graph' needs the key 'links' (a list)");
  if (!nodes.IsSequence()) ctx.fail(nodes, "'nodes' must be a list of {name, kind, ...}");
  if (!links.IsSequence()) ctx.fail(links, "'links' must be a list of {a, b, bw, ...}");
  const std::vector<std::pair<std::string, NodeKind>> nodeKinds = {
      {"gpu", NodeKind::kGpu},   {"nvswitch", NodeKind::kNvSwitch}, {"pcie_switch", NodeKind::kPcieSwitch},
      {"host", NodeKind::kHost}, {"nic", NodeKind::kNic},           {"switch", NodeKind::kSwitch}};
  const std::vector<std::pair<std::string, LinkKind>> linkKinds = {
      {"nvlink", LinkKind::kNvLink}, {"pcie", LinkKind::kPcie}, {"network", LinkKind::kNetwork}};

  std::map<std::string, std::pair<std::int32_t, int>> declared;  // name -> (id, line)
  std::vector<std::string> names;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const YAML::Node item = nodes[i];
    const std::string what = "nodes[" + std::to_string(i) + "]";
    if (!item.IsMap()) ctx.fail(item, what + " must be a mapping {name, kind, ...}");
    Node n;
    bool haveKind = false;
    for (auto it = item.begin(); it != item.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      std::string field = what;
      field += ".";
      field += key;
      if (std::find(nodeKeys().begin(), nodeKeys().end(), key) == nodeKeys().end()) {
        ctx.fail(it->first, what + ": unknown key '" + key + "'" + didYouMean(key, nodeKeys()) + "; node keys are " +
                                joined(nodeKeys()));
      }
      const std::string v = scalarText(ctx, it->first, it->second, field);
      if (key == "name") n.name = v;
      if (key == "kind") {
        n.kind = parseKind(ctx, it->first, v, nodeKinds, field);
        haveKind = true;
      }
      if (key == "host") n.host = parseInt(ctx, it->first, v, field);
      if (key == "local") n.local = parseInt(ctx, it->first, v, field);
      if (key == "rail") n.rail = parseInt(ctx, it->first, v, field);
      if (key == "plane") n.plane = parseInt(ctx, it->first, v, field);
      if (key == "tier") n.tier = parseInt(ctx, it->first, v, field);
      if (key == "sms") n.sms = parseInt(ctx, it->first, v, field);
      if (key == "radix") n.radix = parseInt(ctx, it->first, v, field);
      if (key == "memory_bw") {
        n.memoryBandwidth = withOrigin(ctx, it->first, field, [&] { return detail::parseBandwidth(v); });
      }
      if (key == "delay") n.delay = withOrigin(ctx, it->first, field, [&] { return detail::parseDuration(v); });
      if (key == "in_switch_reduce") n.inSwitchReduce = parseBool(ctx, it->first, v, field);
      if (key == "multicast") n.multicast = parseBool(ctx, it->first, v, field);
    }
    if (n.name.empty()) ctx.fail(item, what + ": missing required key 'name'");
    if (!haveKind) {
      ctx.fail(item, what + " ('" + n.name +
                         "'): missing required key 'kind' (one of gpu, nvswitch, pcie_switch, host, nic, switch)");
    }
    const int line = item.Mark().line + 1;
    auto [pos, fresh] = declared.emplace(n.name, std::make_pair(-1, line));
    if (!fresh) {
      ctx.fail(item, what + ": node name '" + n.name + "' is already used at line " +
                         std::to_string(pos->second.second) + "; names must be unique");
    }
    names.push_back(n.name);
    pos->second.first = f.addNode(std::move(n));
  }
  for (std::size_t i = 0; i < links.size(); ++i) {
    const YAML::Node item = links[i];
    const std::string what = "links[" + std::to_string(i) + "]";
    if (!item.IsMap()) ctx.fail(item, what + " must be a mapping {a, b, bw, ...}");
    std::int32_t ends[2] = {-1, -1};
    LinkKind kind = LinkKind::kNetwork;
    std::optional<core::Bandwidth> bw;
    core::Time latency{};
    for (auto it = item.begin(); it != item.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      std::string field = what;
      field += ".";
      field += key;
      if (std::find(linkKeys().begin(), linkKeys().end(), key) == linkKeys().end()) {
        ctx.fail(it->first, what + ": unknown key '" + key + "'" + didYouMean(key, linkKeys()) + "; link keys are " +
                                joined(linkKeys()));
      }
      const std::string v = scalarText(ctx, it->first, it->second, field);
      if (key == "a" || key == "b") {
        auto found = declared.find(v);
        if (found == declared.end()) {
          ctx.fail(it->first, what + ": '" + key + "' names node '" + v + "', which is not declared in 'nodes'" +
                                  didYouMean(v, names));
        }
        ends[key == "a" ? 0 : 1] = found->second.first;
      }
      if (key == "kind") kind = parseKind(ctx, it->first, v, linkKinds, field);
      if (key == "bw") bw = withOrigin(ctx, it->first, field, [&] { return detail::parseBandwidth(v); });
      if (key == "latency") latency = withOrigin(ctx, it->first, field, [&] { return detail::parseDuration(v); });
    }
    for (const char* k : {"a", "b"}) {
      if (ends[k[0] - 'a'] < 0) ctx.fail(item, what + ": missing required key '" + std::string(k) + "'");
    }
    if (!bw) ctx.fail(item, what + ": missing required key 'bw' (bandwidth per direction, e.g. 400Gb/s)");
    f.addLink(ends[0], ends[1], kind, *bw, latency);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Search path.

std::vector<std::string> searchDirectories() {
  std::vector<std::string> dirs;
  core::Config env;  // no Config is at hand here: COPRO_TOPOLOGY_PATH through Config's table
  env.readEnvironment({"COPRO_TOPOLOGY_PATH"});
  if (!env.topologyPath.empty()) {
    for (auto& d : core::splitList(env.topologyPath, ':')) dirs.push_back(d);
  }
  // The bundled folder, when the data folder exists (a missing one is reported by bundledTopologyDirectory).
  const std::string data = core::findDataDirectory();
  if (!data.empty()) dirs.push_back((fs::path(data) / "topologies").string());
  return dirs;
}

bool isTopologyFile(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

/// Splits overrides into builder parameters and sim keys.
void applyOverrides(const std::vector<std::string>& overrides, std::map<std::string, ParamValue>& params, Fabric& f) {
  for (const auto& kv : overrides) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "override '" + kv + "': expected key=value (a builder parameter, or sim.<key>=value)");
    }
    const std::string key = core::trimmed(kv.substr(0, eq));
    const std::string value = core::trimmed(kv.substr(eq + 1));
    if (key.rfind("sim.", 0) == 0 && key.size() > 4) {
      f.simParams[key.substr(4)] = value;
      f.simParamOrigin[key.substr(4)] = "override '" + kv + "'";
    } else {
      params[key] = ParamValue{value, "override '" + kv + "'"};
    }
  }
}

Fabric build(const detail::BuilderEntry& entry, std::map<std::string, ParamValue> given, const std::string& context,
             Fabric f, const FileContext* file, const YAML::Node* root) {
  const Params params(entry.info, std::move(given), context);
  if (entry.build != nullptr) {
    entry.build(f, params);
  } else if (file != nullptr && root != nullptr) {
    buildGraph(*file, *root, f);
    if (params.given("bisection_bw")) f.bisectionBandwidth = params.bandwidth("bisection_bw");
  } else {
    throw Error(ErrorCode::kInvalidArgument,
                context + ": builder 'graph' takes its nodes and links from a topology file; use loadTopology");
  }
  try {
    f.finalize();
  } catch (const Error& e) {
    throw Error(e.code(), context + ": " + e.message());
  }
  return f;
}

/// The bundled folder, or why there is none (for error messages, which must not throw another error).
std::string bundledFolderForMessages() {
  const std::string data = core::findDataDirectory();
  if (!data.empty()) return (fs::path(data) / "topologies").string();
  return "no bundled folder: copro's share/copro was not found; install copro or set COPRO_DATA_DIR";
}

const detail::BuilderEntry& builderEntry(const std::string& name, const std::string& where) {
  const detail::BuilderEntry* entry = detail::findBuilder(name);
  if (entry == nullptr) {
    throw Error(ErrorCode::kInvalidArgument, where + ": unknown builder '" + name + "'" +
                                                 didYouMean(name, builderNames()) + "; builders are " +
                                                 joined(builderNames()));
  }
  return *entry;
}

}  // namespace

std::string bundledTopologyDirectory() {
  return core::dataPath("topologies");
}

std::vector<std::string> bundledTopologies() {
  std::set<std::string> names;
  for (const auto& dir : searchDirectories()) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file() && isTopologyFile(it->path())) names.insert(it->path().stem().string());
    }
  }
  return {names.begin(), names.end()};
}

std::string resolveTopologyPath(const std::string& pathOrName) {
  std::error_code ec;
  if (fs::is_regular_file(pathOrName, ec)) return pathOrName;
  const bool looksLikePath = pathOrName.find('/') != std::string::npos || isTopologyFile(pathOrName);
  if (!looksLikePath) {
    for (const auto& dir : searchDirectories()) {
      for (const char* ext : {".yaml", ".yml"}) {
        const fs::path candidate = fs::path(dir) / (pathOrName + ext);
        if (fs::is_regular_file(candidate, ec)) return candidate.string();
      }
    }
  }
  const std::string stem = fs::path(pathOrName).stem().string();
  const auto bundled = bundledTopologies();
  throw Error(ErrorCode::kInvalidArgument, "topology '" + pathOrName + "': no such file" +
                                               (looksLikePath ? "" : " and no bundled topology of that name") +
                                               didYouMean(stem, bundled) + "; bundled: " + joined(bundled) +
                                               " (in COPRO_TOPOLOGY_PATH and " + bundledFolderForMessages() + ")");
}

Fabric loadTopology(const std::string& pathOrName, const std::vector<std::string>& overrides) {
  const std::string path = resolveTopologyPath(pathOrName);
  return loadTopologyText(core::readBoundedFile(path, "topology '" + path + "'"), path, overrides);
}

Fabric loadTopologyText(const std::string& yamlText, const std::string& path,
                        const std::vector<std::string>& overrides) {
  const FileContext ctx(path);
  const YAML::Node loaded = detail::loadStrictYaml(yamlText, ctx.whole());
  // Read through a const node: yaml-cpp's non-const operator[] inserts the keys it looks up.
  const YAML::Node& root = loaded;
  if (!root.IsMap()) {
    throw Error(ErrorCode::kParseError,
                ctx.whole() + ": expected a mapping with the keys " + joined(topLevelKeys()) + " at the top level");
  }
  YAML::Node builderKey;
  YAML::Node builderValue;
  bool haveBuilder = false;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    if (std::find(topLevelKeys().begin(), topLevelKeys().end(), key) == topLevelKeys().end()) {
      ctx.fail(it->first, "unknown key '" + key + "'" + didYouMean(key, topLevelKeys()) + "; top-level keys are " +
                              joined(topLevelKeys()));
    }
    if (key == "builder") {
      builderKey = it->first;
      builderValue = it->second;
      haveBuilder = true;
    }
  }
  if (!haveBuilder) {
    throw Error(ErrorCode::kParseError,
                ctx.whole() + ": missing required key 'builder' (one of " + joined(builderNames()) + ")");
  }
  const std::string builderName = scalarText(ctx, builderKey, builderValue, "'builder'");
  const detail::BuilderEntry& entry = builderEntry(builderName, ctx.at(builderValue));
  if (entry.build != nullptr) {
    for (const char* key : {"nodes", "links"}) {
      if (root[key]) {
        ctx.fail(root[key], "key '" + std::string(key) + "' belongs to builder 'graph'; builder '" + builderName +
                                "' takes 'params'");
      }
    }
  }

  Fabric f;
  f.builder = builderName;
  f.name = fs::path(path).stem().string();
  if (const YAML::Node name = root["name"]) f.name = scalarText(ctx, name, name, "'name'");

  std::map<std::string, ParamValue> given;
  if (const YAML::Node params = root["params"]) {
    if (!params.IsMap() && !params.IsNull()) ctx.fail(params, "'params' must be a mapping of builder parameters");
    if (params.IsMap()) {
      for (auto it = params.begin(); it != params.end(); ++it) {
        const std::string key = it->first.as<std::string>();
        given[key] = ParamValue{scalarText(ctx, it->first, it->second, "parameter '" + key + "'"), ctx.at(it->first)};
      }
    }
  }
  if (const YAML::Node sim = root["sim"]) {
    if (!sim.IsMap() && !sim.IsNull()) ctx.fail(sim, "'sim' must be a mapping of simulator settings");
    if (sim.IsMap()) flattenSim(ctx, sim, "", f);
  }
  applyOverrides(overrides, given, f);
  return build(entry, std::move(given), ctx.whole(), std::move(f), &ctx, &root);
}

Fabric buildTopology(const std::string& builder, const std::map<std::string, std::string>& params) {
  const detail::BuilderEntry& entry = builderEntry(builder, "buildTopology");
  std::map<std::string, ParamValue> given;
  for (const auto& [k, v] : params) given[k] = ParamValue{v, "builder '" + builder + "'"};
  Fabric f;
  f.builder = builder;
  f.name = builder;
  return build(entry, std::move(given), "builder '" + builder + "'", std::move(f), nullptr, nullptr);
}

std::vector<std::string> builderNames() {
  std::vector<std::string> names;
  for (const auto& e : detail::builderRegistry()) names.push_back(e.info.name);
  return names;
}

const BuilderInfo& builderInfo(const std::string& builder) {
  return builderEntry(builder, "builderInfo").info;
}

}  // namespace copro::topo
