// Streaming Programs (core::StreamProgram): the ported algorithms (ring/rhd/hier all-reduce, ring
// reduce-scatter(v), ring all-gather(v), pairwise all-to-all, and the ring-based hier reduce-scatter and
// all-gather) stream through openLane exactly the ops that rank(r) materializes, and exactly the ops the
// pre-streaming generators produced (hashes recorded from them); chunkBytes == 0 means unchunked; a
// 1024-rank 64 MiB ring all-reduce streams for every rank at once without materializing any.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "collective_harness.hpp"
#include "copro/collectives/collective.hpp"
#include "copro/core/generator.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {
namespace {

using core::Op;
using core::RankProgram;

// ---- a hash of Programs, field by field (independent of the JSON form) -----------------------------

struct Fnv {
  std::uint64_t h = 1469598103934665603ULL;
  void add(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ULL;
    }
  }
  void addSigned(std::int64_t v) { add(static_cast<std::uint64_t>(v)); }
  void add(const core::Addr& a) {
    addSigned(a.rank);
    add(static_cast<std::uint64_t>(a.buf));
    add(a.offset);
  }
  void add(const Op& op) {
    add(static_cast<std::uint64_t>(op.code));
    addSigned(op.peer);
    add(op.dst);
    add(op.src);
    add(op.bytes);
    addSigned(op.sem);
    add(op.value);
    add(static_cast<std::uint64_t>(op.dtype));
    add(static_cast<std::uint64_t>(op.redop));
    add(op.divisor);
    add(op.srcs.size());
    for (const auto& s : op.srcs) add(s);
    add(op.ranks.size());
    for (auto r : op.ranks) addSigned(r);
    addSigned(op.indirect.bytesSlot);
    addSigned(op.indirect.srcOffsetSlot);
    addSigned(op.indirect.dstOffsetSlot);
    add(op.indirect.bytesScale);
  }
  void add(const core::ProgramHeader& hd) {
    for (char c : hd.name) add(static_cast<std::uint64_t>(c));
    add(static_cast<std::uint64_t>(hd.nranks));
    add(static_cast<std::uint64_t>(hd.numSemaphores));
    add(hd.scratchBytes);
    add(hd.layoutWords);
    for (auto b : hd.inputBytes) add(b);
    for (auto b : hd.outputBytes) add(b);
  }
  void add(const RankProgram& rp) {
    add(rp.lanes.size());
    for (const auto& lane : rp.lanes) {
      add(static_cast<std::uint64_t>(lane.initiation));
      add(lane.ops.size());
      for (const auto& op : lane.ops) add(op);
    }
  }
};

// ---- the cases -------------------------------------------------------------------------------------

struct Golden {
  const char* name;  ///< "<collective>.<algorithm>"
  int nranks;
  int perNode;  ///< hier: ranks per node (0: flat)
  int inPlace;
  std::uint64_t hash;  ///< of every case below, as the LazyProgram generators before streaming made them
};

