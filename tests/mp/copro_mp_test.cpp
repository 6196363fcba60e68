// Multi-process tests: run under mpirun (ctest label `mp`; tests/CMakeLists.txt starts 4 processes).
// Every collective runs over the `mpi` backend and the `ucx` backend (UCX_TLS=shm,self and tcp,self,
// bootstrapped over MPI), on all 4 ranks and on a 3-rank split, and every rank checks its result against
// a reference it computes itself from the same deterministic inputs.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "copro/copro_mpi.hpp"
#include "copro/transport/op_trace.hpp"
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
int worldSize() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

/// The seed of every input; printed once.
constexpr std::uint32_t kSeed = 20240611;

/// Input element i of rank r (small integers, so float sums are exact in any order).
float inputValue(int r, std::uint64_t i, std::uint32_t salt) {
  const std::uint64_t h = (kSeed + salt * 7919ULL + static_cast<std::uint64_t>(r) * 131ULL + i * 7ULL) % 17ULL;
  return static_cast<float>(static_cast<int>(h) - 8);
}

struct Setup {
  std::string backend;
  std::string tls;  ///< UCX_TLS for the ucx backend
  int ranks;        ///< 4: MPI_COMM_WORLD; 3: a split of it
};

std::string setupName(const ::testing::TestParamInfo<Setup>& info) {
  std::string tls = info.param.tls;
  for (char& c : tls) {
    if (c == ',') c = '_';
  }
  return info.param.backend + (tls.empty() ? "" : "_" + tls) + "_" + std::to_string(info.param.ranks) + "ranks";
}

/// Communicators are created once per (backend, UCX_TLS) and destroyed before MPI_Finalize.
struct Comms {
  Communicator world;
  Communicator three;
};
std::map<std::string, std::unique_ptr<Comms>>& cache() {
  static std::map<std::string, std::unique_ptr<Comms>> c;
  return c;
}

Communicator* communicatorFor(const Setup& s) {
  const std::string key = s.backend + "/" + s.tls;
  auto it = cache().find(key);
  if (it == cache().end()) {
    if (!s.tls.empty()) setenv("UCX_TLS", s.tls.c_str(), 1);
    copro::Config config = copro::Config::fromEnvironment();
    config.timeoutSec = 30;  // a broken backend fails the test instead of hanging it
    auto c = std::make_unique<Comms>();
    c->world = copro::createFromMpi(MPI_COMM_WORLD, s.backend, config);
    c->three = c->world.split(worldRank() < 3 ? 0 : -1, worldRank());
    it = cache().emplace(key, std::move(c)).first;
  }
  Communicator& comm = s.ranks == worldSize() ? it->second->world : it->second->three;
  return comm.valid() ? &comm : nullptr;
}

class MultiProcess : public ::testing::TestWithParam<Setup> {
 protected:
  void SetUp() override {
    if (GetParam().ranks > worldSize()) GTEST_SKIP() << "needs " << GetParam().ranks << " processes";
    comm_ = communicatorFor(GetParam());
  }
  Communicator* comm_ = nullptr;  ///< nullptr: this rank is not in the tested group
};

TEST_P(MultiProcess, AllReduceRingAndRhdMatchReference) {
  if (comm_ == nullptr) return;
  const int n = comm_->size();
  ASSERT_EQ(n, GetParam().ranks);
  const int me = comm_->rank();
  for (const char* algo : {"ring", "rhd"}) {
    for (std::uint64_t count : {std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{1000}, std::uint64_t{300001}}) {
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
      // In place, with max.
      std::vector<float> io(in);
      ASSERT_TRUE(
          comm_->allReduce(io.data(), io.data(), count, DataType::kFloat32, ReduceOp::kMax, {algo}).wait().ok());
      for (std::uint64_t i = 0; i < count; ++i) {
        float ref = inputValue(0, i, 1);
        for (int r = 1; r < n; ++r) ref = std::max(ref, inputValue(r, i, 1));
        ASSERT_EQ(io[i], ref) << algo << " in-place max, count " << count << " element " << i;
      }
    }
  }
}

