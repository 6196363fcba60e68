// The what-if studies' runner (tools/study_common.hpp): simulated times against formulas, traffic per switch
// tier and through hosts against exact byte counts, placement, the markdown table and the index.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "copro/core/status.hpp"
#include "study_common.hpp"
#include "study_records.hpp"

namespace copro::tools::study {
namespace {

using collectives::CollectiveKind;

std::string readFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(StudyRunner, PairwiseAllToAllMatchesTheFormula) {
  // single-switch-1024: alpha = 2 x 0.5 us + 1 us, 50 GB/s, free initiation (docs/simulator.md): pairwise
  // all-to-all takes alpha + (p-1) m beta with m the block.
  StudyCase c;
  c.topology = "single-switch-1024";
  c.kind = CollectiveKind::kAllToAll;
  c.algorithm = "pairwise";
  c.ranks = 4;
  c.size = 4U << 20;
  const StudyOutcome o = runStudyCase(loadFabric(c.topology), c);
  const double m = static_cast<double>(c.size) / 4;
  const double expectUs = 2.0 + 3 * m / 50e3;
  EXPECT_NEAR(o.timeUs, expectUs, expectUs * 1e-3);
  EXPECT_EQ(o.bytes, c.size);
  EXPECT_NEAR(o.busbwGBps, o.algbwGBps * 3 / 4, 1e-9);
  EXPECT_EQ(o.bytesPut, 4U * 3U * static_cast<std::uint64_t>(m));
  EXPECT_EQ(o.spineBytes, 0U);  // one switch, no tiers above it
  EXPECT_EQ(o.hostBytes, 0U);
}

TEST(StudyRunner, CrossPlaneTrafficCrossesHostsOnMpftAndSpinesOnMrft) {
  // EP64 on servers 0-7: one leaf per plane (MPFT) or per rail (MRFT). Each rank sends a block to the 49
  // ranks of the 7 other servers with another local index: on MPFT they cross the source's host root
  // complex (no PXN) and no spine; on MRFT they cross a spine and no host.
  StudyCase c;
  c.kind = CollectiveKind::kAllToAll;
  c.algorithm = "pairwise";
  c.ranks = 64;
  c.size = 1U << 20;
  const std::uint64_t block = c.size / 64;
  const std::uint64_t crossPlane = 64U * 49U * block;
  const std::uint64_t interServer = 64U * 56U * block;
  c.topology = "deepseek-v3";
  const StudyOutcome mpft = runStudyCase(loadFabric(c.topology), c);
  EXPECT_EQ(mpft.spineBytes, 0U);
  EXPECT_EQ(mpft.hostBytes, crossPlane);
  EXPECT_EQ(mpft.networkBytes, interServer);
  EXPECT_EQ(mpft.nodes, 8);
  c.topology = "mrft-2048";
  const StudyOutcome mrft = runStudyCase(loadFabric(c.topology), c);
  EXPECT_EQ(mrft.spineBytes, crossPlane);
  EXPECT_EQ(mrft.hostBytes, 0U);
  EXPECT_EQ(mrft.networkBytes, interServer);
}

TEST(StudyRunner, SpreadPlacementTakesServersStrideApart) {
  const auto& f = loadFabric("deepseek-v3");
  const auto p = spreadPlacement(f, 8, 32);
  ASSERT_EQ(p.size(), 64U);
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[7], 7);
  EXPECT_EQ(p[8], 32 * 8);
  EXPECT_EQ(p[63], 224 * 8 + 7);
  try {
    (void)spreadPlacement(f, 9, 32);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("9 servers 32 apart need 257 servers; 'deepseek-v3' has 256"),
              std::string::npos)
        << e.what();
  }
}

TEST(StudyRunner, ThreadsGiveTheSameResultsInOrder) {
  std::vector<StudyCase> cases;
  for (const int p : {2, 4, 8, 16}) {
    StudyCase c;
    c.topology = "single-switch-1024";
    c.ranks = p;
    c.size = 1U << 20;
    cases.push_back(c);
  }
  const auto one = runStudyCases(cases, 1, true);
  const auto three = runStudyCases(cases, 3, true);
  ASSERT_EQ(one.size(), cases.size());
  ASSERT_EQ(three.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(one[i].ranks, cases[i].ranks);
    EXPECT_EQ(one[i].timeUs, three[i].timeUs) << i;
    EXPECT_EQ(one[i].bytesPut, three[i].bytesPut) << i;
  }
  EXPECT_LT(one[0].timeUs, one[3].timeUs);
}

