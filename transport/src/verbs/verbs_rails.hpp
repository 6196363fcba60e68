#pragma once
/// Rail awareness of the `verbs` backend (docs/verbs.md, "Rail mapping"): which RDMA NIC each GPU of a
/// host should use, from the PCIe tree hwloc reports (this host, or an hwloc XML file for tests). A GPU gets
/// the NIC with the fewest hops to a common PCIe ancestor (the NIC behind its own switch on a rail-optimized
/// server); ties go to the NIC that fewer GPUs use so far, then to the lower NIC name.
#include <string>
#include <vector>

namespace copro::transport::verbs {

struct RailMap {
  std::vector<std::string> gpus;  ///< PCI bus ids of the GPUs, in PCI bus order (CUDA_DEVICE_ORDER=PCI_BUS_ID)
  std::vector<std::string> nics;  ///< RDMA device names (mlx5_0, ...), sorted
  std::vector<int> nicOfGpu;      ///< index into `nics` for every GPU
  std::vector<int> hops;          ///< PCIe hops between every GPU and its NIC
};

/// Builds the map from `xmlPath` (an hwloc XML export), or this host when empty. False with `error` set
/// when hwloc cannot load it or the build has no hwloc.
bool loadRailMap(const std::string& xmlPath, RailMap& out, std::string& error);

/// The NIC the `localIndex`-th rank of a host uses: its GPU's rail NIC when the host has GPUs, else the
/// NICs round-robin; empty when there is no NIC.
std::string railNicFor(const RailMap& map, int localIndex);

}  // namespace copro::transport::verbs
