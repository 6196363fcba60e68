/// The host model of `copro-perf --predict` (docs/perf.md, "Prediction against measurement"): a probed host
/// (copro-topo probe's file, from fixed figures here instead of measurements) and the `lsa` all-reduce the
/// CPU executors run as one fused read-add-write pass. The model's arithmetic is deterministic, so the test
/// checks it exactly rather than against noisy timings: with `reduce_streams` (the probe's default) the
/// reduction overlaps its reads and a 2-rank all-reduce of S bytes costs max(S/2L, S/2R) + S/2L (L the
/// per-rank link share of the copy rate, R the per-rank reduce rate); without it, the sum S/L + S/2R.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "copro/sim/communicator.hpp"
#include "copro/topologies/probe.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::sim {
namespace {

constexpr std::uint64_t kBytes = 64ULL << 20;

topo::ProbeResult quietHost() {
  topo::ProbeResult p;
  p.hostName = "test";
  p.cores = 2;
  p.ranks = 2;
  p.copyOneCore = 10e9;  // link share: min(16 / 2, 10) = 8 GB/s
  p.copyAllRanks = 16e9;
  p.reduceOneCore = 6e9;  // reduce share: min(8 / 2, 6) = 4 GB/s
  p.reduceAllRanks = 8e9;
  return p;  // no latency, no per-op cost: the bandwidth terms alone
}

double lsaUs(const std::string& yaml) {
  const topo::Fabric f = topo::loadTopologyText(yaml, "probe.yaml");
  Communicator comm(f);
  // As copro-perf --predict does: the real communicator's arguments (one load/store domain, one chunk).
  collectives::CollectiveArgs args;
  args.nranks = 2;
  args.count = kBytes / 4;
  args.chunkBytes = kBytes;
  const PreparedCall p = comm.prepare(args, "lsa");
  return comm.run(*p.program).time.microseconds();
}

TEST(HostModel, ProbeFilesStreamTheirReductions) {
  const std::string yaml = topo::probeTopologyYaml(quietHost(), kBytes);
  EXPECT_NE(yaml.find("reduce_streams: true"), std::string::npos) << yaml;
  const double s = static_cast<double>(kBytes);
  const double link = 8e9;
  const double reduce = 4e9;
  // Rank r reads block r (S/2) of its peer while it reduces it, then writes it into the peer's output.
  const double streamed = (std::max(s / 2 / link, s / 2 / reduce) + s / 2 / link) * 1e6;
  EXPECT_NEAR(lsaUs(yaml), streamed, streamed * 1e-3);
  std::string serial = yaml;
  serial.replace(serial.find("reduce_streams: true"), 20, "reduce_streams: false");
  const double sum = (s / link + s / 2 / reduce) * 1e6;
  EXPECT_NEAR(lsaUs(serial), sum, sum * 1e-3);
  // The fused pass is what the CPU executors run: the serial model overestimates this host by a third.
  EXPECT_NEAR(sum / streamed, 4.0 / 3.0, 1e-3);
}

}  // namespace
}  // namespace copro::sim
