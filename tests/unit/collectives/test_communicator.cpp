// The Communicator API on the inproc backend: planner, Program cache, split/dup, the call check, timeouts
// of a missing rank, argument errors.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <numeric>
#include <thread>

#include "copro/copro.hpp"
#include "unit/collectives/rank_threads.hpp"

namespace copro {
namespace {

using collectives::CollectiveArgs;
using collectives::CollectiveKind;

using test::onRanks;
using test::testConfig;

TEST(Planner, PicksSmallMessageAndLargeMessageAlgorithmsByCost) {
  Config cfg;
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllReduce;
  a.nranks = 8;
  a.dtype = DataType::kFloat32;
  a.count = 2;  // 8 bytes: latency bound
  auto small = collectives::plan(a, collectives::costModelFrom(cfg), {}, cfg.algo);
  ASSERT_NE(small.chosen, nullptr);
  a.count = 64ULL << 20;  // 256 MiB: bandwidth bound
  auto large = collectives::plan(a, collectives::costModelFrom(cfg), {}, cfg.algo);
  ASSERT_NE(large.chosen, nullptr);
  // The two regimes pick different algorithms, and each pick is the cheapest applicable estimate.
  EXPECT_NE(small.chosen->name, large.chosen->name);
  for (const auto* p : {&small, &large}) {
    double chosen = 0;
    for (const auto& c : p->candidates) {
      if (c.algorithm == p->chosen) chosen = c.estimateUs;
    }
    for (const auto& c : p->candidates) {
      if (c.unsupportedReason.empty()) {
        EXPECT_LE(chosen, c.estimateUs) << c.algorithm->name;
      }
    }
  }
  std::string table = collectives::formatPlan(a, large);
  EXPECT_NE(table.find("chosen"), std::string::npos) << table;
  EXPECT_NE(table.find("ring"), std::string::npos) << table;
}

TEST(Planner, PicksLLBelowTheThresholdOnly) {
  Config cfg;
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllReduce;
  a.nranks = 2;
  a.dtype = DataType::kFloat32;
  a.llMaxBytes = 4096;
  a.count = 2;  // 8 bytes
  EXPECT_EQ(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
  a.count = 1024;  // 4 KiB: at the threshold
  EXPECT_EQ(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
  a.count = 1025;  // one element above
  const collectives::Plan above = collectives::plan(a, collectives::costModelFrom(cfg));
  EXPECT_NE(above.chosen->name, "oneshot_ll");
  for (const auto& c : above.candidates) {
    if (c.algorithm->name == "oneshot_ll") {
      EXPECT_NE(c.unsupportedReason.find("COPRO_LL_MAX_BYTES"), std::string::npos) << c.unsupportedReason;
    }
  }
  a.count = 2;
  a.llMaxBytes = 0;  // a backend without mailboxes
  EXPECT_NE(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
  a.llMaxBytes = 4096;
  a.loadStoreDomains = {{0}, {1}};  // LL needs the peer's memory
  EXPECT_NE(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
}

TEST(Planner, PicksLLAllGatherAndBroadcastBelowTheThresholdOnly) {
  Config cfg;
  for (CollectiveKind kind : {CollectiveKind::kAllGather, CollectiveKind::kBroadcast}) {
    SCOPED_TRACE(collectives::collectiveName(kind));
    CollectiveArgs a;
    a.kind = kind;
    a.nranks = 2;
    a.dtype = DataType::kFloat32;
    a.llMaxBytes = 4096;
    a.count = 2;  // 8 bytes per LL put
    EXPECT_EQ(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
    a.count = 1025;  // one element above the threshold
    const collectives::Plan above = collectives::plan(a, collectives::costModelFrom(cfg));
    EXPECT_NE(above.chosen->name, "oneshot_ll");
    for (const auto& c : above.candidates) {
      if (c.algorithm->name == "oneshot_ll") {
        EXPECT_NE(c.unsupportedReason.find("COPRO_LL_MAX_BYTES"), std::string::npos) << c.unsupportedReason;
      }
    }
    a.count = 2;
    a.llMaxBytes = 0;  // a backend without mailboxes
    EXPECT_NE(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
    a.llMaxBytes = 4096;
    a.nodeOfRank = {0, 1};  // the mailboxes are one host's memory
    EXPECT_NE(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
    a.nodeOfRank.clear();
    a.loadStoreDomains = {{0}, {1}};
    EXPECT_NE(collectives::plan(a, collectives::costModelFrom(cfg)).chosen->name, "oneshot_ll");
  }
}

TEST(Planner, LLThresholdComesFromConfigAndBackend) {
  Config cfg;
  EXPECT_EQ(cfg.llMaxBytes, 4096U);
  cfg.set("COPRO_LL_MAX_BYTES", "16K");
  EXPECT_EQ(cfg.llMaxBytes, 16384U);
  EXPECT_THROW(cfg.set("COPRO_LL_MAX_BYTES", "17K"), Error);
}

TEST(Planner, ForcedAlgorithms) {
  Config cfg;
  cfg.algo = "allreduce=rhd,allgather=bruck";
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllReduce;
  a.nranks = 4;
  a.count = 100;
  EXPECT_EQ(collectives::plan(a, collectives::costModelFrom(cfg), {}, cfg.algo).chosen->name, "rhd");
  EXPECT_EQ(collectives::plan(a, collectives::costModelFrom(cfg), "ring", cfg.algo).chosen->name,
            "ring");  // per call wins
  a.kind = CollectiveKind::kAllGather;
  EXPECT_EQ(collectives::plan(a, collectives::costModelFrom(cfg), {}, cfg.algo).chosen->name, "bruck");
  cfg.algo = "ring";
  EXPECT_EQ(collectives::plan(a, collectives::costModelFrom(cfg), {}, cfg.algo).chosen->name, "ring");
  cfg.algo = "allreduce=rign";
  try {
    (void)collectives::plan(a, collectives::costModelFrom(cfg), {}, cfg.algo);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("did you mean 'ring'"), std::string::npos) << e.message();
  }
  cfg.algo = "";
  a.kind = CollectiveKind::kAllReduce;
  EXPECT_THROW((void)collectives::plan(a, collectives::costModelFrom(cfg), "hier", cfg.algo),
               Error);  // one node: hier does not apply
}

TEST(Planner, NodeMap) {
  EXPECT_EQ(collectives::parseNodeMap("2", 4), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(collectives::parseNodeMap("5,5,9,9", 4), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_TRUE(collectives::parseNodeMap("", 4).empty());
  EXPECT_THROW(collectives::parseNodeMap("0,1", 4), Error);
  EXPECT_THROW(collectives::parseNodeMap("a,b,c,d", 4), Error);
}

TEST(Communicator, AllReduceEveryAlgorithmAndCacheHits) {
  const int n = 4;
  auto comms = createInproc(n, testConfig());
  for (const auto* alg : collectives::algorithmsFor(CollectiveKind::kAllReduce)) {
    if (alg->name == "hier") continue;
    onRanks(n, [&](int r) {
      std::vector<float> in(1000), out(1000, -1);
      for (int rep = 0; rep < 3; ++rep) {
        std::iota(in.begin(), in.end(), static_cast<float>(r + rep));
        Status s = comms[static_cast<std::size_t>(r)]
                       .allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum, {alg->name})
                       .wait();
        ASSERT_TRUE(s.ok()) << alg->name << ": " << s.toString();
        for (std::size_t i = 0; i < out.size(); ++i) {
          ASSERT_EQ(out[i], static_cast<float>(4 * i + 6 + 4 * rep)) << alg->name << " i=" << i;
        }
      }
    });
  }
  // Three calls per algorithm: the second and third found their Program in the cache.
  EXPECT_GE(comms[0].programCacheHits(), 2U * (collectives::algorithmsFor(CollectiveKind::kAllReduce).size() - 1));
}

TEST(Communicator, HierarchicalOnVirtualNodes) {
  const int n = 4;
  auto comms = createInproc(n, testConfig(), {0, 0, 1, 1});
  onRanks(n, [&](int r) {
    std::vector<std::int32_t> in(513, r + 1), out(513, 0);
    Status s = comms[static_cast<std::size_t>(r)]
                   .allReduce(in.data(), out.data(), in.size(), DataType::kInt32, ReduceOp::kSum, {"hier"})
                   .wait();
    ASSERT_TRUE(s.ok()) << s.toString();
    EXPECT_EQ(out[0], 10);
    EXPECT_EQ(out[512], 10);
    EXPECT_EQ(comms[static_cast<std::size_t>(r)].lastProgramName(), "allreduce.hier");
  });
}

TEST(Communicator, SplitAndDup) {
  const int n = 6;
  auto comms = createInproc(n, testConfig());
  onRanks(n, [&](int r) {
    auto& c = comms[static_cast<std::size_t>(r)];
    // Key reverses the order inside each group.
    Communicator sub = c.split(r % 3 == 0 ? -1 : r % 2, -r);
    if (r % 3 == 0) {
      EXPECT_FALSE(sub.valid());
    } else {
      ASSERT_TRUE(sub.valid());
      // Groups: color 1 = {1, 5} (ranks 3 has color -1), color 0 = {2, 4}.
      EXPECT_EQ(sub.size(), 2);
      EXPECT_EQ(sub.rank(), (r == 5 || r == 4) ? 0 : 1);
      std::int64_t v = r;
      std::int64_t sum = 0;
      ASSERT_TRUE(sub.allReduce(&v, &sum, 1, DataType::kInt64, ReduceOp::kSum).wait().ok());
      EXPECT_EQ(sum, r % 2 == 1 ? 6 : 6);
    }
    Communicator d = c.dup();
    ASSERT_TRUE(d.valid());
    EXPECT_EQ(d.size(), n);
    EXPECT_EQ(d.rank(), r);
    std::int32_t v = 1;
    std::int32_t total = 0;
    ASSERT_TRUE(d.allReduce(&v, &total, 1, DataType::kInt32, ReduceOp::kSum).wait().ok());
    EXPECT_EQ(total, n);
  });
}

TEST(Communicator, CallCheckReportsMismatchByRank) {
  const int n = 3;
  Config cfg = testConfig();
  cfg.checkCalls = true;
  auto comms = createInproc(n, cfg);
  std::vector<Status> st(n);
  onRanks(n, [&](int r) {
    std::vector<float> buf(10, 1.0F);
    // Rank 2 passes a different root.
    st[static_cast<std::size_t>(r)] = comms[static_cast<std::size_t>(r)]
                                          .broadcast(buf.data(), buf.data(), 10, DataType::kFloat32, r == 2 ? 1 : 0)
                                          .wait();
  });
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(st[static_cast<std::size_t>(r)].code(), ErrorCode::kInvalidUsage)
        << st[static_cast<std::size_t>(r)].toString();
    EXPECT_NE(st[static_cast<std::size_t>(r)].message().find("rank 2 called broadcast"), std::string::npos)
        << st[static_cast<std::size_t>(r)].message();
    EXPECT_NE(st[static_cast<std::size_t>(r)].message().find("root=1"), std::string::npos);
  }
  // A matching call passes the check and runs.
  onRanks(n, [&](int r) {
    std::vector<double> in(5, r), out(5);
    Status s = comms[static_cast<std::size_t>(r)]
                   .allReduce(in.data(), out.data(), 5, DataType::kFloat64, ReduceOp::kMax)
                   .wait();
    EXPECT_TRUE(s.ok()) << s.toString();
    EXPECT_EQ(out[4], 2.0);
  });
}

TEST(Communicator, MissingRankTimesOutNamingIt) {
  const int n = 3;
  Config cfg = testConfig();
  cfg.timeoutSec = 0.5;
  auto comms = createInproc(n, cfg);
  std::vector<Status> st(n);
  auto t0 = std::chrono::steady_clock::now();
  onRanks(2, [&](int r) {  // rank 2 never calls
    std::vector<float> in(100, 1), out(100);
    st[static_cast<std::size_t>(r)] =
        comms[static_cast<std::size_t>(r)]
            .allReduce(in.data(), out.data(), 100, DataType::kFloat32, ReduceOp::kSum, {"ring"})
            .wait();
  });
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(sec, 10.0);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(st[static_cast<std::size_t>(r)].code(), ErrorCode::kTimeout)
        << st[static_cast<std::size_t>(r)].toString();
    EXPECT_NE(st[static_cast<std::size_t>(r)].message().find("2"), std::string::npos)
        << st[static_cast<std::size_t>(r)].message();
    // The timeout is the communicator's asynchronous error from now on; the silent rank has none.
    const Status async = comms[static_cast<std::size_t>(r)].asyncError();
    EXPECT_EQ(async.code(), ErrorCode::kTimeout) << async.toString();
    EXPECT_EQ(async.message(), st[static_cast<std::size_t>(r)].message());
  }
  EXPECT_TRUE(comms[2].asyncError().ok()) << comms[2].asyncError().toString();
}

TEST(Communicator, BadArgumentsGetClearErrors) {
  auto comms = createInproc(2, testConfig());
  auto& c = comms[0];
  float x = 0;
  Status s = c.allReduce(nullptr, &x, 4, DataType::kFloat32, ReduceOp::kSum).wait();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("send buffer is null"), std::string::npos) << s.message();
  s = c.allReduce(&x, &x, 1, static_cast<DataType>(99), ReduceOp::kSum).wait();
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported);
  s = c.allReduce(&x, &x, 1, DataType::kFloat32, static_cast<ReduceOp>(42)).wait();
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported);
  s = c.allGather(&x, &x, UINT64_MAX / 2, DataType::kFloat32).wait();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("overflows"), std::string::npos) << s.message();
  s = c.broadcast(&x, &x, 1, DataType::kFloat32, 5).wait();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("root 5"), std::string::npos) << s.message();
  s = c.send(&x, 1, DataType::kFloat32, 9).wait();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  s = c.allGatherV(&x, &x, {1}, DataType::kFloat32).wait();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("one per rank"), std::string::npos) << s.message();
  s = c.allReduce(&x, &x, 1, DataType::kFloat32, ReduceOp::kSum, {"no-such-algo"}).wait();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("known:"), std::string::npos) << s.message();
  // Argument errors leave the communicator usable: they are not asynchronous errors.
  EXPECT_TRUE(c.asyncError().ok()) << c.asyncError().toString();
  c.abort();
  EXPECT_EQ(c.asyncError().code(), ErrorCode::kAborted);
  EXPECT_TRUE(comms[1].asyncError().ok());
  Communicator empty;
  EXPECT_THROW((void)empty.rank(), Error);
  EXPECT_THROW(createInproc(0), Error);
}

TEST(Communicator, SeveralCallsInFlight) {
  const int n = 3;
  auto comms = createInproc(n, testConfig());
  onRanks(n, [&](int r) {
    auto& c = comms[static_cast<std::size_t>(r)];
    std::vector<std::vector<std::int32_t>> in(8, std::vector<std::int32_t>(300)),
        out(8, std::vector<std::int32_t>(300));
    std::vector<Request> reqs;
    for (int k = 0; k < 8; ++k) {
      std::fill(in[static_cast<std::size_t>(k)].begin(), in[static_cast<std::size_t>(k)].end(), k * 10 + r);
      reqs.push_back(c.allReduce(in[static_cast<std::size_t>(k)].data(), out[static_cast<std::size_t>(k)].data(), 300,
                                 DataType::kInt32, ReduceOp::kSum));
    }
    for (int k = 7; k >= 0; --k) {  // waiting out of order is allowed
      ASSERT_TRUE(reqs[static_cast<std::size_t>(k)].wait().ok());
      EXPECT_EQ(out[static_cast<std::size_t>(k)][299], 3 * k * 10 + 3);
    }
  });
}

}  // namespace
}  // namespace copro
