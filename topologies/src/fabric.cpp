#include "copro/topologies/fabric.hpp"

#include <string>

#include "copro/core/limits.hpp"
#include "copro/core/status.hpp"

namespace copro::topo {

using core::Error;
using core::ErrorCode;

std::string_view nodeKindName(NodeKind k) noexcept {
  switch (k) {
    case NodeKind::kGpu:
      return "gpu";
    case NodeKind::kNvSwitch:
      return "nvswitch";
    case NodeKind::kPcieSwitch:
      return "pcie_switch";
    case NodeKind::kHost:
      return "host";
    case NodeKind::kNic:
      return "nic";
    case NodeKind::kSwitch:
      return "switch";
  }
  return "?";
}

std::string_view linkKindName(LinkKind k) noexcept {
  switch (k) {
    case LinkKind::kNvLink:
      return "nvlink";
    case LinkKind::kPcie:
      return "pcie";
    case LinkKind::kNetwork:
      return "network";
  }
  return "?";
}

std::int32_t Fabric::addNode(Node node) {
  // A backstop behind the builders' own checks: a fabric never grows without bound.
  if (static_cast<std::int64_t>(nodes_.size()) >= core::kMaxFabricNodes) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "the fabric grows past " + std::to_string(core::kMaxFabricNodes) +
                          " nodes, the limit of one fabric (docs/config.md, \"Limits\")");
  }
  const auto id = static_cast<std::int32_t>(nodes_.size());
  if (node.kind == NodeKind::kGpu) {
    node.rank = static_cast<std::int32_t>(gpus_.size());
    gpus_.push_back(id);
  }
  if (node.host >= numHosts_) numHosts_ = node.host + 1;
  nodes_.push_back(std::move(node));
  return id;
}

std::int32_t Fabric::addLink(std::int32_t a, std::int32_t b, LinkKind kind, core::Bandwidth bw, core::Time latency) {
  if (static_cast<std::int64_t>(links_.size()) >= core::kMaxFabricLinks) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "the fabric grows past " + std::to_string(core::kMaxFabricLinks) +
                          " links, the limit of one fabric (docs/config.md, \"Limits\")");
  }
  const auto id = static_cast<std::int32_t>(links_.size());
  links_.push_back(Link{a, b, kind, bw, latency});
  return id;
}

std::int32_t Fabric::nicOf(std::int32_t rank) const {
  if (rank < 0 || static_cast<std::size_t>(rank) >= nicOfRank_.size()) return -1;
  return nicOfRank_[static_cast<std::size_t>(rank)];
}

std::int32_t Fabric::find(const std::string& nodeName) const {
  auto it = byName_.find(nodeName);
  return it == byName_.end() ? -1 : it->second;
}

