// libFuzzer target: the rendezvous hello a TCP listener receives from any connection
// (transport/src/bootstrap_hello.cpp). Well-formed or not, parseHello must return, and what it accepts
// must be safe to index a table of nranks entries by rank.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bootstrap_hello.hpp"
#include "copro/core/limits.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  copro::transport::detail::Hello h{};
  if (!copro::transport::detail::parseHello(data, size, h).empty()) return 0;
  if (h.nranks < 1 || h.nranks > copro::core::kMaxRanks || h.rank < 0 || h.rank >= h.nranks) std::abort();
  return 0;
}
