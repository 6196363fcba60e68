// Virtual-node backends under mpirun (ctest label `mp`, 4 processes): "shm+ucx" and "shm+mpi" on two
// virtual nodes of two ranks each (node maps 0,0,1,1 and 0,1,0,1). Intra-node peers go over UCX shared
// memory, inter-node peers over UCX/TCP or MPI; the hierarchical algorithms and the ring all-reduce are
// checked against references every rank computes itself, the per-sub-transport byte counters show that
// both carried traffic, and one semaphore that receives signals over both transports in one call counts
// them all (docs/virtual-nodes.md).
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "copro/copro_mpi.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/program.hpp"
#include "copro/transport/mpi.hpp"
#include "copro/transport/vnode.hpp"
#include "mp_abort_on_failure.hpp"

namespace {

using copro::Communicator;
using copro::DataType;
using copro::ReduceOp;
namespace core = copro::core;

int worldRank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int worldSize() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

constexpr std::uint32_t kSeed = 20261129;

/// Input element i of rank r (small integers: float sums are exact in any order).
float inputValue(int r, std::uint64_t i, std::uint32_t salt) {
  const std::uint64_t h = (kSeed + salt * 7919ULL + static_cast<std::uint64_t>(r) * 131ULL + i * 7ULL) % 17ULL;
  return static_cast<float>(static_cast<int>(h) - 8);
}

struct Setup {
  std::string backend;
  std::string nodeMap;
};

void PrintTo(const Setup& s, std::ostream* os) {
  *os << s.backend << " nodes " << s.nodeMap;
}

std::string setupName(const ::testing::TestParamInfo<Setup>& info) {
  std::string s = info.param.backend + "_" + info.param.nodeMap;
  for (char& c : s) {
    if (c == ',' || c == '+') c = '_';
  }
  return s;
}

copro::Config configFor(const Setup& s) {
  copro::Config config = copro::Config::fromEnvironment();
  config.timeoutSec = 30;  // a broken backend fails the test instead of hanging it
  config.nodeMap = s.nodeMap;
  return config;
}

std::map<std::string, std::unique_ptr<Communicator>>& cache() {
  static std::map<std::string, std::unique_ptr<Communicator>> c;
  return c;
}

Communicator& communicatorFor(const Setup& s) {
  const std::string key = s.backend + "/" + s.nodeMap;
  auto it = cache().find(key);
  if (it == cache().end()) {
    auto c = std::make_unique<Communicator>(copro::createFromMpi(MPI_COMM_WORLD, s.backend, configFor(s)));
    it = cache().emplace(key, std::move(c)).first;
  }
  return *it->second;
}

class VirtualNodes : public ::testing::TestWithParam<Setup> {
 protected:
  void SetUp() override {
    if (worldSize() != 4) GTEST_SKIP() << "needs 4 processes";
    comm_ = &communicatorFor(GetParam());
  }
  Communicator* comm_ = nullptr;
};

TEST_P(VirtualNodes, BackendAndNodes) {
  EXPECT_EQ(comm_->backend(), GetParam().backend);
  const std::vector<int> expect =
      GetParam().nodeMap == "0,0,1,1" ? std::vector<int>{0, 0, 1, 1} : std::vector<int>{0, 1, 0, 1};
  EXPECT_EQ(comm_->nodeOfRank(), expect);
}

TEST_P(VirtualNodes, AllReduceHierAndRingMatchReference) {
  const int n = comm_->size();
  const int me = comm_->rank();
  for (const char* algo : {"hier", "ring"}) {
    for (std::uint64_t count : {std::uint64_t{1}, std::uint64_t{1000}, std::uint64_t{300001}}) {
      std::vector<float> in(count);
      std::vector<float> out(count, -1.0F);
      for (std::uint64_t i = 0; i < count; ++i) in[i] = inputValue(me, i, 1);
      ASSERT_TRUE(
          comm_->allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, {algo}).wait().ok());
      for (std::uint64_t i = 0; i < count; ++i) {
        float ref = 0;
        for (int r = 0; r < n; ++r) ref += inputValue(r, i, 1);
        ASSERT_EQ(out[i], ref) << algo << " count " << count << " element " << i;
      }
    }
  }
}

