#pragma once
/// The `verbs` backend (docs/verbs.md): RDMA over RC queue pairs through libibverbs, loaded at run time
/// (dlopen of libibverbs.so.1, so copro runs on machines without it), or through the emulated provider
/// (COPRO_VERBS_PROVIDER=emu: processes on one host, for CI). Available when the build found
/// <infiniband/verbs.h> (COPRO_HAVE_VERBS).
#include <memory>
#include <string>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// This process's executor: `options.bootstrap` exchanges the QP addresses and memory keys. Collective
/// over the bootstrap's ranks. Throws Error(kUnsupported) naming COPRO_VERBS_PROVIDER when there is no
/// RDMA device, Error(kInvalidArgument) without a bootstrap.
std::unique_ptr<core::Executor> createVerbsExecutor(const core::ExecutorOptions& options);

/// Adds the backend to a registry under the name "verbs".
void registerVerbs(core::ExecutorRegistry& registry);

/// For copro-info --backends and copro-topo probe: whether libibverbs.so.1 loads and lists a real RDMA
/// device (`detail` says which, or why not).
bool verbsRealDevicePresent(std::string& detail);

/// One line per port of every device of the provider `config` selects ("mlx5_0 port 1: ACTIVE,
/// InfiniBand, 200 Gb/s, MTU 4096, LID 7"); empty when there is none. Never throws.
std::string describeVerbsPorts(const core::Config& config);

/// "# rail: GPU 0000:1b:00.0 -> mlx5_3 (2 PCIe hops)" lines for this host (hwloc), or one line saying why
/// there is no map. For copro-topo probe.
std::string describeRailAffinity(const core::Config& config);

}  // namespace copro::transport
