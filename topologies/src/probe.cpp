#include "copro/topologies/probe.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <new>
#include <sstream>
#include <thread>
#include <vector>

#include "copro/core/reduce.hpp"
#include "copro/core/status.hpp"
#include "copro/core/units.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::topo {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Page-aligned buffer whose pages are touched before any timing (first-touch faults are not bandwidth).
struct Block {
  explicit Block(std::size_t bytes) : size((bytes + 4095) / 4096 * 4096) {
    data = static_cast<char*>(std::aligned_alloc(4096, size));
    if (data == nullptr) throw std::bad_alloc();
    std::memset(data, 1, size);
  }
  ~Block() { std::free(data); }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  char* data = nullptr;
  std::size_t size = 0;
};

/// Runs `work(t)` on `threads` threads at once, `reps` times; returns the best wall time of a repetition.
double bestConcurrent(int threads, int reps, const std::function<void(int)>& work) {
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        work(t);
      });
    }
    while (ready.load() < threads) std::this_thread::yield();
    const auto t0 = Clock::now();
    go.store(true, std::memory_order_release);
    for (auto& th : pool) th.join();
    best = std::min(best, secondsSince(t0));
  }
  return best;
}

/// Bytes copied per second summed over `threads` threads each copying its own `bytes`.
double copyRate(int threads, std::size_t bytes, int reps) {
  std::vector<std::unique_ptr<Block>> src;
  std::vector<std::unique_ptr<Block>> dst;
  for (int t = 0; t < threads; ++t) {
    src.push_back(std::make_unique<Block>(bytes));
    dst.push_back(std::make_unique<Block>(bytes));
  }
  const double sec = bestConcurrent(threads, reps, [&](int t) {
    auto i = static_cast<std::size_t>(t);
    std::memcpy(dst[i]->data, src[i]->data, dst[i]->size);
    // The destination is never read: keep the compiler from dropping the copy as a dead store.
    asm volatile("" : : "r"(dst[i]->data) : "memory");
  });
  return static_cast<double>(dst.front()->size) * threads / sec;
}

/// One thread's buffers of the fused pass: `fanout` inputs and `fanout` outputs, apart (out of place).
struct FusedBuffers {
  FusedBuffers(int fanout, std::size_t bytes) {
    for (int k = 0; k < fanout; ++k) {
      in.push_back(std::make_unique<Block>(bytes));
      out.push_back(std::make_unique<Block>(bytes));
      srcs.push_back(in.back()->data);
      dsts.push_back(out.back()->data);
    }
  }
  std::vector<std::unique_ptr<Block>> in, out;
  std::vector<const void*> srcs;
  std::vector<void*> dsts;
};

/// Output bytes per second, summed over `threads` threads, of the CPU executors' fused reduce + multicast
/// (core::reduceToMany: `fanout` float inputs summed and written to `fanout` outputs in one pass, as a
/// load/store all-reduce runs it); each thread's working set (inputs and outputs) is `bytes`.
double fusedReduceRate(int threads, std::size_t bytes, int reps, int fanout) {
  const std::size_t part = std::max<std::size_t>(4096, bytes / (2 * static_cast<std::size_t>(fanout)));
  std::vector<std::unique_ptr<FusedBuffers>> bufs;
  for (int t = 0; t < threads; ++t) bufs.push_back(std::make_unique<FusedBuffers>(fanout, part));
  const std::size_t n = bufs.front()->out.front()->size / sizeof(float);
  const double sec = bestConcurrent(threads, reps, [&](int t) {
    FusedBuffers& b = *bufs[static_cast<std::size_t>(t)];
    core::reduceToMany(b.dsts.data(), fanout, b.srcs.data(), fanout, n, core::DataType::kFloat32, core::ReduceOp::kSum);
    asm volatile("" : : "r"(b.dsts.front()) : "memory");
  });
  return static_cast<double>(n * sizeof(float)) * threads / sec;
}

/// Two flags on their own cache lines; one side signals, the other answers.
struct alignas(64) PingPong {
  alignas(64) std::atomic<std::uint64_t> ping{0};
  alignas(64) std::atomic<std::uint64_t> pong{0};
};

/// The answering side: echoes `trips` signals.
void answer(PingPong& pp, std::uint64_t trips) {
  for (std::uint64_t i = 1; i <= trips; ++i) {
    std::uint32_t spins = 0;
    while (pp.ping.load(std::memory_order_acquire) != i) {
      // On an oversubscribed host spinning forever would starve the other side of its core.
      if (++spins > 4096) std::this_thread::yield();
    }
    pp.pong.store(i, std::memory_order_release);
  }
}