// Recorded from the generators before the port (LazyProgram emitters of commit dac45ce), by the loop in
// hashOfCases() run against that build.
const Golden kGolden[] = {
    {"allreduce.ring", 1, 0, 0, 0xb6f6b86dfa42c1f3ULL},      {"allreduce.ring", 1, 0, 1, 0x9fa91c3b20ee53a3ULL},
    {"allreduce.ring", 2, 0, 0, 0xa5098719c7e6c7daULL},      {"allreduce.ring", 2, 0, 1, 0xb7cec25be88a954aULL},
    {"allreduce.ring", 3, 0, 0, 0x854e16367a6924fbULL},      {"allreduce.ring", 3, 0, 1, 0xcbf21fc72b22fd1aULL},
    {"allreduce.ring", 5, 0, 0, 0x27f505d90dbd13cdULL},      {"allreduce.ring", 5, 0, 1, 0x609ad59acd3c63c9ULL},
    {"allreduce.ring", 8, 0, 0, 0x4cd97a0c5f04dd25ULL},      {"allreduce.ring", 8, 0, 1, 0xd68423caaa7251c1ULL},
    {"allreduce.rhd", 1, 0, 0, 0x70bfde6638cb35c7ULL},       {"allreduce.rhd", 1, 0, 1, 0x1699913f2f398743ULL},
    {"allreduce.rhd", 2, 0, 0, 0xd19def9774cd2319ULL},       {"allreduce.rhd", 2, 0, 1, 0xc613bf103a6dec41ULL},
    {"allreduce.rhd", 3, 0, 0, 0xc5512b458073b525ULL},       {"allreduce.rhd", 3, 0, 1, 0x881d96390a83d5c9ULL},
    {"allreduce.rhd", 5, 0, 0, 0x0be0de1ac39f87eaULL},       {"allreduce.rhd", 5, 0, 1, 0x8505a19b9c5e17b6ULL},
    {"allreduce.rhd", 8, 0, 0, 0x66ac5ea590c2f10dULL},       {"allreduce.rhd", 8, 0, 1, 0xb35640c3ddea1215ULL},
    {"reducescatter.ring", 1, 0, 0, 0x17f6a98878d8a118ULL},  {"reducescatter.ring", 1, 0, 1, 0x5d6f21a43ea9ef39ULL},
    {"reducescatter.ring", 2, 0, 0, 0x3002ecc7d9199952ULL},  {"reducescatter.ring", 2, 0, 1, 0x92cc65176f026662ULL},
    {"reducescatter.ring", 3, 0, 0, 0x890556bff3ede532ULL},  {"reducescatter.ring", 3, 0, 1, 0x13d9c10994e8d5cdULL},
    {"reducescatter.ring", 5, 0, 0, 0x84d544c0bbce3117ULL},  {"reducescatter.ring", 5, 0, 1, 0xcc0a2385154f65b0ULL},
    {"reducescatter.ring", 8, 0, 0, 0xa72b7caac879b1eeULL},  {"reducescatter.ring", 8, 0, 1, 0x6ee8c570ca421732ULL},
    {"reducescatterv.ring", 1, 0, 0, 0x97630cf3442f2491ULL}, {"reducescatterv.ring", 1, 0, 1, 0xb049f8d00c51f339ULL},
    {"reducescatterv.ring", 2, 0, 0, 0x75d3ed401c79b340ULL}, {"reducescatterv.ring", 2, 0, 1, 0xc97aad7efb06a4feULL},
    {"reducescatterv.ring", 3, 0, 0, 0x139566aaf019837bULL}, {"reducescatterv.ring", 3, 0, 1, 0x8d8b566ce85e008dULL},
    {"reducescatterv.ring", 5, 0, 0, 0x9fa991aac69d796bULL}, {"reducescatterv.ring", 5, 0, 1, 0xfabe3d3f4d02c961ULL},
    {"reducescatterv.ring", 8, 0, 0, 0x869102a2f9621391ULL}, {"reducescatterv.ring", 8, 0, 1, 0x975609af41c8407aULL},
    {"allgather.ring", 1, 0, 0, 0xf1a8af0385a491c7ULL},      {"allgather.ring", 1, 0, 1, 0x29e841c227f666a3ULL},
    {"allgather.ring", 2, 0, 0, 0x9bf4ce3ed7a320f7ULL},      {"allgather.ring", 2, 0, 1, 0xbf39621ec6f6ce4fULL},
    {"allgather.ring", 3, 0, 0, 0xf4b1336fa2dbfe2bULL},      {"allgather.ring", 3, 0, 1, 0x26c2681369ec0447ULL},
    {"allgather.ring", 5, 0, 0, 0x1d71fbb55c800c97ULL},      {"allgather.ring", 5, 0, 1, 0x2bd6bb34f8613477ULL},
    {"allgather.ring", 8, 0, 0, 0xa775e04c7b9bc4b5ULL},      {"allgather.ring", 8, 0, 1, 0xf4a71eb2be94a443ULL},
    {"allgatherv.ring", 1, 0, 0, 0xdbe6ca3683f786dbULL},     {"allgatherv.ring", 1, 0, 1, 0xcb3382a20fa5f343ULL},
    {"allgatherv.ring", 2, 0, 0, 0xc1eb065571e69c9aULL},     {"allgatherv.ring", 2, 0, 1, 0x3c6e4a66fc0fd724ULL},
    {"allgatherv.ring", 3, 0, 0, 0x5c9d58034fa266f2ULL},     {"allgatherv.ring", 3, 0, 1, 0x89623bcc37252dc0ULL},
    {"allgatherv.ring", 5, 0, 0, 0x41b132f6304c8b2dULL},     {"allgatherv.ring", 5, 0, 1, 0x034cd70ea95219dbULL},
    {"allgatherv.ring", 8, 0, 0, 0x4558ef717177a4bcULL},     {"allgatherv.ring", 8, 0, 1, 0x8c6140649cd3e44bULL},
    {"alltoall.pairwise", 1, 0, 0, 0x54154ff72c672a73ULL},   {"alltoall.pairwise", 1, 0, 1, 0xbcb10c9bddd0dbc3ULL},
    {"alltoall.pairwise", 2, 0, 0, 0x0702925622836103ULL},   {"alltoall.pairwise", 2, 0, 1, 0xa73fdd9cd6003438ULL},
    {"alltoall.pairwise", 3, 0, 0, 0xacf5c63e4d5bd497ULL},   {"alltoall.pairwise", 3, 0, 1, 0x5d33e2eb8f011d0eULL},
    {"alltoall.pairwise", 5, 0, 0, 0xd1c124d6ef05441fULL},   {"alltoall.pairwise", 5, 0, 1, 0xcafd82114f1b4585ULL},
    {"alltoall.pairwise", 8, 0, 0, 0x7ab78453f092d7d3ULL},   {"alltoall.pairwise", 8, 0, 1, 0xd252fe22c3df6662ULL},
    {"allreduce.hier", 4, 2, 0, 0xdaf72f4178941c33ULL},      {"allreduce.hier", 4, 2, 1, 0x8d1d20c2fc181673ULL},
    {"allreduce.hier", 6, 2, 0, 0x7ecb68ff762a29beULL},      {"allreduce.hier", 6, 2, 1, 0xf28a5bede0bb599eULL},
    {"allreduce.hier", 6, 3, 0, 0x8d8253c4fb7ea427ULL},      {"allreduce.hier", 6, 3, 1, 0x3be351c439117657ULL},
    {"allreduce.hier", 8, 2, 0, 0xc549bc2b44ad57a6ULL},      {"allreduce.hier", 8, 2, 1, 0x5f0f0c5cb0b94a76ULL},
    {"allreduce.hier", 8, 4, 0, 0xbba835b4f58a747bULL},      {"allreduce.hier", 8, 4, 1, 0x85137bf3c59e153bULL},
    {"allreduce.hier", 12, 4, 0, 0x27f73fde336169a9ULL},     {"allreduce.hier", 12, 4, 1, 0x8295dba605837cc9ULL},
    {"allreduce.hier", 12, 3, 0, 0xe284a959b7661bc2ULL},     {"allreduce.hier", 12, 3, 1, 0x65f83356ea60f08aULL},
    {"allreduce.hier", 16, 2, 0, 0x5fa8f9c9d2f9e024ULL},     {"allreduce.hier", 16, 2, 1, 0xb222266c8817b154ULL},
    {"allgather.hier", 4, 2, 0, 0x2ac6f5b9451cdd63ULL},      {"allgather.hier", 4, 2, 1, 0x22fd6afb3f708bd7ULL},
    {"allgather.hier", 6, 2, 0, 0x646000ab47e3adfcULL},      {"allgather.hier", 6, 2, 1, 0x99398a41c0e4c993ULL},
    {"allgather.hier", 6, 3, 0, 0xbc93f0173e6943f4ULL},      {"allgather.hier", 6, 3, 1, 0x4bb3a00f550bf223ULL},
    {"allgather.hier", 8, 2, 0, 0xaf9ce26b6726cf08ULL},      {"allgather.hier", 8, 2, 1, 0x69aa7b0fc989bd57ULL},
    {"allgather.hier", 8, 4, 0, 0x9a2237839c0ce050ULL},      {"allgather.hier", 8, 4, 1, 0x7c130166dfb8493fULL},
    {"allgather.hier", 12, 4, 0, 0x75fe8b3fdeda00ecULL},     {"allgather.hier", 12, 4, 1, 0x72a2650f612a0633ULL},
    {"allgather.hier", 12, 3, 0, 0xccfa46a35f391b58ULL},     {"allgather.hier", 12, 3, 1, 0x62ad30bcf9c22adbULL},
    {"allgather.hier", 16, 2, 0, 0x512a866cd7c09360ULL},     {"allgather.hier", 16, 2, 1, 0x6c38b5928b5cd103ULL},
    {"reducescatter.hier", 4, 2, 0, 0xe6bb8059cb3ae0b9ULL},  {"reducescatter.hier", 4, 2, 1, 0xceb0fab9f2004d5fULL},
    {"reducescatter.hier", 6, 2, 0, 0x3ccf16cc6b6237d7ULL},  {"reducescatter.hier", 6, 2, 1, 0x8436b577ec23562eULL},
    {"reducescatter.hier", 6, 3, 0, 0xe9e4d7b9ff41a1fdULL},  {"reducescatter.hier", 6, 3, 1, 0xace242b385c5e38cULL},
    {"reducescatter.hier", 8, 2, 0, 0x501bfafbecf8fba8ULL},  {"reducescatter.hier", 8, 2, 1, 0x59bb5cd27c343fe6ULL},
    {"reducescatter.hier", 8, 4, 0, 0x86df48f7025a940dULL},  {"reducescatter.hier", 8, 4, 1, 0x087e9d3773f6885bULL},
    {"reducescatter.hier", 12, 4, 0, 0x67ab2a9638298d43ULL}, {"reducescatter.hier", 12, 4, 1, 0x89caa12f0fc9a2c6ULL},
    {"reducescatter.hier", 12, 3, 0, 0x59c28134fa46dce4ULL}, {"reducescatter.hier", 12, 3, 1, 0x333a55eed3cb1fa1ULL},
    {"reducescatter.hier", 16, 2, 0, 0xaa87e53d60ee2d5dULL}, {"reducescatter.hier", 16, 2, 1, 0x1600f9e8b4838b7cULL},
};

