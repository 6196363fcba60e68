#pragma once
/// Authentication of the TCP rendezvous (bootstrap_tcp.cpp). Every connection to a listener (the root's or
/// a rank's) proves, in both directions, that its end knows the job's secret, by HMAC-SHA-256
/// challenge-response (OpenSSL's libcrypto): the connector's hello carries a fresh nonce and a public tag
/// of the job (an HMAC of a fixed label, so a listener can tell another job's connection at once); the
/// listener answers with its own nonce and a proof over the hello and that nonce; the connector checks it
/// and answers with its proof. The secret never crosses the wire, and a recorded exchange cannot be
/// replayed (each listener nonce is new).
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "bootstrap_hello.hpp"

namespace copro::transport::detail {

inline constexpr std::size_t kMacBytes = 32;
using Mac = std::array<std::uint8_t, kMacBytes>;

/// The job's secret and its public tag.
struct RendezvousKey {
  std::vector<std::uint8_t> secret;
  std::array<std::uint8_t, sizeof(Hello::tag)> tag{};
};
/// A key from `bytes` of secret (at least one byte).
RendezvousKey makeRendezvousKey(const void* secret, std::size_t bytes);

/// Listener -> connector, after a hello with the right tag: the listener's nonce and its proof.
struct Challenge {
  std::uint8_t nonce[16];
  std::uint8_t mac[kMacBytes];
};
static_assert(sizeof(Challenge) == 48);

/// The listener's proof: HMAC(secret, "copro-listener" | hello | nonce).
Mac listenerProof(const RendezvousKey& key, const Hello& hello, const std::uint8_t* nonce);
/// The connector's proof: HMAC(secret, "copro-connector" | hello | nonce).
Mac connectorProof(const RendezvousKey& key, const Hello& hello, const std::uint8_t* nonce);
/// Compares two MACs in constant time.
bool sameMac(const std::uint8_t* a, const std::uint8_t* b) noexcept;

}  // namespace copro::transport::detail
