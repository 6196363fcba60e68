/// The sim executor against the alpha-beta-gamma formulas, and its bookkeeping (conservation, determinism,
/// deadlock and bad-input errors, initiation costs).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "copro/collectives/collective.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/simulator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using collectives::CollectiveArgs;
using collectives::CollectiveKind;
using core::Addr;
using core::BufferId;
using core::Op;

// One non-blocking switch: per link latency L, switch delay D, bandwidth B; reduction bandwidth R.
constexpr double kL = 1e-6;
constexpr double kD = 0.5e-6;
constexpr double kB = 10e9;
constexpr double kR = 20e9;
constexpr double kAlpha = 2 * kL + kD;  // one message end to end
constexpr double kBeta = 1 / kB;
constexpr double kGamma = 1 / kR;

SimParams formulaParams() {
  SimParams p;
  p.reduceBandwidth = core::Bandwidth::bytesPerSec(kR);
  return p;  // copy free, initiation free
}

double simulate(CollectiveKind kind, const char* algo, int p, std::uint64_t countPerRank) {
  const auto f = testing::starFabric(p, core::Bandwidth::bytesPerSec(kB), core::Time::sec(kL), core::Time::sec(kD));
  CollectiveArgs a;
  a.kind = kind;
  a.nranks = p;
  a.count = countPerRank;
  a.dtype = core::DataType::kFloat32;
  a.chunkBytes = std::uint64_t{1} << 40;  // unchunked: the formulas have no pipelining term
  const auto program = collectives::buildProgram(a, algo);
  Simulator sim(f, formulaParams());
  return sim.run(*program).time.seconds();
}

void expectWithin(double got, double want, const char* what) {
  EXPECT_NEAR(got, want, want * 1e-3) << what << ": simulated " << got * 1e6 << " us, formula " << want * 1e6 << " us";
}

TEST(SimFormulas, RingAllReduce) {
  for (const int p : {2, 4, 8}) {
    const double n = 8.0 * 1024 * 1024;  // bytes per rank
    const double want = 2 * (p - 1) * kAlpha + 2.0 * (p - 1) / p * n * kBeta + 1.0 * (p - 1) / p * n * kGamma;
    expectWithin(simulate(CollectiveKind::kAllReduce, "ring", p, static_cast<std::uint64_t>(n / 4)), want, "ring AR");
  }
}

TEST(SimFormulas, LLPutsCarryTwiceTheBytes) {
  // oneshot_ll is oneshot with LL puts: the same steps, but NCCL-style LL lines put a flag beside every data
  // word, so each put's wire size doubles (docs/simulator.md).
  const auto f = testing::starFabric(2, core::Bandwidth::bytesPerSec(kB), core::Time::sec(kL), core::Time::sec(kD));
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllReduce;
  a.nranks = 2;
  a.count = 1024;  // 4 KiB per rank
  a.dtype = core::DataType::kFloat32;
  a.llMaxBytes = 4096;
  const double n = 4096;
  Simulator sim(f, formulaParams());
  const double simple = sim.run(*collectives::buildProgram(a, "oneshot")).time.seconds();
  const double ll = sim.run(*collectives::buildProgram(a, "oneshot_ll")).time.seconds();
  expectWithin(simple, kAlpha + n * kBeta + n * kGamma, "oneshot AR");
  expectWithin(ll, kAlpha + 2 * n * kBeta + n * kGamma, "oneshot_ll AR");
}

TEST(SimFormulas, RingReduceScatterAndAllGather) {
  const int p = 8;
  const double n = 8.0 * 1024 * 1024;  // the whole vector; each rank ends with n / p
  const auto count = static_cast<std::uint64_t>(n / 4 / p);
  const double rs = (p - 1) * kAlpha + 1.0 * (p - 1) / p * n * kBeta + 1.0 * (p - 1) / p * n * kGamma;
  const double ag = (p - 1) * kAlpha + 1.0 * (p - 1) / p * n * kBeta;
  expectWithin(simulate(CollectiveKind::kReduceScatter, "ring", p, count), rs, "ring RS");
  expectWithin(simulate(CollectiveKind::kAllGather, "ring", p, count), ag, "ring AG");
}

