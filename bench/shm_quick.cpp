// shm_quick: a quick all-reduce bandwidth measurement of the shm backend (docs/shm.md, "Performance").
// Not a CMake target (copro-perf's --compare path is the supported benchmark); build it against a build
// directory by hand:
//
//   g++ -O2 -std=c++20 -I include -I core/include -I collectives/include bench/shm_quick.cpp \
//       build/src/libcopro.a build/collectives/libcopro_collectives.a build/transport/libcopro_transport.a \
//       build/core/libcopro_core.a -lrt -pthread -o shm_quick
//   ./shm_quick <ranks> [algo|auto] [alloc 0/1] [iters]
//
// It forks <ranks> processes that create one shm communicator and time float32 sum all-reduces of 1 MiB
// to 64 MiB per rank, out of place; prints nccl-tests style lines (time per call, algbw, busbw) from the
// slowest rank.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "copro/copro.hpp"

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 2;
  const std::string algo = argc > 2 ? argv[2] : "auto";
  const bool useAlloc = argc > 3 && std::atoi(argv[3]) != 0;
  const int iters = argc > 4 ? std::atoi(argv[4]) : 10;
  const copro::UniqueId id = copro::getUniqueId();
  std::printf("# shm all-reduce, %d ranks, algo %s, %s buffers, float32 sum, out of place, %d iterations\n", n,
              algo.c_str(), useAlloc ? "allocate()d" : "user (malloc)", iters);
  std::printf("# %12s %12s %10s %10s %10s\n", "bytes", "time_us", "algbw", "busbw", "algorithm");
  std::fflush(stdout);
  std::vector<pid_t> pids;
  for (int r = 0; r < n; ++r) {
    const pid_t pid = fork();
    if (pid != 0) {
      pids.push_back(pid);
      continue;
    }
    // In a function scope so the communicator is destroyed (segments unlinked) before _exit.
    const int code = [&] {
      copro::Communicator comm = copro::createCommunicator("shm", id, r, n);
      copro::CallOptions o;
      if (algo != "auto") o.algorithm = algo;
      for (std::size_t bytes = 1 << 20; bytes <= (64u << 20); bytes *= 4) {
        const std::size_t count = bytes / sizeof(float);
        float* in = nullptr;
        float* out = nullptr;
        std::vector<float> inV;
        std::vector<float> outV;
        if (useAlloc) {
          in = static_cast<float*>(comm.allocate(bytes));
          out = static_cast<float*>(comm.allocate(bytes));
        } else {
          inV.assign(count, 1.0F);
          outV.assign(count, 0.0F);
          in = inV.data();
          out = outV.data();
        }
        for (std::size_t i = 0; i < count; ++i) in[i] = static_cast<float>(r + 1);
        for (int w = 0; w < 2; ++w)
          comm.allReduce(in, out, count, copro::DataType::kFloat32, copro::ReduceOp::kSum, o).wait().throwIfError();
        const std::string used = comm.lastProgramName();
        double best = 1e30;
        // Best of three timed rounds of `iters` calls, each round started by a barrier.
        for (int round = 0; round < 3; ++round) {
          comm.barrier().wait().throwIfError();
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < iters; ++i) {
            comm.allReduce(in, out, count, copro::DataType::kFloat32, copro::ReduceOp::kSum, o).wait().throwIfError();
          }
          comm.barrier().wait().throwIfError();
          best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters);
        }
        const float want = static_cast<float>(n * (n + 1) / 2);
        if (out[0] != want || out[count - 1] != want) {
          std::fprintf(stderr, "rank %d: wrong result %f (want %f)\n", r, out[0], want);
          return 1;
        }
        if (r == 0) {
          const double algbw = static_cast<double>(bytes) / best / 1e9;
          std::printf("  %12zu %12.1f %10.2f %10.2f %10s\n", bytes, best * 1e6, algbw, algbw * 2.0 * (n - 1) / n,
                      used.c_str());
          std::fflush(stdout);
        }
        if (useAlloc) {
          comm.deallocate(in);
          comm.deallocate(out);
        }
      }
      return 0;
    }();
    _exit(code);
  }
  int failed = 0;
  for (pid_t p : pids) {
    int st = 0;
    waitpid(p, &st, 0);
    failed += (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : 1;
  }
  return failed == 0 ? 0 : 1;
}
