// copro-call-micro: Google Benchmark timings of what one small call costs on the real (inproc) backend, split
// into its parts (docs/latency.md, "Where a small call's time goes"): the Communicator's side alone (argument
// checks, CollectiveArgs, the Program cache lookup: measured as captured calls, which stop before the
// executor), planning and building a Program (the cache turned off), the executor's start and wait of a
// ready Program, a whole call, a replayed CallGraph, and a 2-rank call; then the reduction kernels per data
// type. Run with --benchmark_format=json for machine-readable output.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "copro/collectives/planner.hpp"
#include "copro/copro.hpp"
#include "copro/core/reduce.hpp"

namespace {

using copro::Communicator;
using copro::DataType;
using copro::ReduceOp;

copro::Config quietConfig(std::uint64_t cacheEntries = 256) {
  copro::Config c = copro::Config::fromEnvironment();
  c.programCacheEntries = cacheEntries;
  return c;
}

/// A one-rank inproc communicator: every call is a local copy, so its time is the call's overhead.
Communicator& oneRank() {
  static std::vector<Communicator> comms = copro::createInproc(1, quietConfig());
  return comms[0];
}

void checkOk(benchmark::State& state, const copro::Status& s) {
  if (!s.ok()) state.SkipWithError(s.message().c_str());
}

/// Times allReduce() calls recorded by a capture (they stop before the executor), re-opening the capture
/// every 4096 calls so the recording stays bounded.
void timeCapturedCalls(benchmark::State& state, Communicator& c) {
  float in[2] = {1, 2};
  float out[2] = {};
  c.beginCapture();
  std::uint64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.allReduce(in, out, 2, DataType::kFloat32, ReduceOp::kSum));
    if (++n % 4096 == 0) {
      state.PauseTiming();
      (void)c.endCapture();
      c.beginCapture();
      state.ResumeTiming();
    }
  }
  (void)c.endCapture();
}

/// Argument checks, CollectiveArgs and the cache lookup.
void BM_CommunicatorSide(benchmark::State& state) {
  timeCapturedCalls(state, oneRank());
}
BENCHMARK(BM_CommunicatorSide);

/// Planning and building the Program of every call (COPRO_PROGRAM_CACHE=0), on top of the Communicator side.
void BM_PlanAndBuild(benchmark::State& state) {
  static std::vector<Communicator> comms = copro::createInproc(1, quietConfig(0));
  timeCapturedCalls(state, comms[0]);
}
BENCHMARK(BM_PlanAndBuild);

/// The executor alone: start and wait of a ready Program (what a replay pays per call).
void BM_ExecutorStartWait(benchmark::State& state) {
  copro::registerBuiltinBackends();
  copro::core::ExecutorOptions o;
  o.nranks = 1;
  o.config = quietConfig();
  auto execs = copro::core::ExecutorRegistry::instance().create("inproc", o);
  copro::collectives::CollectiveArgs a;
  a.kind = copro::collectives::CollectiveKind::kAllReduce;
  a.nranks = 1;
  a.count = 2;
  a.dtype = DataType::kFloat32;
  a.op = ReduceOp::kSum;
  auto plan = copro::collectives::plan(a, copro::collectives::costModelFrom(o.config));
  std::shared_ptr<const copro::core::ProgramSource> program = plan.chosen->build(a);
  float in[2] = {1, 2};
  float out[2] = {};
  copro::core::CallBuffers b;
  b.input = in;
  b.output = out;
  for (auto _ : state) {
    std::unique_ptr<copro::core::CallHandle> h;
    checkOk(state, execs[0]->start(program, b, h));
    checkOk(state, h->wait());
  }
}
BENCHMARK(BM_ExecutorStartWait);

/// A whole call: allReduce(...).wait() of 8 bytes.
void BM_WholeCall(benchmark::State& state) {
  Communicator& c = oneRank();
  float in[2] = {1, 2};
  float out[2] = {};
  for (auto _ : state) checkOk(state, c.allReduce(in, out, 2, DataType::kFloat32, ReduceOp::kSum).wait());
}
BENCHMARK(BM_WholeCall);

/// The same call replayed from a CallGraph of one call.
void BM_Replay(benchmark::State& state) {
  Communicator& c = oneRank();
  float in[2] = {1, 2};
  float out[2] = {};
  c.beginCapture();
  (void)c.allReduce(in, out, 2, DataType::kFloat32, ReduceOp::kSum);
  copro::CallGraph g = c.endCapture();
  for (auto _ : state) checkOk(state, g.replay().wait());
}
BENCHMARK(BM_Replay);

/// A 2-rank all-reduce of 8 bytes, each rank on its own benchmark thread (both run every iteration).
void BM_TwoRankCall(benchmark::State& state) {
  static std::vector<Communicator> comms = copro::createInproc(2, quietConfig());
  Communicator& c = comms[static_cast<std::size_t>(state.thread_index())];
  float in[2] = {1, 2};
  float out[2] = {};
  for (auto _ : state) checkOk(state, c.allReduce(in, out, 2, DataType::kFloat32, ReduceOp::kSum).wait());
}
BENCHMARK(BM_TwoRankCall)->Threads(2)->UseRealTime();

/// reduceInto of two sources per data type (sum), 64 KiB per buffer: the kernels' throughput.
template <DataType T>
void BM_ReduceSum(benchmark::State& state) {
  const std::size_t bytes = 64 * 1024;
  const std::size_t count = bytes / copro::core::dataTypeSize(T);
  std::vector<std::byte> a(bytes, std::byte{1});
  std::vector<std::byte> b(bytes, std::byte{1});
  std::vector<std::byte> out(bytes);
  const void* srcs[2] = {a.data(), b.data()};
  for (auto _ : state) {
    copro::core::reduceInto(out.data(), srcs, 2, count, T, ReduceOp::kSum);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes * 3));
}
BENCHMARK_TEMPLATE(BM_ReduceSum, DataType::kFloat32);
BENCHMARK_TEMPLATE(BM_ReduceSum, DataType::kFloat64);
BENCHMARK_TEMPLATE(BM_ReduceSum, DataType::kFloat16);
BENCHMARK_TEMPLATE(BM_ReduceSum, DataType::kBfloat16);
BENCHMARK_TEMPLATE(BM_ReduceSum, DataType::kInt32);
BENCHMARK_TEMPLATE(BM_ReduceSum, DataType::kInt64);

}  // namespace

BENCHMARK_MAIN();
