#include "memory_bound.hpp"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace copro::bench {

double measureCopyBandwidth(std::uint64_t bytesPerThread, int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  const std::size_t n = bytesPerThread;
  std::vector<std::unique_ptr<char[]>> src(static_cast<std::size_t>(threads));
  std::vector<std::unique_ptr<char[]>> dst(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    src[static_cast<std::size_t>(t)] = std::make_unique<char[]>(n);
    dst[static_cast<std::size_t>(t)] = std::make_unique<char[]>(n);
    std::memset(src[static_cast<std::size_t>(t)].get(), 1 + t, n);
    std::memset(dst[static_cast<std::size_t>(t)].get(), 0, n);
  }
  constexpr int kReps = 5;
  double best = 1e30;
  std::barrier sync(threads + 1);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int rep = 0; rep < kReps; ++rep) {
        sync.arrive_and_wait();
        std::memcpy(dst[static_cast<std::size_t>(t)].get(), src[static_cast<std::size_t>(t)].get(), n);
        sync.arrive_and_wait();
      }
    });
  }
  for (int rep = 0; rep < kReps; ++rep) {
    sync.arrive_and_wait();
    auto t0 = std::chrono::steady_clock::now();
    sync.arrive_and_wait();
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, sec);
  }
  for (auto& th : pool) th.join();
  return 2.0 * static_cast<double>(n) * threads / best;
}

}  // namespace copro::bench
