// The shm backend: fork()ed processes run collectives through Communicator and check them against
// references (every rank can compute every rank's input); a rank killed mid-call makes the others fail
// naming it within COPRO_TIMEOUT and leaves nothing in /dev/shm; foreign handshakes do not disturb it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "copro/copro.hpp"
#include "copro/core/dtype.hpp"
// The transport headers are not public through copro::copro; the per-op observer is (bench/ uses it too).
#include "../../../transport/include/copro/transport/op_trace.hpp"
#include "mp_test_util.hpp"

namespace copro::testing {
namespace {

using core::DataType;
using core::ReduceOp;

constexpr std::uint32_t kSeed = 7321;

/// Like forkRanks, but child 0 creates the UniqueId and hands its bytes to the others through memory
/// mapped before the fork. The parent then never forks while the rendezvous thread runs: a thread that
/// holds an allocator lock at fork() leaves the child deadlocked (seen under AddressSanitizer).
ForkResult forkRanksSharingId(int n, const std::function<void(int, const UniqueId&)>& body, double timeoutSec) {
  struct Shared {
    std::atomic<int> ready{0};
    UniqueId id;
  };
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
  auto* shared = new (mem) Shared();
  const ForkResult res = forkRanks(
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

Config testConfig(const std::string& initiation = "device", double timeoutSec = 30) {
  Config c;
  c.timeoutSec = timeoutSec;
  c.initiation = initiation;
  return c;
}

/// Integer values in [-8, 8]: sums over up to 16 ranks are exact in float32 and bfloat16, whatever the
/// order of the reduction, so results are compared exactly.
double valueOf(std::uint32_t salt, int rank, std::uint64_t i) {
  return static_cast<double>((kSeed + salt * 977u + static_cast<std::uint64_t>(rank) * 131u + i * 7u) % 17u) - 8.0;
}

std::vector<std::uint8_t> makeBuffer(DataType t, std::uint64_t count) {
  return std::vector<std::uint8_t>(count * core::dataTypeSize(t) + 1);  // +1: never a null data() for 0
}

void fill(DataType t, void* buf, std::uint64_t count, std::uint32_t salt, int rank, std::uint64_t first = 0) {
  for (std::uint64_t i = 0; i < count; ++i) core::storeFromDouble(t, buf, i, valueOf(salt, rank, first + i));
}

const char* name(DataType t) {
  return t == DataType::kFloat32 ? "float32" : "bfloat16";
}

void checkAllReduce(Communicator& comm, const std::string& algo, DataType t, bool inPlace, std::uint64_t count,
                    std::uint32_t salt, bool useAlloc) {
  const int n = comm.size();
  const int r = comm.rank();
  const std::size_t bytes = count * core::dataTypeSize(t);
  std::vector<std::uint8_t> inV = makeBuffer(t, count);
  std::vector<std::uint8_t> outV = makeBuffer(t, count);
  void* in = inV.data();
  void* out = outV.data();
  if (useAlloc) {
    in = comm.allocate(bytes + 1);
    out = comm.allocate(bytes + 1);
  }
  fill(t, inPlace ? out : in, count, salt, r);
  CallOptions o;
  o.algorithm = algo;
  const Status st = comm.allReduce(inPlace ? out : in, out, count, t, ReduceOp::kSum, o).wait();
  CHILD_CHECK(st.ok(), "allreduce " << algo << " " << name(t) << ": " << st.toString());
  for (std::uint64_t i = 0; i < count; ++i) {
    double want = 0;
    for (int q = 0; q < n; ++q) want += valueOf(salt, q, i);
    const double got = core::loadAsDouble(t, out, i);
    CHILD_CHECK(got == want, "allreduce " << algo << " " << name(t) << (inPlace ? " in place" : "") << " n=" << n
                                          << " element " << i << ": got " << got << ", want " << want);
  }
  if (useAlloc) {
    comm.deallocate(in);
    comm.deallocate(out);
  }
}

void checkAllGather(Communicator& comm, DataType t, bool inPlace, std::uint64_t count, std::uint32_t salt) {
  const int n = comm.size();
  const int r = comm.rank();
  std::vector<std::uint8_t> in = makeBuffer(t, count);
  std::vector<std::uint8_t> out = makeBuffer(t, count * static_cast<std::uint64_t>(n));
  const std::size_t esize = core::dataTypeSize(t);
  void* mine = inPlace ? out.data() + count * esize * static_cast<std::size_t>(r) : in.data();
  fill(t, mine, count, salt, r);
  const Status st = comm.allGather(mine, out.data(), count, t).wait();
  CHILD_CHECK(st.ok(), "allgather: " << st.toString());
  for (int q = 0; q < n; ++q) {
    for (std::uint64_t i = 0; i < count; ++i) {
      const double got = core::loadAsDouble(t, out.data(), static_cast<std::uint64_t>(q) * count + i);
      CHILD_CHECK(got == valueOf(salt, q, i), "allgather block " << q << " element " << i << ": " << got);
    }
  }
}

void checkAllToAll(Communicator& comm, DataType t, std::uint64_t count, std::uint32_t salt) {
  const int n = comm.size();
  const int r = comm.rank();
  const auto total = count * static_cast<std::uint64_t>(n);
  std::vector<std::uint8_t> in = makeBuffer(t, total);
  std::vector<std::uint8_t> out = makeBuffer(t, total);
  fill(t, in.data(), total, salt, r);  // block q of rank r: elements q*count.. of r's pattern
  const Status st = comm.allToAll(in.data(), out.data(), count, t).wait();
  CHILD_CHECK(st.ok(), "alltoall: " << st.toString());
  for (int q = 0; q < n; ++q) {
    for (std::uint64_t i = 0; i < count; ++i) {
      const double got = core::loadAsDouble(t, out.data(), static_cast<std::uint64_t>(q) * count + i);
      const double want = valueOf(salt, q, static_cast<std::uint64_t>(r) * count + i);
      CHILD_CHECK(got == want, "alltoall from " << q << " element " << i << ": " << got << " want " << want);
    }
  }
}

void checkBroadcast(Communicator& comm, DataType t, std::uint64_t count, int root, std::uint32_t salt) {
  const int r = comm.rank();
  std::vector<std::uint8_t> buf = makeBuffer(t, count);
  if (r == root) fill(t, buf.data(), count, salt, root);
  const Status st = comm.broadcast(buf.data(), buf.data(), count, t, root).wait();
  CHILD_CHECK(st.ok(), "broadcast: " << st.toString());
  for (std::uint64_t i = 0; i < count; ++i) {
    CHILD_CHECK(core::loadAsDouble(t, buf.data(), i) == valueOf(salt, root, i), "broadcast element " << i);
  }
}

void checkSendRecv(Communicator& comm, std::uint64_t count, std::uint32_t salt) {
  const int n = comm.size();
  const int r = comm.rank();
  const DataType t = DataType::kFloat32;
  std::vector<std::uint8_t> out = makeBuffer(t, count);
  std::vector<std::uint8_t> in = makeBuffer(t, count);
  fill(t, out.data(), count, salt, r);
  comm.groupStart();
  comm.send(out.data(), count, t, (r + 1) % n);
  comm.recv(in.data(), count, t, (r + n - 1) % n);
  const Status st = comm.groupEnd().wait();
  CHILD_CHECK(st.ok(), "sendrecv: " << st.toString());
  const int prev = (r + n - 1) % n;
  for (std::uint64_t i = 0; i < count; ++i) {
    CHILD_CHECK(core::loadAsDouble(t, in.data(), i) == valueOf(salt, prev, i), "recv element " << i);
  }
}

/// The battery every configuration runs.
void runBattery(Communicator& comm, bool full) {
  std::uint32_t salt = 1;
  const std::vector<std::string> algos = {"ring", "rhd", "lsa", "oneshot"};
  for (const std::string& algo : algos) {
    for (DataType t : {DataType::kFloat32, DataType::kBfloat16}) {
      for (bool inPlace : {false, true}) {
        checkAllReduce(comm, algo, t, inPlace, full ? 4099 : 1031, salt++, false);
        if (!full) break;
      }
    }
  }
  // Allocated (shared) buffers: zero copy.
  checkAllReduce(comm, "lsa", DataType::kFloat32, false, 70001, salt++, true);
  checkAllReduce(comm, "ring", DataType::kBfloat16, true, 5003, salt++, true);
  for (bool inPlace : {false, true}) checkAllGather(comm, DataType::kFloat32, inPlace, 777, salt++);
  checkAllGather(comm, DataType::kBfloat16, false, 123, salt++);
  checkAllToAll(comm, DataType::kFloat32, 333, salt++);
  checkBroadcast(comm, DataType::kBfloat16, 1001, comm.size() - 1, salt++);
  const Status b = comm.barrier().wait();
  CHILD_CHECK(b.ok(), "barrier: " << b.toString());
  checkSendRecv(comm, 4097, salt++);
  // A large one, so the staged (CMA) reductions run over several blocks.
  checkAllReduce(comm, "lsa", DataType::kFloat32, false, 300000, salt++, false);
}

void runConfig(int n, const std::string& initiation, bool noCma, bool full) {
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Config config = testConfig(initiation);
        config.shmCma = !noCma;  // COPRO_SHM_CMA=0: every peer buffer staged through shared memory
        Communicator comm = createCommunicator("shm", id, r, n, config);
        CHILD_CHECK(comm.rank() == r && comm.size() == n && comm.backend() == "shm", "communicator");
        runBattery(comm, full);
      },
      120);
  EXPECT_TRUE(res.allZero()) << "n=" << n << " " << initiation << (noCma ? " staging" : "") << ": " << res.summary();
}

TEST(Shm, CollectivesTwoRanks) {
  runConfig(2, "device", false, true);
}
TEST(Shm, CollectivesThreeRanks) {
  runConfig(3, "device", false, true);
}
TEST(Shm, CollectivesFourRanks) {
  runConfig(4, "device", false, false);
}
TEST(Shm, CollectivesProxyInitiation) {
  runConfig(3, "proxy", false, false);
}
TEST(Shm, CollectivesStagingWithoutCrossMemoryAttach) {
  runConfig(3, "device", true, false);
}

TEST(Shm, EveryOpReachesThePerOpObserver) {
  // The one per-op trace interface (op_trace.hpp): shm lanes report each completed op, named "shm".
  const ForkResult res = forkRanksSharingId(
      2,
      [&](int r, const UniqueId& id) {
        std::atomic<int> ops{0};
        std::atomic<int> foreign{0};
        transport::setLaneOpObserver([&](const transport::LaneOpTiming& t) {
          if (std::string_view(t.backend) != "shm" || t.rank != r || t.op == nullptr || t.end < t.begin) ++foreign;
          ++ops;
        });
        Communicator comm = createCommunicator("shm", id, r, 2, testConfig());
        checkAllReduce(comm, "ring", DataType::kFloat32, false, 1000, 81, false);
        transport::setLaneOpObserver(nullptr);
        CHILD_CHECK(ops.load() > 0, "no op was traced");
        CHILD_CHECK(foreign.load() == 0, foreign.load() << " traced ops had a wrong backend, rank or time");
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Shm, SplitAndNodeIds) {
  const int n = 4;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        setenv("COPRO_NODE_ID", std::to_string(r / 2).c_str(), 1);
        Communicator comm = createCommunicator("shm", id, r, n, testConfig());
        const std::vector<int> nodes = comm.nodeOfRank();
        CHILD_CHECK(nodes == std::vector<int>({0, 0, 1, 1}), "nodeOfRank from COPRO_NODE_ID");
        // Even and odd ranks, reversed.
        Communicator sub = comm.split(r % 2, -r);
        CHILD_CHECK(sub.valid() && sub.size() == 2 && sub.rank() == (r < 2 ? 1 : 0), "split rank " << sub.rank());
        checkAllReduce(sub, "ring", DataType::kFloat32, false, 1000, 77, false);
        checkAllReduce(comm, "lsa", DataType::kFloat32, true, 1000, 78, false);  // the parent still works
        Communicator none = comm.split(r == 0 ? -1 : 0, r);
        CHILD_CHECK(r == 0 ? !none.valid() : (none.valid() && none.size() == 3), "split with color -1");
        if (none.valid()) checkAllReduce(none, "oneshot", DataType::kBfloat16, false, 999, 79, false);
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

/// Rank 2 dies inside an all-reduce of algorithm `algo`; ranks 0 and 1 must fail naming it within the
/// timeout, and no segment of the communicator may stay in /dev/shm.
void killTest(const std::string& algo, const std::string& initiation) {
  const int n = 3;
  const double timeoutSec = 5;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig(initiation, timeoutSec));
        // A normal call first, and an allocation on the victim, so there are data and allocation segments.
        checkAllReduce(comm, "ring", DataType::kFloat32, false, 100000, 5, false);
        void* keep = comm.allocate(1 << 20);
        (void)keep;
        std::vector<float> in(1 << 20, 1.0F);
        std::vector<float> out(in.size());
        if (r == 2) {
          // Enter the call (device mode enters in start()), then die without a word.
          CallOptions o;
          o.algorithm = algo;
          Request req = comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum, o);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          raise(SIGKILL);
        }
        // Join only after the victim died: on an idle machine the victim's proxy threads would otherwise
        // finish the whole call with us within its 20 ms, and nothing would fail.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const auto begin = std::chrono::steady_clock::now();
        CallOptions o;
        o.algorithm = algo;
        const Status st =
            comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum, o).wait();
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        CHILD_CHECK(!st.ok(), "the call must fail when a peer is killed");
        CHILD_CHECK(st.message().find("rank 2") != std::string::npos, "error must name rank 2: " << st.toString());
        CHILD_CHECK(took < timeoutSec, "took " << took << " s");
        std::fprintf(stderr, "[rank %d] after %.3f s: %s\n", r, took, st.toString().c_str());
      },
      60);
  ASSERT_EQ(res.codes.size(), 3U);
  EXPECT_EQ(res.codes[0], 0) << algo << " " << initiation << ": " << res.summary();
  EXPECT_EQ(res.codes[1], 0) << algo << " " << initiation << ": " << res.summary();
  EXPECT_EQ(res.codes[2], 128 + SIGKILL) << res.summary();
  const std::string prefix = "copro-" + std::to_string(res.pids[0]) + "-";
  const std::vector<std::string> left = shmEntries(prefix);
  std::string names;
  for (const auto& s : left) names += s + " ";
  EXPECT_TRUE(left.empty()) << "left in /dev/shm: " << names;
}