TEST_P(VirtualNodes, AllGatherHierMatchesReference) {
  const int n = comm_->size();
  const int me = comm_->rank();
  for (std::uint64_t count : {std::uint64_t{5}, std::uint64_t{70001}}) {
    std::vector<float> in(count);
    std::vector<float> out(count * static_cast<std::uint64_t>(n), -100.0F);
    for (std::uint64_t i = 0; i < count; ++i) in[i] = inputValue(me, i, 2);
    ASSERT_TRUE(comm_->allGather(in.data(), out.data(), count, DataType::kFloat32, {"hier"}).wait().ok());
    for (int r = 0; r < n; ++r) {
      for (std::uint64_t i = 0; i < count; ++i) {
        ASSERT_EQ(out[static_cast<std::uint64_t>(r) * count + i], inputValue(r, i, 2)) << "block " << r << " i " << i;
      }
    }
  }
}

TEST_P(VirtualNodes, ReduceScatterHierMatchesReference) {
  const int n = comm_->size();
  const int me = comm_->rank();
  for (std::uint64_t count : {std::uint64_t{3}, std::uint64_t{50003}}) {
    const std::uint64_t total = count * static_cast<std::uint64_t>(n);
    std::vector<float> in(total);
    std::vector<float> out(count, -100.0F);
    for (std::uint64_t i = 0; i < total; ++i) in[i] = inputValue(me, i, 4);
    ASSERT_TRUE(
        comm_->reduceScatter(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, {"hier"}).wait().ok());
    for (std::uint64_t i = 0; i < count; ++i) {
      float ref = 0;
      for (int r = 0; r < n; ++r) ref += inputValue(r, static_cast<std::uint64_t>(me) * count + i, 4);
      ASSERT_EQ(out[i], ref) << "count " << count << " element " << i;
    }
  }
}

TEST_P(VirtualNodes, AllToAllHierMatchesReference) {
  const int n = comm_->size();
  const int me = comm_->rank();
  for (std::uint64_t count : {std::uint64_t{3}, std::uint64_t{20000}}) {
    const std::uint64_t total = count * static_cast<std::uint64_t>(n);
    std::vector<float> in(total);
    std::vector<float> out(total, -100.0F);
    for (std::uint64_t i = 0; i < total; ++i) in[i] = inputValue(me, i, 3);
    ASSERT_TRUE(comm_->allToAll(in.data(), out.data(), count, DataType::kFloat32, {"hier"}).wait().ok());
    for (int r = 0; r < n; ++r) {
      for (std::uint64_t i = 0; i < count; ++i) {
        const float ref = inputValue(r, static_cast<std::uint64_t>(me) * count + i, 3);
        ASSERT_EQ(out[static_cast<std::uint64_t>(r) * count + i], ref) << "from rank " << r << " i " << i;
      }
    }
  }
}

TEST_P(VirtualNodes, TrafficTakesBothSubTransports) {
  const std::uint64_t count = 1 << 16;
  std::vector<float> in(count, 1.0F);
  std::vector<float> out(count, 0.0F);
  // Hierarchical: every rank talks to its node peer (intra) and to its counterpart on the other node.
  copro::transport::resetVirtualNodeTraffic();
  ASSERT_TRUE(comm_->allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, {"hier"}).wait().ok());
  const copro::transport::VirtualNodeTraffic t = copro::transport::virtualNodeTraffic();
  EXPECT_EQ(out[count - 1], 4.0F);
  EXPECT_GT(t.intraBytes, 0U) << "rank " << worldRank();
  EXPECT_GT(t.interBytes, 0U) << "rank " << worldRank();
  EXPECT_GT(t.intraOps, 0U);
  EXPECT_GT(t.interOps, 0U);
  // Ring: each rank sends to its next rank only. With 0,0,1,1 two of the four hops stay on a node; with
  // 0,1,0,1 every hop crosses nodes, so nothing may take the intra-node transport.
  copro::transport::resetVirtualNodeTraffic();
  ASSERT_TRUE(comm_->allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, {"ring"}).wait().ok());
  const copro::transport::VirtualNodeTraffic u = copro::transport::virtualNodeTraffic();
  std::uint64_t mine[2] = {u.intraBytes, u.interBytes};
  std::uint64_t sum[2] = {0, 0};
  MPI_Allreduce(mine, sum, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (GetParam().nodeMap == "0,0,1,1") {
    EXPECT_GT(sum[0], 0U);
  } else {
    EXPECT_EQ(sum[0], 0U);
  }
  EXPECT_GT(sum[1], 0U);
  // Every byte of the ring's payload crosses one of the two (nothing is lost between them).
  EXPECT_GE(sum[0] + sum[1], 2ULL * 3 * (count / 4) * sizeof(float) * 4);
}

