/// Rail mapping from hwloc's PCIe tree (verbs_rails.hpp): GPUs are PCI devices of NVIDIA/AMD display class,
/// NICs the PCI devices carrying an OpenFabrics OS device; distance is hops to the lowest common ancestor.
#include "verbs_rails.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

#if COPRO_HAVE_HWLOC
#include <hwloc.h>
#endif

namespace copro::transport::verbs {

#if COPRO_HAVE_HWLOC
namespace {

/// Edges between `a` and `b` in the topology tree.
int treeHops(hwloc_obj_t a, hwloc_obj_t b) {
  std::map<hwloc_obj_t, int> up;
  int d = 0;
  for (hwloc_obj_t o = a; o != nullptr; o = o->parent) up.emplace(o, d++);
  d = 0;
  for (hwloc_obj_t o = b; o != nullptr; o = o->parent, ++d) {
    auto it = up.find(o);
    if (it != up.end()) return it->second + d;
  }
  return 1 << 20;
}

std::string busId(hwloc_obj_t pci) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04x:%02x:%02x.%x", pci->attr->pcidev.domain, pci->attr->pcidev.bus,
                pci->attr->pcidev.dev, pci->attr->pcidev.func);
  return buf;
}

bool isGpu(hwloc_obj_t pci) {
  const unsigned vendor = pci->attr->pcidev.vendor_id;
  return (pci->attr->pcidev.class_id >> 8) == 0x03 && (vendor == 0x10de || vendor == 0x1002);
}

struct Found {
  std::vector<std::pair<std::string, hwloc_obj_t>> gpus;
  std::vector<std::pair<std::string, hwloc_obj_t>> nics;
};

Found scan(hwloc_topology_t topo) {
  Found f;
  for (hwloc_obj_t o = hwloc_get_next_pcidev(topo, nullptr); o != nullptr; o = hwloc_get_next_pcidev(topo, o)) {
    if (isGpu(o)) f.gpus.emplace_back(busId(o), o);
  }
  for (hwloc_obj_t o = hwloc_get_next_osdev(topo, nullptr); o != nullptr; o = hwloc_get_next_osdev(topo, o)) {
    // The NIC is the PCI device that carries the OpenFabrics OS device.
    if (o->attr->osdev.type != HWLOC_OBJ_OSDEV_OPENFABRICS || o->name == nullptr) continue;
    f.nics.emplace_back(o->name, o->parent != nullptr && o->parent->type == HWLOC_OBJ_PCI_DEVICE ? o->parent : o);
  }
  std::sort(f.gpus.begin(), f.gpus.end());
  std::sort(f.nics.begin(), f.nics.end());
  return f;
}

void assign(const Found& f, RailMap& out) {
  std::vector<int> uses(f.nics.size(), 0);
  for (const auto& [id, gpu] : f.gpus) {
    out.gpus.push_back(id);
    std::tuple<int, int, std::size_t> best{1 << 30, 0, 0};
    for (std::size_t n = 0; n < f.nics.size(); ++n) {
      best = std::min(best, std::make_tuple(treeHops(gpu, f.nics[n].second), uses[n], n));
    }
    if (f.nics.empty()) continue;
    ++uses[std::get<2>(best)];
    out.nicOfGpu.push_back(static_cast<int>(std::get<2>(best)));
    out.hops.push_back(std::get<0>(best));
  }
}

}  // namespace

bool loadRailMap(const std::string& xmlPath, RailMap& out, std::string& error) {
  out = RailMap{};
  hwloc_topology_t topo = nullptr;
  if (hwloc_topology_init(&topo) != 0) {
    error = "hwloc_topology_init failed";
    return false;
  }
  hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if ((!xmlPath.empty() && hwloc_topology_set_xml(topo, xmlPath.c_str()) != 0) || hwloc_topology_load(topo) != 0) {
    error = "hwloc cannot load " + (xmlPath.empty() ? std::string("this host's topology") : xmlPath);
    hwloc_topology_destroy(topo);
    return false;
  }
  const Found f = scan(topo);
  for (const auto& n : f.nics) out.nics.push_back(n.first);
  assign(f, out);
  hwloc_topology_destroy(topo);
  return true;
}
#else
bool loadRailMap(const std::string& /*xmlPath*/, RailMap& out, std::string& error) {
  out = RailMap{};
  error = "copro was built without hwloc (libhwloc-dev)";
  return false;
}
#endif

std::string railNicFor(const RailMap& map, int localIndex) {
  if (map.nics.empty() || localIndex < 0) return {};
  if (map.gpus.empty() || map.nicOfGpu.empty()) return map.nics[static_cast<std::size_t>(localIndex) % map.nics.size()];
  const auto g = static_cast<std::size_t>(localIndex) % map.nicOfGpu.size();
  return map.nics[static_cast<std::size_t>(map.nicOfGpu[g])];
}

}  // namespace copro::transport::verbs
