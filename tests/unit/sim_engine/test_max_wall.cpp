/// RunOptions::maxWallSeconds: a run stopped early ends cleanly (no deadlock report) with Result::stopped
/// and partial statistics; progress keeps coming while re-solves dominate; no limit changes nothing.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::sim {
namespace {

CollectiveCall ringCall() {
  CollectiveCall call;
  call.kind = collectives::CollectiveKind::kAllReduce;
  call.size = std::uint64_t{64} << 20;
  call.algorithm = "ring";
  call.chunkBytes = call.size;
  return call;
}

TEST(MaxWall, StopsARunCleanlyWithPartialStatistics) {
  const topo::Fabric f = topo::buildTopology("single_switch", {{"gpus", "256"}});
  Communicator comm(f);
  const PreparedCall prepared = comm.prepare(ringCall());
  const Result full = comm.run(*prepared.program);
  EXPECT_FALSE(full.stopped);
  RunOptions limited;
  limited.maxWallSeconds = 1e-9;  // the first check stops it
  limited.symmetry = false;       // folded, the ring ends before the first check (65,536 events)
  const Result part = comm.run(*prepared.program, limited);
  EXPECT_TRUE(part.stopped);
  EXPECT_GT(part.events, 0u);
  EXPECT_LT(part.events, full.events);
  EXPECT_LT(part.time, full.time);
  EXPECT_LT(part.bytesDelivered, full.bytesDelivered);
  // A generous limit is never reached: the same result as without one.
  RunOptions generous;
  generous.maxWallSeconds = 3600;
  const Result same = comm.run(*prepared.program, generous);
  EXPECT_FALSE(same.stopped);
  EXPECT_EQ(same.time, full.time);
  EXPECT_EQ(same.events, full.events);
}

TEST(MaxWall, ProgressComesDuringLargeReSolves) {
  // An incast of 3000 puts of distinct sizes into rank 0: about 9,000 events (under one report's 65,536),
  // each finish re-solving the component of all the flows still running (~4.5 M flow visits in all).
  const int p = 3001;
  const topo::Fabric f = topo::buildTopology("single_switch", {{"gpus", std::to_string(p)}});
  core::ProgramHeader h;
  h.name = "incast";
  h.nranks = p;
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(p));
  for (int r = 1; r < p; ++r) {
    const auto bytes = static_cast<std::uint64_t>(4096 + 64 * r);
    ranks[static_cast<std::size_t>(r)].emit(
        0, core::Op::put(0, core::Addr{0, core::BufferId::kOutput, 0}, core::Addr{}, bytes));
    ranks[static_cast<std::size_t>(r)].emit(0, core::Op::flush());
  }
  const core::Program program(h, std::move(ranks));
  Simulator sim(f, SimParams::fromFabric(f));
  int reports = 0;
  RunOptions opts;
  opts.progress = [&reports](core::Time, std::uint64_t) { ++reports; };
  const Result r = sim.run(program, opts);
  EXPECT_LT(r.events, 65536u);
  EXPECT_GE(reports, 1) << r.events << " events, " << r.rateRecomputations << " re-solves";
}

}  // namespace
}  // namespace copro::sim
