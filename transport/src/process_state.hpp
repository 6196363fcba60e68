#pragma once
/// The scheduler state of a process on this host, from /proc/<pid>/stat: what the transports use to tell
/// a stopped peer (SIGSTOP, Ctrl-Z, a debugger: alive, so liveness checks pass, but it never progresses)
/// from a slow one when a call times out.
#include <sys/types.h>

#include <string>

namespace copro::transport {

/// The state letter of `pid` (R, S, D, T, t, Z, ...), or 0 when it cannot be read.
char processState(pid_t pid) noexcept;
/// True when the process is stopped (state T or t).
bool processStopped(pid_t pid) noexcept;
/// "rank R (pid P) is stopped (...)": the sentence every backend uses to blame a stopped peer.
std::string stoppedPeerText(int rank, pid_t pid);

}  // namespace copro::transport
