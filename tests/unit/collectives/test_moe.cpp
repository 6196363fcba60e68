// MoE dispatch/combine on the inproc backend (one thread per rank): both paths, BF16 and FP8 with scales, one
// node and virtual nodes, uneven and node-limited routing, back-to-back calls; received rows, metadata and the
// combined output against a host reference; the argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "copro/collectives/moe.hpp"
#include "copro/copro.hpp"

namespace copro {
namespace {

using collectives::MoeConfig;
using collectives::MoeDispatchOut;
using collectives::MoeHandle;
using collectives::MoePath;
using collectives::MoeRouting;

/// Index a * b + c computed in size_t (row-major [a][b] + c).
inline std::size_t slot(int a, int b, int c) {
  return static_cast<std::size_t>(a) * static_cast<std::size_t>(b) + static_cast<std::size_t>(c);
}

Config testConfig() {
  Config c;
  c.timeoutSec = 30;
  c.validate = true;  // every MoE Program goes through the validator
  return c;
}

void onRanks(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> t;
  t.reserve(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) t.emplace_back(fn, r);
  for (auto& th : t) th.join();
}

/// Per rank: tokens, their x bytes and scales, and a routing.
struct Inputs {
  std::vector<int> numTokens;
  std::vector<std::vector<unsigned char>> x;
  std::vector<std::vector<float>> scales;
  std::vector<std::vector<std::int32_t>> idx;
  std::vector<std::vector<float>> w;
};

/// Random tokens; each slot picks a distinct expert not on rank `silent` (-1: any), with probability 1/6 none.
Inputs makeInputs(const MoeConfig& c, int nranks, std::uint64_t seed, int silent, const MoeRouting* routing = nullptr) {
  std::mt19937_64 rng(seed);
  Inputs in;
  const int epr = c.numExperts / nranks;
  const int groups = collectives::moeScaleGroups(c);
  const std::size_t es = core::dataTypeSize(c.dispatchDtype);
  for (int r = 0; r < nranks; ++r) {
    const int t = routing != nullptr ? routing->numTokens : 3 + static_cast<int>(rng() % 9);
    in.numTokens.push_back(t);
    std::vector<unsigned char> x(static_cast<std::size_t>(t) * static_cast<std::size_t>(c.hidden) * es);
    for (std::size_t i = 0; i < x.size(); ++i) {
      x[i] = static_cast<unsigned char>(rng() % 0x7f);  // finite in FP8, small BF16 values in pairs
    }
    if (c.dispatchDtype == DataType::kBfloat16) {
      auto* v = reinterpret_cast<std::uint16_t*>(x.data());
      for (std::size_t i = 0; i < x.size() / 2; ++i) {
        v[i] = core::floatToBfloat16(static_cast<float>(static_cast<int>(rng() % 33) - 16) / 8.0F);
      }
    }
    in.x.push_back(std::move(x));
    std::vector<float> sc(static_cast<std::size_t>(t) * static_cast<std::size_t>(groups));
    for (auto& s : sc) s = static_cast<float>(rng() % 1000) / 100.0F;
    in.scales.push_back(std::move(sc));
    if (routing != nullptr) {
      in.idx.push_back(routing->topkIdx[static_cast<std::size_t>(r)]);
      in.w.push_back(routing->weights[static_cast<std::size_t>(r)]);
      continue;
    }
    std::vector<std::int32_t> idx(static_cast<std::size_t>(t) * static_cast<std::size_t>(c.topk), -1);
    std::vector<float> w(idx.size(), 0.0F);
    for (int k = 0; k < t; ++k) {
      std::vector<int> taken;
      for (int s = 0; s < c.topk; ++s) {
        if (rng() % 6 == 0 || k == 1) continue;  // token 1 of every rank goes nowhere
        int e = 0;
        for (int tries = 0; tries < 100; ++tries) {
          e = static_cast<int>(rng() % static_cast<std::uint64_t>(c.numExperts));
          if (e / epr != silent && std::find(taken.begin(), taken.end(), e) == taken.end()) break;
          e = -1;
        }
        if (e < 0) continue;
        taken.push_back(e);
        idx[slot(k, c.topk, s)] = e;
        w[slot(k, c.topk, s)] = static_cast<float>(1 + rng() % 8) / 8.0F;
      }
    }
    in.idx.push_back(std::move(idx));
    in.w.push_back(std::move(w));
  }
  return in;
}

/// y(src, token, expert)[h]: a BF16 value that depends on all three.
float expertValue(int src, int token, int expert, int h) {
  return core::bfloat16ToFloat(
      core::floatToBfloat16(static_cast<float>((src * 7 + token * 3 + expert * 5 + h) % 13) / 4.0F - 1.5F));
}

/// Runs `calls` dispatch+combine rounds (fresh inputs each, seeds seed, seed+1, ...) and checks every rank.
void runCase(const MoeConfig& c, const std::vector<int>& nodes, std::uint64_t seed, int silent, int calls = 1,
             bool nodeLimitedRouting = false, const Config& commConfig = testConfig()) {
  const int n = static_cast<int>(nodes.size());
  auto comms = createInproc(n, commConfig, nodes);
  std::vector<Inputs> inputs;
  for (int call = 0; call < calls; ++call) {
    const std::uint64_t s = seed + static_cast<std::uint64_t>(call);
    std::printf("MoE case: path %s, dtype %s, %d ranks, seed %llu\n",
                std::string(collectives::moePathName(c.path)).c_str(),
                std::string(core::dataTypeName(c.dispatchDtype)).c_str(), n, static_cast<unsigned long long>(s));
    if (nodeLimitedRouting) {
      const MoeRouting r = MoeRouting::uniform(n, 9, c.topk, c.numExperts, c.maxNodesPerToken, nodes, s);
      inputs.push_back(makeInputs(c, n, s, silent, &r));
    } else {
      inputs.push_back(makeInputs(c, n, s, silent));
    }
  }
  const int epr = c.numExperts / n;
  const int groups = collectives::moeScaleGroups(c);
  const std::size_t xb = static_cast<std::size_t>(c.hidden) * core::dataTypeSize(c.dispatchDtype);
  const auto hidden = static_cast<std::size_t>(c.hidden);
  onRanks(n, [&](int me) {
    for (int call = 0; call < calls; ++call) {
      const Inputs& in = inputs[static_cast<std::size_t>(call)];
      // Reference rows: local expert, then source, then token.
      struct Row {
        int src, token, expert;
        float w;
      };
      std::vector<Row> ref;
      for (int i = 0; i < epr; ++i) {
        const int e = me * epr + i;
        for (int s = 0; s < n; ++s) {
          for (int t = 0; t < in.numTokens[static_cast<std::size_t>(s)]; ++t) {
            for (int k = 0; k < c.topk; ++k) {
              if (in.idx[static_cast<std::size_t>(s)][slot(t, c.topk, k)] == e) {
                ref.push_back({s, t, e, in.w[static_cast<std::size_t>(s)][slot(t, c.topk, k)]});
              }
            }
          }
        }
      }
      const std::size_t cap = ref.size() + 2;
      std::vector<unsigned char> recvX(cap * xb);
      std::vector<float> recvScales(cap * static_cast<std::size_t>(groups) + 1);
      std::vector<std::int32_t> srcRank(cap, -7);
      std::vector<std::int32_t> srcToken(cap, -7);
      std::vector<float> weight(cap, -7.0F);
      MoeDispatchOut out;
      out.recvX = recvX.data();
      out.recvScales = recvScales.data();
      out.srcRank = srcRank.data();
      out.srcToken = srcToken.data();
      out.weight = weight.data();
      out.capacityRows = cap;
      MoeHandle handle;
      const auto um = static_cast<std::size_t>(me);
      Status st = comms[um]
                      .moeDispatch(c, in.x[um].data(), in.scales[um].data(), in.idx[um].data(), in.w[um].data(),
                                   in.numTokens[um], out, handle)
                      .wait();
      ASSERT_TRUE(st.ok()) << "rank " << me << ": " << st.message();
      ASSERT_EQ(out.numRows, ref.size()) << "rank " << me << " call " << call;
      if (me == silent) {
        EXPECT_EQ(out.numRows, 0U);
      }
      ASSERT_EQ(out.expertRowOffset.size(), static_cast<std::size_t>(epr) + 1);
      for (std::size_t u = 0; u < ref.size(); ++u) {
        const Row& r = ref[u];
        ASSERT_EQ(srcRank[u], r.src) << "rank " << me << " row " << u;
        ASSERT_EQ(srcToken[u], r.token) << "rank " << me << " row " << u;
        ASSERT_EQ(weight[u], r.w) << "rank " << me << " row " << u;
        ASSERT_EQ(
            std::memcmp(recvX.data() + u * xb,
                        in.x[static_cast<std::size_t>(r.src)].data() + static_cast<std::size_t>(r.token) * xb, xb),
            0)
            << "rank " << me << " row " << u;
        for (int g = 0; g < groups; ++g) {
          ASSERT_EQ(recvScales[u * static_cast<std::size_t>(groups) + static_cast<std::size_t>(g)],
                    in.scales[static_cast<std::size_t>(r.src)][static_cast<std::size_t>(r.token * groups + g)]);
        }
        const auto e = static_cast<std::uint64_t>(r.expert - me * epr);
        ASSERT_GE(u, out.expertRowOffset[e]);
        ASSERT_LT(u, out.expertRowOffset[e + 1]);
      }
      // Expert outputs, then combine.
      std::vector<std::uint16_t> y(ref.size() * hidden);
      for (std::size_t u = 0; u < ref.size(); ++u) {
        for (std::size_t h = 0; h < hidden; ++h) {
          y[u * hidden + h] =
              core::floatToBfloat16(expertValue(ref[u].src, ref[u].token, ref[u].expert, static_cast<int>(h)));
        }
      }
      const int nt = in.numTokens[um];
      std::vector<std::uint16_t> combined(static_cast<std::size_t>(nt) * hidden, 0xffff);
      st = comms[um].moeCombine(handle, y.data(), combined.data()).wait();
      ASSERT_TRUE(st.ok()) << "rank " << me << ": " << st.message();
      for (int t = 0; t < nt; ++t) {
        for (std::size_t h = 0; h < hidden; ++h) {
          double want = 0;
          double mag = 0;
          for (int k = 0; k < c.topk; ++k) {
            const int e = in.idx[um][slot(t, c.topk, k)];
            if (e < 0) continue;
            const double term =
                static_cast<double>(in.w[um][slot(t, c.topk, k)]) * expertValue(me, t, e, static_cast<int>(h));
            want += term;
            mag += std::fabs(term);
          }
          const double got = core::bfloat16ToFloat(combined[static_cast<std::size_t>(t) * hidden + h]);
          // Partial sums are rounded to BF16 up to three times (expert rank, relay, source).
          ASSERT_NEAR(got, want, 4.0 * 0.0078125 * mag + 1e-6)
              << "rank " << me << " token " << t << " channel " << h << " call " << call;
        }
      }
    }
  });
}

MoeConfig config(MoePath path, DataType dt, int experts, int topk, int hidden = 160) {
  MoeConfig c;
  c.hidden = hidden;
  c.topk = topk;
  c.numExperts = experts;
  c.dispatchDtype = dt;
  c.path = path;
  return c;
}

TEST(Moe, OneNodeFourRanksBothPathsBothTypes) {
  for (MoePath path : {MoePath::kForward, MoePath::kDirect}) {
    for (DataType dt : {DataType::kBfloat16, DataType::kFloat8E4M3}) {
      // 8 experts on 4 ranks; rank 3 receives nothing; token 1 of each rank has no expert.
      runCase(config(path, dt, 8, 3), {0, 0, 0, 0}, 1234, 3);
    }
  }
}

TEST(Moe, TwoVirtualNodesTwoRanksBackToBack) {
  for (MoePath path : {MoePath::kForward, MoePath::kDirect}) {
    runCase(config(path, DataType::kFloat8E4M3, 8, 4), {0, 0, 1, 1}, 77, 1, 3);
  }
}

TEST(Moe, PxnAndMixedInitiationKeepResults) {
  // COPRO_PXN relays the direct path's off-rail puts through the local rank on the destination's rail, and
  // COPRO_INITIATION_SCALEOUT=proxy runs the inter-node lanes on progress threads: same rows, same sums.
  for (int level : {1, 2}) {
    Config cfg = testConfig();
    cfg.pxn = level;
    cfg.initiationScaleOut = "proxy";
    for (MoePath path : {MoePath::kForward, MoePath::kDirect}) {
      runCase(config(path, DataType::kFloat8E4M3, 8, 4), {0, 0, 1, 1}, 91, -1, 2, false, cfg);
    }
  }
}

TEST(Moe, RelayPiecesAndStoreAndForwardKeepResults) {
  // Cut-through relays in pieces of 1..3 tokens (several pieces per node chunk, two lanes per chunk, the relay
  // waiting on each piece and the combine per contributor) and store-and-forward (0): same rows, same sums.
  for (int chunk : {0, 1, 2, 3}) {
    MoeConfig c = config(MoePath::kForward, DataType::kFloat8E4M3, 18, 4, 130);
    c.relayChunkTokens = chunk;
    runCase(c, {0, 0, 0, 1, 1, 2, 2, 2, 2}, 515 + static_cast<std::uint64_t>(chunk), -1, 2);
  }
}

TEST(Moe, ThreeUnevenVirtualNodes) {
  // Nodes of 3, 2 and 4 ranks: relays use the local index modulo the node's size.
  for (MoePath path : {MoePath::kForward, MoePath::kDirect}) {
    runCase(config(path, DataType::kBfloat16, 18, 4, 130), {0, 0, 0, 1, 1, 2, 2, 2, 2}, 4242, -1, 2);
  }
}

TEST(Moe, NodeLimitedRouting) {
  // 3 nodes x 2 ranks, top-4 of 12 experts, each token on at most 2 nodes (MoeRouting::uniform).
  for (MoePath path : {MoePath::kForward, MoePath::kDirect}) {
    MoeConfig c = config(path, DataType::kFloat8E4M3, 12, 4);
    c.maxNodesPerToken = 2;
    runCase(c, {0, 0, 1, 1, 2, 2}, 99, -1, 1, true);
  }
}

TEST(Moe, RoutingGeneratorsRespectNodeLimitAndSkew) {
  const std::vector<int> nodes{0, 0, 1, 1, 2, 2, 3, 3};
  const std::uint64_t seed = 5;
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  const MoeRouting u = MoeRouting::uniform(8, 200, 6, 32, 2, nodes, seed);
  const MoeRouting z = MoeRouting::zipf(8, 200, 6, 32, 0, nodes, 1.2, seed);
  for (const MoeRouting* r : {&u, &z}) {
    for (const auto& idx : r->topkIdx) {
      for (int t = 0; t < 200; ++t) {
        std::vector<int> ns;
        for (int k = 0; k < 6; ++k) {
          const int e = idx[slot(t, 6, k)];
          ASSERT_GE(e, 0);
          ASSERT_LT(e, 32);
          ns.push_back(nodes[static_cast<std::size_t>(e / 4)]);
        }
        std::sort(ns.begin(), ns.end());
        ns.erase(std::unique(ns.begin(), ns.end()), ns.end());
        if (r == &u) {
          ASSERT_LE(ns.size(), 2U);
        }
      }
    }
  }
  // Zipf 1.2: the most popular expert gets far more than the uniform share 6/32 of the tokens.
  std::vector<int> hits(32);
  for (const auto& idx : z.topkIdx) {
    for (int e : idx) ++hits[static_cast<std::size_t>(e)];
  }
  const int top = *std::max_element(hits.begin(), hits.end());
  EXPECT_GT(top, 2 * 8 * 200 * 6 / 32);
}

TEST(Moe, RoutingFileRoundTripAndErrors) {
  const std::string path = ::testing::TempDir() + "moe_routing.csv";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("# rank,token,experts;weights\n0,0,1,2;0.25,0.75\n0,1,3,-1\n1,0,0,3\n1,1,2,1\n", f);
    std::fclose(f);
  }
  const MoeRouting r = MoeRouting::fromFile(path);
  EXPECT_EQ(r.numTokens, 2);
  EXPECT_EQ(r.topk, 2);
  ASSERT_EQ(r.topkIdx.size(), 2U);
  EXPECT_EQ(r.topkIdx[0], (std::vector<std::int32_t>{1, 2, 3, -1}));
  EXPECT_EQ(r.weights[0][1], 0.75F);
  EXPECT_EQ(r.weights[1][0], 0.5F);
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("0,0,1,2\n0,1,x,2\n", f);
    std::fclose(f);
  }
  try {
    (void)MoeRouting::fromFile(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("line 2: 'x' is not a number"), std::string::npos) << e.message();
  }
}

