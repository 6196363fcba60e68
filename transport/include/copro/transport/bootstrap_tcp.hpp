#pragma once
/// TCP rendezvous for multi-process communicators (docs/bootstrap.md).
///
/// One process creates a UniqueId (as NCCL's ncclUniqueId): that starts a root listener thread and
/// returns an opaque blob with the root's address and a random 128-bit token. The blob reaches every
/// rank by any means (a file, MPI, the launcher); each rank calls createTcpBootstrap(). The root collects
/// the address of each rank's own listener and sends everyone the table; the ranks then connect to each
/// other (full mesh) and the root thread ends. After that, ranks talk peer to peer.
///
/// The environment form (createEnvironmentBootstrap) is the same rendezvous with the root address given by
/// COPRO_ROOT_ADDR: rank 0 runs the root listener there.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "copro/core/bootstrap.hpp"
#include "copro/core/config.hpp"

namespace copro::transport {

/// Opaque rendezvous handle: magic, root IPv4 address and port, random 128-bit token. Copy it bytewise.
struct UniqueId {
  static constexpr std::size_t kBytes = 128;
  std::array<std::uint8_t, kBytes> bytes{};
};

/// Starts a root listener thread bound to `bindAddr` ("host" or "host:port"; empty: COPRO_BOOTSTRAP_ADDR,
/// else 127.0.0.1; port 0 or none: an ephemeral port) and returns its UniqueId. The thread serves one
/// rendezvous and ends when every rank got the address table, or after config.timeoutSec. Throws
/// Error(kSystemError) when the address cannot be resolved or bound.
UniqueId createUniqueId(const std::string& bindAddr, const core::Config& config);

/// Joins the rendezvous of `id` as `rank` of `nranks` (collective over the nranks processes). Throws
/// Error(kInvalidArgument) for a bad rank/size or a malformed id, Error(kTimeout) when the root or a
/// peer does not answer within config.timeoutSec, Error(kSystemError) for socket failures.
std::shared_ptr<core::Bootstrap> createTcpBootstrap(const UniqueId& id, int rank, int nranks,
                                                    const core::Config& config);

/// The environment form: COPRO_RANK, COPRO_WORLD_SIZE, COPRO_ROOT_ADDR ("host:port"; rank 0 listens
/// there). The token is COPRO_BOOTSTRAP_TOKEN when set (any string; every rank must use the same),
/// otherwise none: see docs/bootstrap.md for what that allows. Throws Error(kInvalidArgument) naming a
/// missing or malformed variable.
std::shared_ptr<core::Bootstrap> createEnvironmentBootstrap(const core::Config& config);

/// Fills `out` with `bytes` random bytes from the kernel (getrandom); throws Error(kSystemError).
void randomBytes(void* out, std::size_t bytes);

}  // namespace copro::transport
