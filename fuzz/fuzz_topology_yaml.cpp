// libFuzzer target: topology YAML (topologies/src/loader.cpp, the builders) and the `sim:` section
// (sim/src/sim_params.cpp). Any input either builds a fabric or throws core::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/params.hpp"
#include "copro/topologies/topology.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const copro::topo::Fabric f =
        copro::topo::loadTopologyText(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
    (void)copro::sim::SimParams::fromFabric(f);
  } catch (const copro::core::Error&) {
  }
  return 0;
}
