#pragma once
/// Remembers a stopped peer seen while a call of the remote engine waits, so that the timeout still names
/// it when the peer no longer is stopped by the time this rank gives up. Under `mpirun`, the first survivor
/// whose call times out calls `MPI_Abort`, and `mpirun` resumes (SIGCONT) the stopped rank before it kills
/// the job; a survivor whose own timeout fires a moment later found no stopped peer and blamed nobody
/// (docs/faults.md, "mpi under mpirun"). The watch looks at the peers' process states (through the
/// transport's `stoppedPeer`) every 50 ms once the call has made no progress for a quarter of the timeout,
/// and forgets what it saw as soon as the call progresses again.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>

#include "call_reports.hpp"

namespace copro::transport::remote {

class StoppedPeerWatch {
 public:
  using Clock = std::chrono::steady_clock;

  /// While the call has made no progress since `stallStart`: every 50 ms from a quarter of `timeoutSec`
  /// (at most 1 s) on, asks `stoppedPeer()` (a sentence naming a stopped peer, or "") and keeps a sighting.
  template <typename StoppedPeer>
  void look(Clock::time_point stallStart, Clock::time_point now, double timeoutSec, StoppedPeer&& stoppedPeer) {
    if (stallStart != stallStart_) {
      stallStart_ = stallStart;
      seen_.clear();
      nextLook_ = stallStart + toDuration(std::min(timeoutSec / 4, 1.0));
    }
    if (now < nextLook_) return;
    nextLook_ = now + std::chrono::milliseconds(50);
    std::string s = stoppedPeer();
    if (!s.empty()) {
      seen_ = std::move(s);
      seenAt_ = now;
    }
  }

  /// The stopped peer to blame for a failure of the stall that began at `stallStart`: `current` (the peer
  /// stopped now) if any, else the last one seen stopped during that stall, saying when, else "".
  [[nodiscard]] std::string blame(std::string current, Clock::time_point stallStart, Clock::time_point now) const {
    if (!current.empty() || seen_.empty() || stallStart != stallStart_) return current;
    const double ago = std::round(std::chrono::duration<double>(now - seenAt_).count() * 100) / 100;
    return seen_ + " when this rank last looked, " + calls::formatSeconds(ago) +
           " s before it gave up (it no longer is: resumed or ended since)";
  }

 private:
  static Clock::duration toDuration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  Clock::time_point stallStart_{};
  Clock::time_point nextLook_{};
  Clock::time_point seenAt_{};
  std::string seen_;
};

}  // namespace copro::transport::remote