TEST_P(MultiProcess, AllGatherMatchesReference) {
  if (comm_ == nullptr) return;
  const int n = comm_->size();
  const int me = comm_->rank();
  for (std::uint64_t count : {std::uint64_t{5}, std::uint64_t{70001}}) {
    std::vector<float> in(count);
    std::vector<float> out(count * static_cast<std::uint64_t>(n), -100.0F);
    for (std::uint64_t i = 0; i < count; ++i) in[i] = inputValue(me, i, 2);
    ASSERT_TRUE(comm_->allGather(in.data(), out.data(), count, DataType::kFloat32).wait().ok());
    for (int r = 0; r < n; ++r) {
      for (std::uint64_t i = 0; i < count; ++i) {
        ASSERT_EQ(out[static_cast<std::uint64_t>(r) * count + i], inputValue(r, i, 2)) << "block " << r << " i " << i;
      }
    }
  }
}

TEST_P(MultiProcess, AllToAllMatchesReference) {
  if (comm_ == nullptr) return;
  const int n = comm_->size();
  const int me = comm_->rank();
  for (std::uint64_t count : {std::uint64_t{3}, std::uint64_t{20000}}) {
    const std::uint64_t total = count * static_cast<std::uint64_t>(n);
    std::vector<float> in(total);
    std::vector<float> out(total, -100.0F);
    for (std::uint64_t i = 0; i < total; ++i) in[i] = inputValue(me, i, 3);
    ASSERT_TRUE(comm_->allToAll(in.data(), out.data(), count, DataType::kFloat32).wait().ok());
    for (int r = 0; r < n; ++r) {
      for (std::uint64_t i = 0; i < count; ++i) {
        // Block r of my output is block `me` of rank r's input.
        const float ref = inputValue(r, static_cast<std::uint64_t>(me) * count + i, 3);
        ASSERT_EQ(out[static_cast<std::uint64_t>(r) * count + i], ref) << "from rank " << r << " i " << i;
      }
    }
  }
}

TEST_P(MultiProcess, BroadcastMatchesReference) {
  if (comm_ == nullptr) return;
  const int n = comm_->size();
  const int me = comm_->rank();
  for (int root : {0, n - 1}) {
    const std::uint64_t count = 100003;
    std::vector<float> buf(count, -100.0F);
    if (me == root) {
      for (std::uint64_t i = 0; i < count; ++i) buf[i] = inputValue(root, i, 4);
    }
    ASSERT_TRUE(comm_->broadcast(buf.data(), buf.data(), count, DataType::kFloat32, root).wait().ok());
    for (std::uint64_t i = 0; i < count; ++i)
      ASSERT_EQ(buf[i], inputValue(root, i, 4)) << "root " << root << " i " << i;
  }
}

TEST_P(MultiProcess, BarrierOrdersSideEffects) {
  if (comm_ == nullptr) return;
  // Each round: every rank increments a shared-file-free counter through MPI one-by-one is overkill; check
  // instead that many barriers complete and stay in step with an all-reduce of the round number.
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(comm_->barrier().wait().ok()) << "round " << round;
  }
  std::int32_t mine = 20;
  std::int32_t sum = 0;
  ASSERT_TRUE(comm_->allReduce(&mine, &sum, 1, DataType::kInt32, ReduceOp::kSum).wait().ok());
  EXPECT_EQ(sum, 20 * comm_->size());
}

TEST_P(MultiProcess, SendRecvRingMatchesReference) {
  if (comm_ == nullptr) return;
  const int n = comm_->size();
  const int me = comm_->rank();
  const int next = (me + 1) % n;
  const int prev = (me + n - 1) % n;
  for (std::uint64_t count : {std::uint64_t{777}, std::uint64_t{200000}}) {
    std::vector<float> send(count);
    std::vector<float> recv(count, -100.0F);
    for (std::uint64_t i = 0; i < count; ++i) send[i] = inputValue(me, i, 5);
    comm_->groupStart();
    (void)comm_->send(send.data(), count, DataType::kFloat32, next);
    (void)comm_->recv(recv.data(), count, DataType::kFloat32, prev);
    ASSERT_TRUE(comm_->groupEnd().wait().ok());
    for (std::uint64_t i = 0; i < count; ++i) ASSERT_EQ(recv[i], inputValue(prev, i, 5)) << "i " << i;
  }
}

