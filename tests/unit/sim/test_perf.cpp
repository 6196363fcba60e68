/// Scale of the simulator: a ring all-reduce generated op by op (a streaming ProgramSource written here, the
/// same op sequence as the library's unchunked ring), checked against the library's Program at small p, and
/// timed at large p by the disabled SimPerf test:
///   SIM_PERF_RANKS=1024 copro_unit_sim --gtest_also_run_disabled_tests --gtest_filter='SimPerf.*'
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "copro/collectives/collective.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/simulator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using core::Addr;
using core::BufferId;
using core::Op;
using core::OpCode;

/// Ring all-reduce (reduce-scatter with two-slot credits, then all-gather) for p ranks and `bytes` per rank
/// (a multiple of 4p), generated lazily: no rank is ever materialized.
class StreamingRing final : public core::ProgramSource {
 public:
  StreamingRing(std::int32_t p, std::uint64_t bytes) {
    header_.name = "allreduce.ring.streaming";
    header_.nranks = p;
    header_.numSemaphores = 3;
    bytes_ = bytes;
  }
  [[nodiscard]] const core::ProgramHeader& header() const override { return header_; }
  [[nodiscard]] const core::RankProgram& rank(std::int32_t) const override {
    throw core::Error(core::ErrorCode::kInternal, "StreamingRing is never materialized");
  }
  [[nodiscard]] int numLanes(std::int32_t) const override { return 1; }
  [[nodiscard]] std::unique_ptr<core::LaneCursor> openLane(std::int32_t r, int) const override {
    return std::make_unique<Cursor>(r, header_.nranks, bytes_ / static_cast<std::uint64_t>(header_.nranks));
  }

 private:
  class Cursor final : public core::LaneCursor {
   public:
    Cursor(std::int32_t r, std::int32_t p, std::uint64_t m) : r_(r), p_(p), m_(m) {}
    bool next(Op& op) override {
      while (pos_ == len_) {
        if (!refill()) return false;
      }
      // Written field by field into the caller's op (its vectors keep their capacity): no allocation per op.
      const Item& it = buf_[pos_++];
      op.code = it.code;
      op.peer = it.peer;
      op.sem = it.sem;
      op.value = it.value;
      op.bytes = it.code == OpCode::kWait || it.code == OpCode::kSignal ? 0 : m_;
      op.dst = Addr{it.code == OpCode::kPut ? it.peer : core::kSelf,
                    it.code == OpCode::kPut ? BufferId::kScratch : BufferId::kOutput, 0};
      op.dtype = core::DataType::kFloat32;
      if (it.code == OpCode::kReduce) {
        op.srcs.resize(2);
      } else {
        op.srcs.clear();
      }
      return true;
    }
    [[nodiscard]] std::unique_ptr<LaneCursor> clone() const override { return std::make_unique<Cursor>(*this); }

   private:
    struct Item {
      OpCode code = OpCode::kFlush;
      std::int32_t peer = core::kSelf;
      std::int32_t sem = -1;
      std::uint64_t value = 0;
    };
    void add(OpCode code, std::int32_t peer, std::int32_t sem, std::uint64_t value) {
      buf_[len_++] = Item{code, peer, sem, value};
    }
    void put(std::int32_t sem) { add(OpCode::kPut, (r_ + 1) % p_, sem, 1); }
    void wait(std::int32_t sem, std::uint64_t v) { add(OpCode::kWait, core::kSelf, sem, v); }
    void reduce() { add(OpCode::kReduce, core::kSelf, -1, 0); }
    void credit() { add(OpCode::kSignal, (r_ + p_ - 1) % p_, 1, 1); }
    /// The ops of the next step of the ring.
    bool refill() {
      len_ = 0;
      pos_ = 0;
      const std::int32_t steps = p_ - 1;
      const auto total = static_cast<std::uint64_t>(steps);
      if (step_ < steps) {  // reduce-scatter step
        if (step_ > 0) wait(0, seqRecv_ + 1);
        if (seqSend_ >= 2) wait(1, seqSend_ - 1);
        if (step_ > 0) {
          reduce();
          if (seqRecv_ + 2 < total) credit();
          ++seqRecv_;
        }
        put(0);
        ++seqSend_;
      } else if (step_ == steps) {  // last reduce of the reduce-scatter, first put of the all-gather
        wait(0, seqRecv_ + 1);
        reduce();
        if (seqRecv_ + 2 < total) credit();
        ++seqRecv_;
        put(2);
      } else if (step_ < 2 * steps) {
        wait(2, ++agRecv_);
        put(2);
      } else if (step_ == 2 * steps) {
        wait(2, ++agRecv_);
      } else {
        return false;
      }
      ++step_;
      return true;
    }

    std::int32_t r_;
    std::int32_t p_;
    std::uint64_t m_;
    std::int32_t step_ = 0;
    std::uint64_t seqSend_ = 0;
    std::uint64_t seqRecv_ = 0;
    std::uint64_t agRecv_ = 0;
    std::array<Item, 6> buf_{};
    std::size_t len_ = 0;
    std::size_t pos_ = 0;
  };

  core::ProgramHeader header_;
  std::uint64_t bytes_ = 0;
};

SimParams perfParams() {
  SimParams p;
  p.reduceBandwidth = core::Bandwidth::gbps(100);
  return p;
}

TEST(SimScale, StreamingRingMatchesTheLibraryRing) {
  const int p = 16;
  const std::uint64_t bytes = 4 * 1024 * 1024;
  const auto f = testing::starFabric(p, core::Bandwidth::gbps(50), core::Time::us(1), core::Time::ns(300));
  collectives::CollectiveArgs a;
  a.nranks = p;
  a.count = bytes / 4;
  a.chunkBytes = std::uint64_t{1} << 40;
  Simulator sim(f, perfParams());
  const auto lib = sim.run(*collectives::buildProgram(a, "ring"));
  const auto streamed = sim.run(StreamingRing(p, bytes));
  EXPECT_EQ(streamed.time, lib.time);
  EXPECT_EQ(streamed.ops, lib.ops);
  EXPECT_EQ(streamed.flows, lib.flows);
  EXPECT_EQ(streamed.bytesPut, lib.bytesPut);
}

long peakRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

TEST(SimPerf, DISABLED_RingAllReduce64MiB) {
  const char* env = std::getenv("SIM_PERF_RANKS");
  const int p = env != nullptr ? std::atoi(env) : 1024;
  const std::uint64_t bytes = std::uint64_t{64} << 20;
  const auto f = testing::starFabric(p, core::Bandwidth::gbps(50), core::Time::us(1), core::Time::ns(300));
  Simulator sim(f, perfParams());
  const StreamingRing program(p, bytes - bytes % (4 * static_cast<std::uint64_t>(p)));
  const auto res = sim.run(program);
  std::printf(
      "ring all-reduce 64 MiB, p=%d: simulated %.3f ms; %llu events, %llu flows, %llu ops, %llu recomputations; "
      "wall %.3f s, %.2f M events/s, peak RSS %.1f MiB\n",
      p, res.time.seconds() * 1e3, static_cast<unsigned long long>(res.events),
      static_cast<unsigned long long>(res.flows), static_cast<unsigned long long>(res.ops),
      static_cast<unsigned long long>(res.rateRecomputations), res.wallSeconds,
      static_cast<double>(res.events) / res.wallSeconds * 1e-6, static_cast<double>(peakRssKiB()) / 1024.0);
  EXPECT_EQ(res.bytesPut, res.bytesDelivered);
}

}  // namespace
}  // namespace copro::sim
