// libFuzzer target: MoE routing files (collectives/src/moe_routing.cpp), checked against a run of 8 ranks,
// 16 tokens and 32 experts as copro-sim moe would, and unchecked. Any input parses or throws core::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "copro/collectives/moe.hpp"
#include "copro/core/status.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  copro::collectives::MoeRoutingLimits run;
  run.ranks = 8;
  run.tokens = 16;
  run.experts = 32;
  for (const copro::collectives::MoeRoutingLimits& limits : {run, copro::collectives::MoeRoutingLimits{}}) {
    try {
      (void)copro::collectives::MoeRouting::fromText(text, "fuzz.csv", limits);
    } catch (const copro::core::Error&) {
    }
  }
  return 0;
}
