// The `mpi` backend's pre-posted receives (docs/mpi.md, "Pre-posted receives"), under mpirun with 4
// processes (ctest copro_mpi_prepost_test, label mp): the data of a ring all-reduce's puts meets receives
// posted when the target entered the call, not ones posted when the header arrived (the path of every
// put before, and still the path with pre-posting switched off); results stay exact either way; and a
// put that differs from what the target's copy of the Program says fails the call on every rank with an
// error naming the difference, instead of landing somewhere or hanging.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "copro/copro_mpi.hpp"
#include "copro/transport/mpi.hpp"
#include "mp_abort_on_failure.hpp"

namespace {

using copro::Communicator;
using copro::DataType;
using copro::ReduceOp;

int worldRank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

/// An `mpi` communicator over MPI_COMM_WORLD with a 30 s timeout, pre-posting or not.
Communicator mpiComm(bool prepost) {
  copro::Config config = copro::Config::fromEnvironment();
  config.timeoutSec = 30;  // a broken backend fails the test instead of hanging it
  copro::transport::setMpiPrepostedReceives(prepost);
  Communicator comm = copro::createFromMpi(MPI_COMM_WORLD, "mpi", config);
  copro::transport::setMpiPrepostedReceives(true);
  return comm;
}

/// Runs `calls` ring all-reduces of `count` floats on `comm`, checks every result, and returns this
/// process's receive counters of those calls.
copro::transport::MpiReceiveCounters ringCounters(Communicator& comm, std::uint64_t count, int calls) {
  const int n = comm.size();
  std::vector<float> in(count);
  std::vector<float> out(count);
  for (std::uint64_t i = 0; i < count; ++i) in[i] = static_cast<float>((comm.rank() + i) % 5);
  MPI_Barrier(MPI_COMM_WORLD);
  copro::transport::resetMpiReceiveCounters();
  for (int c = 0; c < calls; ++c) {
    std::fill(out.begin(), out.end(), -1.0F);
    const copro::Status st =
        comm.allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, {"ring"}).wait();
    EXPECT_TRUE(st.ok()) << st.toString();
    for (std::uint64_t i = 0; i < count; ++i) {
      float ref = 0;
      for (int r = 0; r < n; ++r) ref += static_cast<float>((r + i) % 5);
      if (out[i] != ref) {
        ADD_FAILURE() << "call " << c << " element " << i << ": " << out[i] << " != " << ref;
        break;
      }
    }
  }
  return copro::transport::mpiReceiveCounters();
}

// Without pre-posting every put's receive is posted when its header arrives (the unexpected-message path
// for rendezvous-sized data); with it, none is, and as many receives were posted in advance.
TEST(MpiPrepost, RingAllReduceDataMeetsReceivesPostedAtEntry) {
  constexpr std::uint64_t kCount = 4 * 16384;  // 64 KiB blocks at 4 ranks: separate data messages
  constexpr int kCalls = 5;
  Communicator late = mpiComm(false);
  const copro::transport::MpiReceiveCounters before = ringCounters(late, kCount, kCalls);
  EXPECT_EQ(before.preposted, 0U);
  EXPECT_GT(before.postedAtHeader, 0U);
  Communicator early = mpiComm(true);
  const copro::transport::MpiReceiveCounters after = ringCounters(early, kCount, kCalls);
  EXPECT_EQ(after.postedAtHeader, 0U);
  EXPECT_EQ(after.preposted, before.postedAtHeader) << "the same puts, all of them pre-posted";
  // Every call but the first leaves time to post before the data comes; the first may find some waiting.
  EXPECT_LE(after.foundWaiting, after.preposted);
}

/// A ring of 64 KiB puts (input to the next rank's output, signal, wait) as rank `me` of `n` generates
/// it; rank 0's own copy puts at `rank0Offset`, every other rank's copy of rank 0 at offset 0.
std::shared_ptr<copro::core::Program> ringProgram(int n, int me, std::uint64_t rank0Offset) {
  constexpr std::uint64_t kBytes = 64 * 1024;
  copro::core::ProgramHeader h;
  h.name = "test.prepost_ring";
  h.nranks = n;
  h.numSemaphores = 1;
  h.inputBytes.assign(static_cast<std::size_t>(n), kBytes);
  h.outputBytes.assign(static_cast<std::size_t>(n), 2 * kBytes);
  std::vector<copro::core::RankProgram> ranks(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    const int next = (r + 1) % n;
    const std::uint64_t offset = r == 0 && me == 0 ? rank0Offset : 0;
    copro::core::RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    rp.addLane();
    rp.emit(0, copro::core::Op::put(next, copro::core::Addr{next, copro::core::BufferId::kOutput, offset},
                                    copro::core::Addr{}, kBytes, 0));
    rp.emit(0, copro::core::Op::wait(0, 1));
  }
  return std::make_shared<copro::core::Program>(h, std::move(ranks));
}

// The ranks agree on the ring, then disagree on where rank 0 puts: rank 1's call fails naming the put it
// got and the one it expected; no rank waits for the timeout (the others complete, or fail on rank 1's
// failure notice, depending on how far the ring got before it).
TEST(MpiPrepost, APutTheTargetsProgramDoesNotHaveFailsItsCall) {
  Communicator comm = mpiComm(true);
  const int n = comm.size();
  const int me = comm.rank();
  std::vector<std::uint8_t> in(64 * 1024, static_cast<std::uint8_t>(me + 1));
  std::vector<std::uint8_t> out(128 * 1024, 0);
  copro::core::CallBuffers buffers;
  buffers.input = in.data();
  buffers.output = out.data();
  const copro::Status agreed = comm.runProgram(ringProgram(n, me, 0), buffers).wait();
  ASSERT_TRUE(agreed.ok()) << agreed.toString();
  EXPECT_EQ(out[0], static_cast<std::uint8_t>((me + n - 1) % n + 1));
  const copro::Status st = comm.runProgram(ringProgram(n, me, 64 * 1024), buffers).wait();
  EXPECT_NE(st.code(), copro::ErrorCode::kTimeout) << st.toString();
  if (me == 1) {
    EXPECT_EQ(st.code(), copro::ErrorCode::kInvalidProgram) << st.toString();
    EXPECT_NE(st.message().find("different Programs"), std::string::npos) << st.toString();
    EXPECT_NE(st.message().find("output[65536"), std::string::npos) << st.toString();
  }
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  copro::mptest::abortJobOnFailure();
  if (worldRank() != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int rc = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
