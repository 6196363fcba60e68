#pragma once
/// Registration of the backends whose factory makes the one rank of this process (shm, mpi, ucx and
/// the virtual-node pairs), written once: each backend names itself, its factory and its description.
#include <functional>
#include <memory>
#include <string>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// Adds backend `name` to `registry`; `create` makes this process's executor from the options.
void addOneRankPerProcessBackend(core::ExecutorRegistry& registry, const std::string& name,
                                 std::function<std::unique_ptr<core::Executor>(const core::ExecutorOptions&)> create,
                                 std::string description);

}  // namespace copro::transport
