// Per-lane initiation on the real executors (docs/initiation.md): inproc and shm run `device` lanes on the
// caller's thread and `proxy`/`offload` lanes on progress threads, in one call; a device lane waits for a
// proxy lane's signal and vice versa; timeouts, aborts and an oversubscribed machine still behave; the
// Communicator's COPRO_INITIATION_SCALEUP/SCALEOUT reach the lanes of hierarchical, ring and all-to-all
// Programs over virtual nodes.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/copro.hpp"
// The transport headers are not public through copro::copro; the observer is (bench/ uses it too).
#include "../../../transport/include/copro/transport/inproc.hpp"
#include "inproc_test_util.hpp"
#include "mp_test_util.hpp"

namespace copro::transport::testing {
namespace {

using core::ErrorCode;
using core::Initiation;
using core::Status;

const char* modeName(Initiation m) {
  return core::initiationName(m).data();
}

/// A ring over `n` ranks whose two lanes depend on each other across modes. Rank r, next = r+1, prev = r-1:
///   lane 0 (`first`):  put input -> next.output[0, B) with signal sem0; wait sem1 >= 1; wait sem2 >= 1;
///                      copy output[B, 2B) -> output[2B, 3B)
///   lane 1 (`second`): wait sem0 >= 1; put output[0, B) -> next.output[B, 2B) with signal sem1;
///                      signal own sem2
/// So lane 0 waits for the peer's lane 1 and for its own lane 1, lane 1 waits for the peer's lane 0.
/// Afterwards output = [input(r-1), input(r-2), input(r-2)].
std::shared_ptr<const core::Program> crossModeRing(int n, std::uint64_t block, Initiation first, Initiation second) {
  core::ProgramHeader h = makeHeader("test.crossmode", n, 3, block, 3 * block);
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    core::RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    const int next = (r + 1) % n;
    rp.addLane(first);
    rp.addLane(second);
    rp.emit(0, Op::put(next, on(next, BufferId::kOutput, 0), self(BufferId::kInput), block, 0));
    rp.emit(0, Op::wait(1, 1));
    rp.emit(0, Op::wait(2, 1));
    rp.emit(0, Op::copy(self(BufferId::kOutput, 2 * block), self(BufferId::kOutput, block), block));
    rp.emit(1, Op::wait(0, 1));
    rp.emit(1, Op::put(next, on(next, BufferId::kOutput, block), self(BufferId::kOutput, 0), block, 1));
    rp.emit(1, Op::signal(r, 2));
  }
  return std::make_shared<core::Program>(h, std::move(ranks));
}

/// Records which thread ran each (rank, lane).
class ThreadRecorder {
 public:
  ThreadRecorder() {
    setInprocOpObserver([this](const InprocOpTiming& t) {
      std::lock_guard<std::mutex> lock(mutex_);
      seen_[{t.rank, t.lane}].insert(std::this_thread::get_id());
    });
  }
  ~ThreadRecorder() { setInprocOpObserver(nullptr); }
  ThreadRecorder(const ThreadRecorder&) = delete;
  ThreadRecorder& operator=(const ThreadRecorder&) = delete;
  std::set<std::thread::id> threads(int rank, int lane) {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_[{rank, lane}];
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<int, int>, std::set<std::thread::id>> seen_;
};

struct ModePair {
  Initiation first;
  Initiation second;
};

class InprocMixedLanes : public ::testing::TestWithParam<ModePair> {};

TEST_P(InprocMixedLanes, CrossModeWaitsCompleteWithTheRightDataOnTheRightThreads) {
  const ModePair m = GetParam();
  std::mt19937 rng(testSeed(4242));
  for (int n : {2, 5}) {
    SCOPED_TRACE("ranks " + std::to_string(n));
    auto execs = makeExecutors(n, testConfig("device"));
    const std::uint64_t block = 777;
    auto prog = crossModeRing(n, block, m.first, m.second);
    ThreadRecorder rec;
    std::vector<std::set<std::thread::id>> callers(static_cast<std::size_t>(n));  // one thread per call
    for (int call = 0; call < 3; ++call) {  // back-to-back calls: epochs advance across modes
      std::vector<std::vector<std::uint8_t>> in(static_cast<std::size_t>(n)), out(static_cast<std::size_t>(n));
      for (int r = 0; r < n; ++r) {
        in[static_cast<std::size_t>(r)] = randomBytes(block, rng);
        out[static_cast<std::size_t>(r)].assign(3 * block, 0xEE);
      }
      const auto st = onEveryRank(n, [&](int r) {
        callers[static_cast<std::size_t>(r)].insert(std::this_thread::get_id());
        core::CallBuffers b;
        b.input = in[static_cast<std::size_t>(r)].data();
        b.output = out[static_cast<std::size_t>(r)].data();
        return runCall(*execs[static_cast<std::size_t>(r)], prog, b);
      });
      for (int r = 0; r < n; ++r) {
        ASSERT_TRUE(st[static_cast<std::size_t>(r)].ok()) << st[static_cast<std::size_t>(r)].toString();
        const auto& o = out[static_cast<std::size_t>(r)];
        const auto& p1 = in[static_cast<std::size_t>((r + n - 1) % n)];
        const auto& p2 = in[static_cast<std::size_t>((r + n - 2) % n)];
        ASSERT_EQ(0, std::memcmp(o.data(), p1.data(), block)) << "rank " << r << " call " << call;
        ASSERT_EQ(0, std::memcmp(o.data() + block, p2.data(), block)) << "rank " << r << " call " << call;
        ASSERT_EQ(0, std::memcmp(o.data() + 2 * block, p2.data(), block)) << "rank " << r << " call " << call;
      }
    }
    // Device lanes ran on the caller's thread only; the others never did, and proxy and offload lanes ran
    // on different threads (their own pools).
    std::set<std::thread::id> proxyThreads;
    std::set<std::thread::id> offloadThreads;
    for (int r = 0; r < n; ++r) {
      for (int lane = 0; lane < 2; ++lane) {
        const Initiation mode = lane == 0 ? m.first : m.second;
        const auto ts = rec.threads(r, lane);
        ASSERT_FALSE(ts.empty()) << "rank " << r << " lane " << lane;
        const auto& mine = callers[static_cast<std::size_t>(r)];
        int onCaller = 0;
        for (const auto& t : ts) onCaller += static_cast<int>(mine.count(t));
        if (mode == Initiation::kDevice) {
          EXPECT_EQ(onCaller, static_cast<int>(ts.size())) << "rank " << r << " device lane " << lane;
        } else {
          EXPECT_EQ(onCaller, 0) << "rank " << r << " " << modeName(mode) << " lane " << lane;
          (mode == Initiation::kProxy ? proxyThreads : offloadThreads).insert(ts.begin(), ts.end());
        }
      }
    }
    for (const auto& t : proxyThreads) EXPECT_EQ(offloadThreads.count(t), 0U) << "a thread ran proxy and offload lanes";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, InprocMixedLanes,
                         ::testing::Values(ModePair{Initiation::kDevice, Initiation::kProxy},
                                           ModePair{Initiation::kProxy, Initiation::kDevice},
                                           ModePair{Initiation::kDevice, Initiation::kOffload},
                                           ModePair{Initiation::kOffload, Initiation::kProxy}),
                         [](const ::testing::TestParamInfo<ModePair>& i) {
                           return std::string(modeName(i.param.first)) + "_" + modeName(i.param.second);
                         });

TEST(InprocMixedLanes, ConfigProxyStillRunsUnchosenLanesOnProgressThreads) {
  // COPRO_INITIATION=proxy (no per-scale modes): a Program of device lanes runs on the progress threads,
  // so one thread may start every rank before waiting (as before lanes carried a mode).
  const int n = 3;
  auto execs = makeExecutors(n, testConfig("proxy"));
  const std::uint64_t block = 100;
  auto prog = crossModeRing(n, block, Initiation::kDevice, Initiation::kDevice);
  std::mt19937 rng(testSeed(77));
  std::vector<std::vector<std::uint8_t>> in(n), out(n);
  std::vector<std::unique_ptr<core::CallHandle>> handles(n);
  for (int r = 0; r < n; ++r) {
    in[r] = randomBytes(block, rng);
    out[r].assign(3 * block, 0);
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    ASSERT_TRUE(execs[r]->start(prog, b, handles[r]).ok());
  }
  for (int r = 0; r < n; ++r) {
    const Status st = handles[r]->wait();
    ASSERT_TRUE(st.ok()) << st.toString();
    EXPECT_EQ(0, std::memcmp(out[r].data(), in[(r + n - 1) % n].data(), block)) << "rank " << r;
  }
}

TEST(InprocMixedLanes, ABlockedProxyLaneTimesOutTheCall) {
  // Lane 0 (device) finishes; lane 1 (proxy) waits for a signal nobody sends.
  const int n = 2;
  auto execs = makeExecutors(n, testConfig("device", 0.3));
  core::ProgramHeader h = makeHeader("test.stuck", n, 2, 8, 8);
  std::vector<core::RankProgram> ranks(n);
  for (int r = 0; r < n; ++r) {
    ranks[r].addLane(Initiation::kDevice);
    ranks[r].addLane(Initiation::kProxy);
    ranks[r].emit(0, Op::copy(self(BufferId::kOutput), self(BufferId::kInput), 8));
    ranks[r].emit(1, Op::wait(1, 1));
  }
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  std::vector<std::vector<std::uint8_t>> in(n, std::vector<std::uint8_t>(8, 1)), out(n, std::vector<std::uint8_t>(8));
  const auto t0 = std::chrono::steady_clock::now();
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*execs[r], prog, b);
  });
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(st[r].code(), ErrorCode::kTimeout) << st[r].toString();
    EXPECT_NE(st[r].message().find("timed out after 0.3 s"), std::string::npos) << st[r].message();
  }
  EXPECT_LT(took, 3.0);
}

