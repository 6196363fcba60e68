#pragma once
/// copro's C++ API: communicators, collectives, the planner and the core types.
///
///   auto comms = copro::createInproc(4);            // 4 ranks as threads of this process
///   // on the thread of rank r:
///   comms[r].allReduce(in, out, n, copro::DataType::kFloat32, copro::ReduceOp::kSum).wait().throwIfError();
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/collectives/communicator.hpp"
#include "copro/collectives/planner.hpp"
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

/// Library version "major.minor.patch".
const char* version();

}  // namespace copro