TEST(StudyRunner, TooManyRanksNamesTheFabric) {
  StudyCase c;
  c.topology = "h800-node";
  c.ranks = 16;
  try {
    (void)runStudyCase(loadFabric(c.topology), c);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("16 ranks but 'h800-node' has 8 GPUs"), std::string::npos) << e.what();
  }
}

TEST(StudyRunner, PxnKeepsRailOptimizedTrafficOffTheSpines) {
  // Study e's claim: 32 ranks on 4 servers of rail-optimized-128, pairwise all-to-all of 1 MiB (32 KiB
  // blocks). Without PXN, each rank's blocks to the 3 x 7 off-rail ranks of other servers cross a spine once;
  // with PXN (relay, or relay and aggregate) they go over NVLink to the rail-aligned GPU and stay on its leaf.
  StudyCase c;
  c.topology = "rail-optimized-128";
  c.kind = CollectiveKind::kAllToAll;
  c.algorithm = "pairwise";
  c.ranks = 32;
  c.size = 1U << 20;
  const std::uint64_t block = c.size / 32;
  const StudyOutcome off = runStudyCase(loadFabric(c.topology), c);
  EXPECT_EQ(off.spineBytes, 32U * 21U * block);
  EXPECT_EQ(off.networkBytes, 32U * 24U * block);  // every inter-server block enters a leaf once
  for (std::int32_t level : {1, 2}) {
    c.pxnLevel = level;
    const StudyOutcome on = runStudyCase(loadFabric(c.topology), c);
    EXPECT_EQ(on.spineBytes, 0U) << "PXN " << level;
    EXPECT_EQ(on.networkBytes, 32U * 24U * block) << "PXN " << level;
    EXPECT_EQ(on.hostBytes, 0U) << "PXN " << level;
  }
}

TEST(StudyRunner, MoeCasesMatchSimulateMoeAndCheckTheNodeMap) {
  // One HGX H800 (8 ranks, one node), 16 tokens: the parallel runner gives what simulateMoe gives.
  MoeCase c;
  c.topology = "h800-node";
  c.ranks = 8;
  c.tokens = 16;
  c.config = deepSeekV3MoeConfig(collectives::MoePath::kDirect);
  c.config.maxNodesPerToken = 0;
  const std::vector<MoeCase> cases = {c, c};
  const auto out = runMoeCases(cases, 2, true);
  const auto& fabric = loadFabric(c.topology);
  const auto nodes = moeNodeOfRank(fabric, 8);
  const auto routing = collectives::MoeRouting::uniform(8, 16, 8, 256, 0, nodes, 1);
  const auto ref = simulateMoe(fabric, c.config, routing, nodes, sim::SimParams::fromFabric(fabric));
  ASSERT_EQ(out.size(), 2U);
  for (const auto& o : out) {
    EXPECT_EQ(o.result.dispatch.picoseconds(), ref.dispatch.picoseconds());
    EXPECT_EQ(o.result.combine.picoseconds(), ref.combine.picoseconds());
    EXPECT_GT(o.result.dispatch.picoseconds(), 0);
    EXPECT_EQ(o.result.scaleOutBytes, 0U);  // one server
  }
  MoeCase bad = c;
  bad.nodeOfRank = {0, 0, 0};
  try {
    (void)runMoeCases({bad}, 1, true);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("maps 3 ranks to nodes but runs 8"), std::string::npos) << e.what();
  }
}

TEST(StudyRecords, OutcomesTravelBitForBit) {
  // What a sharded study sends between MPI ranks: a real MoE outcome (per-rank and per-channel statistics
  // included) and a study outcome come back equal, field for field and byte for byte.
  MoeCase c;
  c.topology = "h800-node";
  c.ranks = 8;
  c.tokens = 16;
  c.config = deepSeekV3MoeConfig(collectives::MoePath::kDirect);
  c.config.maxNodesPerToken = 0;
  const MoeOutcome moe = runMoeCases({c}, 1, true).at(0);
  ASSERT_FALSE(moe.result.dispatchResult.channels.empty());
  const std::string bytes = encodeOutcome(moe);
  const MoeOutcome back = decodeMoeOutcome(bytes);
  EXPECT_EQ(encodeOutcome(back), bytes);
  EXPECT_EQ(back.result.dispatch.picoseconds(), moe.result.dispatch.picoseconds());
  EXPECT_EQ(back.result.combineGBps, moe.result.combineGBps);
  EXPECT_EQ(back.result.dispatchResult.channels.size(), moe.result.dispatchResult.channels.size());
  EXPECT_EQ(back.result.combineResult.ranks.size(), moe.result.combineResult.ranks.size());
  EXPECT_EQ(back.result.combineResult.events, moe.result.combineResult.events);

  StudyOutcome s;
  s.topologyName = "deepseek-v3";
  s.algorithm = "pairwise";
  s.ranks = 64;
  s.timeUs = 1.0 / 3.0;
  s.hostBytes = 12345;
  const StudyOutcome t = decodeStudyOutcome(encodeOutcome(s));
  EXPECT_EQ(t.topologyName, s.topologyName);
  EXPECT_EQ(t.algorithm, s.algorithm);
  EXPECT_EQ(t.ranks, 64);
  EXPECT_EQ(t.timeUs, s.timeUs);  // exact: doubles are copied, not printed
  EXPECT_EQ(t.hostBytes, 12345U);
}

