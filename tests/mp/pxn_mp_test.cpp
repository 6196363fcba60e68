// PXN over virtual nodes under mpirun (ctest label `mp`, 4 processes, COPRO_PXN=2; docs/pxn.md): backends
// "shm+ucx" and (when built; ctest sets COPRO_VERBS_PROVIDER=emu) "shm+verbs", where the relay's inter-node
// put leaves through the NIC of the destination's rail, on two virtual nodes of two ranks (node maps
// 0,0,1,1 and 0,1,0,1). The parameter is "backend/node map". All-to-all twice back to back
// (the second call reuses the relays' scratch slots) and all-to-allv, every element checked.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "copro/copro_mpi.hpp"
#include "mp_abort_on_failure.hpp"

namespace {

using copro::Communicator;
using copro::DataType;

constexpr std::uint32_t kSeed = 20261130;

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

/// Element i of the block rank `from` sends to rank `to` in call `call`.
std::int32_t value(int from, int to, std::uint64_t i, int call) {
  return static_cast<std::int32_t>((kSeed % 1000) * 1000000 + call * 100000 + from * 10000 + to * 1000 +
                                   static_cast<int>(i % 1000));
}

std::map<std::string, std::unique_ptr<Communicator>>& cache() {
  static std::map<std::string, std::unique_ptr<Communicator>> c;
  return c;
}

class PxnVirtualNodes : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (worldSize() != 4) GTEST_SKIP() << "needs 4 processes";
    auto it = cache().find(GetParam());
    if (it == cache().end()) {
      copro::Config config = copro::Config::fromEnvironment();
      config.timeoutSec = 30;
      const std::string param = GetParam();
      const std::string backend = param.substr(0, param.find('/'));
      config.nodeMap = param.substr(param.find('/') + 1);
      if (config.pxn == 0) config.pxn = 2;  // ctest sets COPRO_PXN=2; run by hand, the test still uses PXN
      auto c = std::make_unique<Communicator>(copro::createFromMpi(MPI_COMM_WORLD, backend, config));
      it = cache().emplace(GetParam(), std::move(c)).first;
    }
    comm_ = it->second.get();
  }
  Communicator* comm_ = nullptr;
};

TEST_P(PxnVirtualNodes, AllToAllTwiceBackToBack) {
  const int n = comm_->size();
  const int me = comm_->rank();
  for (std::uint64_t count : {std::uint64_t{3}, std::uint64_t{40000}}) {
    for (int call = 0; call < 2; ++call) {
      std::vector<std::int32_t> in(count * static_cast<std::uint64_t>(n)), out(in.size(), -1);
      for (int d = 0; d < n; ++d) {
        for (std::uint64_t i = 0; i < count; ++i) in[static_cast<std::uint64_t>(d) * count + i] = value(me, d, i, call);
      }
      ASSERT_TRUE(comm_->allToAll(in.data(), out.data(), count, DataType::kInt32, {"pairwise"}).wait().ok());
      for (int s = 0; s < n; ++s) {
        for (std::uint64_t i = 0; i < count; ++i) {
          ASSERT_EQ(out[static_cast<std::uint64_t>(s) * count + i], value(s, me, i, call))
              << "count " << count << " call " << call << " block from " << s << " element " << i;
        }
      }
      EXPECT_NE(comm_->lastProgramName().find("+pxn"), std::string::npos) << comm_->lastProgramName();
    }
  }
}

TEST_P(PxnVirtualNodes, AllToAllVMatchesReference) {
  const int n = comm_->size();
  const int me = comm_->rank();
  // Rank s sends (s + d) % 3 + 1 elements to d, packed in destination order on both sides.
  std::vector<std::uint64_t> sc(n), sd(n), rc(n), rd(n);
  std::uint64_t sendAt = 0;
  std::uint64_t recvAt = 0;
  for (int p = 0; p < n; ++p) {
    sc[p] = static_cast<std::uint64_t>((me + p) % 3 + 1);
    rc[p] = sc[p];
    sd[p] = sendAt;
    rd[p] = recvAt;
    sendAt += sc[p];
    recvAt += rc[p];
  }
  for (int call = 0; call < 2; ++call) {
    std::vector<std::int32_t> in(sendAt), out(recvAt, -1);
    for (int d = 0; d < n; ++d) {
      for (std::uint64_t i = 0; i < sc[d]; ++i) in[sd[d] + i] = value(me, d, i, call);
    }
    ASSERT_TRUE(comm_->allToAllV(in.data(), sc, sd, out.data(), rc, rd, DataType::kInt32).wait().ok());
    for (int s = 0; s < n; ++s) {
      for (std::uint64_t i = 0; i < rc[s]; ++i) {
        ASSERT_EQ(out[rd[s] + i], value(s, me, i, call)) << "call " << call << " from " << s << " element " << i;
      }
    }
  }
}

std::string mapName(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (c == ',' || c == '+' || c == '/') c = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(ShmUcx, PxnVirtualNodes, ::testing::Values("shm+ucx/0,0,1,1", "shm+ucx/0,1,0,1"), mapName);
#if COPRO_HAVE_VERBS
INSTANTIATE_TEST_SUITE_P(ShmVerbs, PxnVirtualNodes, ::testing::Values("shm+verbs/0,0,1,1", "shm+verbs/0,1,0,1"),
                         mapName);
#endif

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
    std::printf("copro_pxn_mp_test: %d processes, seed %u\n", worldSize(), kSeed);
  }
  const int rc = RUN_ALL_TESTS();
  cache().clear();  // communicators go before MPI_Finalize
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rc != 0) std::fprintf(stderr, "copro_pxn_mp_test: rank %d had failures\n", worldRank());
  MPI_Finalize();
  return worst;
}
