#pragma once
/// copro's C++ API: communicators, collectives, the planner and the core types.
///
///   auto comms = copro::createInproc(4);            // 4 ranks as threads of this process
///   // on the thread of rank r:
///   comms[r].allReduce(in, out, n, copro::DataType::kFloat32, copro::ReduceOp::kSum).wait().throwIfError();
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/collectives/communicator.hpp"
#include "copro/collectives/planner.hpp"
#include "copro/core/bootstrap.hpp"
#include "copro/core/config.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/status.hpp"

namespace copro {

/// Registers the backends built into this library with core::ExecutorRegistry (idempotent, thread-safe).
void registerBuiltinBackends();

/// Every rank of a backend: `nranks` in-process ranks for inproc; this process's rank for multi-process
/// backends. Throws Error naming the available backends when `backend` is unknown.
std::vector<Communicator> createCommunicators(const std::string& backend, const core::ExecutorOptions& options);

/// `nranks` ranks that are threads of this process (the inproc backend). `nodeOfRank` makes virtual
/// nodes for hierarchical algorithms (COPRO_NODE_MAP does the same from the environment).
std::vector<Communicator> createInproc(int nranks, const Config& config = Config::fromEnvironment(),
                                       std::vector<int> nodeOfRank = {});

/// Opaque rendezvous handle for multi-process communicators (as ncclUniqueId): the root's address and a
/// random 128-bit token. Create it on one process, copy its bytes to every rank (file, MPI, launcher).
struct UniqueId {
  std::array<std::uint8_t, 128> internal{};
};

/// Starts a rendezvous root listener thread in this process, bound to `bindAddr` ("host" or "host:port";
/// COPRO_BOOTSTRAP_ADDR, when set, replaces the default loopback address), and returns its id. The
/// listener serves one communicator creation (docs/bootstrap.md). Throws Error(kSystemError).
UniqueId getUniqueId(const std::string& bindAddr = "127.0.0.1");

/// This process's rank of a multi-process communicator (backend "shm", "mpi", "ucx"). Collective over the
/// `nranks` processes that pass the same id. Node ids come from COPRO_NODE_ID of every process when set
/// (on all or none), else from COPRO_NODE_MAP, else one node. Throws Error (kTimeout naming what is
/// missing, kInvalidArgument, kSystemError).
Communicator createCommunicator(const std::string& backend, const UniqueId& id, int rank, int nranks,
                                const Config& config = Config::fromEnvironment());

/// The same from the environment: COPRO_RANK, COPRO_WORLD_SIZE, COPRO_ROOT_ADDR (host:port; rank 0 runs
/// the root there), optional COPRO_BOOTSTRAP_TOKEN (docs/bootstrap.md).
Communicator createFromEnvironment(const std::string& backend, const Config& config = Config::fromEnvironment());

/// The same over any Bootstrap (e.g. one of your own).
Communicator createCommunicator(const std::string& backend, std::shared_ptr<core::Bootstrap> bootstrap,
                                const Config& config = Config::fromEnvironment());

/// The out-of-band channel itself (allGather, send/recv, barrier, split), for frameworks that need one.
std::shared_ptr<core::Bootstrap> createBootstrap(const UniqueId& id, int rank, int nranks,
                                                 const Config& config = Config::fromEnvironment());
std::shared_ptr<core::Bootstrap> createBootstrapFromEnvironment(const Config& config = Config::fromEnvironment());

/// Library version "major.minor.patch".
const char* version();

}  // namespace copro