TEST(Shm, KilledRankIsNamedAndNothingLeaksLsa) {
  killTest("lsa", "device");  // peers reach the victim's buffers through Cross Memory Attach
}
TEST(Shm, KilledRankIsNamedAndNothingLeaksRing) {
  killTest("ring", "device");  // peers wait on semaphores: the liveness check finds the victim
}
TEST(Shm, KilledRankIsNamedAndNothingLeaksProxy) {
  killTest("ring", "proxy");
}

/// Rank 2 stops (SIGSTOP) inside an all-reduce: ranks 0 and 1 must fail naming it as stopped within the
/// timeout, return from the call and from the communicator's destruction within 2 x timeout (not spin in
/// the drain of accessors), and leave no segment in /dev/shm; rank 0 then kills the stopped rank.
void stopTest(const std::string& algo) {
  const int n = 3;
  const double timeoutSec = 1;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        std::vector<std::int32_t> pids(static_cast<std::size_t>(n), 0);
        const auto begin = std::chrono::steady_clock::now();
        Status st;
        {
          Communicator comm = createCommunicator("shm", id, r, n, testConfig("device", timeoutSec));
          pids[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(getpid());
          CHILD_CHECK(
              comm.allReduce(pids.data(), pids.data(), pids.size(), DataType::kInt32, ReduceOp::kSum).wait().ok(),
              "pid exchange");
          std::vector<float> in(1 << 20, 1.0F);
          std::vector<float> out(in.size());
          CallOptions o;
          o.algorithm = algo;
          if (r == 2) {
            Request req = comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum, o);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            raise(SIGSTOP);
            std::_Exit(3);  // resumed: only SIGKILL is expected
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          st = comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum, o).wait();
        }
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        std::fprintf(stderr, "[rank %d] call and teardown after %.3f s: %s\n", r, took, st.toString().c_str());
        if (r == 0) kill(pids[2], SIGKILL);
        CHILD_CHECK(!st.ok(), "the call must fail when a peer is stopped");
        CHILD_CHECK(st.message().find("rank 2") != std::string::npos, "error must name rank 2: " << st.toString());
        CHILD_CHECK(st.message().find("stopped") != std::string::npos, "error must say stopped: " << st.toString());
        CHILD_CHECK(took < 2 * timeoutSec + 0.5, "took " << took << " s");
      },
      30);
  ASSERT_EQ(res.codes.size(), 3U);
  EXPECT_EQ(res.codes[0], 0) << algo << ": " << res.summary();
  EXPECT_EQ(res.codes[1], 0) << algo << ": " << res.summary();
  EXPECT_EQ(res.codes[2], 128 + SIGKILL) << res.summary();
  const std::vector<std::string> left = shmEntries("copro-" + std::to_string(res.pids[0]) + "-");
  std::string names;
  for (const auto& s : left) names += s + " ";
  EXPECT_TRUE(left.empty()) << "left in /dev/shm: " << names;
}

