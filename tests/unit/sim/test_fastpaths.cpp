/// The simulator's fast paths against plain references: the indexed-heap progressive filling (one heap entry
/// per shared channel plus one per flow for its private channels) against a naive water-filling, and the
/// per-lane caches of ordering entries and routes under a lane that cycles over more peers than they hold.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "copro/core/status.hpp"
#include "copro/sim/simulator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using core::Addr;
using core::BufferId;
using core::Op;

/// Max-min rates by the textbook progressive filling: scan every channel for the smallest fair share.
std::vector<double> naiveMaxMin(const std::vector<double>& capacity,
                                const std::vector<std::vector<std::int32_t>>& paths, const std::vector<bool>& active) {
  const std::size_t nf = paths.size();
  std::vector<double> rate(nf, 0.0);
  std::vector<bool> fixed(nf, false);
  std::vector<double> rem = capacity;
  std::vector<int> unfixed(capacity.size(), 0);
  for (std::size_t f = 0; f < nf; ++f) {
    if (!active[f]) continue;
    for (const std::int32_t c : paths[f]) ++unfixed[static_cast<std::size_t>(c)];
  }
  for (;;) {
    std::int32_t best = -1;
    double share = 0.0;
    for (std::size_t c = 0; c < capacity.size(); ++c) {
      if (unfixed[c] == 0) continue;
      const double s = rem[c] / unfixed[c];
      if (best < 0 || s < share) {
        best = static_cast<std::int32_t>(c);
        share = s;
      }
    }
    if (best < 0) return rate;
    for (std::size_t f = 0; f < nf; ++f) {
      if (!active[f] || fixed[f]) continue;
      if (std::find(paths[f].begin(), paths[f].end(), best) == paths[f].end()) continue;
      fixed[f] = true;
      rate[f] = share;
      for (const std::int32_t c : paths[f]) {
        rem[static_cast<std::size_t>(c)] = std::max(0.0, rem[static_cast<std::size_t>(c)] - share);
        --unfixed[static_cast<std::size_t>(c)];
      }
    }
  }
}

TEST(SimFastPaths, RandomFlowsMatchANaiveWaterFilling) {
  const unsigned seed = 20261129;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  for (int round = 0; round < 20; ++round) {
    // Links of a few bandwidths (ties included) between random node pairs; no latency, so completion =
    // transfer end.
    topo::Fabric fab;
    const int numNodes = 6;
    for (int i = 0; i < numNodes; ++i) fab.addNode(testing::makeNode(topo::NodeKind::kSwitch, "s" + std::to_string(i)));
    const int numLinks = 4 + static_cast<int>(rng() % 8);
    const double bws[] = {10e9, 20e9, 25e9, 40e9};
    for (int l = 0; l < numLinks; ++l) {
      const auto a = static_cast<std::int32_t>(rng() % numNodes);
      const auto b = static_cast<std::int32_t>((a + 1 + static_cast<std::int32_t>(rng() % (numNodes - 1))) % numNodes);
      fab.addLink(a, b, topo::LinkKind::kNetwork, core::Bandwidth::bytesPerSec(bws[rng() % 4]), core::Time{});
    }
    fab.finalize();
    const auto numChannels = static_cast<std::int32_t>(2 * fab.links().size());
    std::vector<double> capacity(static_cast<std::size_t>(numChannels));
    for (std::int32_t c = 0; c < numChannels; ++c) {
      capacity[static_cast<std::size_t>(c)] = fab.links()[static_cast<std::size_t>(c / 2)].bandwidth.bytesPerSecond();
    }
    const int numFlows = 2 + static_cast<int>(rng() % 30);
    std::vector<FlowSpec> specs(static_cast<std::size_t>(numFlows));
    std::vector<std::vector<std::int32_t>> paths(specs.size());
    for (std::size_t f = 0; f < specs.size(); ++f) {
      const int hops = 1 + static_cast<int>(rng() % 4);
      while (static_cast<int>(paths[f].size()) < hops) {
        const auto c = static_cast<std::int32_t>(rng() % static_cast<unsigned>(numChannels));
        if (std::find(paths[f].begin(), paths[f].end(), c) == paths[f].end()) paths[f].push_back(c);
      }
      specs[f].channels = paths[f];
      specs[f].bytes = 100'000 + 1000 * (rng() % 1000);
      specs[f].start = core::Time::ns(static_cast<std::int64_t>(rng() % 3) * 5000);  // three start times
    }
    const auto got = simulateFlows(fab, specs);

    // Reference: event by event in double seconds with the naive filling.
    std::vector<double> remaining(specs.size());
    std::vector<bool> active(specs.size(), false);
    std::vector<bool> done(specs.size(), false);
    std::vector<double> want(specs.size(), 0.0);
    for (std::size_t f = 0; f < specs.size(); ++f) remaining[f] = static_cast<double>(specs[f].bytes);
    double t = 0.0;
    for (;;) {
      for (std::size_t f = 0; f < specs.size(); ++f) {
        if (!done[f] && !active[f] && specs[f].start.seconds() <= t + 1e-15) active[f] = true;
      }
      const auto rate = naiveMaxMin(capacity, paths, active);
      double dt = std::numeric_limits<double>::infinity();
      for (std::size_t f = 0; f < specs.size(); ++f) {
        if (active[f]) dt = std::min(dt, remaining[f] / rate[f]);
        if (!done[f] && !active[f]) dt = std::min(dt, specs[f].start.seconds() - t);
      }
      if (!std::isfinite(dt)) break;
      t += dt;
      for (std::size_t f = 0; f < specs.size(); ++f) {
        if (!active[f]) continue;
        remaining[f] -= rate[f] * dt;
        if (remaining[f] <= 1e-6 * static_cast<double>(specs[f].bytes)) {
          active[f] = false;
          done[f] = true;
          want[f] = t;
        }
      }
    }
    for (std::size_t f = 0; f < specs.size(); ++f) {
      const double ps = want[f] * 1e12;
      // The simulator rounds every completion up to the picosecond and re-bases the remaining bytes there:
      // a few ps of drift per event at most, far below a wrong rate (percents).
      EXPECT_NEAR(static_cast<double>(got[f].picoseconds()), ps, std::max(100.0, ps * 1e-6))
          << "round " << round << " flow " << f;
    }
  }
}