TEST(InprocMixedLanes, AbortedPeerFailsAMixedCallFast) {
  const int n = 3;
  auto execs = makeExecutors(n, testConfig("device", 60.0));
  auto prog = crossModeRing(n, 64, Initiation::kDevice, Initiation::kProxy);
  std::vector<std::vector<std::uint8_t>> in(n, std::vector<std::uint8_t>(64)), out(n, std::vector<std::uint8_t>(192));
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    execs[0]->abort();
  });
  const auto t0 = std::chrono::steady_clock::now();
  const auto st = onEveryRank(n, [&](int r) {
    if (r == 0) return Status();  // rank 0 never calls; it is aborted instead
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*execs[r], prog, b);
  });
  aborter.join();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  for (int r = 1; r < n; ++r) {
    EXPECT_EQ(st[r].code(), ErrorCode::kRemoteError) << st[r].toString();
    EXPECT_NE(st[r].message().find("rank 0"), std::string::npos) << st[r].message();
  }
}

TEST(InprocMixedLanes, SixteenRanksWaitingForALateRankDoNotBurnTheCpu) {
  // 16 ranks (threads) plus the progress pools on a small machine: while everyone waits 200 ms for rank 0,
  // the process must sleep, not spin.
  const int n = 16;
  core::Config c = testConfig("device");
  c.threads = 2;
  auto execs = makeExecutors(n, c);
  const std::uint64_t block = 256;
  auto prog = crossModeRing(n, block, Initiation::kDevice, Initiation::kProxy);
  std::vector<std::vector<std::uint8_t>> in(n, std::vector<std::uint8_t>(block, 3)),
      out(n, std::vector<std::uint8_t>(3 * block));
  timespec c0{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  const auto w0 = std::chrono::steady_clock::now();
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return runCall(*execs[r], prog, b);
  });
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  timespec c1{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  const double cpu = static_cast<double>(c1.tv_sec - c0.tv_sec) + 1e-9 * static_cast<double>(c1.tv_nsec - c0.tv_nsec);
  for (int r = 0; r < n; ++r) ASSERT_TRUE(st[r].ok()) << st[r].toString();
  std::printf("16 ranks, device+proxy lanes: wall %.3f s, cpu %.3f s\n", wall, cpu);
  EXPECT_LT(cpu, 0.5 * wall + 0.05);
}

