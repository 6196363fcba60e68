#pragma once
/// Hand-built fabrics for the simulator tests (no topology files: the builders live in topologies/).
#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/units.hpp"
#include "copro/topologies/fabric.hpp"

namespace copro::sim::testing {

using core::Bandwidth;
using core::Time;
using topo::Fabric;
using topo::LinkKind;
using topo::Node;
using topo::NodeKind;

inline Node makeNode(NodeKind kind, std::string name, std::int32_t host = -1, Time delay = Time{}) {
  Node n;
  n.kind = kind;
  n.name = std::move(name);
  n.host = host;
  n.delay = delay;
  return n;
}

/// `p` GPUs, each on its own port of one network switch (bandwidth `bw`, latency `lat` per link, switch
/// forwarding delay `delay`).
inline Fabric starFabric(int p, Bandwidth bw, Time lat, Time delay) {
  Fabric f;
  f.name = "star" + std::to_string(p);
  const std::int32_t sw = f.addNode(makeNode(NodeKind::kSwitch, "sw", -1, delay));
  for (int i = 0; i < p; ++i) {
    const std::int32_t g = f.addNode(makeNode(NodeKind::kGpu, "gpu" + std::to_string(i)));
    f.addLink(g, sw, LinkKind::kNetwork, bw, lat);
  }
  f.finalize();
  return f;
}

/// Two-level fat tree: `leaves` leaf switches with `down` GPUs each and one uplink to each of `spines`
/// spines; all links `bw`, zero latency. GPU i is on leaf i / down.
inline Fabric fatTree(int leaves, int down, int spines, Bandwidth bw, Time lat = Time{}) {
  Fabric f;
  f.name = "fattree";
  std::vector<std::int32_t> leaf;
  std::vector<std::int32_t> spine;
  for (int s = 0; s < spines; ++s) {
    Node n = makeNode(NodeKind::kSwitch, "spine" + std::to_string(s));
    n.tier = 1;
    spine.push_back(f.addNode(n));
  }
  for (int l = 0; l < leaves; ++l) {
    Node n = makeNode(NodeKind::kSwitch, "leaf" + std::to_string(l));
    n.tier = 0;
    leaf.push_back(f.addNode(n));
    for (int s = 0; s < spines; ++s)
      f.addLink(leaf.back(), spine[static_cast<std::size_t>(s)], LinkKind::kNetwork, bw, lat);
  }
  for (int l = 0; l < leaves; ++l) {
    for (int d = 0; d < down; ++d) {
      const std::int32_t g = f.addNode(makeNode(NodeKind::kGpu, "gpu" + std::to_string(l * down + d)));
      f.addLink(g, leaf[static_cast<std::size_t>(l)], LinkKind::kNetwork, bw, lat);
    }
  }
  f.finalize();
  return f;
}

/// Servers of `gpusPerHost` GPUs. Per server: one NVSwitch (when `nvlink`), one PCIe switch per GPU holding
/// that GPU and its NIC (rail = local index), and a host root complex joining the PCIe switches. NIC k of
/// every server connects to switch "plane<k>" when `planes` (multi-plane: plane k only has the k-th NICs),
/// else all NICs connect to one switch "leaf".
struct BoxParams {
  int hosts = 2;
  int gpusPerHost = 4;
  bool nvlink = true;
  bool planes = false;
  Bandwidth nvlinkBw = Bandwidth::gbps(160);
  Bandwidth pcieBw = Bandwidth::gbps(25);
  Bandwidth netBw = Bandwidth::gbps(50);
  Time lat = Time::ns(500);
};

inline Fabric boxFabric(const BoxParams& bp) {
  Fabric f;
  f.name = "box";
  std::vector<std::int32_t> netSwitches;
  const int numNet = bp.planes ? bp.gpusPerHost : 1;
  for (int k = 0; k < numNet; ++k) {
    Node n = makeNode(NodeKind::kSwitch, bp.planes ? "plane" + std::to_string(k) : "leaf", -1, Time::ns(100));
    if (bp.planes) n.plane = k;
    netSwitches.push_back(f.addNode(n));
  }
  for (int h = 0; h < bp.hosts; ++h) {
    const std::string pre = "n" + std::to_string(h) + ".";
    const std::int32_t host = f.addNode(makeNode(NodeKind::kHost, pre + "cpu", h, Time::ns(200)));
    std::int32_t nvs = -1;
    if (bp.nvlink) nvs = f.addNode(makeNode(NodeKind::kNvSwitch, pre + "nvswitch", h, Time::ns(100)));
    for (int i = 0; i < bp.gpusPerHost; ++i) {
      Node g = makeNode(NodeKind::kGpu, pre + "gpu" + std::to_string(i), h);
      g.local = i;
      const std::int32_t gid = f.addNode(g);
      const std::int32_t pcie =
          f.addNode(makeNode(NodeKind::kPcieSwitch, pre + "pcie" + std::to_string(i), h, Time::ns(100)));
      Node nic = makeNode(NodeKind::kNic, pre + "nic" + std::to_string(i), h);
      nic.local = i;
      nic.rail = i;
      if (bp.planes) nic.plane = i;
      const std::int32_t nid = f.addNode(nic);
      if (nvs >= 0) f.addLink(gid, nvs, LinkKind::kNvLink, bp.nvlinkBw, bp.lat);
      f.addLink(gid, pcie, LinkKind::kPcie, bp.pcieBw, bp.lat);
      f.addLink(nid, pcie, LinkKind::kPcie, bp.pcieBw, bp.lat);
      f.addLink(pcie, host, LinkKind::kPcie, bp.pcieBw, bp.lat);
      f.addLink(nid, netSwitches[static_cast<std::size_t>(bp.planes ? i : 0)], LinkKind::kNetwork, bp.netBw, bp.lat);
    }
  }
  f.finalize();
  return f;
}

/// The node names along a path of channels (first the source, then the far end of every channel).
inline std::vector<std::string> pathNodes(const Fabric& f, const std::vector<std::int32_t>& channels) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < channels.size(); ++i) {
    const topo::Link& l = f.link(channels[i] / 2);
    const bool forward = channels[i] % 2 == 0;
    if (i == 0) out.push_back(f.node(forward ? l.a : l.b).name);
    out.push_back(f.node(forward ? l.b : l.a).name);
  }
  return out;
}

}  // namespace copro::sim::testing
