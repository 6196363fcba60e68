// The `mpi` backend's pre-posted receive plan (transport/src/mpi/put_plan.hpp, docs/mpi.md "Pre-posted
// receives"), without MPI: which puts of a Program are planned, seen from the initiator and from the
// target alike, and which Programs are not planned at all.
#if COPRO_HAVE_MPI
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "copro/core/program.hpp"
#include "mpi/put_plan.hpp"

namespace {

using copro::core::Addr;
using copro::core::BufferId;
using copro::core::DataType;
using copro::core::Op;
using copro::core::Program;
using copro::core::ProgramHeader;
using copro::core::RankProgram;
using copro::core::ReduceOp;
using copro::transport::mpi::CallPlan;
using copro::transport::mpi::CallPlanCache;
using copro::transport::mpi::planCall;
using copro::transport::mpi::PlanLimits;

constexpr std::uint64_t kBig = 8192;

PlanLimits limits() {
  PlanLimits l;
  l.minBytes = 4048;
  l.maxBytes = std::uint64_t{1} << 30;
  l.maxLanes = 4;
  return l;
}

ProgramHeader header(int n) {
  ProgramHeader h;
  h.name = "test.put_plan";
  h.nranks = n;
  h.numSemaphores = 1;
  h.inputBytes.assign(static_cast<std::size_t>(n), 1 << 20);
  h.outputBytes.assign(static_cast<std::size_t>(n), 1 << 20);
  return h;
}

/// Rank 0 of 3: lane 0 has a planned put to 1, an inline put, an indirect put, a multicast to {1, 2, 0}, a
/// put_reduce to 1 and a put whose dst names another rank than its peer; lane 1 a put to 2. Ranks 1 and 2
/// wait only.
std::shared_ptr<Program> sample(bool rank2Empty) {
  std::vector<RankProgram> ranks(3);
  RankProgram& r0 = ranks[0];
  r0.addLane();
  r0.emit(0, Op::put(1, Addr{1, BufferId::kOutput, 64}, Addr{}, kBig, 0));
  r0.emit(0, Op::put(1, Addr{1, BufferId::kOutput, 0}, Addr{}, 100, 0));
  Op indirect = Op::put(1, Addr{1, BufferId::kOutput, 0}, Addr{}, kBig, 0);
  indirect.indirect.bytesSlot = 0;
  r0.emit(0, indirect);
  r0.emit(0, Op::multicast({1, 2, 0}, Addr{copro::core::kSelf, BufferId::kScratch, 128}, Addr{}, kBig, 0));
  r0.emit(0, Op::putReduce(1, Addr{1, BufferId::kOutput, 4096}, Addr{}, kBig / 4, DataType::kFloat32, ReduceOp::kSum));
  r0.emit(0, Op::put(1, Addr{2, BufferId::kOutput, 0}, Addr{}, kBig, 0));
  r0.emit(1, Op::put(2, Addr{2, BufferId::kInput, 0}, Addr{}, kBig, 0));
  ranks[1].emit(0, Op::wait(0, 3));
  if (!rank2Empty) ranks[2].emit(0, Op::wait(0, 2));
  ProgramHeader h = header(3);
  return std::make_shared<Program>(h, std::move(ranks));
}

TEST(MpiPutPlan, TheInitiatorAndTheTargetPlanTheSamePuts) {
  const auto program = sample(false);
  const CallPlan from0 = planCall(*program, 0, 3, limits());
  const CallPlan at1 = planCall(*program, 1, 3, limits());
  ASSERT_TRUE(from0.active());
  ASSERT_TRUE(at1.active());
  // Lane 0 to rank 1: the 8 KiB put (op 0), the multicast's put (op 3), the put_reduce's put (op 4).
  ASSERT_EQ(from0.out[1].size(), 1U);
  const auto& lane0 = from0.out[1][0];
  ASSERT_EQ(lane0.size(), 3U);
  EXPECT_TRUE(lane0[0].same(0, static_cast<std::uint16_t>(BufferId::kOutput), 64, kBig));
  EXPECT_TRUE(lane0[1].same(3, static_cast<std::uint16_t>(BufferId::kScratch), 128, kBig));
  EXPECT_TRUE(lane0[2].same(4, static_cast<std::uint16_t>(BufferId::kOutput), 4096, kBig));
  ASSERT_EQ(at1.in[0].size(), 1U);
  ASSERT_EQ(at1.in[0][0].size(), 3U);
  for (std::size_t k = 0; k < 3; ++k) {
    const auto& p = lane0[k];
    EXPECT_TRUE(at1.in[0][0][k].same(p.opIndex, p.buf, p.offset, p.bytes)) << "entry " << k;
  }
  EXPECT_TRUE(at1.anyIn);
  // To rank 2: the multicast on lane 0, the put on lane 1; rank 2 plans the same.
  const CallPlan at2 = planCall(*program, 2, 3, limits());
  ASSERT_EQ(from0.out[2].size(), 2U);
  ASSERT_EQ(from0.out[2][0].size(), 1U);
  EXPECT_EQ(from0.out[2][0][0].opIndex, 3U);
  ASSERT_EQ(from0.out[2][1].size(), 1U);
  ASSERT_EQ(at2.in[0].size(), 2U);
  EXPECT_EQ(at2.in[0][1].size(), 1U);
  // Nothing to itself, nothing from ranks that only wait.
  EXPECT_TRUE(from0.out[0].empty());
  EXPECT_TRUE(at1.in[2].empty());
  EXPECT_FALSE(from0.anyIn);
}

TEST(MpiPutPlan, LanesWithoutATagAreNotPlanned) {
  PlanLimits l = limits();
  l.maxLanes = 1;
  const CallPlan from0 = planCall(*sample(false), 0, 3, l);
  ASSERT_TRUE(from0.active());
  EXPECT_EQ(from0.out[2].size(), 1U) << "lane 1's put to rank 2 has no tag";
}

TEST(MpiPutPlan, ProgramsThatDoNotKnowEveryRankOrAreTooLargeAreNotPlanned) {
  // Grouped send/recv generates only the executing rank's ops: an empty rank makes the Program unplanned.
  EXPECT_FALSE(planCall(*sample(true), 0, 3, limits()).active());
  EXPECT_FALSE(planCall(*sample(true), 2, 3, limits()).active());
  PlanLimits small = limits();
  small.maxRanks = 2;
  EXPECT_FALSE(planCall(*sample(false), 0, 3, small).active());
  EXPECT_FALSE(planCall(*sample(false), 0, 4, limits()).active()) << "the header has 3 ranks";
}

TEST(MpiPutPlan, TheCacheComputesAPlanOncePerProgram) {
  CallPlanCache cache(2);
  const std::shared_ptr<const copro::core::ProgramSource> a = sample(false);
  const std::shared_ptr<const copro::core::ProgramSource> b = sample(false);
  const std::shared_ptr<const copro::core::ProgramSource> c = sample(false);
  const auto first = cache.get(a, 0, 3, limits());
  EXPECT_EQ(cache.get(a, 0, 3, limits()), first);
  (void)cache.get(b, 0, 3, limits());
  (void)cache.get(c, 0, 3, limits());  // evicts a, the least recently used
  EXPECT_NE(cache.get(a, 0, 3, limits()), first);
}

}  // namespace
#endif  // COPRO_HAVE_MPI
