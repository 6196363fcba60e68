/// The incremental max-min solver against full re-solves: FlowNetwork re-solves only the components (flows
/// <-> channels) that a batch of starts and finishes touched. On 1,000 random flow sets, driven through
/// random sequences of starts and finishes, every active flow's rate after each incremental re-solve must
/// equal, to the last bit, (a) the rate a fresh FlowNetwork gives when it solves all the active flows at
/// once and (b) a textbook global progressive filling that pops channels in (fair share, channel id) order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "copro/core/units.hpp"
#include "copro/topologies/fabric.hpp"
#include "flow_network.hpp"

namespace copro::sim::detail {
namespace {

using Path = std::vector<std::int32_t>;

/// Global progressive filling over every channel: the smallest (remaining capacity / unfixed flows,
/// channel id) is the next bottleneck; its unfixed flows get that share (floored at capacity * 1e-12, as
/// the engine does), which is taken from every channel they cross.
std::vector<double> globalWaterFilling(const std::vector<double>& capacity, const std::vector<Path>& paths) {
  std::vector<double> rate(paths.size(), 0.0);
  std::vector<bool> fixed(paths.size(), false);
  std::vector<double> rem = capacity;
  std::vector<int> unfixed(capacity.size(), 0);
  for (const Path& p : paths) {
    for (const std::int32_t c : p) ++unfixed[static_cast<std::size_t>(c)];
  }
  for (;;) {
    std::size_t best = capacity.size();
    double share = 0.0;
    for (std::size_t c = 0; c < capacity.size(); ++c) {
      if (unfixed[c] == 0) continue;
      const double s = rem[c] / unfixed[c];
      if (best == capacity.size() || s < share) {
        best = c;
        share = s;
      }
    }
    if (best == capacity.size()) return rate;
    share = std::max(share, capacity[best] * 1e-12);
    for (std::size_t f = 0; f < paths.size(); ++f) {
      if (fixed[f] || std::find(paths[f].begin(), paths[f].end(), static_cast<std::int32_t>(best)) == paths[f].end()) {
        continue;
      }
      fixed[f] = true;
      rate[f] = share;
      for (const std::int32_t c : paths[f]) {
        auto& r = rem[static_cast<std::size_t>(c)];
        r = std::max(0.0, r - share);
        --unfixed[static_cast<std::size_t>(c)];
      }
    }
  }
}

/// A random multigraph of switches; half the rounds use a few bandwidths (ties between channels), the
/// other half arbitrary ones (rounding in every division).
topo::Fabric randomFabric(std::mt19937& rng, bool fewBandwidths) {
  topo::Fabric fab;
  const int numNodes = 4 + static_cast<int>(rng() % 7);
  for (int i = 0; i < numNodes; ++i) {
    topo::Node n;
    n.kind = topo::NodeKind::kSwitch;
    n.name = "s" + std::to_string(i);
    fab.addNode(n);
  }
  const int numLinks = 3 + static_cast<int>(rng() % 18);
  const double bws[] = {10e9, 20e9, 25e9, 40e9};
  std::uniform_real_distribution<double> anyBw(1e9, 100e9);
  for (int l = 0; l < numLinks; ++l) {
    const auto a = static_cast<std::int32_t>(rng() % static_cast<unsigned>(numNodes));
    const auto b = static_cast<std::int32_t>((a + 1 + static_cast<std::int32_t>(rng() % (numNodes - 1))) % numNodes);
    const double bw = fewBandwidths ? bws[rng() % 4] : anyBw(rng);
    fab.addLink(a, b, topo::LinkKind::kNetwork, core::Bandwidth::bytesPerSec(bw), core::Time{});
  }
  fab.finalize();
  return fab;
}

Path randomPath(std::mt19937& rng, std::int32_t numChannels) {
  const int hops = 1 + static_cast<int>(rng() % 5);
  Path p;
  while (static_cast<int>(p.size()) < std::min(hops, static_cast<int>(numChannels))) {
    const auto c = static_cast<std::int32_t>(rng() % static_cast<unsigned>(numChannels));
    if (std::find(p.begin(), p.end(), c) == p.end()) p.push_back(c);
  }
  return p;
}

struct ActiveFlow {
  std::int32_t id;  ///< in the incremental network
  Path path;
};

/// Compares the incremental network's rates with both references; returns the number of mismatches.
int checkAgainstFullSolves(const topo::Fabric& fab, const FlowNetwork& inc, const std::vector<ActiveFlow>& active,
                           std::int64_t now, std::mt19937& rng) {
  FlowNetwork full(fab);
  std::vector<std::size_t> order(active.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);  // the full solve must not depend on the start order
  std::vector<std::int32_t> fullId(active.size());
  for (const std::size_t i : order) {
    fullId[i] = full.start(now, active[i].path.data(), active[i].path.size(), 1'000'000, 0);
  }
  std::vector<NetworkModel::Finish> sink;
  full.recompute(now, sink);
  std::vector<double> capacity(inc.numChannels());
  for (std::size_t c = 0; c < capacity.size(); ++c) capacity[c] = inc.capacity(static_cast<std::int32_t>(c));
  std::vector<Path> paths;
  for (const ActiveFlow& f : active) paths.push_back(f.path);
  const std::vector<double> naive = globalWaterFilling(capacity, paths);
  int bad = 0;
  for (std::size_t i = 0; i < active.size(); ++i) {
    const double got = inc.rateOf(active[i].id);
    if (got != full.rateOf(fullId[i]) || got != naive[i]) {
      ++bad;
      ADD_FAILURE() << "flow " << i << ": incremental " << got << " B/s, full re-solve " << full.rateOf(fullId[i])
                    << ", global filling " << naive[i];
    }
  }
  return bad;
}

TEST(IncrementalMaxMin, AgreesBitForBitWithFullResolvesOnRandomFlowSets) {
  const unsigned seed = 20261207;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  int checks = 0;
  for (int set = 0; set < 1000; ++set) {
    const topo::Fabric fab = randomFabric(rng, set % 2 == 0);
    const auto numChannels = static_cast<std::int32_t>(2 * fab.links().size());
    FlowNetwork inc(fab);
    std::vector<ActiveFlow> active;
    std::vector<NetworkModel::Finish> out;
    std::int64_t now = 0;
    // Batches of starts and finishes, each followed by one incremental re-solve, as the executor runs them.
    const int batches = 4 + static_cast<int>(rng() % 8);
    for (int b = 0; b < batches; ++b) {
      now += 1000 + static_cast<std::int64_t>(rng() % 1'000'000);
      const int finishes = active.empty() ? 0 : static_cast<int>(rng() % (active.size() / 2 + 1));
      for (int k = 0; k < finishes; ++k) {
        const std::size_t victim = rng() % active.size();
        inc.finish(active[victim].id, now);
        active.erase(active.begin() + static_cast<std::ptrdiff_t>(victim));
      }
      const int starts = static_cast<int>(rng() % 12);
      for (int k = 0; k < starts; ++k) {
        Path p = randomPath(rng, numChannels);
        const std::uint64_t bytes = 1000 + rng() % 10'000'000;
        const std::int32_t id = inc.start(now, p.data(), p.size(), bytes, 0);
        active.push_back({id, std::move(p)});
      }
      out.clear();
      inc.recompute(now, out);
      ASSERT_EQ(checkAgainstFullSolves(fab, inc, active, now, rng), 0) << "set " << set << " batch " << b;
      ++checks;
    }
  }
  std::printf("%d re-solves compared\n", checks);
}

TEST(IncrementalMaxMin, UntouchedComponentsKeepTheirRatesAndFinishTimes) {
  // Two disjoint pairs of flows: a change to one pair must not report (re-time) the other.
  topo::Fabric fab;
  for (int i = 0; i < 4; ++i) {
    topo::Node n;
    n.kind = topo::NodeKind::kSwitch;
    n.name = "s" + std::to_string(i);
    fab.addNode(n);
  }
  fab.addLink(0, 1, topo::LinkKind::kNetwork, core::Bandwidth::bytesPerSec(10e9), core::Time{});
  fab.addLink(2, 3, topo::LinkKind::kNetwork, core::Bandwidth::bytesPerSec(10e9), core::Time{});
  fab.finalize();
  FlowNetwork net(fab);
  const std::int32_t a = 0;
  const std::int32_t c = 2;
  const std::int32_t f0 = net.start(0, &a, 1, 10'000'000, 0);
  const std::int32_t f1 = net.start(0, &a, 1, 20'000'000, 1);
  const std::int32_t f2 = net.start(0, &c, 1, 10'000'000, 2);
  std::vector<NetworkModel::Finish> out;
  net.recompute(0, out);
  EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(net.rateOf(f0), 5e9);
  // f0 ends (10 MB at 5 GB/s = 2 ms): only f1 is re-timed; f2's component was not touched.
  net.finish(f0, 2'000'000'000);
  out.clear();
  net.recompute(2'000'000'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flow, f1);
  EXPECT_EQ(net.rateOf(f1), 10e9);
  EXPECT_EQ(net.rateOf(f2), 10e9);
  // f1 had 10 MB left at 10 GB/s: 1 ms more.
  EXPECT_EQ(out[0].time, 3'000'000'000);
}

}  // namespace
}  // namespace copro::sim::detail
