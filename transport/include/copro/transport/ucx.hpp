#pragma once
/// The `ucx` backend (docs/ucx.md): UCP one-sided RMA and 64-bit atomics between processes. Available when
/// the build found UCX (COPRO_HAVE_UCX). Transports follow UCX_TLS (shm,self and tcp,self on one host;
/// rc/dc/ud on InfiniBand).
#include <memory>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// This process's executor: `options.bootstrap` (any Bootstrap: TCP/environment or MPI) exchanges worker
/// addresses and memory keys. Collective over the bootstrap's ranks. Throws Error(kInvalidArgument)
/// without a bootstrap and Error(kSystemError) naming the failing UCX call.
std::unique_ptr<core::Executor> createUcxExecutor(const core::ExecutorOptions& options);

/// Adds the backend to a registry under the name "ucx".
void registerUcx(core::ExecutorRegistry& registry);

}  // namespace copro::transport