TEST(SimFastPaths, LaneCyclingOverManyPeersKeepsSignalAfterData) {
  // Rank 0's lane puts to four peers in turn, then signals them in turn, twice: more peers than the lane's
  // cached ordering entries and routes. Every signal must still wait for the data to its peer.
  const double bw = 10e9;
  const auto f = testing::starFabric(5, core::Bandwidth::bytesPerSec(bw), core::Time::us(1), core::Time::ns(500));
  core::ProgramHeader h;
  h.name = "cycle";
  h.nranks = 5;
  h.numSemaphores = 1;
  std::vector<core::RankProgram> ranks(5);
  const std::uint64_t mb = 1'000'000;
  for (int round = 0; round < 2; ++round) {
    for (std::int32_t peer = 1; peer <= 4; ++peer)
      ranks[0].emit(0, Op::put(peer, Addr{peer, BufferId::kOutput, 0}, Addr{}, mb));
    for (std::int32_t peer = 1; peer <= 4; ++peer) ranks[0].emit(0, Op::signal(peer, 0, 1));
  }
  ranks[0].emit(0, Op::flush());
  for (int r = 1; r <= 4; ++r) ranks[static_cast<std::size_t>(r)].emit(0, Op::wait(0, 2));
  SimParams p;
  p.signalBytes = 0;
  Simulator sim(f, p);
  const auto res = sim.run(core::Program(h, std::move(ranks)));
  // Eight 1 MB flows share rank 0's uplink from time 0 (B/8 each) and end together at 800 us; they land
  // 2.5 us later, and only then may the (instant) signals count.
  const std::int64_t landed = 800'000'000 + 2'500'000;
  EXPECT_EQ(res.time.picoseconds(), landed);
  for (int r = 1; r <= 4; ++r) EXPECT_EQ(res.ranks[static_cast<std::size_t>(r)].finish.picoseconds(), landed) << r;
  EXPECT_EQ(res.bytesDelivered, 8 * mb);
  // The same Program once more on the same Simulator gives the same result (caches are per run).
  std::vector<core::RankProgram> again(5);
  for (int round = 0; round < 2; ++round) {
    for (std::int32_t peer = 1; peer <= 4; ++peer)
      again[0].emit(0, Op::put(peer, Addr{peer, BufferId::kOutput, 0}, Addr{}, mb));
    for (std::int32_t peer = 1; peer <= 4; ++peer) again[0].emit(0, Op::signal(peer, 0, 1));
  }
  again[0].emit(0, Op::flush());
  for (int r = 1; r <= 4; ++r) again[static_cast<std::size_t>(r)].emit(0, Op::wait(0, 2));
  EXPECT_EQ(sim.run(core::Program(h, std::move(again))).time, res.time);
}

}  // namespace
}  // namespace copro::sim
