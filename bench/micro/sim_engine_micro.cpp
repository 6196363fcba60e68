// copro-sim-micro: Google Benchmark timings of the simulator engine's hot paths (docs/sim-bench.md,
// "Micro-benchmarks"): the event queue in lock step and at scattered times, the max-min re-solve of one-flow
// components (a ring step) and of one shared component (an incast), op generation of a streamed ring
// all-reduce lane, and routing on a two-tier fat-tree with ECMP. Each benchmark reports items per second
// (events, flows, ops, routes), the unit the simulator's cost per event is made of.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/program.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/topologies/topology.hpp"
#include "event_queue.hpp"
#include "flow_network.hpp"
#include "router.hpp"

namespace {

using copro::sim::detail::EventKind;
using copro::sim::detail::EventQueue;
using copro::sim::detail::FlowNetwork;
using copro::sim::detail::NetworkModel;

copro::topo::Fabric star(std::int64_t p) {
  return copro::topo::buildTopology("single_switch",
                                    {{"gpus", std::to_string(p)}, {"bw", "400Gb/s"}, {"latency", "500ns"}});
}

/// Channel of GPU g's uplink (dir 0) or downlink (dir 1) on a star.
std::int32_t starChannel(const copro::topo::Fabric& f, std::int32_t g, int dir) {
  const std::int32_t node = f.gpus()[static_cast<std::size_t>(g)];
  const std::int32_t link = f.linksOf(node).at(0);
  const int from = f.directionFrom(link, node);
  return copro::topo::channelOf(link, dir == 0 ? from : 1 - from);
}

/// Lock step: range(0) events at one time, then the next time (a ring's ranks finishing a step together).
void BM_EventQueueLockStep(benchmark::State& state) {
  const auto width = static_cast<std::int32_t>(state.range(0));
  EventQueue q;
  std::int64_t t = 0;
  for (auto _ : state) {
    for (std::int32_t i = 0; i < width; ++i) q.push(t + 1000, EventKind::kLaneRun, i);
    while (!q.empty()) benchmark::DoNotOptimize(q.pop());
    t += 1000;
  }
  state.SetItemsProcessed(state.iterations() * width);
}
BENCHMARK(BM_EventQueueLockStep)->Arg(1024)->Arg(16384);

/// Scattered: range(0) pending events at distinct random times; each pop pushes one later event.
void BM_EventQueueScattered(benchmark::State& state) {
  const auto pending = static_cast<std::int32_t>(state.range(0));
  std::mt19937_64 rng(1);
  EventQueue q;
  for (std::int32_t i = 0; i < pending; ++i)
    q.push(static_cast<std::int64_t>(rng() % 1'000'000), EventKind::kLaneRun, i);
  for (auto _ : state) {
    const auto e = q.pop();
    q.push(e.time + 1 + static_cast<std::int64_t>(rng() % 1'000'000), EventKind::kLaneRun, e.a);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EventQueueScattered)->Arg(1024)->Arg(65536);

/// One ring step on a star of range(0) GPUs: every GPU starts a flow to its successor (p one-flow
/// components), one re-solve, every flow finishes, one re-solve.
void BM_MaxMinRingStep(benchmark::State& state) {
  const auto p = static_cast<std::int32_t>(state.range(0));
  const copro::topo::Fabric f = star(p);
  FlowNetwork net(f);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(p));
  std::vector<NetworkModel::Finish> out;
  std::int64_t now = 0;
  for (auto _ : state) {
    for (std::int32_t g = 0; g < p; ++g) {
      const std::int32_t path[2] = {starChannel(f, g, 0), starChannel(f, (g + 1) % p, 1)};
      ids[static_cast<std::size_t>(g)] = net.start(now, path, 2, 1 << 20, 0);
    }
    out.clear();
    net.recompute(now, out);
    now += 1'000'000;
    for (const std::int32_t id : ids) net.finish(id, now);
    net.recompute(now, out);
  }
  state.SetItemsProcessed(state.iterations() * p);
}
BENCHMARK(BM_MaxMinRingStep)->Arg(1024)->Arg(16384);

/// One shared component: range(0) flows from distinct GPUs into GPU 0 (an incast), each over a second,
/// private hop; one flow ends and one starts per re-solve, so the whole component is re-filled each time.
void BM_MaxMinIncastResolve(benchmark::State& state) {
  const auto k = static_cast<std::int32_t>(state.range(0));
  const copro::topo::Fabric f = star(k + 1);
  FlowNetwork net(f);
  std::vector<std::int32_t> ids;
  std::vector<NetworkModel::Finish> out;
  for (std::int32_t g = 1; g <= k; ++g) {
    const std::int32_t path[2] = {starChannel(f, g, 0), starChannel(f, 0, 1)};
    ids.push_back(net.start(0, path, 2, 1 << 30, 0));
  }
  net.recompute(0, out);
  std::int64_t now = 0;
  std::size_t next = 0;
  for (auto _ : state) {
    now += 1000;
    const std::int32_t g = static_cast<std::int32_t>(next % static_cast<std::size_t>(k)) + 1;
    net.finish(ids[next % ids.size()], now);
    const std::int32_t path[2] = {starChannel(f, g, 0), starChannel(f, 0, 1)};
    ids[next % ids.size()] = net.start(now, path, 2, 1 << 30, 0);
    ++next;
    out.clear();
    net.recompute(now, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * k);
}
BENCHMARK(BM_MaxMinIncastResolve)->Arg(64)->Arg(1024);

/// One large component of many-to-many traffic (an MoE dispatch): range(0) flows between random GPU pairs of
/// a 256-GPU star, so every uplink and downlink carries ~range(0)/256 flows; one flow ends and another
/// starts per re-solve, and the whole component is searched and re-filled each time (the engine's cost in
/// the DeepSeek-V3 MoE rows of docs/sim-bench.md).
void BM_MaxMinManyToManyResolve(benchmark::State& state) {
  const auto k = static_cast<std::size_t>(state.range(0));
  const std::int32_t p = 256;
  const copro::topo::Fabric f = star(p);
  FlowNetwork net(f);
  std::mt19937_64 rng(5);
  const auto startRandom = [&](std::int64_t now) {
    const auto src = static_cast<std::int32_t>(rng() % p);
    const auto dst = static_cast<std::int32_t>((static_cast<std::uint64_t>(src) + 1 + rng() % (p - 1)) % p);
    const std::int32_t path[2] = {starChannel(f, src, 0), starChannel(f, dst, 1)};
    return net.start(now, path, 2, std::uint64_t{1} << 30, 0);
  };
  std::vector<std::int32_t> ids;
  for (std::size_t i = 0; i < k; ++i) ids.push_back(startRandom(0));
  std::vector<NetworkModel::Finish> out;
  net.recompute(0, out);
  std::int64_t now = 0;
  std::size_t next = 0;
  for (auto _ : state) {
    now += 1000;
    net.finish(ids[next % k], now);
    ids[next % k] = startRandom(now);
    ++next;
    out.clear();
    net.recompute(now, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(k));
}
BENCHMARK(BM_MaxMinManyToManyResolve)->Arg(1024)->Arg(8192);

/// Op generation: rank 0's lane of a streamed, unchunked ring all-reduce on range(0) ranks, op by op
/// (what the executor pulls; the lane is reopened when it ends).
void BM_OpGenerationRingLane(benchmark::State& state) {
  const auto p = state.range(0);
  const copro::topo::Fabric f = star(p);
  copro::sim::Communicator comm(f);
  copro::sim::CollectiveCall call;
  call.kind = copro::collectives::CollectiveKind::kAllReduce;
  call.size = std::uint64_t{64} << 20;
  call.algorithm = "ring";
  call.chunkBytes = call.size;
  const copro::sim::PreparedCall prepared = comm.prepare(call);
  std::unique_ptr<copro::core::LaneCursor> lane = prepared.program->openLane(0, 0);
  copro::core::Op op;
  for (auto _ : state) {
    if (!lane->next(op)) {
      lane = prepared.program->openLane(0, 0);
      lane->next(op);
    }
    benchmark::DoNotOptimize(op);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OpGenerationRingLane)->Arg(1024)->Arg(16384);

/// Routing: random GPU pairs on a non-blocking two-tier fat-tree of 1024 single-GPU hosts with ECMP (a
/// per-flow hash choice at each tier, so no route is cached).
void BM_RouteFatTreeEcmp(benchmark::State& state) {
  const copro::topo::Fabric f = copro::topo::buildTopology(
      "fat_tree", {{"nodes", "1024"}, {"node", "gpu"}, {"tiers", "2"}, {"radix", "64"}, {"nic_bw", "400Gb/s"}});
  copro::sim::detail::Router router(f, copro::sim::Routing::kEcmp, 1);
  const auto n = static_cast<std::uint32_t>(f.gpus().size());
  std::mt19937_64 rng(3);
  std::vector<std::int32_t> path;
  for (auto _ : state) {
    const auto src = static_cast<std::int32_t>(rng() % n);
    const auto dst = static_cast<std::int32_t>((static_cast<std::uint32_t>(src) + 1 + rng() % (n - 1)) % n);
    path.clear();
    benchmark::DoNotOptimize(router.route(src, dst, rng(), nullptr, path));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RouteFatTreeEcmp);

}  // namespace

BENCHMARK_MAIN();
