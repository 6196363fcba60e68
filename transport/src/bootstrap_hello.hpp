#pragma once
/// The 64-byte hello of the TCP rendezvous (bootstrap_tcp.cpp), and its pure check: what a listener
/// accepts from a stranger's connection is decided here, without sockets, so that a fuzzer can drive it
/// (fuzz/fuzz_bootstrap_hello.cpp).
#include <cstddef>
#include <cstdint>
#include <string>

namespace copro::transport::detail {

inline constexpr std::uint64_t kHelloMagic = 0x314c4548'4f52504fULL;  // "OPROHEL1"
inline constexpr std::uint32_t kBootstrapVersion = 2;                 // 2: authenticated (bootstrap_auth.hpp)
inline constexpr std::uint32_t kHelloToRoot = 1;
inline constexpr std::uint32_t kHelloToPeer = 2;

struct Hello {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t kind;
  std::int32_t rank;
  std::int32_t nranks;
  std::uint8_t tag[16];  // the job's public tag (bootstrap_auth.hpp), not its secret
  std::uint32_t ip;      // the sender's listener (network order)
  std::uint16_t port;    // network order
  std::uint16_t pad;
  std::uint8_t nonce[16];  // the connector's fresh nonce, covered by the listener's proof
};
static_assert(sizeof(Hello) == 64);

/// Reads a hello from `size` received bytes into `out`. Returns "" when it is well formed (64 bytes, the
/// magic, this protocol version, a known kind, 1 <= nranks <= core::kMaxRanks, 0 <= rank < nranks), else
/// why it is rejected. Tag, proofs and addresses are for the caller to judge.
std::string parseHello(const void* bytes, std::size_t size, Hello& out);

}  // namespace copro::transport::detail
