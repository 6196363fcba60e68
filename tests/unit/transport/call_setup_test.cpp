// The shared first steps of the engines' start() (transport/src/call_setup.hpp): which Programs are LL-only
// (their calls publish no buffers on shm: docs/latency.md, "The LL fast path") and the call label that is
// formatted only when a message needs it.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "call_setup.hpp"
#include "copro/core/program.hpp"

namespace copro::transport::testing {
namespace {

using core::Addr;
using core::BufferId;
using core::kSelf;
using core::Op;
using core::RankProgram;

/// The shape of oneshot_ll on `n` ranks of `bytes`: an LL put to every peer, an LL wait for every peer, a
/// local reduction. `edit(rank, program)` changes a rank's ops afterwards.
std::shared_ptr<const core::Program> llProgram(int n, std::uint64_t bytes,
                                               const std::function<void(int, RankProgram&)>& edit = {}) {
  core::ProgramHeader h;
  h.name = "allreduce.test_ll";
  h.nranks = n;
  h.numSemaphores = n;
  h.scratchBytes = bytes * static_cast<std::uint64_t>(n);
  h.inputBytes.assign(static_cast<std::size_t>(n), bytes);
  h.outputBytes.assign(static_cast<std::size_t>(n), bytes);
  std::vector<RankProgram> ranks(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    rp.addLane();
    std::vector<Addr> srcs;
    for (int q = 0; q < n; ++q) {
      if (q == r) {
        srcs.push_back(Addr{kSelf, BufferId::kInput, 0});
        continue;
      }
      const auto at = [&](int k) { return static_cast<std::uint64_t>(k) * bytes; };
      rp.emit(0, Op::putLL(q, Addr{q, BufferId::kScratch, at(r)}, Addr{kSelf, BufferId::kInput, 0}, bytes, r));
      rp.emit(0, Op::waitLL(q, Addr{kSelf, BufferId::kScratch, at(q)}, bytes, q, 1));
      srcs.push_back(Addr{kSelf, BufferId::kScratch, at(q)});
    }
    rp.emit(0, Op::reduce(Addr{kSelf, BufferId::kOutput, 0}, srcs, bytes / 4, core::DataType::kFloat32,
                          core::ReduceOp::kSum));
    if (edit) edit(r, rp);
  }
  return std::make_shared<core::Program>(std::move(h), std::move(ranks));
}

TEST(CallSetup, OneshotLLShapeIsLLOnly) {
  for (int n : {1, 2, 3, 16}) {
    EXPECT_TRUE(calls::programIsLLOnly(*llProgram(n, 64), n)) << n << " ranks";
  }
  // A flush and a local copy are local too.
  EXPECT_TRUE(calls::programIsLLOnly(
      *llProgram(2, 64,
                 [](int, RankProgram& rp) {
                   rp.emit(0, Op::flush());
                   rp.emit(0, Op::copy(Addr{kSelf, BufferId::kOutput, 0}, Addr{kSelf, BufferId::kInput, 0}, 8));
                 }),
      2));
}

TEST(CallSetup, AnyRankTouchingAPeerMakesTheProgramNotLLOnly) {
  // One rank's simple put: every rank's call must publish (the peer reads rank 1's table).
  EXPECT_FALSE(calls::programIsLLOnly(
      *llProgram(3, 64,
                 [](int r, RankProgram& rp) {
                   if (r == 2)
                     rp.emit(0, Op::put(0, Addr{0, BufferId::kScratch, 0}, Addr{kSelf, BufferId::kInput, 0}, 8, 0));
                 }),
      3));
  // A get from a peer whose own ops are all LL: that peer must still publish its buffers.
  EXPECT_FALSE(calls::programIsLLOnly(
      *llProgram(2, 64,
                 [](int r, RankProgram& rp) {
                   if (r == 0)
                     rp.emit(0, Op::get(1, Addr{kSelf, BufferId::kOutput, 0}, Addr{1, BufferId::kInput, 0}, 8));
                 }),
      2));
  // A reduction reading a peer's buffer, a signal to a peer.
  EXPECT_FALSE(calls::programIsLLOnly(
      *llProgram(2, 64,
                 [](int r, RankProgram& rp) {
                   if (r == 1)
                     rp.emit(0, Op::reduce(Addr{kSelf, BufferId::kOutput, 0}, {Addr{0, BufferId::kInput, 0}}, 2,
                                           core::DataType::kFloat32, core::ReduceOp::kSum));
                 }),
      2));
  EXPECT_FALSE(calls::programIsLLOnly(*llProgram(2, 64,
                                                 [](int r, RankProgram& rp) {
                                                   if (r == 0) rp.emit(0, Op::signal(1, 0));
                                                 }),
                                      2));
}

TEST(CallSetup, LLOpsThatWouldRunAsSimpleOnesAreNotLLOnly) {
  // Above one mailbox slot an LL put runs as a simple put (it reaches the peer's buffers).
  EXPECT_FALSE(calls::programIsLLOnly(*llProgram(2, core::kLLSlotBytes + 64), 2));
  EXPECT_TRUE(calls::programIsLLOnly(*llProgram(2, core::kLLSlotBytes), 2));
  // Indirect sizes are known only at run time.
  EXPECT_FALSE(calls::programIsLLOnly(*llProgram(2, 64,
                                                 [](int, RankProgram& rp) {
                                                   Op& put = rp.lanes[0].ops[0];
                                                   put.indirect.bytesSlot = 0;
                                                 }),
                                      2));
  // An LL op naming no valid peer.
  EXPECT_FALSE(calls::programIsLLOnly(*llProgram(2, 64, [](int, RankProgram& rp) { rp.lanes[0].ops[0].peer = 5; }), 2));
}

TEST(CallSetup, ARankWithoutLLOpsPublishesItsBuffers) {
  EXPECT_TRUE(calls::callIsLLOnly(*llProgram(2, 64), 0, 2));
  EXPECT_TRUE(calls::callIsLLOnly(*llProgram(2, 64), 1, 2));
  // Send/recv: each rank builds its own Program, in which the other rank's ops are not what it runs. The
  // receiver's own ops (a simple wait and a copy out of scratch) are local, and so is the empty sender in
  // its Program, yet the real sender puts into the receiver's scratch: the receiver must publish.
  core::ProgramHeader h;
  h.name = "sendrecv.test";
  h.nranks = 2;
  h.numSemaphores = 1;
  h.scratchBytes = 64;
  h.inputBytes.assign(2, 64);
  h.outputBytes.assign(2, 64);
  std::vector<RankProgram> ranks(2);
  ranks[0].addLane();
  ranks[1].addLane();
  ranks[1].emit(0, Op::wait(0, 1));
  ranks[1].emit(0, Op::copy(Addr{kSelf, BufferId::kOutput, 0}, Addr{kSelf, BufferId::kScratch, 0}, 64));
  const core::Program recv(std::move(h), std::move(ranks));
  EXPECT_TRUE(calls::programIsLLOnly(recv, 2));
  EXPECT_FALSE(calls::callIsLLOnly(recv, 1, 2));
  // One rank: local ops alone are enough (there is no peer).
  EXPECT_TRUE(calls::callIsLLOnly(*llProgram(1, 64), 0, 1));
  // Above the mailboxes' rank limit there is no LL at all.
  EXPECT_FALSE(calls::callIsLLOnly(*llProgram(17, 64), 0, 17));
}

TEST(CallSetup, TheLabelIsFormattedOnDemand) {
  calls::CallBase call;
  const auto program = llProgram(2, 64);
  call.header = &program->header();
  call.seq = 3;
  call.execRank = 1;
  EXPECT_EQ(call.label(), "allreduce.test_ll (call 3) on rank 1");
  core::ProgramHeader unnamed;
  call.header = &unnamed;
  EXPECT_EQ(call.label(), "unnamed program (call 3) on rank 1");
  EXPECT_TRUE(calls::refusal(call, false, false, core::Status()).ok());
  const core::Status refused = calls::refusal(call, true, false, core::Status());
  EXPECT_EQ(refused.code(), core::ErrorCode::kAborted);
  EXPECT_NE(refused.message().find("unnamed program (call 3) on rank 1"), std::string::npos) << refused.toString();
}

}  // namespace
}  // namespace copro::transport::testing