TEST(Shm, StoppedRankIsNamedAndSurvivorsReturnInTimeLsa) {
  stopTest("lsa");  // the victim may stop inside an access to a peer's memory
}
TEST(Shm, StoppedRankIsNamedAndSurvivorsReturnInTimeRing) {
  stopTest("ring");
}

TEST(Shm, AbortReleasesAStuckRank) {
  const int n = 2;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig("device", 30));
        if (r == 1) {
          // Rank 1 never joins the collective; it only waits until rank 0 is done.
          std::this_thread::sleep_for(std::chrono::milliseconds(600));
          return;
        }
        std::thread aborter([&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          comm.abort();
        });
        std::vector<float> in(1000, 1.0F);
        std::vector<float> out(1000);
        const auto begin = std::chrono::steady_clock::now();
        const Status st = comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum).wait();
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        aborter.join();
        CHILD_CHECK(st.code() == ErrorCode::kAborted, st.toString());
        CHILD_CHECK(took < 5, "abort took " << took << " s");
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Shm, TimeoutNamesTheMissingRank) {
  const int n = 3;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig("device", 0.5));
        if (r == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
          return;
        }
        std::vector<float> in(1000, 1.0F);
        std::vector<float> out(1000);
        const Status st = comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum).wait();
        CHILD_CHECK(!st.ok(), "must fail");
        // The first rank to time out names rank 1; the other may instead learn nothing more (its call
        // times out too) — both name rank 1.
        CHILD_CHECK(st.message().find("rank 1") != std::string::npos, st.toString());
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Shm, ForeignHandshakeDoesNotDisturbCreation) {
  const int n = 2;
  const UniqueId id = getUniqueId();
  UniqueId forged = id;
  for (int i = 16; i < 32; ++i) forged.internal[static_cast<std::size_t>(i)] ^= 0xa5;
  std::thread intruder([&] {
    try {
      Config c = testConfig("device", 2);
      auto bs = createBootstrap(forged, 1, n, c);
    } catch (const Error&) {
      // expected
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const ForkResult res = forkRanks(
      n,
      [&](int r) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig());
        checkAllReduce(comm, "ring", DataType::kFloat32, false, 4096, 3, false);
      },
      60);
  intruder.join();
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Shm, NoSegmentsLeftAfterNormalTeardown) {
  const int n = 2;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig());
        checkAllReduce(comm, "lsa", DataType::kFloat32, false, 4096, 9, true);
        void* leakedByUser = comm.allocate(4096);  // never deallocated: its name still goes at teardown
        (void)leakedByUser;
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
  EXPECT_TRUE(shmEntries("copro-" + std::to_string(res.pids[0]) + "-").empty());
}