void Fabric::finalize() {
  const auto n = static_cast<std::int32_t>(nodes_.size());
  byName_.clear();
  for (std::int32_t i = 0; i < n; ++i) {
    const Node& nd = nodes_[static_cast<std::size_t>(i)];
    if (nd.name.empty()) throw Error(ErrorCode::kInvalidArgument, "fabric: node " + std::to_string(i) + " has no name");
    if (!byName_.emplace(nd.name, i).second) {
      throw Error(ErrorCode::kInvalidArgument, "fabric: two nodes are named '" + nd.name + "'; names must be unique");
    }
  }
  adjacency_.assign(static_cast<std::size_t>(n), {});
  for (std::size_t l = 0; l < links_.size(); ++l) {
    const Link& lk = links_[l];
    const std::string what = "fabric: link " + std::to_string(l);
    if (lk.a < 0 || lk.a >= n || lk.b < 0 || lk.b >= n) {
      throw Error(ErrorCode::kInvalidArgument, what + " connects a node that does not exist");
    }
    if (lk.a == lk.b)
      throw Error(ErrorCode::kInvalidArgument, what + " connects '" + nodes_[lk.a].name + "' to itself");
    if (!(lk.bandwidth.bytesPerSecond() > 0.0)) {
      throw Error(ErrorCode::kInvalidArgument,
                  what + " (" + nodes_[lk.a].name + " - " + nodes_[lk.b].name + ") needs a positive bandwidth");
    }
    if (lk.latency.picoseconds() < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  what + " (" + nodes_[lk.a].name + " - " + nodes_[lk.b].name + ") has a negative latency");
    }
    adjacency_[static_cast<std::size_t>(lk.a)].push_back(static_cast<std::int32_t>(l));
    adjacency_[static_cast<std::size_t>(lk.b)].push_back(static_cast<std::int32_t>(l));
  }
  for (std::int32_t i = 0; i < n; ++i) {
    const Node& nd = nodes_[static_cast<std::size_t>(i)];
    const auto degree = static_cast<std::int32_t>(adjacency_[static_cast<std::size_t>(i)].size());
    if (nd.radix > 0 && degree > nd.radix) {
      throw Error(ErrorCode::kInvalidArgument, "fabric: switch '" + nd.name + "' has " + std::to_string(degree) +
                                                   " links but radix " + std::to_string(nd.radix) +
                                                   "; raise the radix or connect fewer nodes");
    }
    if (nd.kind == NodeKind::kGpu && degree == 0) {
      throw Error(ErrorCode::kInvalidArgument, "fabric: GPU '" + nd.name + "' is not connected to anything");
    }
  }
  // Default NIC of each GPU: on its server, the NIC whose rail equals the GPU's local index; else the NIC
  // with the same local index; else one adjacent through a shared PCIe switch; else the server's first NIC.
  std::vector<std::vector<std::int32_t>> nicsOfHost(static_cast<std::size_t>(numHosts_));
  for (std::int32_t i = 0; i < n; ++i) {
    const Node& nd = nodes_[static_cast<std::size_t>(i)];
    if (nd.kind == NodeKind::kNic && nd.host >= 0) nicsOfHost[static_cast<std::size_t>(nd.host)].push_back(i);
  }
  nicOfRank_.assign(gpus_.size(), -1);
  for (std::size_t r = 0; r < gpus_.size(); ++r) {
    const Node& g = nodes_[static_cast<std::size_t>(gpus_[r])];
    if (g.host < 0) continue;
    const auto& nics = nicsOfHost[static_cast<std::size_t>(g.host)];
    if (nics.empty()) continue;
    std::int32_t pick = -1;
    for (std::int32_t c : nics) {
      if (nodes_[static_cast<std::size_t>(c)].rail == g.local) {
        pick = c;
        break;
      }
    }
    if (pick < 0) {
      for (std::int32_t c : nics) {
        if (nodes_[static_cast<std::size_t>(c)].local == g.local) {
          pick = c;
          break;
        }
      }
    }
    if (pick < 0) {
      for (std::int32_t lk : adjacency_[static_cast<std::size_t>(gpus_[r])]) {
        const std::int32_t sw = peer(lk, gpus_[r]);
        if (nodes_[static_cast<std::size_t>(sw)].kind != NodeKind::kPcieSwitch) continue;
        for (std::int32_t lk2 : adjacency_[static_cast<std::size_t>(sw)]) {
          const std::int32_t other = peer(lk2, sw);
          if (nodes_[static_cast<std::size_t>(other)].kind == NodeKind::kNic) pick = other;
        }
        if (pick >= 0) break;
      }
    }
    nicOfRank_[r] = pick >= 0 ? pick : nics.front();
  }
}

std::map<std::string, std::int64_t> Fabric::counts() const {
  std::map<std::string, std::int64_t> c;
  for (const Node& nd : nodes_) c[std::string(nodeKindName(nd.kind))] += 1;
  for (const Link& lk : links_) c["link." + std::string(linkKindName(lk.kind))] += 1;
  c["hosts"] = numHosts_;
  return c;
}

}  // namespace copro::topo