CollectiveKind kindOf(const std::string& name) {
  CollectiveKind k{};
  const std::string coll = name.substr(0, name.find('.'));
  if (!parseCollectiveKind(coll, k)) throw std::runtime_error("unknown collective " + coll);
  return k;
}

/// Runs every (count, chunk, dtype/op, node layout) case of one golden row: for each Program, the ops
/// streamed through openLane for every rank and lane must equal Program::materialize(source) and the
/// lane counts must agree; returns the hash of the materialized Programs.
std::uint64_t hashOfCases(const Golden& g) {
  const std::string name = g.name;
  const CollectiveKind kind = kindOf(name);
  const std::string algo = name.substr(name.find('.') + 1);
  const bool hier = g.perNode > 0;
  Fnv f;
  for (std::uint64_t count : {0ULL, 1ULL, 7ULL, 1000ULL}) {
    for (std::uint64_t chunk : {4ULL, 12ULL, 256ULL, 1ULL << 20}) {
      for (int v = 0; v < 2; ++v) {
        if (chunk == 4 && (count == 1000 || hier)) continue;  // keep the run short
        if (hier && count == 1000 && chunk == 12) continue;
        CollectiveArgs args;
        args.kind = kind;
        args.nranks = g.nranks;
        args.count = count;
        args.chunkBytes = chunk;
        args.inPlace = g.inPlace != 0;
        args.dtype = v ? core::DataType::kFloat64 : core::DataType::kFloat32;
        args.op = v ? core::ReduceOp::kAvg : core::ReduceOp::kSum;
        const int p = g.nranks;
        if (kind == CollectiveKind::kAllGatherV || kind == CollectiveKind::kReduceScatterV) {
          for (int r = 0; r < p; ++r) {
            args.counts.push_back((count * static_cast<std::uint64_t>(r + 1) + static_cast<std::uint64_t>(r)) % 11 +
                                  (r == 1 ? count : 0));
          }
        }
        if (hier) {
          // Contiguous nodes for float64 cases, interleaved ones for float32.
          for (int r = 0; r < p; ++r) args.nodeOfRank.push_back(v ? r / g.perNode : r % (p / g.perNode));
        }
        SCOPED_TRACE(harness::describe(args, algo, 0));
        const auto src = buildProgram(args, algo);
        const auto* stream = dynamic_cast<const core::StreamProgram*>(src.get());
        if (stream == nullptr) {
          ADD_FAILURE() << name << " is not a StreamProgram";
          return 0;
        }
        // Stream first: nothing may be materialized by it.
        std::vector<RankProgram> streamed(static_cast<std::size_t>(p));
        for (std::int32_t r = 0; r < p; ++r) {
          const int lanes = src->numLanes(r);
          for (int l = 0; l < lanes; ++l) {
            RankProgram& rp = streamed[static_cast<std::size_t>(r)];
            rp.addLane();
            auto cursor = src->openLane(r, l);
            Op op;
            while (cursor->next(op)) rp.lanes.back().ops.push_back(op);
          }
        }
        EXPECT_EQ(stream->materializedRanks(), 0U);
        const core::Program materialized = core::Program::materialize(*src);
        EXPECT_EQ(stream->materializedRanks(), static_cast<std::size_t>(p));
        f.add(materialized.header());
        for (std::int32_t r = 0; r < p; ++r) {
          const RankProgram& m = materialized.rank(r);
          f.add(m);
          const RankProgram& st = streamed[static_cast<std::size_t>(r)];
          EXPECT_EQ(st.lanes.size(), m.lanes.size()) << "rank " << r;
          for (std::size_t l = 0; l < m.lanes.size() && l < st.lanes.size(); ++l) {
            EXPECT_EQ(st.lanes[l].ops, m.lanes[l].ops) << "rank " << r << " lane " << l;
          }
          // rank(r) is cached: the same object, the same ops as the materialized copy.
          EXPECT_EQ(&src->rank(r), &src->rank(r));
          EXPECT_EQ(src->rank(r), m);
        }
      }
    }
  }
  return f.h;
}

