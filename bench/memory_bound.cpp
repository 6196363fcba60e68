#include "memory_bound.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace copro::bench {

double measureCopyBandwidth(std::uint64_t bytesPerThread, int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  const std::size_t n = (bytesPerThread + 4095) / 4096 * 4096;
  const auto nt = static_cast<std::size_t>(threads);
  std::vector<char*> src(nt);
  std::vector<char*> dst(nt);
  for (std::size_t t = 0; t < nt; ++t) {
    src[t] = static_cast<char*>(std::aligned_alloc(4096, n));
    dst[t] = static_cast<char*>(std::aligned_alloc(4096, n));
    std::memset(src[t], static_cast<int>(1 + t), n);  // touch every page before timing
    std::memset(dst[t], 0, n);
  }
  constexpr int kReps = 6;
  double best = 1e30;
  for (int rep = 0; rep < kReps; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    pool.reserve(nt);
    for (std::size_t t = 0; t < nt; ++t) {
      pool.emplace_back([&, t] {
        std::memcpy(dst[t], src[t], n);
        // The destination is never read: without this the compiler may drop the copy as a dead store.
        asm volatile("" : : "r"(dst[t]) : "memory");
      });
    }
    for (auto& th : pool) th.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  for (std::size_t t = 0; t < nt; ++t) {
    std::free(src[t]);
    std::free(dst[t]);
  }
  return 2.0 * static_cast<double>(n) * static_cast<double>(threads) / best;
}

}  // namespace copro::bench
