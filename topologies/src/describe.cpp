// describe() and toDot(): what `copro-topo show` and `copro-topo dot` print.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "copro/topologies/topology.hpp"

namespace copro::topo {

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('\\');  // labels keep their \n escapes
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

/// "a, b, c" of the sorted distinct values, or "a..b" when they are a contiguous range.
std::string valueSet(const std::set<std::int32_t>& values) {
  if (values.empty()) return "none";
  const std::int32_t lo = *values.begin();
  const std::int32_t hi = *values.rbegin();
  if (values.size() > 2 && static_cast<std::int64_t>(hi) - lo + 1 == static_cast<std::int64_t>(values.size())) {
    return std::to_string(lo) + ".." + std::to_string(hi);
  }
  std::string out;
  for (std::int32_t v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

const char* tierName(std::int32_t tier) {
  switch (tier) {
    case 0:
      return "leaf";
    case 1:
      return "spine";
    case 2:
      return "core";
    default:
      return "switch";
  }
}

}  // namespace

std::string formatBandwidth(core::Bandwidth bw) {
  const double v = bw.bytesPerSecond();
  if (v >= 1e12) return number(v / 1e12) + "TB/s";
  if (v >= 1e9) return number(v / 1e9) + "GB/s";
  if (v >= 1e6) return number(v / 1e6) + "MB/s";
  if (v >= 1e3) return number(v / 1e3) + "KB/s";
  return number(v) + "B/s";
}

std::string formatTime(core::Time t) {
  const auto ps = static_cast<double>(t.picoseconds());
  if (ps == 0) return "0";
  if (ps >= 1e12) return number(ps / 1e12) + "s";
  if (ps >= 1e9) return number(ps / 1e9) + "ms";
  if (ps >= 1e6) return number(ps / 1e6) + "us";
  if (ps >= 1e3) return number(ps / 1e3) + "ns";
  return number(ps) + "ps";
}

std::vector<std::string> fabricWarnings(const Fabric& f) {
  std::int64_t slow = 0;
  std::string example;
  for (std::size_t v = 0; v < f.nodes().size(); ++v) {
    if (f.nodes()[v].kind != NodeKind::kNic) continue;
    double network = 0;
    double pcie = 0;
    for (const std::int32_t l : f.linksOf(static_cast<std::int32_t>(v))) {
      const Link& link = f.link(l);
      if (link.kind == LinkKind::kNetwork) network = std::max(network, link.bandwidth.bytesPerSecond());
      if (link.kind == LinkKind::kPcie) pcie = std::max(pcie, link.bandwidth.bytesPerSecond());
    }
    if (network > 0 && pcie > 0 && network > pcie * (1 + 1e-9)) {
      if (slow++ == 0) {
        example = f.nodes()[v].name + " at " + formatBandwidth(core::Bandwidth::bytesPerSec(network)) + " on a " +
                  formatBandwidth(core::Bandwidth::bytesPerSec(pcie)) + " PCIe link";
      }
    }
  }
  std::vector<std::string> out;
  if (slow > 0) {
    out.push_back(std::to_string(slow) + " NIC" + (slow == 1 ? " has a" : "s have a") +
                  " line rate above the PCIe link that feeds " + (slow == 1 ? "it" : "them") + " (" + example +
                  "): transfers through " + (slow == 1 ? "it" : "them") +
                  " run at PCIe speed; raise pcie_bw or lower nic_bw");
  }
  return out;
}

std::string describe(const Fabric& f) {
  std::ostringstream o;
  o << "topology " << f.name << " (builder " << f.builder << ")\n";
  const auto& nodes = f.nodes();
  // GPUs and hosts.
  std::map<std::int32_t, std::int64_t> gpusPerHost;
  std::set<std::int32_t> sms;
  std::set<std::string> mem;
  for (std::int32_t g : f.gpus()) {
    const Node& n = f.node(g);
    gpusPerHost[n.host] += 1;
    sms.insert(n.sms);
    mem.insert(formatBandwidth(n.memoryBandwidth));
  }
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  for (const auto& [h, c] : gpusPerHost) {
    lo = lo == 0 ? c : std::min(lo, c);
    hi = std::max(hi, c);
  }
  std::string memText;
  for (const auto& m : mem) memText += (memText.empty() ? "" : ", ") + m;
  o << "  gpus        " << f.gpus().size() << " on " << f.numHosts() << " hosts ("
    << (lo == hi ? std::to_string(lo) : std::to_string(lo) + ".." + std::to_string(hi)) << " per host; SMs "
    << valueSet(sms) << "; HBM " << (memText.empty() ? "-" : memText) << ")\n";
  // Nodes per kind.
  const auto counts = f.counts();
  std::string kinds;
  for (const NodeKind k : {NodeKind::kGpu, NodeKind::kNvSwitch, NodeKind::kPcieSwitch, NodeKind::kHost, NodeKind::kNic,
                           NodeKind::kSwitch}) {
    auto it = counts.find(std::string(nodeKindName(k)));
    if (it != counts.end()) kinds += (kinds.empty() ? " " : ", ") + it->first + " " + std::to_string(it->second);
  }
  o << "  nodes       " << nodes.size() << ":" << kinds << "\n";
  // Network switches per tier and plane; NIC rails and planes.
  std::map<std::int32_t, std::int64_t> perTier;
  std::set<std::int32_t> switchPlanes;
  std::set<std::int32_t> nicRails;
  std::set<std::int32_t> nicPlanes;
  std::int64_t nvlsSwitches = 0;
  for (const Node& n : nodes) {
    if (n.kind == NodeKind::kSwitch) {
      perTier[n.tier] += 1;
      if (n.plane >= 0) switchPlanes.insert(n.plane);
    }
    if (n.kind == NodeKind::kNic) {
      if (n.rail >= 0) nicRails.insert(n.rail);
      if (n.plane >= 0) nicPlanes.insert(n.plane);
    }
    if ((n.kind == NodeKind::kNvSwitch || n.kind == NodeKind::kSwitch) && (n.inSwitchReduce || n.multicast)) {
      ++nvlsSwitches;
    }
  }
  if (!perTier.empty()) {
    std::string tiers;
    for (const auto& [tier, c] : perTier) {
      tiers += (tiers.empty() ? "" : ", ") + std::string("tier ") + std::to_string(tier) + " (" + tierName(tier) +
               ") " + std::to_string(c);
    }
    o << "  switches    " << counts.at("switch") << ": " << tiers;
    if (!switchPlanes.empty()) {
      o << "; " << switchPlanes.size() << " planes of "
        << (counts.at("switch") / static_cast<std::int64_t>(switchPlanes.size()));
    }
    o << "\n";
  }
  if (nvlsSwitches > 0) o << "  in-switch   " << nvlsSwitches << " switches reduce/multicast\n";
  o << "  rails       " << nicRails.size() << " (" << valueSet(nicRails) << ")\n";
  o << "  planes      "
    << (nicPlanes.empty() ? std::string("1 (single plane)")
                          : std::to_string(nicPlanes.size()) + " (" + valueSet(nicPlanes) + ")")
    << "\n";
  // Links per kind, bandwidth and latency.
  std::map<std::tuple<int, double, std::int64_t>, std::int64_t> groups;
  for (const Link& l : f.links()) {
    groups[{static_cast<int>(l.kind), l.bandwidth.bytesPerSecond(), l.latency.picoseconds()}] += 1;
  }
  o << "  links       " << f.links().size() << "\n";
  for (const auto& [key, c] : groups) {
    const auto& [kind, bw, lat] = key;
    char line[160];
    std::snprintf(line, sizeof line, "    %-8s %8lld x %-10s latency %s\n",
                  std::string(linkKindName(static_cast<LinkKind>(kind))).c_str(), static_cast<long long>(c),
                  formatBandwidth(core::Bandwidth::bytesPerSec(bw)).c_str(), formatTime(core::Time::ps(lat)).c_str());
    o << line;
  }
  for (const std::string& w : fabricWarnings(f)) o << "  warning     " << w << "\n";
  if (f.bisectionBandwidth) {
    o << "  bisection   " << formatBandwidth(*f.bisectionBandwidth) << " per direction\n";
  } else {
    o << "  bisection   unknown (the builder does not compute it)\n";
  }
  if (!f.simParams.empty()) {
    o << "  sim\n";
    for (const auto& [k, v] : f.simParams) {
      auto origin = f.simParamOrigin.find(k);
      o << "    " << k << " = " << v;
      if (origin != f.simParamOrigin.end()) o << "   (" << origin->second << ")";
      o << "\n";
    }
  }
  return o.str();
}

std::string toDot(const Fabric& f) {
  return toDot(f, DotOptions{});
}

std::string toDot(const Fabric& f, const DotOptions& options) {
  const auto& nodes = f.nodes();
  const auto n = static_cast<std::int32_t>(nodes.size());
  const bool collapse = n > options.maxNodes;
  // Drawn items: every node, or (collapsed) one box per host plus every node without a host.
  std::vector<std::int32_t> itemOf(static_cast<std::size_t>(n));
  std::vector<std::string> itemName;
  std::vector<std::string> itemLabel;
  std::vector<std::int32_t> itemHost;
  std::vector<std::string> itemShape;
  std::map<std::int32_t, std::int32_t> hostItem;
  std::map<std::int32_t, std::map<std::string, std::int64_t>> hostContents;
  for (std::int32_t i = 0; i < n; ++i) {
    const Node& nd = nodes[static_cast<std::size_t>(i)];
    if (collapse && nd.host >= 0) {
      auto [it, fresh] = hostItem.emplace(nd.host, static_cast<std::int32_t>(itemName.size()));
      if (fresh) {
        itemName.push_back("host" + std::to_string(nd.host));
        itemLabel.emplace_back();
        itemHost.push_back(-1);
        itemShape.emplace_back("box3d");
      }
      hostContents[nd.host][std::string(nodeKindName(nd.kind))] += 1;
      itemOf[static_cast<std::size_t>(i)] = it->second;
      continue;
    }
    itemOf[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(itemName.size());
    itemName.push_back(nd.name);
    std::string label = nd.name;
    if (nd.kind == NodeKind::kGpu) label += "\\nrank " + std::to_string(nd.rank);
    if (nd.kind == NodeKind::kNic && nd.plane >= 0) label += "\\nplane " + std::to_string(nd.plane);
    itemLabel.push_back(label);
    itemHost.push_back(nd.host);
    const char* shape = "box";
    switch (nd.kind) {
      case NodeKind::kGpu:
        shape = "box";
        break;
      case NodeKind::kNic:
        shape = "cds";
        break;
      case NodeKind::kHost:
        shape = "house";
        break;
      default:
        shape = "ellipse";
    }
    itemShape.emplace_back(shape);
  }
  for (const auto& [host, item] : hostItem) {
    std::string label = "host " + std::to_string(host) + "\\n";
    bool first = true;
    for (const auto& [kind, c] : hostContents[host]) {
      label += (first ? "" : ", ") + std::to_string(c) + " " + kind;
      first = false;
    }
    itemLabel[static_cast<std::size_t>(item)] = label;
  }
  const auto items = static_cast<std::int32_t>(itemName.size());
  const std::int32_t drawn = std::min(items, std::max<std::int32_t>(1, options.maxNodes));

  std::ostringstream o;
  o << "// " << f.name << " (builder " << f.builder << "): " << nodes.size() << " nodes, " << f.links().size()
    << " links";
  if (collapse) o << "; servers collapsed into one box each";
  if (drawn < items) o << "; " << (items - drawn) << " of " << items << " boxes not drawn (raise --max-nodes)";
  o << "\ngraph " << quoted(f.name) << " {\n  graph [overlap=false, splines=true];\n  node [fontsize=10];\n";
  o << "  edge [fontsize=8];\n";
  // Clusters per host (uncollapsed), then the rest.
  std::map<std::int32_t, std::vector<std::int32_t>> byHost;
  for (std::int32_t it = 0; it < drawn; ++it) byHost[itemHost[static_cast<std::size_t>(it)]].push_back(it);
  for (const auto& [host, members] : byHost) {
    const std::string indent = host >= 0 ? "    " : "  ";
    if (host >= 0) o << "  subgraph cluster_host" << host << " {\n    label=\"host " << host << "\";\n";
    for (std::int32_t it : members) {
      o << indent << quoted(itemName[static_cast<std::size_t>(it)])
        << " [shape=" << itemShape[static_cast<std::size_t>(it)]
        << ", label=" << quoted(itemLabel[static_cast<std::size_t>(it)]) << "];\n";
    }
    if (host >= 0) o << "  }\n";
  }
  // Edges, parallel links merged.
  std::map<std::tuple<std::int32_t, std::int32_t, int, double>, std::int64_t> edges;
  for (const Link& l : f.links()) {
    std::int32_t a = itemOf[static_cast<std::size_t>(l.a)];
    std::int32_t b = itemOf[static_cast<std::size_t>(l.b)];
    if (a == b || a >= drawn || b >= drawn) continue;
    if (a > b) std::swap(a, b);
    edges[{a, b, static_cast<int>(l.kind), l.bandwidth.bytesPerSecond()}] += 1;
  }
  for (const auto& [key, c] : edges) {
    const auto& [a, b, kind, bw] = key;
    std::string label = formatBandwidth(core::Bandwidth::bytesPerSec(bw));
    if (c > 1) label.insert(0, std::to_string(c) + " x ");
    const char* style = kind == static_cast<int>(LinkKind::kNvLink) ? "bold"
                        : kind == static_cast<int>(LinkKind::kPcie) ? "dashed"
                                                                    : "solid";
    o << "  " << quoted(itemName[static_cast<std::size_t>(a)]) << " -- "
      << quoted(itemName[static_cast<std::size_t>(b)]) << " [label=" << quoted(label) << ", style=" << style << "];\n";
  }
  if (drawn < items) {
    o << "  \"more\" [shape=note, label=" << quoted(std::to_string(items - drawn) + " more not drawn") << "];\n";
  }
  o << "}\n";
  return o.str();
}

}  // namespace copro::topo
