#pragma once
// What the Communicator tests on the inproc backend share: a Config with a test timeout, and a way to run
// one function per rank, each on its own thread.
#include <functional>
#include <thread>
#include <vector>

#include "copro/core/config.hpp"

namespace copro::test {

/// The default Config with a 30 s timeout (a hung test fails instead of waiting 300 s).
inline Config testConfig() {
  Config c;
  c.timeoutSec = 30;
  return c;
}

/// Runs fn(rank) on one thread per rank and joins them.
inline void onRanks(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> t;
  for (int r = 0; r < n; ++r) t.emplace_back(fn, r);
  for (auto& th : t) th.join();
}

}  // namespace copro::test