/// Runs a dispatch on every rank and returns each rank's status message ("" when ok).
std::vector<std::string> dispatchErrors(const MoeConfig& c, const std::vector<int>& nodes,
                                        const std::vector<std::vector<std::int32_t>>& idx, std::uint64_t capacity) {
  const int n = static_cast<int>(nodes.size());
  auto comms = createInproc(n, testConfig(), nodes);
  std::vector<std::string> msgs(static_cast<std::size_t>(n));
  onRanks(n, [&](int me) {
    const auto um = static_cast<std::size_t>(me);
    const int nt = static_cast<int>(idx[um].size()) / c.topk;
    std::vector<std::uint16_t> x(slot(nt, c.hidden, 0), 0);
    std::vector<float> w(idx[um].size(), 0.5F);
    std::vector<std::uint16_t> recv(static_cast<std::size_t>(c.hidden) * 64);
    MoeDispatchOut out;
    out.recvX = recv.data();
    out.capacityRows = capacity;
    MoeHandle h;
    Status s = comms[um].moeDispatch(c, x.data(), nullptr, idx[um].data(), w.data(), nt, out, h).wait();
    msgs[um] = s.ok() ? "" : s.message();
  });
  return msgs;
}

TEST(Moe, Errors) {
  MoeConfig c = config(MoePath::kForward, DataType::kBfloat16, 6, 2, 16);
  const std::vector<int> one{0, 0, 0, 0};
  // 6 experts on 4 ranks.
  auto m = dispatchErrors(c, one, {{0, 1}, {0, 1}, {0, 1}, {0, 1}}, 64);
  for (const auto& s : m)
    EXPECT_NE(s.find("numExperts 6 is not a positive multiple of the number of ranks 4"), std::string::npos) << s;
  // A negative relay piece size is refused by name.
  MoeConfig neg = config(MoePath::kForward, DataType::kBfloat16, 8, 2, 16);
  neg.relayChunkTokens = -3;
  m = dispatchErrors(neg, one, {{0, 1}, {0, 1}, {0, 1}, {0, 1}}, 64);
  for (const auto& s : m) EXPECT_NE(s.find("relayChunkTokens must be >= 0 (it is -3"), std::string::npos) << s;
  // Capacity: every rank sends token 0 to experts 0 and 1 (rank 0): rank 0 receives 8 rows.
  c.numExperts = 8;
  m = dispatchErrors(c, one, {{0, 1}, {0, 1}, {0, 1}, {0, 1}}, 3);
  EXPECT_NE(m[0].find("receives 8 rows but the receive buffers hold 3"), std::string::npos) << m[0];
  EXPECT_EQ(m[1], "");
  // Expert id out of range on rank 2; the others report that rank 2 rejected its arguments.
  m = dispatchErrors(c, one, {{0, 1}, {0, 1}, {0, 99}, {0, 1}}, 64);
  EXPECT_NE(m[2].find("token 0 of rank 2 (slot 1) has expert id 99; ids must be in [0, 8)"), std::string::npos) << m[2];
  EXPECT_NE(m[0].find("rank 2 rejected its arguments"), std::string::npos) << m[0];
  // Node-limited routing: token 1 of rank 1 reaches 2 nodes with maxNodesPerToken 1.
  c.maxNodesPerToken = 1;
  const std::vector<int> two{0, 0, 1, 1};
  m = dispatchErrors(c, two, {{0, 1, 2, 3}, {0, 1, 1, 4}, {4, 5, 6, 7}, {4, 5, 6, 7}}, 64);
  EXPECT_NE(m[1].find("token 1 of rank 1 reaches 2 nodes but maxNodesPerToken is 1"), std::string::npos) << m[1];
  EXPECT_NE(m[3].find("rank 1 rejected its arguments"), std::string::npos) << m[3];
}

TEST(Moe, PlanOpsGrowWithMaskGroupsNotTokens) {
  // EP16 on 2 nodes, 4096 tokens per rank: the forward dispatch's ops are bounded by groups, not tokens.
  const std::vector<int> nodes{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  MoeConfig c = config(MoePath::kForward, DataType::kFloat8E4M3, 64, 8, 7168);
  const MoeRouting r = MoeRouting::uniform(16, 4096, 8, 64, 0, nodes, 11);
  const auto plan = collectives::planMoe(c, r, nodes);
  const auto prog = collectives::buildMoeDispatch(c, plan);
  std::size_t ops = 0;
  for (int rk = 0; rk < 16; ++rk) ops += prog->rank(rk).numOps();
  std::size_t groups = 0;
  for (const auto& g : plan.groups) groups += g.size();
  EXPECT_LE(groups, 16U * 2 * 255);
  EXPECT_LT(ops, 16U * groups);  // about one put per (group, destination), plus the relay pieces of 32 tokens
  EXPECT_LT(ops, 16U * 4096U);   // far fewer than one per token
}

}  // namespace
}  // namespace copro
