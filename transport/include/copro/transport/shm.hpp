#pragma once
/// The `shm` backend: ranks are processes on one host (docs/shm.md).
///
/// Semaphores, call-entry counters, scratch and layout words live in POSIX shared memory; buffers from
/// Executor::allocate() too (peers map them: zero copy). Peers reach other user buffers with one copy
/// through Cross Memory Attach (process_vm_readv/writev), or, where the kernel forbids it, through
/// staging copies in shared memory. Every rank is one load/store domain with every other.
#include <memory>
#include <string>
#include <vector>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// Creates this process's executor (rank options.bootstrap->rank()). Collective over the bootstrap's
/// ranks. Throws Error(kInvalidArgument) without a bootstrap, for a nodeOfRank of the wrong length or an
/// initiation other than "device"/"proxy"; Error(kSystemError) when shared memory cannot be created.
std::unique_ptr<core::Executor> createShmExecutor(const core::ExecutorOptions& options);

/// Adds the backend to a registry under the name "shm".
void registerShm(core::ExecutorRegistry& registry);

/// The prefix of every /dev/shm name of this executor's communicator ("copro-<pid>-<token>-"), for tools
/// and tests that check nothing is left behind. Empty for executors of other backends.
std::string shmSegmentPrefix(const core::Executor& executor);

}  // namespace copro::transport
