/// COPRO_WAIT resolved against the host's cores (wait_policy.hpp).
#include "wait_policy.hpp"

#include <sched.h>

#include <algorithm>

namespace copro::transport::calls {

int usableCores() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(CPU_COUNT(&set), 1);
  return std::max(static_cast<int>(std::thread::hardware_concurrency()), 1);
}

WaitPolicy WaitPolicy::resolve(const core::Config& config, int ranksOnHost, int cores) {
  WaitPolicy p;
  p.spinSec = std::max(config.spinUs, 0.0) * 1e-6;
  bool spin = config.wait == "spin";
  if (config.wait == "adaptive") spin = ranksOnHost <= (cores > 0 ? cores : usableCores());
  if (spin) p.yield = false;
  if (config.wait == "spin") p.spinSec = std::numeric_limits<double>::infinity();
  return p;
}

}  // namespace copro::transport::calls
