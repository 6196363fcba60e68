// MoE dispatch/combine under mpirun (ctest label `mp`, 4 processes) on every multi-process backend built: `shm`
// on one node and on two virtual nodes, and `ucx`, `mpi`, `shm+ucx`, `shm+mpi` on two virtual nodes of two ranks (and
// `verbs`, `shm+verbs` on the emulated provider) (docs/moe.md): both paths, FP8 with scales, two calls back to back;
// every rank checks its received rows, metadata and combined output against a reference it computes itself.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "copro/collectives/moe.hpp"
#include "copro/copro_mpi.hpp"
#include "mp_abort_on_failure.hpp"

namespace {

using copro::Communicator;
using copro::collectives::MoeConfig;
using copro::collectives::MoeDispatchOut;
using copro::collectives::MoeHandle;
using copro::collectives::MoePath;
namespace core = copro::core;

constexpr std::uint64_t kSeed = 20261129;

/// Index a * b + c computed in size_t (row-major [a][b] + c).
inline std::size_t slot(int a, int b, int c) {
  return static_cast<std::size_t>(a) * static_cast<std::size_t>(b) + static_cast<std::size_t>(c);
}

int worldRank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int worldSize() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

struct Setup {
  std::string backend;
  std::string nodeMap;
};

std::map<std::string, std::unique_ptr<Communicator>>& cache() {
  static std::map<std::string, std::unique_ptr<Communicator>> c;
  return c;
}

Communicator& communicatorFor(const Setup& s) {
  const std::string key = s.backend + "/" + s.nodeMap;
  auto it = cache().find(key);
  if (it == cache().end()) {
    copro::Config config = copro::Config::fromEnvironment();
    config.timeoutSec = 30;
    config.nodeMap = s.nodeMap;
    it = cache()
             .emplace(key, std::make_unique<Communicator>(copro::createFromMpi(MPI_COMM_WORLD, s.backend, config)))
             .first;
  }
  return *it->second;
}

/// Every rank's tokens and routing, the same on every process.
struct Inputs {
  std::vector<int> tokens;
  std::vector<std::vector<std::uint8_t>> x;
  std::vector<std::vector<float>> scales, w;
  std::vector<std::vector<std::int32_t>> idx;
};

Inputs makeInputs(const MoeConfig& c, int n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Inputs in;
  const int groups = copro::collectives::moeScaleGroups(c);
  for (int r = 0; r < n; ++r) {
    const int t = 4 + static_cast<int>(rng() % 7);
    in.tokens.push_back(t);
    std::vector<std::uint8_t> x(slot(t, c.hidden, 0));
    for (auto& b : x) b = static_cast<std::uint8_t>(rng() % 0x7f);
    in.x.push_back(std::move(x));
    std::vector<float> sc(slot(t, groups, 0));
    for (auto& s : sc) s = static_cast<float>(rng() % 100);
    in.scales.push_back(std::move(sc));
    std::vector<std::int32_t> idx(slot(t, c.topk, 0), -1);
    std::vector<float> w(idx.size(), 0.0F);
    for (int k = 0; k < t; ++k) {
      std::vector<int> taken;
      for (int s = 0; s < c.topk; ++s) {
        const int e = static_cast<int>(rng() % static_cast<std::uint64_t>(c.numExperts));
        if (rng() % 5 == 0 || std::find(taken.begin(), taken.end(), e) != taken.end()) continue;
        taken.push_back(e);
        idx[slot(k, c.topk, s)] = e;
        w[slot(k, c.topk, s)] = static_cast<float>(1 + rng() % 4) / 4.0F;
      }
    }
    in.idx.push_back(std::move(idx));
    in.w.push_back(std::move(w));
  }
  return in;
}

float expertValue(int src, int token, int expert, int h) {
  return core::bfloat16ToFloat(
      core::floatToBfloat16(static_cast<float>((src * 7 + token * 3 + expert * 5 + h) % 13) / 4.0F - 1.5F));
}

class MoeMp : public ::testing::TestWithParam<Setup> {};

TEST_P(MoeMp, DispatchCombineBothPathsBackToBack) {
  if (worldSize() != 4) GTEST_SKIP() << "needs 4 processes";
  Communicator& comm = communicatorFor(GetParam());
  const int n = comm.size();
  const int me = comm.rank();
  const auto um = static_cast<std::size_t>(me);
  for (MoePath path : {MoePath::kForward, MoePath::kDirect}) {
    MoeConfig c;
    c.hidden = 144;
    c.topk = 3;
    c.numExperts = 8;
    c.dispatchDtype = core::DataType::kFloat8E4M3;
    c.path = path;
    const int epr = c.numExperts / n;
    const int groups = copro::collectives::moeScaleGroups(c);
    const auto hidden = static_cast<std::size_t>(c.hidden);
    for (int call = 0; call < 2; ++call) {
      const Inputs in = makeInputs(c, n, kSeed + static_cast<std::uint64_t>(call));
      struct Row {
        int src, token, expert;
        float w;
      };
      std::vector<Row> ref;
      for (int i = 0; i < epr; ++i) {
        for (int s = 0; s < n; ++s) {
          for (int t = 0; t < in.tokens[static_cast<std::size_t>(s)]; ++t) {
            for (int k = 0; k < c.topk; ++k) {
              const auto at = slot(t, c.topk, k);
              if (in.idx[static_cast<std::size_t>(s)][at] == me * epr + i) {
                ref.push_back({s, t, me * epr + i, in.w[static_cast<std::size_t>(s)][at]});
              }
            }
          }
        }
      }
      const std::size_t cap = ref.size() + 1;
      std::vector<std::uint8_t> recvX(cap * hidden);
      std::vector<float> recvScales(cap * static_cast<std::size_t>(groups));
      std::vector<std::int32_t> srcRank(cap), srcToken(cap);
      std::vector<float> weight(cap);
      MoeDispatchOut out;
      out.recvX = recvX.data();
      out.recvScales = recvScales.data();
      out.srcRank = srcRank.data();
      out.srcToken = srcToken.data();
      out.weight = weight.data();
      out.capacityRows = cap;
      MoeHandle handle;
      copro::Status st = comm.moeDispatch(c, in.x[um].data(), in.scales[um].data(), in.idx[um].data(), in.w[um].data(),
                                          in.tokens[um], out, handle)
                             .wait();
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_EQ(out.numRows, ref.size());
      for (std::size_t u = 0; u < ref.size(); ++u) {
        ASSERT_EQ(srcRank[u], ref[u].src);
        ASSERT_EQ(srcToken[u], ref[u].token);
        ASSERT_EQ(weight[u], ref[u].w);
        ASSERT_EQ(std::memcmp(recvX.data() + u * hidden,
                              in.x[static_cast<std::size_t>(ref[u].src)].data() +
                                  static_cast<std::size_t>(ref[u].token) * hidden,
                              hidden),
                  0);
        ASSERT_EQ(recvScales[u * static_cast<std::size_t>(groups)],
                  in.scales[static_cast<std::size_t>(ref[u].src)][static_cast<std::size_t>(ref[u].token * groups)]);
      }
      std::vector<std::uint16_t> y(ref.size() * hidden);
      for (std::size_t u = 0; u < ref.size(); ++u) {
        for (std::size_t h = 0; h < hidden; ++h) {
          y[u * hidden + h] =
              core::floatToBfloat16(expertValue(ref[u].src, ref[u].token, ref[u].expert, static_cast<int>(h)));
        }
      }
      std::vector<std::uint16_t> combined(static_cast<std::size_t>(in.tokens[um]) * hidden);
      st = comm.moeCombine(handle, y.data(), combined.data()).wait();
      ASSERT_TRUE(st.ok()) << st.message();
      for (int t = 0; t < in.tokens[um]; ++t) {
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
          ASSERT_NEAR(core::bfloat16ToFloat(combined[static_cast<std::size_t>(t) * hidden + h]), want,
                      4.0 * 0.0078125 * mag + 1e-6)
              << "token " << t << " channel " << h;
        }
      }
    }
  }
}