TEST(StudyRecords, ABadRecordIsAnErrorNotACrash) {
  StudyOutcome s;
  s.topologyName = "x";
  const std::string bytes = encodeOutcome(s);
  for (const std::string& bad : {bytes.substr(0, bytes.size() - 1), bytes + "z", std::string("\xff\xff\xff\xff")}) {
    try {
      (void)decodeStudyOutcome(bad);
      FAIL() << "expected an error for a record of " << bad.size() << " bytes";
    } catch (const core::Error& e) {
      EXPECT_EQ(e.code(), core::ErrorCode::kInternal) << e.what();
    }
  }
  // An error travels with its code and message, and says where it happened.
  const core::Error e =
      decodeError(encodeError(std::make_exception_ptr(core::Error(core::ErrorCode::kParseError, "bad"))), 4, 1);
  EXPECT_EQ(e.code(), core::ErrorCode::kParseError);
  EXPECT_EQ(e.message(), "bad (point 4, on MPI rank 1)");
}

TEST(StudyRunner, ShardedForWithoutShardsIsParallelFor) {
  StudyOptions o;
  o.jobs = 3;
  const auto out = shardedFor(5, o, [](std::size_t i) { return std::string(i, 'x'); });
  ASSERT_EQ(out.size(), 5U);
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], std::string(i, 'x'));
  EXPECT_TRUE(writesFiles(o));
  EXPECT_EQ(workersText(o), "3 thread(s)");
  EXPECT_THROW((void)shardedFor(3, o,
                                [](std::size_t i) -> std::string {
                                  if (i == 1) throw core::Error(core::ErrorCode::kInvalidArgument, "no");
                                  return "";
                                }),
               core::Error);
}

TEST(StudyOutput, MarkdownTableAndBytes) {
  MarkdownTable t({"name", "value"}, {false, true});
  t.addRow({"x", "1"});
  t.addRow({"y"});
  EXPECT_EQ(t.render(), "| name | value |\n|---|---:|\n| x | 1 |\n| y |  |\n");
  EXPECT_EQ(bytesText(16U << 20), "16 MiB");
  EXPECT_EQ(bytesText(917504), "896 KiB");
  EXPECT_EQ(bytesText(1000), "1000 B");
}

TEST(StudyOutput, RegistryAndIndex) {
  EXPECT_EQ(studyRegistry().size(), 6U);
  EXPECT_TRUE(findStudy("a").run != nullptr);
  for (const char* id : {"b", "c", "e", "f"}) EXPECT_TRUE(findStudy(id).run != nullptr) << id;
  EXPECT_EQ(findStudy("d-ibgda-vs-proxy-decode").id, "d");
  try {
    (void)findStudy("z");
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown study 'z'; studies are a, b, c, d, e, f"), std::string::npos);
  }
  StudyOptions o;
  o.outDir = (std::filesystem::temp_directory_path() / ("copro-study-index-" + std::to_string(::getpid()))).string();
  writeTextFile(studyPrefix(o, findStudy("a")) + ".md", std::string("# a\n\n") + kHeadlineMarker + "It works.\n");
  writeIndex(o);
  const std::string index = readFile(o.outDir + "/README.md");
  EXPECT_NE(index.find("| [a](a-multiplane-vs-multirail.md) |"), std::string::npos) << index;
  EXPECT_NE(index.find("| It works. |"), std::string::npos) << index;
  EXPECT_NE(index.find("| b | Co-processor offload"), std::string::npos) << index;
  EXPECT_NE(index.find("not run yet (`studies/b-offload-vs-sm-kernels.sh`)"), std::string::npos) << index;
  EXPECT_NE(index.find("not run yet (`studies/d-ibgda-vs-proxy-decode.sh`)"), std::string::npos) << index;
  std::filesystem::remove_all(o.outDir);
}

}  // namespace
}  // namespace copro::tools::study
