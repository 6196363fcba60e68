#pragma once
/// The caller's side of wait()/test() for the engines whose calls run on lanes of their own (inproc,
/// shm), written once: run the device lanes of the front call, watch every lane's progress for the
/// timeout, spin briefly, then sleep on the rank's wake-up word until something changes.
///
/// A host (the backend) supplies, for its `Call` type:
///   std::shared_ptr<Call> frontCall();                    the oldest unfinished call
///   bool runDeviceLanes(const std::shared_ptr<Call>&);    ran the caller's lanes once; true: progressed
///   bool checkStall(const std::shared_ptr<Call>&, double stalledSec);   true: failed the call
///   std::uint32_t armSleep(); void disarmSleep();         announce / withdraw a sleeper
///   void sleep(std::uint32_t seen, const Call& front, double stalledSec);
///   double spinSeconds() const; void spinPause();  the wait policy (wait_policy.hpp): look this long, pause so
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

#include "copro/core/status.hpp"

namespace copro::transport::calls {

using DriveClock = std::chrono::steady_clock;

inline double secondsSince(DriveClock::time_point t, DriveClock::time_point now) {
  return std::chrono::duration<double>(now - t).count();
}

/// Sleepers wake at least this often to look at timeouts (and, on shm, peers' liveness).
inline constexpr auto kMaxSleep = std::chrono::milliseconds(50);

/// Sleep length: until the next timeout check is due, at most kMaxSleep.
inline std::chrono::nanoseconds sleepLength(double timeoutSec, double stalledSec) {
  std::chrono::nanoseconds d = kMaxSleep;
  if (timeoutSec > 0) {
    const double left = std::max(timeoutSec - stalledSec, 0.0) + 1e-4;
    d = std::min(d, std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(left)));
  }
  return d;
}

/// Idle looks of a blocking wait per clock read (see driveCall).
inline constexpr std::uint32_t kClockEvery = 8;

/// Drives the calls of one rank until `target` finished (block) or once (test). `done` says whether it
/// finished; the result is its status then.
template <typename Host, typename CallT>
core::Status driveCall(Host& host, const std::shared_ptr<CallT>& target, bool block, bool& done) {
  // The clock is read only when a look finds nothing to do: after progress, the next idle look starts the
  // stall timer (last progress of any lane of the front call) and the spin timer (of this thread's lanes).
  DriveClock::time_point stallStart;
  DriveClock::time_point spinStart;
  bool stallFresh = true;
  bool spinFresh = true;
  std::uint64_t sample = 0;
  std::uint32_t idleLooks = 0;
  bool armed = false;
  std::uint32_t seen = 0;
  auto disarm = [&] {
    if (!armed) return;
    host.disarmSleep();
    armed = false;
  };
  std::shared_ptr<CallT> front;
  while (!target->finished()) {
    if (!front || front->finished()) {
      front = host.frontCall();
      if (front) sample = front->progress.load(std::memory_order_relaxed);
      stallFresh = true;
    }
    if (!front || front->phase.load(std::memory_order_acquire) != decltype(front->phase.load())::kRunning) {
      // Only in the instant between a failure and its bookkeeping; look again.
      std::this_thread::yield();
      continue;
    }
    if (front->deviceLanes > 0 && host.runDeviceLanes(front)) {
      disarm();
      stallFresh = spinFresh = true;
      sample = front->progress.load(std::memory_order_relaxed);
      continue;
    }
    // Progress threads' work keeps the call from timing out but does not keep this thread spinning.
    const std::uint64_t p = front->progress.load(std::memory_order_relaxed);
    if (p != sample) {
      sample = p;
      stallFresh = true;
    }
    // A blocking wait looks at the clock on every kClockEvery-th idle look only: the timers it feeds
    // (the spin phase, COPRO_SPIN_US, and stall checks from 50 ms) are far coarser than a look.
    if (block && !stallFresh && !spinFresh && !armed && ++idleLooks % kClockEvery != 0) {
      host.spinPause();
      continue;
    }
    const auto now = DriveClock::now();
    if (stallFresh) stallStart = now;
    if (spinFresh) spinStart = now;
    stallFresh = spinFresh = false;
    const double stalled = secondsSince(stallStart, now);
    if (host.checkStall(front, stalled)) {
      disarm();
      continue;
    }
    if (!block) {
      disarm();
      done = false;
      return {};
    }
    if (secondsSince(spinStart, now) < host.spinSeconds()) {
      host.spinPause();
      continue;
    }
    if (!armed) {
      // Announce the sleep, then run the lanes once more: an event after this point wakes us.
      seen = host.armSleep();
      armed = true;
      continue;
    }
    host.sleep(seen, *front, stalled);
    disarm();
  }
  disarm();
  done = true;
  return target->status;
}

}  // namespace copro::transport::calls
