// The lanemachine backend (the portable lane machine on host threads, docs/gpu.md): a hand-written put +
// signal/wait Program moves data between ranks; an out-of-bounds put ends the call with an error naming the
// rank, lane, op and buffer; a rank that never starts makes the others time out naming it.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "copro/copro.hpp"
#include "copro/core/program.hpp"

namespace copro {
namespace {

using core::Addr;
using core::BufferId;
using core::Op;

void onRanks(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> t;
  for (int r = 0; r < n; ++r) t.emplace_back(fn, r);
  for (auto& th : t) th.join();
}

/// Rank r puts its 8-byte input into output[8r..8r+8) of its right neighbour and signals; each rank waits.
std::shared_ptr<core::Program> shiftProgram(int n, std::uint64_t putOffsetExtra) {
  core::ProgramHeader h;
  h.name = "test.shift";
  h.nranks = n;
  h.numSemaphores = 1;
  h.inputBytes.assign(static_cast<std::size_t>(n), 8);
  h.outputBytes.assign(static_cast<std::size_t>(n), 8 * static_cast<std::uint64_t>(n));
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    const int right = (r + 1) % n;
    auto& lane = ranks[static_cast<std::size_t>(r)].lanes.emplace_back();
    lane.ops.push_back(Op::put(right,
                               Addr{right, BufferId::kOutput, 8 * static_cast<std::uint64_t>(r) + putOffsetExtra},
                               Addr{core::kSelf, BufferId::kInput, 0}, 8, 0, 1));
    lane.ops.push_back(Op::wait(0, 1));
  }
  return std::make_shared<core::Program>(h, std::move(ranks));
}

std::vector<Communicator> laneMachine(int n, double timeoutSec) {
  core::ExecutorOptions o;
  o.nranks = n;
  o.config.timeoutSec = timeoutSec;
  return createCommunicators("lanemachine", o);
}

TEST(LaneMachineBackend, RunsAHandWrittenProgram) {
  constexpr int kRanks = 4;
  auto comms = laneMachine(kRanks, 30);
  auto program = shiftProgram(kRanks, 0);
  onRanks(kRanks, [&](int r) {
    std::uint64_t in = 100 + static_cast<std::uint64_t>(r);
    std::vector<std::uint64_t> out(kRanks, 0);
    core::CallBuffers b;
    b.input = &in;
    b.output = out.data();
    ASSERT_TRUE(comms[static_cast<std::size_t>(r)].runProgram(program, b).wait().ok());
    const int left = (r + kRanks - 1) % kRanks;
    EXPECT_EQ(out[static_cast<std::size_t>(left)], 100U + static_cast<std::uint64_t>(left));
  });
}

TEST(LaneMachineBackend, AnOutOfBoundsPutNamesRankLaneOpAndBuffer) {
  constexpr int kRanks = 2;
  auto comms = laneMachine(kRanks, 30);
  auto program = shiftProgram(kRanks, 64);  // 64 bytes past the output
  onRanks(kRanks, [&](int r) {
    std::uint64_t in = 1;
    std::vector<std::uint64_t> out(kRanks, 0);
    core::CallBuffers b;
    b.input = &in;
    b.output = out.data();
    const Status s = comms[static_cast<std::size_t>(r)].runProgram(program, b).wait();
    EXPECT_EQ(s.code(), ErrorCode::kInvalidProgram) << s.message();
    EXPECT_NE(s.message().find("lane 0 op 0 (put)"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("out of bounds"), std::string::npos) << s.message();
  });
}

TEST(LaneMachineBackend, AMissingRankTimesOutNamingIt) {
  auto comms = laneMachine(3, 0.3);
  auto program = shiftProgram(3, 0);
  onRanks(2, [&](int r) {  // rank 2 never starts
    std::uint64_t in = 1;
    std::vector<std::uint64_t> out(3, 0);
    core::CallBuffers b;
    b.input = &in;
    b.output = out.data();
    const Status s = comms[static_cast<std::size_t>(r)].runProgram(program, b).wait();
    EXPECT_EQ(s.code(), ErrorCode::kTimeout) << s.message();
    EXPECT_NE(s.message().find("rank(s) 2 never started"), std::string::npos) << s.message();
  });
}

}  // namespace
}  // namespace copro
