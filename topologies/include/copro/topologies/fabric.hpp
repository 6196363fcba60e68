#pragma once
/// The fabric graph: what a topology file builds and what the simulator runs on (docs/design.md,
/// "The simulator" and "Topologies"). Nodes are GPUs (endpoints; rank r is gpus()[r]), NVSwitches, PCIe
/// switches, host root complexes, NICs and network switches; links are duplex (each direction has the
/// full bandwidth). Nodes of one server share a `host` index.
///
/// Fabric is plain data plus adjacency; routing and sharing live in sim/. Builders in this module
/// (topology.hpp) create it from a topology file or from parameters.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "copro/core/units.hpp"

namespace copro::topo {

enum class NodeKind : std::uint8_t { kGpu = 0, kNvSwitch, kPcieSwitch, kHost, kNic, kSwitch };
enum class LinkKind : std::uint8_t { kNvLink = 0, kPcie, kNetwork };
std::string_view nodeKindName(NodeKind k) noexcept;  ///< "gpu", "nvswitch", "pcie_switch", "host", "nic", "switch"
std::string_view linkKindName(LinkKind k) noexcept;  ///< "nvlink", "pcie", "network"

struct Node {
  NodeKind kind = NodeKind::kGpu;
  std::string name;         ///< unique, e.g. "n3.gpu5", "p2.leaf7"
  std::int32_t host = -1;   ///< server index for GPU/NVSwitch/PCIe switch/host/NIC; -1 for network switches
  std::int32_t rank = -1;   ///< GPU: its rank (index in Fabric::gpus())
  std::int32_t local = -1;  ///< GPU/NIC: index inside its server
  std::int32_t rail = -1;   ///< NIC: rail (the local GPU index it serves); switch: rail it belongs to, if any
  std::int32_t plane = -1;  ///< NIC/switch: network plane (multi-plane fabrics); -1 when single-plane
  std::int32_t tier = -1;   ///< switch: 0 leaf, 1 spine, 2 core; dragonfly: group-local 0, global 1
  // GPU parameters
  std::int32_t sms = 0;               ///< streaming multiprocessors
  core::Bandwidth memoryBandwidth{};  ///< HBM bandwidth (bytes/s)
  // Switch parameters (NVSwitch, PCIe switch, network switch, host root complex)
  core::Time delay{};      ///< forwarding delay added per traversal
  std::int32_t radix = 0;  ///< ports (informational; validate checks it)
  bool inSwitchReduce = false;
  bool multicast = false;
};

struct Link {
  std::int32_t a = -1;  ///< node ids; direction 0 is a->b, direction 1 is b->a
  std::int32_t b = -1;
  LinkKind kind = LinkKind::kNetwork;
  core::Bandwidth bandwidth{};  ///< per direction
  core::Time latency{};         ///< propagation (+ serialization constant) per direction
};

/// A directed use of a link: channel = 2 * link + direction.
inline constexpr std::int32_t channelOf(std::int32_t link, int direction) {
  return 2 * link + direction;
}

class Fabric {
 public:
  std::string name;     ///< from the file's `name`
  std::string builder;  ///< e.g. "mpft"
  /// Builder-reported facts for `copro-topo show` (e.g. "bisection_bandwidth" in bytes/s).
  std::optional<core::Bandwidth> bisectionBandwidth;
  /// Simulator parameters (the file's `sim:` section, flattened with dots: "initiation.proxy.issue"),
  /// as text; sim/ parses and validates them.
  std::map<std::string, std::string> simParams;
  /// Where each simParams key came from ("file:line"), for error messages.
  std::map<std::string, std::string> simParamOrigin;

  std::int32_t addNode(Node node);  ///< returns the id; a GPU gets the next rank
  std::int32_t addLink(std::int32_t a, std::int32_t b, LinkKind kind, core::Bandwidth bw, core::Time latency);

  [[nodiscard]] const std::vector<Node>& nodes() const { return nodes_; }
  [[nodiscard]] const std::vector<Link>& links() const { return links_; }
  [[nodiscard]] const Node& node(std::int32_t id) const { return nodes_.at(static_cast<std::size_t>(id)); }
  [[nodiscard]] const Link& link(std::int32_t id) const { return links_.at(static_cast<std::size_t>(id)); }
  /// Rank -> GPU node id.
  [[nodiscard]] const std::vector<std::int32_t>& gpus() const { return gpus_; }
  [[nodiscard]] std::int32_t numHosts() const { return numHosts_; }
  /// Incident link ids of a node (valid after finalize()).
  [[nodiscard]] const std::vector<std::int32_t>& linksOf(std::int32_t node) const {
    return adjacency_.at(static_cast<std::size_t>(node));
  }
  /// The other end of `link` seen from `node`.
  [[nodiscard]] std::int32_t peer(std::int32_t link, std::int32_t node) const {
    const Link& l = links_[static_cast<std::size_t>(link)];
    return l.a == node ? l.b : l.a;
  }
  /// Direction index of traversing `link` starting at `from` (0 if from == a).
  [[nodiscard]] int directionFrom(std::int32_t link, std::int32_t from) const {
    return links_[static_cast<std::size_t>(link)].a == from ? 0 : 1;
  }
  /// The NIC a GPU uses by default (same PCIe switch, same rail); -1 if none (single-node fabrics).
  [[nodiscard]] std::int32_t nicOf(std::int32_t rank) const;
  /// Node id by name, or -1.
  [[nodiscard]] std::int32_t find(const std::string& nodeName) const;

  /// Builds adjacency and checks consistency (unique names, link ends exist, positive bandwidth, switch
  /// radix not exceeded, every GPU has at least one link). Throws core::Error(kInvalidArgument) naming the
  /// node or link.
  void finalize();

  /// Counts per node kind, links per kind, for `copro-topo show`.
  [[nodiscard]] std::map<std::string, std::int64_t> counts() const;

 private:
  std::vector<Node> nodes_;
  std::vector<Link> links_;
  std::vector<std::int32_t> gpus_;
  std::vector<std::vector<std::int32_t>> adjacency_;
  std::vector<std::int32_t> nicOfRank_;
  std::map<std::string, std::int32_t> byName_;
  std::int32_t numHosts_ = 0;
};

}  // namespace copro::topo