class StreamGolden : public ::testing::TestWithParam<std::string> {};

std::string paramName(const ::testing::TestParamInfo<std::string>& param) {
  std::string s = param.param;
  for (char& c : s) {
    if (c == '.') c = '_';
  }
  return s;
}

TEST_P(StreamGolden, StreamedEqualsMaterializedEqualsPreStreamingOps) {
  int rows = 0;
  for (const Golden& g : kGolden) {
    if (GetParam() != g.name) continue;
    ++rows;
    SCOPED_TRACE(std::string(g.name) + " p=" + std::to_string(g.nranks) + " perNode=" + std::to_string(g.perNode) +
                 (g.inPlace ? " in-place" : ""));
    EXPECT_EQ(hashOfCases(g), g.hash) << "the ops differ from those of the pre-streaming generator";
  }
  EXPECT_GT(rows, 0);
}

INSTANTIATE_TEST_SUITE_P(Ported, StreamGolden,
                         ::testing::Values("allreduce.ring", "allreduce.rhd", "allreduce.hier", "reducescatter.ring",
                                           "reducescatterv.ring", "reducescatter.hier", "allgather.ring",
                                           "allgatherv.ring", "allgather.hier", "alltoall.pairwise"),
                         paramName);

TEST(StreamProgram, CloneReplaysToTheSamePosition) {
  CollectiveArgs a;
  a.nranks = 5;
  a.count = 1000;
  a.chunkBytes = 64;
  const auto src = buildProgram(a, "ring");
  auto c = src->openLane(2, 0);
  Op op;
  for (int i = 0; i < 17; ++i) ASSERT_TRUE(c->next(op));
  auto d = c->clone();
  Op x;
  Op y;
  std::size_t rest = 0;
  while (c->next(x)) {
    ASSERT_TRUE(d->next(y));
    ASSERT_EQ(x, y);
    ++rest;
  }
  EXPECT_FALSE(d->next(y));
  EXPECT_EQ(rest + 17, src->rank(2).lanes[0].ops.size());
}

