/// Several channels per rank in simulated plans (docs/simulator.md, settings: `sim.channels`): a pairwise
/// all-to-all whose time is its lane's serial issue costs gets faster in proportion when the peers are
/// spread over channels, as NCCL spreads them over its channels; with the default of one channel the plan is
/// the real backends' Program.
#include <gtest/gtest.h>

#include "copro/sim/communicator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

constexpr std::int32_t kRanks = 64;
constexpr double kIssueUs = 1.0;

double pairwiseUs(std::int32_t channels, const topo::Fabric& f) {
  CommunicatorOptions o;
  SimParams params;
  params.initiation[static_cast<int>(core::Initiation::kDevice)].issue = core::Time::us(kIssueUs);
  params.channels = channels;
  o.params = params;
  Communicator comm(f, o);
  CollectiveCall call;
  call.kind = collectives::CollectiveKind::kAllToAll;
  call.algorithm = "pairwise";
  call.size = 64ULL * kRanks;  // 64-B blocks: the issue costs dominate
  const PreparedCall p = comm.prepare(call);
  EXPECT_EQ(p.program->numLanes(0), channels);
  return comm.run(*p.program).time.microseconds();
}

TEST(Channels, PairwiseAllToAllIssuesOverSeveralLanes) {
  const topo::Fabric f = testing::starFabric(kRanks, core::Bandwidth::gbps(400), core::Time::ns(500), core::Time{});
  const double one = pairwiseUs(1, f);
  const double eight = pairwiseUs(8, f);
  // One lane issues 63 puts back to back; eight lanes issue 8 (or 7) each, at the same time.
  EXPECT_GE(one, (kRanks - 1) * kIssueUs);
  EXPECT_LT(eight, 9 * kIssueUs + (one - (kRanks - 1) * kIssueUs) + 1.0);
  EXPECT_GT(one / eight, 4.0);
}

}  // namespace
}  // namespace copro::sim