/// Median of 5 batches of round trips (ns each); `pp` is answered by another thread or process.
double timeRoundTrips(PingPong& pp, std::uint64_t perBatch) {
  std::vector<double> batches;
  std::uint64_t i = 0;
  for (int batch = 0; batch < 5; ++batch) {
    const auto t0 = Clock::now();
    for (std::uint64_t k = 0; k < perBatch; ++k) {
      ++i;
      pp.ping.store(i, std::memory_order_release);
      std::uint32_t spins = 0;
      while (pp.pong.load(std::memory_order_acquire) != i) {
        if (++spins > 4096) std::this_thread::yield();
      }
    }
    batches.push_back(secondsSince(t0) * 1e9 / static_cast<double>(perBatch));
  }
  std::sort(batches.begin(), batches.end());
  return batches[2];
}

double threadRoundTrip(std::uint64_t perBatch) {
  PingPong pp;
  std::thread peer([&] { answer(pp, perBatch * 5); });
  const double ns = timeRoundTrips(pp, perBatch);
  peer.join();
  return ns;
}

/// The same between this process and a forked child over a shared anonymous mapping; 0 when fork fails.
double processRoundTrip(std::uint64_t perBatch) {
  void* mem = mmap(nullptr, sizeof(PingPong), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 0;
  auto* pp = new (mem) PingPong();
  const pid_t child = fork();
  if (child < 0) {
    munmap(mem, sizeof(PingPong));
    return 0;
  }
  if (child == 0) {
    answer(*pp, perBatch * 5);
    _exit(0);
  }
  const double ns = timeRoundTrips(*pp, perBatch);
  int status = 0;
  waitpid(child, &status, 0);
  munmap(mem, sizeof(PingPong));
  return ns;
}

/// A tiny op as an executor sees one: decoded through an indirect call, a 64-B copy, a release signal.
struct TinyOp {
  void (*run)(const TinyOp&, char*, std::atomic<std::uint64_t>&);
  std::uint32_t offset;
};
void runTiny(const TinyOp& op, char* base, std::atomic<std::uint64_t>& sem) {
  std::memcpy(base + op.offset + 4096, base + op.offset, 64);
  sem.fetch_add(1, std::memory_order_release);
}

double opOverhead() {
  constexpr std::size_t kOps = 1 << 12;
  std::vector<TinyOp> ops(kOps);
  for (std::size_t i = 0; i < kOps; ++i) {
    // Volatile read of the function pointer: the loop must pay an indirect call as the executor's switch does.
    ops[i] = TinyOp{runTiny, static_cast<std::uint32_t>((i * 64) % 4096)};
  }
  std::vector<char> mem(8192, 1);
  std::atomic<std::uint64_t> sem{0};
  double best = 1e30;
  for (int rep = 0; rep < 20; ++rep) {
    const auto t0 = Clock::now();
    for (const auto& op : ops) {
      auto* volatile fn = op.run;
      fn(op, mem.data(), sem);
    }
    best = std::min(best, secondsSince(t0) * 1e9 / static_cast<double>(kOps));
  }
  return best;
}

std::string bandwidthText(double bytesPerSec) {
  // Whole MB/s: exact enough and free of locale or exponent formats the loader might refuse.
  return std::to_string(static_cast<long long>(std::max(1.0, bytesPerSec / 1e6))) + "MB/s";
}

std::string timeText(double ns) {
  return std::to_string(static_cast<long long>(std::max(0.0, ns * 1000.0))) + "ps";
}

}  // namespace

double ProbeResult::linkBandwidth() const {
  // All ranks copy at once in a collective, so each gets its share of the concurrent rate (never more than
  // one core alone manages).
  const double share = ranks > 0 ? copyAllRanks / ranks : copyAllRanks;
  return copyOneCore > 0 ? std::min(share, copyOneCore) : share;
}

double ProbeResult::reduceBandwidth() const {
  const double share = ranks > 0 ? reduceAllRanks / ranks : reduceAllRanks;
  return reduceOneCore > 0 ? std::min(share, reduceOneCore) : share;
}

double ProbeResult::linkLatencyNs() const {
  // A path is rank -> memory -> rank (two links); one way is half a round trip.
  return threadRoundTripNs / 4.0;
}