TEST(StreamProgram, LanesAndRanksOutOfRangeThrow) {
  CollectiveArgs a;
  a.nranks = 3;
  a.count = 10;
  const auto src = buildProgram(a, "ring");
  EXPECT_THROW((void)src->openLane(3, 0), Error);
  EXPECT_THROW((void)src->openLane(0, 1), Error);
  EXPECT_THROW((void)src->rank(-1), Error);
  EXPECT_EQ(src->numLanes(0), 1);
}

TEST(OpStream, SplicesSubStreamsAndPropagatesErrors) {
  struct Gen {
    static core::OpStream inner(int n) {
      for (int i = 0; i < n; ++i) co_yield Op::wait(0, static_cast<std::uint64_t>(i));
      if (n == 3) throw Error(ErrorCode::kInternal, "inner failed");
    }
    static core::OpStream outer(int n) {
      co_yield Op::flush();
      co_yield core::OpStream{};  // an empty stream splices nothing
      for (int i = 0; i < n; ++i) {
        co_yield inner(i);
        co_yield Op::signal(1, 0, static_cast<std::uint64_t>(i));
      }
    }
  };
  core::OpStream s = Gen::outer(3);
  std::vector<Op> got;
  Op op;
  while (s.next(op)) got.push_back(op);
  // flush; (none) signal0; wait0 signal1; wait0 wait1 signal2
  ASSERT_EQ(got.size(), 7U);
  EXPECT_EQ(got[0], Op::flush());
  EXPECT_EQ(got[1], Op::signal(1, 0, 0));
  EXPECT_EQ(got[2], Op::wait(0, 0));
  EXPECT_EQ(got[3], Op::signal(1, 0, 1));
  EXPECT_EQ(got[5], Op::wait(0, 1));
  EXPECT_EQ(got[6], Op::signal(1, 0, 2));
  EXPECT_FALSE(s.next(op));  // stays at the end

  core::OpStream bad = Gen::outer(5);
  std::size_t n = 0;
  try {
    while (bad.next(op)) ++n;
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner failed"), std::string::npos);
  }
  EXPECT_EQ(n, 1U + (0U + 1U + 2U + 3U) + 3U);  // flush, waits of inner(0..3), 3 signals; then inner(3) throws
  EXPECT_FALSE(bad.next(op));                   // the failed stream has ended
  core::OpStream empty;
  EXPECT_FALSE(empty.next(op));
}

