#pragma once
/// Sub-transport factories of the virtual-node backends (vnode_transport.cpp); defined by the ucx and mpi
/// backends' sources when the build has them.
#include <memory>
#include <string>

#include "copro/core/bootstrap.hpp"
#include "remote_engine.hpp"

namespace copro::transport {

/// A UCX transport over `bootstrap`'s ranks whose context uses the transports `tls` (UCX_TLS syntax, e.g.
/// "sm,self"; empty: the environment's). backend() reports `name`. Collective.
std::unique_ptr<remote::RemoteTransport> makeUcxTransport(std::shared_ptr<core::Bootstrap> bootstrap,
                                                          const std::string& tls, const std::string& name);

/// The two-sided MPI transport over a duplicate of an MPI bootstrap's communicator. Throws
/// Error(kInvalidArgument) for a non-MPI bootstrap. Collective.
std::unique_ptr<remote::RemoteTransport> makeMpiTransport(const core::Bootstrap& bootstrap);

/// The verbs transport over `bootstrap`'s ranks with `config` (COPRO_VERBS_PROVIDER, COPRO_IB_*), whose
/// semaphore array is the one remote signals land in. backend() reports `name`. Collective.
std::unique_ptr<remote::RemoteTransport> makeVerbsTransport(std::shared_ptr<core::Bootstrap> bootstrap,
                                                            const core::Config& config, const std::string& name);

}  // namespace copro::transport
