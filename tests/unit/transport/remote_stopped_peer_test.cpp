// The remote engine (mpi, ucx) names a stopped peer in a timeout even when that peer no longer is stopped
// at the moment the call gives up: under mpirun, the first survivor's MPI_Abort makes mpirun resume
// (SIGCONT) the stopped rank before it kills the job, and a survivor whose timeout fired a moment later
// blamed nobody (fault_quick, case mpi-mpirun-STOP; docs/faults.md). Rank 0 of a 2-rank ring all-gather
// runs over a fake transport whose peer never answers and which reports rank 1 stopped for the first part
// of the wait only.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "inproc_test_util.hpp"
#include "remote_engine.hpp"

namespace copro::transport::testing {
namespace {

using core::BufferId;
using core::ErrorCode;
using core::Status;
using remote::Reach;
using Clock = std::chrono::steady_clock;

/// Rank 0 of 2; rank 1 accepts every message and never answers. stoppedPeer() names rank 1 until
/// `resumeAt`.
class SilentPeerTransport final : public remote::RemoteTransport {
 public:
  explicit SilentPeerTransport(Clock::time_point resumeAt) : resumeAt_(resumeAt) {}
  [[nodiscard]] std::string_view backend() const override { return "fake"; }
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 2; }
  std::byte* scratch(std::uint64_t bytes) override {
    scratch_.resize(std::max<std::uint64_t>(bytes, 1));
    return scratch_.data();
  }
  std::atomic<std::uint64_t>* semaphores(std::int32_t count) override {
    if (count > semCount_) {
      sems_ = std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(count));
      for (std::int32_t s = 0; s < count; ++s) sems_[static_cast<std::size_t>(s)].store(0);
      semCount_ = count;
    }
    return sems_.get();
  }
  std::uint64_t* layout(std::uint32_t words) override {
    layout_.resize(std::max<std::uint32_t>(words, 1));
    return layout_.data();
  }
  Status enter(const remote::CallEntry& /*entry*/) override { return {}; }
  Reach reach(int /*peer*/, Status& /*error*/) override { return Reach::kReady; }
  [[nodiscard]] std::uint64_t remoteLimit(int /*peer*/, BufferId /*buf*/) const override { return UINT64_MAX; }
  Status put(int, std::uint32_t, int, BufferId, std::uint64_t, const std::byte*, std::uint64_t, std::int32_t,
             std::uint64_t) override {
    return {};
  }
  Status get(int, std::uint32_t, int, BufferId, std::uint64_t, std::byte*, std::uint64_t) override { return {}; }
  Status signal(int, std::uint32_t, int, std::int32_t, std::uint64_t) override { return {}; }
  Status flushLane(int /*lane*/, bool& done) override {
    done = true;
    return {};
  }
  Status progress(bool& progressed) override {
    progressed = false;
    return {};
  }
  Status finishCall(bool& done) override {
    done = true;
    return {};
  }
  void leave() override {}
  [[nodiscard]] std::string stallReport() override { return "no peer has sent this rank a message of this call"; }
  [[nodiscard]] std::string stoppedPeer() override {
    return Clock::now() < resumeAt_ ? "rank 1 (pid 4242) is stopped (process state T: SIGSTOP, Ctrl-Z or a debugger)"
                                    : std::string();
  }
  void announceFailure(const std::string& /*reason*/) override {}
  Status registerBuffer(void* /*ptr*/, std::size_t /*bytes*/) override { return {}; }
  Status deregisterBuffer(void* /*ptr*/) override { return {}; }
  void* allocate(std::size_t bytes) override { return ::operator new(std::max<std::size_t>(bytes, 1)); }
  void deallocate(void* ptr) override { ::operator delete(ptr); }
  std::unique_ptr<RemoteTransport> split(int /*color*/, int /*key*/, std::vector<int>& /*members*/) override {
    return nullptr;
  }

 private:
  Clock::time_point resumeAt_;
  std::vector<std::byte> scratch_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> sems_;
  std::int32_t semCount_ = 0;
  std::vector<std::uint64_t> layout_;
};

/// Runs rank 0's part of a 2-rank ring all-gather over a SilentPeerTransport (rank 1 stopped for
/// `stoppedFor` seconds from now) with COPRO_TIMEOUT `timeoutSec`; returns the call's status.
Status runAgainstSilentPeer(double stoppedFor, double timeoutSec) {
  const auto resumeAt =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(stoppedFor));
  auto exec = remote::makeRemoteExecutor(std::make_unique<SilentPeerTransport>(resumeAt),
                                         testConfig("device", timeoutSec), {0, 0});
  const std::uint64_t block = 64;
  std::vector<std::uint8_t> in(block, 1);
  std::vector<std::uint8_t> out(2 * block, 0);
  core::CallBuffers b;
  b.input = in.data();
  b.output = out.data();
  return runCall(*exec, ringAllGather(2, block), b);
}

TEST(RemoteStoppedPeer, APeerResumedBeforeTheTimeoutIsStillNamed) {
  // Stopped for 1.2 s of the 2 s wait: stopped while the call waited, running again when it gives up.
  const Status st = runAgainstSilentPeer(1.2, 2.0);
  ASSERT_EQ(st.code(), ErrorCode::kTimeout) << st.toString();
  const std::string& m = st.message();
  const auto named = m.find("rank 1 (pid 4242) is stopped");
  ASSERT_NE(named, std::string::npos) << m;
  EXPECT_LT(named, m.find("timed out")) << "the stopped peer is the cause, named first: " << m;
  EXPECT_NE(m.find("when this rank last looked"), std::string::npos) << m;
}

TEST(RemoteStoppedPeer, APeerStoppedAtTheTimeoutIsNamedAsStopped) {
  const Status st = runAgainstSilentPeer(60.0, 0.5);
  ASSERT_EQ(st.code(), ErrorCode::kTimeout) << st.toString();
  EXPECT_NE(st.message().find("rank 1 (pid 4242) is stopped"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("when this rank last looked"), std::string::npos) << st.message();
}

TEST(RemoteStoppedPeer, APeerThatNeverStoppedIsNotBlamedAsStopped) {
  const Status st = runAgainstSilentPeer(0.0, 0.5);
  ASSERT_EQ(st.code(), ErrorCode::kTimeout) << st.toString();
  EXPECT_EQ(st.message().find("stopped"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace copro::transport::testing
