#pragma once
/// The `inproc` backend: every rank is a thread of one process, and all ranks form one load/store domain
/// (any lane may read and write any rank's buffers directly). Used by most tests and by single-host runs
/// that need no processes. See docs/inproc.md for the execution rules (stream order, epochs, timeouts,
/// abort, initiation modes).
#include <memory>
#include <vector>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// Creates `options.nranks` executors (rank i at index i) that share one world: semaphores, scratch,
/// and, in proxy mode, a pool of progress threads. Each executor is driven by one user thread at a
/// time; different ranks' executors are driven concurrently by different threads.
///
/// Throws Error(kInvalidArgument) for nranks < 1, a nodeOfRank of the wrong length, or an initiation
/// mode other than "device" and "proxy".
std::vector<std::unique_ptr<core::Executor>> createInprocExecutors(const core::ExecutorOptions& options);

/// Adds the backend to a registry under the name "inproc".
void registerInproc(core::ExecutorRegistry& registry);

}  // namespace copro::transport