TEST(SimFormulas, RecursiveHalvingDoublingMatchesRabenseifner) {
  for (const int p : {2, 4, 8, 16}) {
    const double n = 8.0 * 1024 * 1024;
    const double lg = std::log2(p);
    const double want = 2 * lg * kAlpha + 2.0 * (p - 1) / p * n * kBeta + 1.0 * (p - 1) / p * n * kGamma;
    expectWithin(simulate(CollectiveKind::kAllReduce, "rhd", p, static_cast<std::uint64_t>(n / 4)), want, "rhd AR");
  }
}

TEST(SimFormulas, PairwiseAllToAll) {
  // copro's pairwise all-to-all issues its p-1 puts back to back and waits once, so the p-1 transfers of a
  // rank share its link concurrently and the latency is paid once, not per step: the simulated time is
  // alpha + (p-1) m beta. The textbook (p-1)(alpha + m beta) assumes a blocking exchange per step; the
  // bandwidth terms agree, the latency term differs by (p-2) alpha, as asserted here.
  const int p = 8;
  const double m = 1024.0 * 1024;  // bytes to each peer
  const double textbook = (p - 1) * (kAlpha + m * kBeta);
  const double got = simulate(CollectiveKind::kAllToAll, "pairwise", p, static_cast<std::uint64_t>(m / 4));
  expectWithin(got, kAlpha + (p - 1) * m * kBeta, "pairwise A2A");
  expectWithin(got + (p - 2) * kAlpha, textbook, "pairwise A2A + (p-2) alpha");
}

/// A small Program: rank 0 puts to rank 1 with a signal, rank 1 waits.
core::Program pingProgram(std::uint64_t bytes, int puts) {
  core::ProgramHeader h;
  h.name = "ping";
  h.nranks = 2;
  h.numSemaphores = 1;
  std::vector<core::RankProgram> ranks(2);
  for (int i = 0; i < puts; ++i) {
    ranks[0].emit(0, Op::put(1, Addr{1, BufferId::kOutput, 0}, Addr{}, bytes, 0, 1));
  }
  ranks[0].emit(0, Op::flush());
  ranks[1].emit(0, Op::wait(0, static_cast<std::uint64_t>(puts)));
  return core::Program(h, std::move(ranks));
}

TEST(SimExecutor, InitiationIssueCostAndMessageRate) {
  const auto f = testing::starFabric(2, core::Bandwidth::bytesPerSec(kB), core::Time::us(1), core::Time::ns(500));
  SimParams p;
  p.initiation[static_cast<int>(core::Initiation::kDevice)].issue = core::Time::us(1);
  Simulator plain(f, p);
  // Three 0-byte puts: issued at 1, 2, 3 us; the last lands 2.5 us later.
  EXPECT_EQ(plain.run(pingProgram(0, 3)).time.picoseconds(), 5'500'000);
  p.initiation[static_cast<int>(core::Initiation::kDevice)].messageRate = 1e5;  // one per 10 us
  p.initiation[static_cast<int>(core::Initiation::kDevice)].extraLatency = core::Time::us(2);
  Simulator limited(f, p);
  // Issued at 1, 11, 21 us; the last lands 2.5 + 2 us later.
  EXPECT_EQ(limited.run(pingProgram(0, 3)).time.picoseconds(), 25'500'000);
}

