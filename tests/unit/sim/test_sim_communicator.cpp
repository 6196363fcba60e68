/// sim::Communicator, the collective-level entry point (docs/simulator.md, "The simulated communicator"):
/// what it takes from the fabric, the planner's topology-aware cost model, and concurrent runs that share
/// links — directly (runConcurrently) and in workloads (two overlapping all-to-alls).
#include <gtest/gtest.h>

#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/sim/workload.hpp"
#include "copro/sim/workload_comm.hpp"
#include "copro/topologies/topology.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using collectives::CollectiveKind;

CollectiveCall alltoall(std::uint64_t bytes) {
  CollectiveCall c;
  c.kind = CollectiveKind::kAllToAll;
  c.algorithm = "pairwise";
  c.size = bytes;
  return c;
}

TEST(SimCommunicator, TakesServersAndDomainsFromTheFabric) {
  const topo::Fabric f = topo::loadTopology("h800-node");
  Communicator one(f);  // one server: one node, one NVLink domain (left implicit)
  EXPECT_EQ(one.size(), 8);
  EXPECT_EQ(one.nodes(), 1);
  EXPECT_TRUE(one.loadStoreDomains().empty());
  CollectiveCall ar;
  ar.size = 64 << 20;
  const PreparedCall planned = one.prepare(ar);
  EXPECT_TRUE(planned.planned);
  EXPECT_GT(planned.estimateUs, 0.0);
  EXPECT_GT(one.run(*planned.program).time.picoseconds(), 0);
  ar.algorithm = "rign";
  try {
    (void)one.prepare(ar);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(e.message().find("did you mean 'ring'"), std::string::npos) << e.message();
  }
}

TEST(SimCommunicator, ConcurrentAllToAllsOnSharedLinksTakeLonger) {
  // Two leaves of two GPUs under one spine: groups {0, 2} and {1, 3} each cross the spine both ways.
  const auto f = testing::fatTree(2, 2, 1, core::Bandwidth::gbps(10));
  CommunicatorOptions a;
  a.placement = {0, 2};
  CommunicatorOptions b;
  b.placement = {1, 3};
  Communicator ca(f, a);
  Communicator cb(f, b);
  const auto pa = ca.prepare(alltoall(8 << 20));
  const auto pb = cb.prepare(alltoall(8 << 20));
  const core::Time aloneA = ca.run(*pa.program).time;
  const core::Time aloneB = cb.run(*pb.program).time;
  EXPECT_EQ(aloneA, aloneB);
  const Result both = runConcurrently({{&ca, pa.program.get(), {}}, {&cb, pb.program.get(), {}}});
  ASSERT_EQ(both.jobFinish.size(), 2U);
  // Each sends 4 MiB over the spine while the other does: the shared channels take twice as long.
  EXPECT_GT(both.jobFinish[0].picoseconds(), aloneA.picoseconds() * 19 / 10);
  EXPECT_GT(both.jobFinish[1].picoseconds(), aloneB.picoseconds() * 19 / 10);
  EXPECT_EQ(both.time, std::max(both.jobFinish[0], both.jobFinish[1]));
  // One launch alone is a plain run; a later start shifts the end by as much.
  const Result single = runConcurrently({{&ca, pa.program.get(), core::Time::us(5)}});
  EXPECT_EQ(single.jobFinish[0], aloneA + core::Time::us(5));
}

TEST(SimCommunicator, WorkloadWithTwoOverlappingAllToAllsTakesLongerThanEither) {
  // Two micro-batches' all-to-alls on the same four ranks, both ready at time 0.
  const auto f = testing::fatTree(2, 2, 1, core::Bandwidth::gbps(10));
  const Workload wl = parseWorkload(R"(
ranks: 4
tasks:
  - {name: a2a_mb0, type: collective, collective: alltoall, algorithm: pairwise, bytes: 8M, group: 4}
  - {name: a2a_mb1, type: collective, collective: alltoall, algorithm: pairwise, bytes: 4M, group: 4}
)",
                                    "overlap.yaml");
  WorkloadComm comm(f);
  WorkloadOptions o;
  o.ranks = 4;
  comm.bind(o);
  const WorkloadResult together = runWorkload(wl, o);
  o.concurrentCommTime = nullptr;
  const WorkloadResult apart = runWorkload(wl, o);
  const core::Time alone0 = apart.tasks[0].end;
  const core::Time alone1 = apart.tasks[1].end;
  EXPECT_EQ(apart.stepTime, std::max(alone0, alone1));  // without contention: the longer one
  EXPECT_GT(together.stepTime, alone0);
  EXPECT_GT(together.stepTime, alone1);
  for (const TaskTiming& t : together.tasks) {
    EXPECT_GT(t.end - t.start, t.nominal) << t.name;  // each slowed by the other
  }
}

}  // namespace
}  // namespace copro::sim