// ---------------------------------------------------------------------------------------------------------
// Collectives over virtual nodes with COPRO_INITIATION_SCALEUP=device, COPRO_INITIATION_SCALEOUT=proxy.

core::Config scaleConfig(const std::string& up, const std::string& out) {
  core::Config c = testConfig("device");
  c.initiationScaleUp = up;
  c.initiationScaleOut = out;
  return c;
}

/// Builds the Program a Communicator with `nodes` and the modes would run and counts its lanes by mode.
std::map<Initiation, int> laneModes(collectives::CollectiveKind kind, const char* algo, std::uint64_t count,
                                    const std::vector<int>& nodes) {
  collectives::CollectiveArgs a;
  a.kind = kind;
  a.nranks = static_cast<std::int32_t>(nodes.size());
  a.count = count;
  a.nodeOfRank = nodes;
  a.scaleUpInitiation = Initiation::kDevice;
  a.scaleOutInitiation = Initiation::kProxy;
  auto prog = collectives::buildProgram(a, algo);
  std::map<Initiation, int> modes;
  for (int r = 0; r < a.nranks; ++r) {
    for (int l = 0; l < prog->numLanes(r); ++l) ++modes[prog->laneInitiation(r, l)];
  }
  return modes;
}

TEST(InprocOpTrace, LaneObserverSeesInprocOpsAndTheInprocFilterKeepsThem) {
  std::atomic<int> lane{0};
  std::atomic<int> inprocOnly{0};
  setLaneOpObserver([&](const LaneOpTiming& t) {
    if (std::string_view(t.backend) == "inproc" && t.op != nullptr && t.count >= 1) ++lane;
  });
  auto comms = createInproc(2, testConfig("device"));
  std::vector<float> in(64, 1.0F), out0(64), out1(64);
  auto run = [&] {
    const auto st = onEveryRank(2, [&](int r) {
      return comms[r]
          .allReduce(in.data(), r == 0 ? out0.data() : out1.data(), 64, DataType::kFloat32, ReduceOp::kSum)
          .wait();
    });
    for (const Status& s : st) ASSERT_TRUE(s.ok()) << s.toString();
  };
  run();
  EXPECT_GT(lane.load(), 0);
  setInprocOpObserver([&](const InprocOpTiming&) { ++inprocOnly; });
  run();
  setInprocOpObserver(nullptr);
  EXPECT_GT(inprocOnly.load(), 0);
}

