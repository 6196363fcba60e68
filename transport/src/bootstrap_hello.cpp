/// The rendezvous hello's wire check (bootstrap_hello.hpp).
#include "bootstrap_hello.hpp"

#include <cstring>

#include "copro/core/limits.hpp"

namespace copro::transport::detail {

std::string parseHello(const void* bytes, std::size_t size, Hello& out) {
  if (size != sizeof(Hello)) {
    return std::to_string(size) + " bytes, a hello has " + std::to_string(sizeof(Hello));
  }
  std::memcpy(&out, bytes, sizeof(Hello));
  if (out.magic != kHelloMagic) return "wrong magic (not a copro bootstrap connection)";
  if (out.version != kBootstrapVersion) {
    return "protocol version " + std::to_string(out.version) + ", expected " + std::to_string(kBootstrapVersion);
  }
  if (out.kind != kHelloToRoot && out.kind != kHelloToPeer) return "unknown hello kind " + std::to_string(out.kind);
  // A world size sizes the root's tables: bounded before anyone allocates from it.
  if (out.nranks < 1 || out.nranks > core::kMaxRanks) {
    return "world size " + std::to_string(out.nranks) + " outside 1.." + std::to_string(core::kMaxRanks);
  }
  if (out.rank < 0 || out.rank >= out.nranks) {
    return "rank " + std::to_string(out.rank) + " out of range for world size " + std::to_string(out.nranks);
  }
  return {};
}

}  // namespace copro::transport::detail