// ---- chunkBytes == 0: unchunked --------------------------------------------------------------------

TEST(Unchunked, ZeroChunkMeansOneChunkPerStep) {
  CollectiveArgs a;
  a.nranks = 4;
  a.count = 4000;
  for (const char* algo : {"ring", "rhd", "tree", "oneshot", "lsa"}) {
    SCOPED_TRACE(algo);
    a.chunkBytes = 0;
    const core::Program zero = core::Program::materialize(*buildProgram(a, algo));
    a.chunkBytes = 1ULL << 40;  // larger than any buffer: also one chunk per step
    const core::Program huge = core::Program::materialize(*buildProgram(a, algo));
    EXPECT_EQ(zero, huge);
  }
  // The ring: 1 round, so per rank 7p - 11 ops (reduce-scatter 5p - 9, all-gather 2p - 2).
  a.chunkBytes = 0;
  a.nranks = 8;
  const auto ring = buildProgram(a, "ring");
  for (std::int32_t r = 0; r < a.nranks; ++r) EXPECT_EQ(ring->rank(r).numOps(), 7U * 8 - 11);
}

TEST(Unchunked, EveryCollectiveRunsCorrectlyWithZeroChunk) {
  std::uint64_t seed = 4242;
  for (std::int32_t p : {1, 3, 4}) {
    for (std::uint64_t count : {1ULL, 7ULL, 300ULL}) {
      CollectiveArgs a;
      a.nranks = p;
      a.count = count;
      a.chunkBytes = 0;
      a.dtype = core::DataType::kFloat32;
      for (const char* algo : {"ring", "rhd", "tree", "oneshot", "lsa"}) {
        a.kind = CollectiveKind::kAllReduce;
        harness::checkAllReduce(a, algo, seed++);
      }
      a.kind = CollectiveKind::kReduceScatter;
      for (const char* algo : {"ring", "rhalving"}) harness::checkReduceScatter(a, algo, seed++);
      a.kind = CollectiveKind::kAllGather;
      for (const char* algo : {"ring", "rdoubling", "bruck"}) harness::checkAllGather(a, algo, seed++);
      a.kind = CollectiveKind::kAllToAll;
      for (const char* algo : {"pairwise", "bruck"}) harness::checkAllToAll(a, algo, seed++);
      if (p == 4) {
        a.nodeOfRank = {0, 0, 1, 1};
        a.kind = CollectiveKind::kAllReduce;
        harness::checkAllReduce(a, "hier", seed++);
        a.kind = CollectiveKind::kAllGather;
        harness::checkAllGather(a, "hier", seed++);
        a.kind = CollectiveKind::kReduceScatter;
        harness::checkReduceScatter(a, "hier", seed++);
      }
    }
  }
  // The remaining algorithms at least build valid Programs with an unchunked pipeline.
  for (const Algorithm& alg : algorithms()) {
    if (alg.kind == CollectiveKind::kSendRecv || alg.kind == CollectiveKind::kAllToAllV) continue;
    CollectiveArgs a;
    a.kind = alg.kind;
    a.nranks = 4;
    a.count = 100;
    a.chunkBytes = 0;
    a.nodeOfRank = {0, 0, 1, 1};
    if (alg.kind == CollectiveKind::kAllGatherV || alg.kind == CollectiveKind::kReduceScatterV) a.counts = {3, 0, 5, 1};
    if (!alg.unsupportedReason(a).empty()) continue;
    SCOPED_TRACE(std::string(collectiveName(alg.kind)) + "." + alg.name);
    const core::ValidationResult v = core::validateProgram(*alg.build(a));
    EXPECT_TRUE(v.ok()) << v.summary();
  }
}