TEST(InprocScaleInitiation, BadModeIsAnErrorNamingTheVariable) {
  // The Communicator parses the modes once, at creation; a value that names no mode is not dropped.
  try {
    auto comms = createInproc(2, scaleConfig("sideways", ""), {0, 1});
    FAIL() << "a bad COPRO_INITIATION_SCALEUP was accepted";
  } catch (const core::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("COPRO_INITIATION_SCALEUP='sideways'"), std::string::npos) << e.what();
  }
}

TEST(InprocScaleInitiation, HierRingAndAllToAllOverVirtualNodes) {
  const std::vector<int> nodes = {0, 0, 0, 1, 1, 1};
  const int n = static_cast<int>(nodes.size());
  auto comms = createInproc(n, scaleConfig("device", "proxy"), nodes);
  const std::uint64_t count = 96 * 7 + 5;
  std::mt19937 rng(testSeed(99));
  for (const char* algo : {"hier", "ring"}) {
    SCOPED_TRACE(algo);
    const auto modes = laneModes(collectives::CollectiveKind::kAllReduce, algo, count, nodes);
    EXPECT_GT(modes.count(Initiation::kProxy) ? modes.at(Initiation::kProxy) : 0, 0);
    // Ring lanes inside a node are device lanes; hier composes its phases in one lane per rank, which
    // reaches the other node.
    if (std::string(algo) == "ring") {
      EXPECT_GT(modes.count(Initiation::kDevice) ? modes.at(Initiation::kDevice) : 0, 0);
    }
    std::vector<std::vector<float>> in(n), out(n);
    std::vector<float> expect(count, 0.0F);
    for (int r = 0; r < n; ++r) {
      in[r] = randomInts(count, rng);
      out[r].assign(count, 0.0F);
      for (std::uint64_t i = 0; i < count; ++i) expect[i] += in[r][i];
    }
    const auto st = onEveryRank(n, [&](int r) {
      CallOptions o;
      o.algorithm = algo;
      return comms[r].allReduce(in[r].data(), out[r].data(), count, DataType::kFloat32, ReduceOp::kSum, o).wait();
    });
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(st[r].ok()) << st[r].toString();
      EXPECT_EQ(out[r], expect) << "rank " << r;
      EXPECT_NE(comms[r].lastProgramName().find(algo), std::string::npos) << comms[r].lastProgramName();
    }
  }
  for (const char* algo : {"pairwise", "hier"}) {
    SCOPED_TRACE(std::string("alltoall ") + algo);
    const std::uint64_t per = 37;
    const auto modes = laneModes(collectives::CollectiveKind::kAllToAll, algo, per, nodes);
    EXPECT_GT(modes.count(Initiation::kProxy) ? modes.at(Initiation::kProxy) : 0, 0);
    std::vector<std::vector<float>> in(n), out(n);
    for (int r = 0; r < n; ++r) {
      in[r] = randomInts(per * static_cast<std::uint64_t>(n), rng);
      out[r].assign(per * static_cast<std::uint64_t>(n), -1.0F);
    }
    const auto st = onEveryRank(n, [&](int r) {
      CallOptions o;
      o.algorithm = algo;
      return comms[r].allToAll(in[r].data(), out[r].data(), per, DataType::kFloat32, o).wait();
    });
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(st[r].ok()) << st[r].toString();
      for (int q = 0; q < n; ++q) {
        for (std::uint64_t i = 0; i < per; ++i) {
          ASSERT_EQ(out[r][q * per + i], in[q][r * per + i]) << "rank " << r << " from " << q << " element " << i;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// shm: forked processes, two virtual nodes, device scale-up and proxy/offload scale-out lanes.

/// Child 0 creates the unique id (the parent never forks while a rendezvous thread runs; see
/// shm_test.cpp) and hands it to the others through memory mapped before the fork.
copro::testing::ForkResult forkSharingId(int n, const std::function<void(int, const UniqueId&)>& body,
                                         double timeoutSec) {
  struct Shared {
    std::atomic<int> ready{0};
    UniqueId id;
  };
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
  auto* shared = new (mem) Shared();
  auto res = copro::testing::forkRanks(
      n,
      [&](int r) {
        if (r == 0) {
          shared->id = getUniqueId();
          shared->ready.store(1, std::memory_order_release);
        } else {
          const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutSec);
          while (shared->ready.load(std::memory_order_acquire) == 0) {
            CHILD_CHECK(std::chrono::steady_clock::now() < deadline, "rank 0 never published the unique id");
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }
        const UniqueId id = shared->id;
        body(r, id);
      },
      timeoutSec);
  shared->~Shared();
  munmap(mem, sizeof(Shared));
  return res;
}

void shmMixedRun(const std::string& up, const std::string& out) {
  const int n = 4;
  const auto res = forkSharingId(
      n,
      [&](int r, const UniqueId& id) {
        core::Config c = scaleConfig(up, out);
        c.nodeMap = "0,0,1,1";
        Communicator comm = createCommunicator("shm", id, r, n, c);
        CHILD_CHECK(comm.nodeOfRank() == std::vector<int>({0, 0, 1, 1}), "node map not applied");
        const std::uint64_t count = 1001;
        for (const char* algo : {"hier", "ring"}) {
          std::vector<float> in(count), sum(count);
          for (std::uint64_t i = 0; i < count; ++i)
            in[i] = static_cast<float>((i * 7 + static_cast<std::uint64_t>(r)) % 13);
          const Status st =
              comm.allReduce(in.data(), sum.data(), count, DataType::kFloat32, ReduceOp::kSum, CallOptions{algo})
                  .wait();
          CHILD_CHECK(st.ok(), algo << ": " << st.toString());
          for (std::uint64_t i = 0; i < count; ++i) {
            float want = 0;
            for (int q = 0; q < n; ++q) want += static_cast<float>((i * 7 + static_cast<std::uint64_t>(q)) % 13);
            CHILD_CHECK(sum[i] == want, algo << " element " << i << ": got " << sum[i] << ", want " << want);
          }
        }
        const std::uint64_t per = 33;
        std::vector<float> in(per * n), got(per * n);
        for (std::uint64_t i = 0; i < per * n; ++i) in[i] = static_cast<float>(r * 1000) + static_cast<float>(i);
        const Status st = comm.allToAll(in.data(), got.data(), per, DataType::kFloat32).wait();
        CHILD_CHECK(st.ok(), "alltoall: " << st.toString());
        for (int q = 0; q < n; ++q) {
          for (std::uint64_t i = 0; i < per; ++i) {
            const float want =
                static_cast<float>(q * 1000) + static_cast<float>(static_cast<std::uint64_t>(r) * per + i);
            CHILD_CHECK(got[q * per + i] == want, "alltoall from " << q << " element " << i);
          }
        }
      },
      60.0);
  EXPECT_TRUE(res.allZero()) << up << "/" << out << ": " << res.summary();
}

TEST(ShmScaleInitiation, DeviceScaleUpProxyScaleOut) {
  shmMixedRun("device", "proxy");
}

TEST(ShmScaleInitiation, ProxyScaleUpOffloadScaleOut) {
  shmMixedRun("proxy", "offload");
}

}  // namespace
}  // namespace copro::transport::testing