std::vector<Setup> setups() {
  std::vector<Setup> out;
  std::vector<Setup> backends = {{"mpi", "", 0}};
#if COPRO_HAVE_UCX
  backends.push_back({"ucx", "shm,self", 0});
  backends.push_back({"ucx", "tcp,self", 0});
#endif
  for (const Setup& b : backends) {
    for (int ranks : {4, 3}) out.push_back({b.backend, b.tls, ranks});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, MultiProcess, ::testing::ValuesIn(setups()), setupName);

/// Runs `call` (returning the call's Status) with the per-op observer on and returns the threads that
/// ran `backend`'s traced ops.
template <typename Call>
std::set<std::thread::id> threadsOfOps(const std::string& backend, Call call) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  copro::transport::setLaneOpObserver([&](const copro::transport::LaneOpTiming& t) {
    std::lock_guard<std::mutex> lock(mutex);
    if (std::string(t.backend) == backend) threads.insert(std::this_thread::get_id());
  });
  const copro::Status st = call();
  copro::transport::setLaneOpObserver(nullptr);
  EXPECT_TRUE(st.ok()) << st.toString();
  return threads;
}

/// Runs one all-reduce with proxy lanes on `backend` and returns the threads its traced ops ran on.
std::set<std::thread::id> proxyLaneThreads(const std::string& backend) {
  copro::Config config = copro::Config::fromEnvironment();
  config.timeoutSec = 30;
  config.initiation = "proxy";
  Communicator comm = copro::createFromMpi(MPI_COMM_WORLD, backend, config);
  std::vector<float> in(1000, 1.0F);
  std::vector<float> out(1000);
  std::set<std::thread::id> threads = threadsOfOps(backend, [&] {
    return comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum).wait();
  });
  EXPECT_EQ(out[999], static_cast<float>(worldSize()));
  return threads;
}

/// Proxy lanes run on the caller's thread on mpi (no progress thread below MPI_THREAD_MULTIPLE) and only
/// on the engine's progress thread on ucx; `threadsOn(backend)` runs a call there and says where its ops ran.
template <typename ThreadsOn>
void expectMpiOnCallerUcxOnProgressThread(ThreadsOn threadsOn) {
  EXPECT_EQ(threadsOn("mpi"), std::set<std::thread::id>{std::this_thread::get_id()});
#if COPRO_HAVE_UCX
  const std::set<std::thread::id> ucx = threadsOn("ucx");
  EXPECT_FALSE(ucx.empty());
  EXPECT_EQ(ucx.count(std::this_thread::get_id()), 0U) << "a proxy lane ran on the caller's thread";
#endif
}

// docs/initiation.md: proxy lanes run on the engine's progress thread where the transport may be driven
// from another thread (ucx), and on the caller's thread otherwise (mpi below MPI_THREAD_MULTIPLE).
TEST(ProxyLanes, UcxRunsThemOnAProgressThreadMpiOnTheCaller) {
  expectMpiOnCallerUcxOnProgressThread(proxyLaneThreads);
}

/// A hand-written ring whose one lane chose no mode (`device`): rank r puts its input into the next rank's
/// output with a signal and waits for the previous rank's. Run with COPRO_INITIATION=proxy on `backend`,
/// returns the threads its traced ops ran on.
std::set<std::thread::id> handWrittenLaneThreads(const std::string& backend) {
  copro::Config config = copro::Config::fromEnvironment();
  config.timeoutSec = 30;
  config.initiation = "proxy";
  config.initiationScaleUp.clear();
  config.initiationScaleOut.clear();
  Communicator comm = copro::createFromMpi(MPI_COMM_WORLD, backend, config);
  const int n = comm.size();
  constexpr std::uint64_t kBytes = 64;
  copro::core::ProgramHeader h;
  h.name = "test.handwritten_ring";
  h.nranks = n;
  h.numSemaphores = 1;
  h.inputBytes.assign(static_cast<std::size_t>(n), kBytes);
  h.outputBytes.assign(static_cast<std::size_t>(n), kBytes);
  std::vector<copro::core::RankProgram> ranks(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    copro::core::RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    const int next = (r + 1) % n;
    rp.addLane();  // device: the Config's proxy default decides who runs it, on every backend
    rp.emit(0, copro::core::Op::put(next, copro::core::Addr{next, copro::core::BufferId::kOutput, 0},
                                    copro::core::Addr{}, kBytes, 0));
    rp.emit(0, copro::core::Op::wait(0, 1));
  }
  auto program = std::make_shared<copro::core::Program>(h, std::move(ranks));
  std::vector<std::uint8_t> in(kBytes, static_cast<std::uint8_t>(comm.rank() + 1));
  std::vector<std::uint8_t> out(kBytes, 0);
  copro::core::CallBuffers buffers;
  buffers.input = in.data();
  buffers.output = out.data();
  std::set<std::thread::id> threads = threadsOfOps(backend, [&] { return comm.runProgram(program, buffers).wait(); });
  EXPECT_EQ(out[0], static_cast<std::uint8_t>((comm.rank() + n - 1) % n + 1));
  return threads;
}

