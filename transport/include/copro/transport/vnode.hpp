#pragma once
/// Virtual-node backends (docs/virtual-nodes.md): one process per rank, each peer reached over one of two
/// transports by node. Peers on this rank's node go over UCX restricted to shared memory (UCX_TLS
/// "sm,self", set on the context); peers on other nodes over a network path:
///   - "shm+ucx": UCX restricted to TCP ("tcp,self");
///   - "shm+mpi": the two-sided `mpi` transport (run Open MPI with `--mca pml ob1 --mca btl tcp,self` so
///     that it does not take shared memory either).
/// Nodes come from ExecutorOptions::nodeOfRank (COPRO_NODE_ID gathered), else Config::nodeMap
/// (COPRO_NODE_MAP), else the host names. A semaphore receives signals over both transports: each has its
/// own slot array, and a wait sums them.
#include <cstdint>
#include <memory>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// Bytes and ops (put, get, signal; a put with a signal counts once) this process sent over each
/// sub-transport of every virtual-node executor since the start (or the last reset). For tests and logs.
struct VirtualNodeTraffic {
  std::uint64_t intraBytes = 0;
  std::uint64_t intraOps = 0;
  std::uint64_t interBytes = 0;
  std::uint64_t interOps = 0;
};

/// The counters of this process (all virtual-node executors together).
VirtualNodeTraffic virtualNodeTraffic();
/// Sets the counters of this process to zero.
void resetVirtualNodeTraffic();

/// This process's executor of "shm+ucx" (`inter` = "ucx") or "shm+mpi" (`inter` = "mpi"). Needs
/// `options.bootstrap` (an MPI bootstrap for "mpi"). Collective over the bootstrap's ranks. Throws
/// Error(kInvalidArgument) for a missing/unsuitable bootstrap or a bad node map, Error(kUnsupported) when
/// the build lacks UCX (or MPI for "mpi").
std::unique_ptr<core::Executor> createVirtualNodeExecutor(const core::ExecutorOptions& options, const char* inter);

/// Adds "shm+ucx" (with UCX) and "shm+mpi" (with UCX and MPI) to a registry.
void registerVirtualNodes(core::ExecutorRegistry& registry);

}  // namespace copro::transport
