// libFuzzer target: workload YAML (sim/src/workload_file.cpp). Any input either parses or throws core::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/workload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)copro::sim::parseWorkload(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const copro::core::Error&) {
  }
  return 0;
}
