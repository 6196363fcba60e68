#pragma once
/// Out-of-band exchange between the processes of a communicator (docs/design.md, "Executors"): used once at
/// creation (addresses, memory keys, node ids) and by split; never on the data path.
///
/// Implementations: TCP rendezvous with a UniqueId (transport/bootstrap_tcp), environment variables
/// (COPRO_RANK, COPRO_WORLD_SIZE, COPRO_ROOT_ADDR: the same TCP rendezvous, root address given), and MPI
/// (transport/bootstrap_mpi, over any MPI communicator).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "copro/core/status.hpp"

namespace copro::core {

class Bootstrap {
 public:
  virtual ~Bootstrap() = default;
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  /// Every rank contributes `bytes` bytes at `in`; `out` receives size() * bytes, in rank order.
  virtual Status allGather(const void* in, void* out, std::size_t bytes) = 0;
  virtual Status barrier() = 0;
  /// Point-to-point messages; (peer, tag) pairs match in order.
  virtual Status send(int peer, int tag, const void* data, std::size_t bytes) = 0;
  virtual Status recv(int peer, int tag, void* data, std::size_t bytes) = 0;
  /// Collective over all ranks: a bootstrap for the ranks with the same color, ordered by (key, rank);
  /// nullptr for color < 0.
  virtual std::unique_ptr<Bootstrap> split(int color, int key) = 0;
  /// The local IPv4 address ("a.b.c.d") that this process's bootstrap traffic uses; "" when there is none
  /// (MPI, in-process). The ucx backend keeps UCX's tcp listeners on that interface (docs/ucx.md).
  [[nodiscard]] virtual std::string localAddress() const { return {}; }
};

}  // namespace copro::core