std::vector<Setup> setups() {
  std::vector<Setup> out = {{"shm", "0,0,0,0"}, {"shm", "0,0,1,1"}};
#if COPRO_HAVE_UCX
  out.push_back({"shm+ucx", "0,0,1,1"});  // inter-node rows over UCX, intra-node over shared memory
  out.push_back({"ucx", "0,0,1,1"});
#endif
#if COPRO_HAVE_MPI
  out.push_back({"mpi", "0,0,1,1"});
  out.push_back({"shm+mpi", "0,0,1,1"});
#endif
#if COPRO_HAVE_VERBS && COPRO_HAVE_UCX
  // ctest runs these on the emulated provider (COPRO_VERBS_PROVIDER=emu); by hand they need a device or it.
  out.push_back({"verbs", "0,0,1,1"});
  out.push_back({"shm+verbs", "0,0,1,1"});
#endif
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, MoeMp, ::testing::ValuesIn(setups()), [](const ::testing::TestParamInfo<Setup>& i) {
  std::string s = i.param.backend + "_" + i.param.nodeMap;
  for (char& ch : s) {
    if (ch == ',' || ch == '+') ch = '_';
  }
  return s;
});

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  copro::mptest::abortJobOnFailure();
  if (worldRank() != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  } else {
    std::printf("copro_moe_mp_test: %d processes, input seed %llu\n", worldSize(),
                static_cast<unsigned long long>(kSeed));
  }
  int rc = RUN_ALL_TESTS();
  cache().clear();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rc != 0) std::fprintf(stderr, "copro_moe_mp_test: rank %d had failures\n", worldRank());
  MPI_Finalize();
  return worst;
}