TEST(SimExecutor, SignalWaitsForEarlierDataToTheSamePeer) {
  // A 10 MB put without signal, then a standalone signal: the signal (8 B) overtakes nothing; the waiter
  // wakes when the data has landed, not when the tiny signal would have.
  const auto f = testing::starFabric(2, core::Bandwidth::bytesPerSec(kB), core::Time::us(1), {});
  core::ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  std::vector<core::RankProgram> ranks(2);
  ranks[0].emit(0, Op::put(1, Addr{1, BufferId::kOutput, 0}, Addr{}, 10'000'000));
  ranks[0].emit(0, Op::signal(1, 0, 1));
  ranks[1].emit(0, Op::wait(0, 1));
  SimParams p;
  p.signalBytes = 0;
  Simulator sim(f, p);
  const auto res = sim.run(core::Program(h, std::move(ranks)));
  EXPECT_EQ(res.time.picoseconds(), 1'000'000'000 + 2'000'000);
  EXPECT_EQ(res.ranks[1].finish.picoseconds(), 1'000'000'000 + 2'000'000);
}

TEST(SimExecutor, GetCompletesAtFlushAndReduceCosts) {
  const auto f = testing::starFabric(2, core::Bandwidth::bytesPerSec(kB), core::Time::us(1), {});
  core::ProgramHeader h;
  h.nranks = 2;
  std::vector<core::RankProgram> ranks(2);
  ranks[0].emit(0, Op::get(1, Addr{}, Addr{1, BufferId::kInput, 0}, 1'000'000));
  ranks[0].emit(0, Op::flush());
  ranks[0].emit(0, Op::reduce(Addr{core::kSelf, BufferId::kOutput, 0},
                              {Addr{core::kSelf, BufferId::kOutput, 0}, Addr{core::kSelf, BufferId::kInput, 0}},
                              250'000, core::DataType::kFloat32, core::ReduceOp::kSum));
  Simulator sim(f, formulaParams());
  const auto res = sim.run(core::Program(h, std::move(ranks)));
  // 1 MB at 10 GB/s + 2 us, then 1 MB reduced at 20 GB/s.
  EXPECT_EQ(res.time.picoseconds(), 100'000'000 + 2'000'000 + 50'000'000);
  EXPECT_EQ(res.ranks[1].bytesSent, 1'000'000U);
  EXPECT_EQ(res.ranks[0].bytesReceived, 1'000'000U);
}

TEST(SimExecutor, MulticastPutReduceAndRemoteReduceSources) {
  const auto f = testing::starFabric(3, core::Bandwidth::bytesPerSec(kB), core::Time::sec(kL), core::Time::sec(kD));
  Simulator sim(f, formulaParams());
  const std::uint64_t mb = 1'000'000;
  const double alpha = kAlpha;
  core::ProgramHeader h;
  h.nranks = 3;
  h.numSemaphores = 1;
  {
    // One flow per target, both leaving through rank 0's link: B/2 each.
    std::vector<core::RankProgram> ranks(3);
    ranks[0].emit(0, Op::multicast({1, 2}, Addr{}, Addr{}, mb, 0, 1));
    ranks[1].emit(0, Op::wait(0, 1));
    ranks[2].emit(0, Op::wait(0, 1));
    const auto res = sim.run(core::Program(h, std::move(ranks)));
    EXPECT_NEAR(res.time.seconds(), 2 * mb * kBeta + alpha, 1e-12);
    EXPECT_EQ(res.ranks[1].bytesReceived, mb);
    EXPECT_EQ(res.ranks[2].bytesReceived, mb);
  }
  {
    // put_reduce: the reduction at the target comes before the signal.
    std::vector<core::RankProgram> ranks(3);
    ranks[0].emit(0, Op::putReduce(1, Addr{1, BufferId::kOutput, 0}, Addr{}, mb / 4, core::DataType::kFloat32,
                                   core::ReduceOp::kSum, 0, 1));
    ranks[1].emit(0, Op::wait(0, 1));
    const auto res = sim.run(core::Program(h, std::move(ranks)));
    EXPECT_NEAR(res.time.seconds(), mb * kBeta + alpha + mb * kGamma, 1e-12);
  }
  {
    // A reduce reading two peers' buffers: both reads concurrently (separate links), then the compute.
    std::vector<core::RankProgram> ranks(3);
    ranks[0].emit(0, Op::reduce(Addr{core::kSelf, BufferId::kOutput, 0},
                                {Addr{1, BufferId::kInput, 0}, Addr{2, BufferId::kInput, 0}}, mb / 4,
                                core::DataType::kFloat32, core::ReduceOp::kSum));
    const auto res = sim.run(core::Program(h, std::move(ranks)));
    // The two reads share rank 0's incoming link: B/2 each.
    EXPECT_NEAR(res.time.seconds(), 2 * mb * kBeta + alpha + mb * kGamma, 1e-12);
    EXPECT_EQ(res.ranks[0].bytesReceived, 2 * mb);
  }
}

/// Ring all-reduce on two servers (NVLink inside, network between), shortest routing, with a trace.
struct TracedRun {
  Result result;
  std::vector<TraceEvent> events;
};

TracedRun tracedRing(const topo::Fabric& f, Routing routing) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllReduce;
  a.nranks = static_cast<std::int32_t>(f.gpus().size());
  a.count = 1000003;  // odd: uneven blocks
  a.dtype = core::DataType::kFloat32;
  a.chunkBytes = 256 * 1024;
  const auto program = collectives::buildProgram(a, "ring");
  SimParams p = formulaParams();
  p.routing = routing;
  Simulator sim(f, p);
  TracedRun out;
  RunOptions opts;
  opts.trace = [&out](const TraceEvent& e) { out.events.push_back(e); };
  out.result = sim.run(*program, opts);
  return out;
}

TEST(SimExecutor, BytesAreConservedPerRankAndPerChannel) {
  const auto f = testing::boxFabric(testing::BoxParams{});
  const auto run = tracedRing(f, Routing::kShortest);
  const Result& r = run.result;
  EXPECT_GT(r.bytesPut, 0U);
  EXPECT_EQ(r.bytesPut, r.bytesDelivered);
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  for (const auto& rs : r.ranks) {
    sent += rs.bytesSent;
    received += rs.bytesReceived;
  }
  EXPECT_EQ(sent, r.bytesPut);
  EXPECT_EQ(received, r.bytesDelivered);
  // Each channel's bytes == the wire bytes of the flows whose (shortest) route crosses it.
  Simulator router(f, SimParams{.routing = Routing::kShortest});
  std::map<std::int32_t, std::uint64_t> expected;
  std::vector<std::uint64_t> perRankSent(f.gpus().size(), 0);
  std::size_t flows = 0;
  for (const auto& e : run.events) {
    if (e.kind != TraceEvent::Kind::kFlow) continue;
    ++flows;
    for (const auto ch : router.route(e.rank, e.peer)) expected[ch] += e.bytes;
  }
  EXPECT_GE(flows, r.flows);
  std::map<std::int32_t, std::uint64_t> got;
  std::size_t busyChannels = 0;
  for (const auto& c : r.channels) {
    got[topo::channelOf(c.link, c.direction)] = c.bytes;
    // Channels that carried only standalone signals (credits) were never busy with a shared flow.
    EXPECT_GE(c.busy.picoseconds(), 0);
    if (c.busy.picoseconds() > 0) ++busyChannels;
    EXPECT_LE(c.busy, r.time);
    EXPECT_GT(c.utilization, 0.0);
    EXPECT_LE(c.utilization, 1.0 + 1e-9);
  }
  EXPECT_EQ(got, expected);
  EXPECT_GE(busyChannels, f.gpus().size());  // at least every GPU's outgoing data channel
}

TEST(SimExecutor, IdenticalInputsGiveIdenticalResults) {
  const auto f = testing::fatTree(4, 4, 2, core::Bandwidth::gbps(25), core::Time::ns(700));
  const auto a = tracedRing(f, Routing::kEcmp);
  const auto b = tracedRing(f, Routing::kEcmp);
  EXPECT_EQ(a.result.time, b.result.time);
  EXPECT_EQ(a.result.events, b.result.events);
  EXPECT_EQ(a.result.flows, b.result.flows);
  EXPECT_EQ(a.result.rateRecomputations, b.result.rateRecomputations);
  ASSERT_EQ(a.result.channels.size(), b.result.channels.size());
  for (std::size_t i = 0; i < a.result.channels.size(); ++i) {
    EXPECT_EQ(a.result.channels[i].bytes, b.result.channels[i].bytes);
    EXPECT_EQ(a.result.channels[i].busy, b.result.channels[i].busy);
  }
  ASSERT_EQ(a.events.size(), b.events.size());
  for (std::size_t i = 0; i < a.events.size(); ++i) {
    EXPECT_EQ(a.events[i].begin, b.events[i].begin);
    EXPECT_EQ(a.events[i].end, b.events[i].end);
    EXPECT_EQ(a.events[i].rank, b.events[i].rank);
  }
}

TEST(SimExecutor, DeadlockNamesTheStuckLanes) {
  const auto f = testing::starFabric(2, core::Bandwidth::gbps(10), {}, {});
  core::ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 2;
  std::vector<core::RankProgram> ranks(2);
  ranks[0].emit(0, Op::wait(1, 1));
  ranks[0].emit(0, Op::signal(1, 0, 1));
  ranks[1].emit(0, Op::put(0, Addr{0, BufferId::kOutput, 0}, Addr{}, 64));
  ranks[1].emit(0, Op::wait(0, 2));
  Simulator sim(f, SimParams{});
  try {
    (void)sim.run(core::Program(h, std::move(ranks)));
    FAIL() << "expected a deadlock";
  } catch (const core::Error& e) {
    EXPECT_EQ(e.code(), core::ErrorCode::kInvalidProgram);
    EXPECT_NE(e.message().find("deadlock"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("rank 0 lane 0 op 0 (wait): waits for semaphore 1 >= 1 (current 0)"), std::string::npos)
        << e.message();
    EXPECT_NE(e.message().find("rank 1 lane 0 op 1 (wait): waits for semaphore 0 >= 2 (current 0)"), std::string::npos)
        << e.message();
  }
}

TEST(SimExecutor, MoreRanksThanGpusIsAnError) {
  const auto f = testing::starFabric(4, core::Bandwidth::gbps(10), {}, {});
  core::ProgramHeader h;
  h.name = "big";
  h.nranks = 5;
  Simulator sim(f, SimParams{});
  try {
    (void)sim.run(core::Program(h, {}));
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_EQ(e.code(), core::ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("5 ranks"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("4 GPUs"), std::string::npos) << e.message();
  }
}

TEST(SimExecutor, PlacementMapsRanksToGpus) {
  // Ranks 0 and 1 on GPUs 3 and 0 of a fat tree: the put crosses the spine (leaf 1 -> leaf 0).
  const auto f = testing::fatTree(2, 2, 1, core::Bandwidth::bytesPerSec(kB), core::Time::us(1));
  Simulator sim(f, SimParams{});
  RunOptions opts;
  opts.placement = {3, 0};
  const auto res = sim.run(pingProgram(1'000'000, 1), opts);
  EXPECT_EQ(res.time.picoseconds(), 100'000'000 + 4'000'000);  // 4 links of 1 us
  opts.placement = {0, 9};
  EXPECT_THROW((void)sim.run(pingProgram(8, 1), opts), core::Error);
}

TEST(SimExecutor, ProgressIsReported) {
  const auto f = testing::starFabric(8, core::Bandwidth::gbps(10), core::Time::us(1), {});
  CollectiveArgs a;
  a.nranks = 8;
  a.count = 1 << 20;
  a.chunkBytes = 4096;  // many small steps: > 2^16 events
  const auto program = collectives::buildProgram(a, "ring");
  Simulator sim(f, SimParams{});
  std::uint64_t calls = 0;
  std::uint64_t lastEvents = 0;
  RunOptions opts;
  opts.progress = [&](core::Time, std::uint64_t events) {
    ++calls;
    EXPECT_GT(events, lastEvents);
    lastEvents = events;
  };
  const auto res = sim.run(*program, opts);
  EXPECT_EQ(calls, res.events >> 16);
}

}  // namespace
}  // namespace copro::sim