// call_setup.hpp's one rule, now on the remote engine too: with COPRO_INITIATION=proxy (no per-scale
// modes) the `device` lanes of a hand-written Program run as `proxy` lanes, on ucx's progress thread.
TEST(ProxyLanes, HandWrittenDeviceLanesFollowTheConfigOnUcx) {
  expectMpiOnCallerUcxOnProgressThread(handWrittenLaneThreads);
}

#if COPRO_HAVE_UCX
/// Sets an environment variable for the lifetime of the object, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_.empty()) {
      unsetenv(name_.c_str());
    } else {
      setenv(name_.c_str(), old_.c_str(), 1);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::string old_;
};

/// A Program whose ranks need no peer: one lane without ops each.
std::shared_ptr<copro::core::Program> programWithoutPeers(int n) {
  copro::core::ProgramHeader h;
  h.name = "test.no_peers";
  h.nranks = n;
  h.inputBytes.assign(static_cast<std::size_t>(n), 0);
  h.outputBytes.assign(static_cast<std::size_t>(n), 0);
  std::vector<copro::core::RankProgram> ranks(static_cast<std::size_t>(n));
  for (copro::core::RankProgram& rp : ranks) rp.addLane();
  return std::make_shared<copro::core::Program>(h, std::move(ranks));
}

// docs/ucx.md, "Entering a call": over tcp, a rank's entry notice to a peer (descriptor put, endpoint
// flush, `entered` add) needs that peer's acknowledgement, so a call must not wait for it. Rank 0 enters
// three calls it takes no part in and stays in MPI, away from its UCX worker, while the others complete
// theirs (before the fix they waited for rank 0 until the timeout: the CI hang of a 3-rank broadcast and
// send/recv ring); then an all-reduce needs every rank's notices, in order, merged ones included.
TEST(UcxTcp, CallsCompleteWhileAPeerTheyDoNotNeedIsAway) {
  const ScopedEnv tls("UCX_TLS", "tcp,self");
  copro::Config config = copro::Config::fromEnvironment();
  config.timeoutSec = 5;
  Communicator comm = copro::createFromMpi(MPI_COMM_WORLD, "ucx", config);
  std::int32_t one = 1;
  std::int32_t sum = 0;
  ASSERT_TRUE(comm.allReduce(&one, &sum, 1, DataType::kInt32, ReduceOp::kSum).wait().ok());  // connections up
  const auto program = programWithoutPeers(comm.size());
  constexpr int kCalls = 3;
  std::vector<copro::Request> away;
  if (comm.rank() == 0) away.push_back(comm.runProgram(program, {}));  // entered, then left alone
  MPI_Barrier(MPI_COMM_WORLD);
  for (int i = 0; i < kCalls && comm.rank() != 0; ++i) {
    const copro::Status st = comm.runProgram(program, {}).wait();
    ASSERT_TRUE(st.ok()) << "call " << i << ": " << st.toString();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  for (copro::Request& r : away) ASSERT_TRUE(r.wait().ok());
  for (int i = 1; i < kCalls && comm.rank() == 0; ++i) ASSERT_TRUE(comm.runProgram(program, {}).wait().ok());
  sum = 0;
  const copro::Status st = comm.allReduce(&one, &sum, 1, DataType::kInt32, ReduceOp::kSum).wait();
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_EQ(sum, comm.size());
}
#endif

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  copro::mptest::abortJobOnFailure();
  if (worldRank() != 0) {
    // One report, from rank 0; a failure on another rank still fails the exit code below.
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  } else {
    std::printf("copro_mp_test: %d processes, input seed %u\n", worldSize(), kSeed);
  }
  int rc = RUN_ALL_TESTS();
  cache().clear();  // communicators go before MPI_Finalize
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rc != 0) std::fprintf(stderr, "copro_mp_test: rank %d had failures\n", worldRank());
  MPI_Finalize();
  return worst;
}