TEST(Shm, SegmentsAreUnlinkedOnceEveryRankMappedThem) {
  // Nothing is left to leak when a process dies: after a call on allocate()d buffers, the names of the
  // data and allocation segments are gone while the communicator still works.
  const int n = 3;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig());
        const std::size_t count = 1 << 16;
        auto* in = static_cast<float*>(comm.allocate(count * sizeof(float)));
        auto* out = static_cast<float*>(comm.allocate(count * sizeof(float)));
        for (int k = 0; k < 3; ++k) {
          std::fill(in, in + count, static_cast<float>(r + k));
          CHILD_CHECK(comm.allReduce(in, out, count, DataType::kFloat32, ReduceOp::kSum).wait().ok(), "call " << k);
          CHILD_CHECK(out[count - 1] == static_cast<float>(3 * k + 3), "wrong sum " << out[count - 1]);
        }
        std::int32_t token = 0;
        CHILD_CHECK(comm.allReduce(&token, &token, 1, DataType::kInt32, ReduceOp::kSum).wait().ok(), "barrier");
        if (r == 0) {
          // The last rank to map a segment unlinks it, possibly just after rank 0 has left the barrier:
          // give the names a moment to go.
          std::vector<std::string> left = shmEntries("copro-" + std::to_string(getpid()) + "-");
          for (int wait = 0; wait < 200 && !left.empty(); ++wait) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            left = shmEntries("copro-" + std::to_string(getpid()) + "-");
          }
          std::string names;
          for (const auto& e : left) names += e + " ";
          CHILD_CHECK(left.empty(), "still named in /dev/shm: " << names);
        }
        CHILD_CHECK(comm.allReduce(&token, &token, 1, DataType::kInt32, ReduceOp::kSum).wait().ok(), "barrier");
        comm.deallocate(in);
        comm.deallocate(out);
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Shm, LLOnlyCallsAlternateWithCallsThatPublishBuffers) {
  // An LL-only call (oneshot_ll, at most COPRO_LL_MAX_BYTES) publishes no buffers and reuses the last call's
  // object and lanes; calls that publish (64 KiB, not LL) come between them, on fresh buffers each time, in
  // and out of place. Every result is checked.
  const int n = 2;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig());
        for (int k = 0; k < 60; ++k) {
          const std::size_t count = (k % 3 == 2) ? 16384 : static_cast<std::size_t>(1 + k % 7);
          const bool inPlace = (k % 4) == 1;
          std::vector<float> in(count);
          std::vector<float> out(count, -100.0F);
          for (std::size_t i = 0; i < count; ++i)
            in[i] = static_cast<float>((r + 1) * (k + 1) + static_cast<int>(i % 5));
          const float* send = inPlace ? out.data() : in.data();
          if (inPlace) out = in;
          const Status st = comm.allReduce(send, out.data(), count, DataType::kFloat32, ReduceOp::kSum).wait();
          CHILD_CHECK(st.ok(), "call " << k << ": " << st.toString());
          for (std::size_t i = 0; i < count; ++i) {
            const float want = static_cast<float>(3 * (k + 1) + 2 * static_cast<int>(i % 5));
            CHILD_CHECK(out[i] == want, "call " << k << " element " << i << ": " << out[i] << ", want " << want);
          }
          if (k % 3 != 2)
            CHILD_CHECK(comm.lastProgramName() == "allreduce.oneshot_ll",
                        "call " << k << ": " << comm.lastProgramName());
        }
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Shm, APeerRunningAnotherProgramThanAnLLOnlyCallFailsClearly) {
  // Rank 0 runs oneshot_ll (LL-only: it publishes no buffers), rank 1 the simple oneshot for the same call:
  // rank 1's put finds no buffer at rank 0 and says so, and rank 0 learns of it; neither waits the timeout.
  const int n = 2;
  const double timeoutSec = 20;
  const ForkResult res = forkRanksSharingId(
      n,
      [&](int r, const UniqueId& id) {
        Communicator comm = createCommunicator("shm", id, r, n, testConfig("device", timeoutSec));
        std::vector<float> in(2, 1.0F);
        std::vector<float> out(2);
        CallOptions o;
        o.algorithm = r == 0 ? "oneshot_ll" : "oneshot";
        const auto begin = std::chrono::steady_clock::now();
        const Status st =
            comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum, o).wait();
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        CHILD_CHECK(!st.ok(), "rank " << r << ": the mismatched call must fail");
        CHILD_CHECK(took < timeoutSec / 2, "rank " << r << " took " << took << " s: " << st.toString());
        if (r == 1) {
          CHILD_CHECK(st.message().find("published no buffers") != std::string::npos, st.toString());
        } else {
          CHILD_CHECK(st.message().find("rank 1") != std::string::npos, st.toString());
        }
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Shm, NeedsABootstrap) {
  registerBuiltinBackends();
  core::ExecutorOptions o;
  o.nranks = 2;
  try {
    (void)core::ExecutorRegistry::instance().create("shm", o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bootstrap"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace copro::testing
