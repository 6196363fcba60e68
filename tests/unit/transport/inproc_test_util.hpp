#pragma once
// Helpers of the inproc tests: executors with an explicit Config, one thread per rank, hand-written
// Programs with known results.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "copro/copro.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/program.hpp"

namespace copro::transport::detail {
/// Defined in transport/src/inproc_lanes.cpp: reduce groups the inproc executor ran fused.
std::uint64_t inprocFusedReducesForTesting() noexcept;
}  // namespace copro::transport::detail

namespace copro::transport::testing {

using core::Addr;
using core::BufferId;
using core::Op;

inline Addr self(BufferId b, std::uint64_t off = 0) {
  return Addr{core::kSelf, b, off};
}
inline Addr on(std::int32_t rank, BufferId b, std::uint64_t off = 0) {
  return Addr{rank, b, off};
}

/// A Config that does not depend on the environment.
inline core::Config testConfig(const std::string& initiation, double timeoutSec = 30.0) {
  core::Config c;
  c.initiation = initiation;
  c.timeoutSec = timeoutSec;
  c.spinUs = 20.0;
  c.threads = 2;
  return c;
}

/// The inproc executors, made through the registry as a user of the umbrella library would.
inline std::vector<std::unique_ptr<core::Executor>> makeExecutors(int nranks, const core::Config& config,
                                                                  std::vector<int> nodeOfRank = {}) {
  registerBuiltinBackends();
  core::ExecutorOptions options;
  options.nranks = nranks;
  options.config = config;
  options.nodeOfRank = std::move(nodeOfRank);
  return core::ExecutorRegistry::instance().create("inproc", options);
}

/// Runs fn(rank) on one thread per rank and returns each rank's status.
inline std::vector<core::Status> onEveryRank(int nranks, const std::function<core::Status(int)>& fn) {
  std::vector<core::Status> out(static_cast<std::size_t>(nranks));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(nranks));
  for (int r = 0; r < nranks; ++r) {
    threads.emplace_back([&, r] { out[static_cast<std::size_t>(r)] = fn(r); });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

/// Starts `program` on `exec` and waits.
inline core::Status runCall(core::Executor& exec, const std::shared_ptr<const core::ProgramSource>& program,
                            const core::CallBuffers& buffers) {
  std::unique_ptr<core::CallHandle> handle;
  COPRO_RETURN_IF_ERROR(exec.start(program, buffers, handle));
  return handle->wait();
}

inline core::ProgramHeader makeHeader(const std::string& name, int n, int sems, std::uint64_t inBytes,
                                      std::uint64_t outBytes, std::uint64_t scratchBytes = 0) {
  core::ProgramHeader h;
  h.name = name;
  h.nranks = n;
  h.numSemaphores = sems;
  h.scratchBytes = scratchBytes;
  h.inputBytes.assign(static_cast<std::size_t>(n), inBytes);
  h.outputBytes.assign(static_cast<std::size_t>(n), outBytes);
  return h;
}

/// Ring all-gather of `block` bytes per rank over `lanes` independent lanes (lane l moves its share of
/// every block and signals semaphore l): copy the own block into the output, then n-1 put-with-signal
/// steps to the next rank, each forwarding what arrived in the step before.
inline std::shared_ptr<const core::Program> ringAllGather(int n, std::uint64_t block, int lanes = 1) {
  core::ProgramHeader h = makeHeader("allgather.ring", n, lanes, block, block * static_cast<std::uint64_t>(n));
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(n));
  const std::uint64_t part = block / static_cast<std::uint64_t>(lanes);
  for (int r = 0; r < n; ++r) {
    core::RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    const int next = (r + 1) % n;
    const auto blockOff = [&](int b) { return static_cast<std::uint64_t>(((b % n) + n) % n) * block; };
    for (int l = 0; l < lanes; ++l) {
      const std::uint64_t lo = part * static_cast<std::uint64_t>(l);
      const std::uint64_t len = l == lanes - 1 ? block - lo : part;
      rp.emit(l, Op::copy(self(BufferId::kOutput, blockOff(r) + lo), self(BufferId::kInput, lo), len));
      for (int s = 0; s < n - 1; ++s) {
        if (s > 0) rp.emit(l, Op::wait(l, static_cast<std::uint64_t>(s)));
        const std::uint64_t off = blockOff(r - s) + lo;
        rp.emit(l, Op::put(next, on(next, BufferId::kOutput, off), self(BufferId::kOutput, off), len, l));
      }
      if (n > 1) rp.emit(l, Op::wait(l, static_cast<std::uint64_t>(n - 1)));
    }
  }
  return std::make_shared<core::Program>(h, std::move(ranks));
}

/// How the load/store-domain all-reduce distributes each reduced chunk.
enum class Spread { kMulticast, kPuts, kUnfused };

/// Load/store-domain all-reduce of `count` float32 per rank (count divisible by n): rank r reduces chunk
/// r of every rank's input into its own output, then writes it to every other rank's output chunk r
/// with a signal; everyone waits for the n-1 chunks of the others.
inline std::shared_ptr<const core::Program> lsaAllReduce(int n, std::uint64_t count, Spread spread,
                                                         bool inPlace = false) {
  const std::uint64_t bytes = count * 4;
  const std::uint64_t chunk = bytes / static_cast<std::uint64_t>(n);
  core::ProgramHeader h = makeHeader(inPlace ? "allreduce.lsa.inplace" : "allreduce.lsa", n, 1, bytes, bytes);
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    core::RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    const std::uint64_t off = chunk * static_cast<std::uint64_t>(r);
    std::vector<Addr> srcs;
    std::vector<std::int32_t> others;
    for (int q = 0; q < n; ++q) {
      srcs.push_back(on(q, BufferId::kInput, off));
      if (q != r) others.push_back(q);
    }
    rp.emit(0,
            Op::reduce(self(BufferId::kOutput, off), srcs, chunk / 4, core::DataType::kFloat32, core::ReduceOp::kSum));
    if (n == 1) continue;
    switch (spread) {
      case Spread::kMulticast:
        rp.emit(0, Op::multicast(others, self(BufferId::kOutput, off), self(BufferId::kOutput, off), chunk, 0));
        break;
      case Spread::kPuts:
        for (std::int32_t q : others) {
          rp.emit(0, Op::put(q, self(BufferId::kOutput, off), self(BufferId::kOutput, off), chunk, 0));
        }
        break;
      case Spread::kUnfused:
        // A flush between the two ops keeps them apart (the executor fuses only adjacent ops).
        rp.emit(0, Op::flush());
        rp.emit(0, Op::multicast(others, self(BufferId::kOutput, off), self(BufferId::kOutput, off), chunk, 0));
        break;
    }
    rp.emit(0, Op::wait(0, static_cast<std::uint64_t>(n - 1)));
  }
  return std::make_shared<core::Program>(h, std::move(ranks));
}

/// Random small integers as float32, so sums are exact in any order.
inline std::vector<float> randomInts(std::size_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(-100, 100);
  std::vector<float> v(count);
  for (float& x : v) x = static_cast<float>(dist(rng));
  return v;
}

inline std::vector<std::uint8_t> randomBytes(std::size_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<std::uint8_t> v(count);
  for (auto& x : v) x = static_cast<std::uint8_t>(dist(rng));
  return v;
}

/// The seed of a test, printed so a failure can be reproduced.
inline std::uint32_t testSeed(std::uint32_t base) {
  std::printf("seed %u\n", base);
  return base;
}

}  // namespace copro::transport::testing