ProbeResult probeHost(const ProbeOptions& options) {
  if (options.ranks < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "probe: ranks must be >= 0 (0: one per core), got " + std::to_string(options.ranks));
  }
  if (options.bytesPerThread < 4096) {
    throw Error(ErrorCode::kInvalidArgument, "probe: the working set per thread must be at least 4 KiB, got " +
                                                 std::to_string(options.bytesPerThread) + " B");
  }
  ProbeResult r;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) r.hostName = host;
  r.cores = static_cast<std::int32_t>(std::max(1U, std::thread::hardware_concurrency()));
  r.ranks = options.ranks > 0 ? options.ranks : r.cores;
  const int reps = std::max(1, options.repetitions);
  const auto bytes = static_cast<std::size_t>(options.bytesPerThread);
  r.copyOneCore = copyRate(1, bytes, reps);
  r.copyAllRanks = copyRate(r.ranks, bytes, reps);
  // The executors' own pass, with as many inputs and outputs as ranks (the lsa all-reduce's fan-out).
  const int fanout = std::max(2, static_cast<int>(r.ranks));
  r.reduceOneCore = fusedReduceRate(1, bytes, reps, fanout);
  r.reduceAllRanks = fusedReduceRate(r.ranks, bytes, reps, fanout);
  const auto perBatch = static_cast<std::uint64_t>(std::max(1, options.roundTrips / 5));
  r.threadRoundTripNs = threadRoundTrip(perBatch);
  if (options.crossProcess) r.processRoundTripNs = processRoundTrip(perBatch);
  r.opOverheadNs = opOverhead();
  return r;
}

std::string probeTopologyYaml(const ProbeResult& p, std::uint64_t chunkBytes) {
  std::ostringstream y;
  char line[256];
  y << "# Written by copro-topo probe: this host as a topology for copro-sim and copro-perf --predict.\n";
  y << "# How each figure maps to the model: docs/topologies.md, \"Probing this host\".\n";
  y << "# Measured on '" << p.hostName << "' (" << p.cores << " cores) for " << p.ranks << " ranks:\n";
  std::snprintf(line, sizeof line, "#   copy, one core:                %.2f GB/s\n", p.copyOneCore / 1e9);
  y << line;
  std::snprintf(line, sizeof line, "#   copy, %3d threads at once:     %.2f GB/s in all\n", p.ranks,
                p.copyAllRanks / 1e9);
  y << line;
  std::snprintf(line, sizeof line, "#   fused reduce, one core:        %.2f GB/s of output\n", p.reduceOneCore / 1e9);
  y << line;
  std::snprintf(line, sizeof line, "#   fused reduce, %3d at once:     %.2f GB/s in all\n", p.ranks,
                p.reduceAllRanks / 1e9);
  y << line;
  std::snprintf(line, sizeof line, "#   signal round trip, threads:    %.0f ns\n", p.threadRoundTripNs);
  y << line;
  if (p.processRoundTripNs > 0) {
    std::snprintf(line, sizeof line, "#   signal round trip, processes:  %.0f ns\n", p.processRoundTripNs);
    y << line;
  }
  std::snprintf(line, sizeof line, "#   per-op overhead:               %.1f ns\n", p.opOverheadNs);
  y << line;
  y << "name: probe-" << (p.hostName.empty() ? std::string("host") : p.hostName) << "\n";
  y << "description: this host (" << p.cores << " cores) measured by copro-topo probe, " << p.ranks
    << " ranks sharing its memory\n";
  y << "builder: graph\n";
  y << "nodes:\n";
  for (std::int32_t r = 0; r < p.ranks; ++r) {
    y << "  - {name: rank" << r << ", kind: gpu, host: 0, local: " << r
      << ", memory_bw: " << bandwidthText(p.copyAllRanks) << "}\n";
  }
  y << "  - {name: memory, kind: host, host: 0}\n";
  y << "links:\n";
  const std::string bw = bandwidthText(p.linkBandwidth());
  const std::string lat = timeText(p.linkLatencyNs());
  for (std::int32_t r = 0; r < p.ranks; ++r) {
    y << "  - {a: rank" << r << ", b: memory, kind: pcie, bw: " << bw << ", latency: " << lat << "}\n";
  }
  y << "sim:\n";
  y << "  routing: shortest\n";
  y << "  copy_bw: " << bw << "\n";
  y << "  reduce_bw: " << bandwidthText(p.reduceBandwidth()) << "\n";
  // The CPU executors read, add and write in one pass: the arithmetic overlaps the reads.
  y << "  reduce_streams: true\n";
  y << "  chunk_size: " << chunkBytes << "\n";
  const std::string issue = timeText(p.opOverheadNs);
  y << "  initiation: {device: {issue: " << issue << "}, proxy: {issue: " << issue << "}}\n";
  return y.str();
}

Fabric probeFabric(const ProbeResult& probe, std::uint64_t chunkBytes) {
  // Through the loader, so the fabric is exactly what the written file gives.
  char path[] = "/tmp/copro-probe-XXXXXX.yaml";
  const int fd = mkstemps(path, 5);
  if (fd < 0) throw Error(ErrorCode::kSystemError, "probe: cannot create a temporary file in /tmp");
  close(fd);
  {
    std::ofstream os(path);
    os << probeTopologyYaml(probe, chunkBytes);
  }
  try {
    Fabric f = loadTopology(path);
    std::remove(path);
    return f;
  } catch (...) {
    std::remove(path);
    throw;
  }
}

}  // namespace copro::topo
