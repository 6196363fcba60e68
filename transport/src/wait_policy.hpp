#pragma once
/// How a thread that waits for a peer uses its core (COPRO_WAIT, docs/latency.md), resolved once per
/// communicator from the Config and the number of ranks sharing the host's cores:
///   spin      busy-wait with the CPU's pause instruction and never sleep (lowest latency; burns a core);
///   yield     give the core away (sched_yield) between looks, sleep on the wake-up word after COPRO_SPIN_US;
///   adaptive  as spin while the host's ranks fit its cores, as yield when they do not (the default).
/// COPRO_SPIN_US is the one length knob: how long a `yield` wait looks before it sleeps.
#include <limits>
#include <string>
#include <thread>

#include "copro/core/config.hpp"

namespace copro::transport::calls {

/// Cores this process may run on (its affinity mask), at least 1.
int usableCores() noexcept;

struct WaitPolicy {
  bool yield = true;       ///< sched_yield between looks (else the pause instruction)
  double spinSec = 20e-6;  ///< look this long before sleeping; infinity: never sleep

  /// The policy of a communicator whose host runs `ranksOnHost` ranks (threads or processes) on
  /// `cores` cores (default: this process's affinity mask, usableCores()).
  static WaitPolicy resolve(const core::Config& config, int ranksOnHost, int cores = 0);

  void pause() const noexcept {
    if (yield) {
      std::this_thread::yield();
      return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
  }
};

}  // namespace copro::transport::calls