/// Ranks 1..3 put their 8-byte input into rank 0's output, each put carrying +1 on semaphore 0, then
/// signal semaphore 1 with +2. Rank 0 waits for 3 and 6: its node peer arrives over shared memory, the
/// other node's ranks over the network, into one semaphore. `numSems` > 2 makes the slot arrays grow.
std::shared_ptr<const core::Program> semaphoreProgram(std::int32_t numSems) {
  core::ProgramHeader h;
  h.name = "test.vnode_semaphore";
  h.nranks = 4;
  h.numSemaphores = numSems;
  h.inputBytes.assign(4, 8);
  h.outputBytes.assign(4, 32);
  std::vector<core::RankProgram> ranks(4);
  ranks[0].emit(0, core::Op::copy(core::Addr{core::kSelf, core::BufferId::kOutput, 0},
                                  core::Addr{core::kSelf, core::BufferId::kInput, 0}, 8));
  ranks[0].emit(0, core::Op::wait(0, 3));
  ranks[0].emit(0, core::Op::wait(1, 6));
  for (int r = 1; r < 4; ++r) {
    ranks[static_cast<std::size_t>(r)].emit(
        0, core::Op::put(0, core::Addr{core::kSelf, core::BufferId::kOutput, 8 * static_cast<std::uint64_t>(r)},
                         core::Addr{core::kSelf, core::BufferId::kInput, 0}, 8, 0, 1));
    ranks[static_cast<std::size_t>(r)].emit(0, core::Op::signal(0, 1, 2));
  }
  return std::make_shared<core::Program>(std::move(h), std::move(ranks));
}

TEST_P(VirtualNodes, OneSemaphoreSignalledOverBothTransports) {
  copro::registerBuiltinBackends();
  core::ExecutorOptions options;
  options.config = configFor(GetParam());
  options.bootstrap = copro::transport::createMpiBootstrap(MPI_COMM_WORLD);
  options.nranks = 4;
  auto execs = core::ExecutorRegistry::instance().create(GetParam().backend, options);
  ASSERT_EQ(execs.size(), 1U);
  core::Executor& ex = *execs.front();
  const int me = ex.rank();
  // Same program several times (epoch bases), then a larger semaphore count (fresh slot arrays), then again.
  const std::vector<std::int32_t> semCounts = {2, 2, 2, 40, 2, 40};
  for (std::size_t call = 0; call < semCounts.size(); ++call) {
    auto program = semaphoreProgram(semCounts[call]);
    std::uint64_t in = 1000 * (call + 1) + static_cast<std::uint64_t>(me);
    std::vector<std::uint64_t> out(4, 0);
    core::CallBuffers b;
    b.input = &in;
    b.output = out.data();
    b.inputBytes = 8;
    b.outputBytes = 32;
    std::unique_ptr<core::CallHandle> handle;
    ASSERT_TRUE(ex.start(program, b, handle).ok());
    const core::Status s = handle->wait();
    ASSERT_TRUE(s.ok()) << "call " << call << ": " << s.toString();
    if (me == 0) {
      for (int r = 0; r < 4; ++r) {
        EXPECT_EQ(out[static_cast<std::size_t>(r)], 1000 * (call + 1) + static_cast<std::uint64_t>(r))
            << "call " << call << " from rank " << r;
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);  // rank 0 checked before the next call's buffers
  }
}

std::vector<Setup> setups() {
  std::vector<Setup> out;
  std::vector<std::string> backends = {"shm+ucx"};
#if COPRO_HAVE_MPI
  backends.push_back("shm+mpi");
#endif
  for (const std::string& b : backends) {
    for (const char* map : {"0,0,1,1", "0,1,0,1"}) out.push_back({b, map});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, VirtualNodes, ::testing::ValuesIn(setups()), setupName);

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  copro::mptest::abortJobOnFailure();
  if (worldRank() != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  } else {
    std::printf("copro_vnode_test: %d processes, input seed %u\n", worldSize(), kSeed);
  }
  int rc = RUN_ALL_TESTS();
  cache().clear();  // communicators go before MPI_Finalize
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rc != 0) std::fprintf(stderr, "copro_vnode_test: rank %d had failures\n", worldRank());
  MPI_Finalize();
  return worst;
}
