/// HMAC-SHA-256 proofs of the rendezvous (bootstrap_auth.hpp).
#include "bootstrap_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <string>

#include "copro/core/status.hpp"

namespace copro::transport::detail {

namespace {

Mac hmac(const std::vector<std::uint8_t>& secret, const std::vector<std::uint8_t>& message) {
  Mac out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), message.data(), message.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    throw core::Error(core::ErrorCode::kSystemError, "bootstrap: HMAC-SHA-256 failed (OpenSSL libcrypto)");
  }
  return out;
}

Mac proof(const RendezvousKey& key, const char* label, const Hello& hello, const std::uint8_t* nonce) {
  std::vector<std::uint8_t> m(label, label + std::strlen(label));
  const auto* h = reinterpret_cast<const std::uint8_t*>(&hello);
  m.insert(m.end(), h, h + sizeof(Hello));
  m.insert(m.end(), nonce, nonce + sizeof(Challenge::nonce));
  return hmac(key.secret, m);
}

}  // namespace

RendezvousKey makeRendezvousKey(const void* secret, std::size_t bytes) {
  if (bytes == 0) throw core::Error(core::ErrorCode::kInvalidArgument, "bootstrap: an empty rendezvous secret");
  RendezvousKey k;
  const auto* s = static_cast<const std::uint8_t*>(secret);
  k.secret.assign(s, s + bytes);
  const std::string label = "copro-rendezvous-tag";
  const Mac t = hmac(k.secret, std::vector<std::uint8_t>(label.begin(), label.end()));
  std::memcpy(k.tag.data(), t.data(), k.tag.size());
  return k;
}

Mac listenerProof(const RendezvousKey& key, const Hello& hello, const std::uint8_t* nonce) {
  return proof(key, "copro-listener", hello, nonce);
}

Mac connectorProof(const RendezvousKey& key, const Hello& hello, const std::uint8_t* nonce) {
  return proof(key, "copro-connector", hello, nonce);
}

bool sameMac(const std::uint8_t* a, const std::uint8_t* b) noexcept {
  return CRYPTO_memcmp(a, b, kMacBytes) == 0;
}

}  // namespace copro::transport::detail