// ---- memory: every rank of a large ring streams at once ---------------------------------------------

// Under AddressSanitizer freed memory sits in a quarantine and shadow memory grows with the heap, so RSS
// says nothing about what the cursors hold: the RSS bounds are checked in plain builds only.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssMeaningful = false;
#else
constexpr bool kRssMeaningful = true;
#endif

/// A field of /proc/self/status in KiB ("VmRSS", "VmHWM"); 0 where unavailable.
std::uint64_t procStatusKiB(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

TEST(StreamMemory, AllRanksOfA1024RankRingStreamWithoutMaterializing) {
  CollectiveArgs a;
  a.nranks = 1024;
  a.count = (64ULL << 20) / 4;  // 64 MiB of float32
  a.dtype = core::DataType::kFloat32;
  const auto src = buildProgram(a, "ring");
  const auto& stream = dynamic_cast<const core::StreamProgram&>(*src);
  const std::uint64_t rssBefore = procStatusKiB("VmRSS");
  std::vector<std::unique_ptr<core::LaneCursor>> cursors;
  for (std::int32_t r = 0; r < a.nranks; ++r) cursors.push_back(src->openLane(r, 0));
  const std::uint64_t rssOpen = procStatusKiB("VmRSS");
  // Pull round-robin, a few ops per rank at a time, as a simulator advancing every rank would.
  std::uint64_t total = 0;
  std::uint64_t reduceBytes = 0;
  std::size_t live = cursors.size();
  std::vector<bool> done(cursors.size(), false);
  Op op;
  while (live > 0) {
    for (std::size_t r = 0; r < cursors.size(); ++r) {
      for (int i = 0; i < 8 && !done[r]; ++i) {
        if (!cursors[r]->next(op)) {
          done[r] = true;
          --live;
          break;
        }
        ++total;
        if (op.code == core::OpCode::kReduce) reduceBytes += op.bytes;
      }
    }
  }
  const std::uint64_t rssAfter = procStatusKiB("VmRSS");
  const std::uint64_t hwm = procStatusKiB("VmHWM");
  std::printf(
      "[ memory ] 1024-rank 64 MiB ring all-reduce: %llu ops streamed; RSS %llu KiB before, %llu KiB with "
      "1024 cursors open, %llu KiB after pulling every op; peak RSS (VmHWM) %llu KiB\n",
      static_cast<unsigned long long>(total), static_cast<unsigned long long>(rssBefore),
      static_cast<unsigned long long>(rssOpen), static_cast<unsigned long long>(rssAfter),
      static_cast<unsigned long long>(hwm));
  EXPECT_EQ(stream.materializedRanks(), 0U);
  const std::uint64_t p = 1024;
  EXPECT_EQ(total, p * (7 * p - 11));  // one round per step: 7p - 11 ops per rank
  // Every rank reduces p - 1 pieces of 1/p of the vector: (p - 1) * 64 MiB in total.
  EXPECT_EQ(reduceBytes, (p - 1) * (64ULL << 20));
  // Cached, the Program would be ~1 GB; streamed, the cursors cost little (bound well under the simulator's
  // 256 MiB budget; RSS only approximates the heap, so the bound is loose).
  if (kRssMeaningful && rssBefore > 0) {
    EXPECT_LT(rssAfter > rssBefore ? rssAfter - rssBefore : 0, 64U * 1024);
  }
}

TEST(StreamMemory, CursorsForEveryRankOfA16384RankRingAreSmall) {
  CollectiveArgs a;
  a.nranks = 16384;
  a.count = (64ULL << 20) / 4;
  a.dtype = core::DataType::kFloat32;
  const auto src = buildProgram(a, "ring");
  const auto& stream = dynamic_cast<const core::StreamProgram&>(*src);
  const std::uint64_t rssBefore = procStatusKiB("VmRSS");
  std::vector<std::unique_ptr<core::LaneCursor>> cursors;
  Op op;
  std::uint64_t firstPutsToNext = 0;
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    cursors.push_back(src->openLane(r, 0));
    ASSERT_TRUE(cursors.back()->next(op));
    if (op.code == core::OpCode::kPut && op.peer == (r + 1) % a.nranks) ++firstPutsToNext;
  }
  const std::uint64_t rssOpen = procStatusKiB("VmRSS");
  const std::uint64_t perCursor = rssOpen > rssBefore ? (rssOpen - rssBefore) * 1024 / 16384 : 0;
  std::printf("[ memory ] 16384 open ring cursors: RSS %llu KiB -> %llu KiB (~%llu bytes per cursor)\n",
              static_cast<unsigned long long>(rssBefore), static_cast<unsigned long long>(rssOpen),
              static_cast<unsigned long long>(perCursor));
  EXPECT_EQ(firstPutsToNext, 16384U);  // every rank starts by sending its first piece to the next
  EXPECT_EQ(stream.materializedRanks(), 0U);
  if (kRssMeaningful && rssBefore > 0) {
    EXPECT_LT(rssOpen > rssBefore ? rssOpen - rssBefore : 0, 128U * 1024);
  }
}

}  // namespace
}  // namespace copro::collectives
